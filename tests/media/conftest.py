"""Fixtures of the media tests: the real-world sample files, built once per session."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.media.realworld import SAMPLES, build


@pytest.fixture(scope="session")
def realworld(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every sample of :mod:`tests.media.realworld`, written to one directory: name -> path.

    Two at a time: each encoder runs one thread (reproducible output), and the machine
    has two cores.
    """
    directory = tmp_path_factory.mktemp("realworld")
    with ThreadPoolExecutor(2) as pool:
        paths = pool.map(lambda name: build(name, directory), SAMPLES)
        return dict(zip(SAMPLES, paths))
