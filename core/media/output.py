"""Writing output files: MP4 with faststart, published atomically or not at all.

A job that fails or is cancelled must leave no partial file, and a reader must never see
a half-written one, so every output is written to a hidden temporary name in the same
directory (same filesystem: the rename is atomic) and renamed over ``dst`` on success.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av

from core.media.errors import CorruptMedia, MediaError


@contextmanager
def atomic_output(dst: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; rename it to ``dst`` if the block succeeds.

    On any exception (Cancelled included) the temporary file is removed and the
    exception propagates. FFmpeg errors raised inside are turned into MediaError.
    """
    final = Path(dst)
    temp = final.with_name(f".{final.stem}.{uuid.uuid4().hex[:12]}.part{final.suffix}")
    try:
        try:
            yield temp
        except (av.error.InvalidDataError, av.error.EOFError) as error:
            raise CorruptMedia(f"The source cannot be read to the end ({error.strerror})") from error
        except av.FFmpegError as error:
            raise MediaError(f"Writing {final.name} failed ({error.strerror})") from error
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)


def open_output(path: str | os.PathLike[str]) -> av.container.OutputContainer:
    """An MP4 output whose index (moov) is moved to the front when it is closed."""
    return av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
