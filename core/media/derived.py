"""Files derived from a video and cached beside it: where they live and when they are stale.

Everything the server works out of a video once (its description, the filmstrip, the
waveform, the browser proxy) is kept in the media directory's hidden ``.cache``, named
after the source (``<source name>.<what>``), and used while it is newer than the source.
The media directory is shared by every node and worker, so whoever made a derivative
first saves the others the work.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.media.output import atomic_output
from core.storage import CACHE_DIR, is_regular_file, working_dir


def cache_path(src: str | os.PathLike[str], what: str) -> Path:
    """Where the derivative ``what`` (e.g. ``probe.json``) of ``src`` is kept."""
    src = Path(src)
    return src.parent / CACHE_DIR / f"{src.name}.{what}"


def is_fresh(src: Path, *derived: Path) -> bool:
    """True when every ``derived`` file exists and was written after ``src`` last changed."""
    source_mtime = src.stat().st_mtime_ns
    try:
        return all(path.stat().st_mtime_ns >= source_mtime for path in derived)
    except FileNotFoundError:
        return False


def read_json(src: str | os.PathLike[str], what: str) -> dict[str, Any] | None:
    """The derivative ``what`` of ``src`` if it is fresh, else None."""
    path = cache_path(src, what)
    if path.parent.is_symlink() or not is_regular_file(path):  # planted to be read: not ours
        return None
    try:
        return json.loads(path.read_bytes()) if is_fresh(Path(src), path) else None
    except (OSError, ValueError):  # no source, a derivative removed meanwhile or not ours
        return None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically, so a reader never sees half of it.

    Its directory is made a real one first (core.storage.working_dir): a symlink planted
    in place of ``.cache`` would send the write out of the media directory.
    """
    working_dir(path.parent)
    with atomic_output(path) as tmp:
        tmp.write_bytes(json.dumps(data, separators=(",", ":")).encode())
