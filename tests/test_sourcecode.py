"""Source checks run as tests, as asyncpg runs flake8 and mypy: ruff over the tree, mypy over
the code (strict for core/, server/http and server/ws; pyproject's defaults for the rest
of server/). Their versions are pinned in the test extra, so a new release cannot fail CI
on a rule nobody chose. Every ``# type: ignore`` that remains names its error code and
says why, and mypy's ``warn_unused_ignores`` removes the ones no longer needed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff() -> None:
    result = _run("ruff", "check", "core", "server", "tests", "perf")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("command", [("--strict", "core", "server/http", "server/ws"), ("server",)],
                         ids=["strict", "server"])
def test_mypy(command: tuple[str, ...]) -> None:
    result = _run("mypy", *command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_type_ignore_says_what_and_why() -> None:
    bare = []
    for path in [*ROOT.glob("core/**/*.py"), *ROOT.glob("server/**/*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "type: ignore" in line and not re.search(r"type: ignore\[[\w-]+(, [\w-]+)*\]\s+#\s*\S", line):
                bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bare, "an ignore needs its code and a reason after it:\n" + "\n".join(bare)
