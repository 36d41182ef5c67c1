"""``python -m perf.ws_bench --peer node`` refuses clearly when the Node peer cannot run.

No Node.js or npm is needed: these check the refusals only, which come before anything
is started or pinned (the Node peer itself is exercised by running the benchmark).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from perf import ws_bench


def run_main(*argv: str) -> SystemExit:
    affinity = os.sched_getaffinity(0)
    with pytest.raises(SystemExit) as exited:
        ws_bench.main(list(argv))
    assert os.sched_getaffinity(0) == affinity, "refused only after pinning this process"
    return exited.value


def test_missing_node_modules_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    peer = tmp_path / "node-ws"
    monkeypatch.setattr(ws_bench, "NODE_PEER", peer)
    monkeypatch.setattr(ws_bench.shutil, "which", lambda name: f"/usr/bin/{name}")
    message = str(run_main("--peer", "node", "--clients", "10").code)
    assert f"{peer / 'node_modules'} is missing" in message
    assert message.splitlines()[-1].strip() == f"npm ci --prefix {peer}"


def test_missing_node_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_bench.shutil, "which", lambda name: None)
    assert "`node` was not found" in str(run_main("--peer", "node", "--clients", "10").code)


def test_node_peer_runs_one_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main("--peer", "node", "--nodes", "1,3").code == 2
    assert "leave --nodes at 1" in capsys.readouterr().err
