"""Writing output files: MP4 with faststart, published atomically or not at all.

A job that fails or is cancelled must leave no partial file, and a reader must never see
a half-written one, so every output is written to a hidden temporary name in the same
directory (same filesystem: the rename is atomic) and renamed over ``dst`` on success.
A full disk is an error of its own (:class:`OutOfSpace`, naming the output), not a
failure of the media code.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av

from core.media.errors import CorruptMedia, MediaError, OutOfSpace
from core.storage import is_out_of_space

_TEMP = re.compile(r"\.(?P<stem>.+)\.[0-9a-f]{12}\.part(?P<suffix>.*)")
"""The temporary names :func:`atomic_output` gives, and what they are the temporary of."""


@contextmanager
def atomic_output(dst: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; rename it to ``dst`` if the block succeeds.

    On any exception (Cancelled included) the temporary file is removed and the
    exception propagates. FFmpeg errors raised inside are turned into MediaError, a full
    disk (whoever noticed it: FFmpeg or Python) into OutOfSpace.
    """
    final = Path(dst)
    temp = final.with_name(f".{final.stem}.{uuid.uuid4().hex[:12]}.part{final.suffix}")
    try:
        try:
            yield temp
        except (av.error.InvalidDataError, av.error.EOFError) as error:
            raise CorruptMedia(f"The source cannot be read to the end ({error.strerror})") from error
        except (OSError, av.FFmpegError) as error:  # av.error.OSError is both
            if is_out_of_space(error):
                raise OutOfSpace(f"Not enough disk space to write {_output_name(error, final)}") from error
            if not isinstance(error, av.FFmpegError):
                raise
            raise MediaError(f"Writing {_output_name(error, final)} failed ({error.strerror})") from error
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)


def _output_name(error: OSError | av.FFmpegError, final: Path) -> str:
    """The output a write error is about: nested outputs (split writes two) see each other's errors."""
    named = _TEMP.fullmatch(Path(error.filename).name) if error.filename else None
    return f"{named['stem']}{named['suffix']}" if named else final.name


def open_output(path: str | os.PathLike[str]) -> av.container.OutputContainer:
    """An MP4 output whose index (moov) is moved to the front when it is closed."""
    return av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
