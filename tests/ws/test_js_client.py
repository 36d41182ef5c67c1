"""Runs the browser client's logic tests (tests/ws/js) on the machine's Node.js test runner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

TESTS = Path(__file__).parent / "js"


def test_browser_client_logic() -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed to test server/static/js/nve-ws.js (apt-get install nodejs)"
    result = subprocess.run([node, "--test", *sorted(str(p) for p in TESTS.glob("*.test.mjs"))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
