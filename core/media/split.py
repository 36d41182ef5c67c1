"""Split a video in two at a time point, in copy or accurate mode.

Both parts are cuts of the same source made by core.media.trim (one machinery, one set
of rules). In copy mode the split point moves to the keyframe at or before ``at`` (or,
inside the first GOP, to the first keyframe after it) so that part one ends exactly
where part two begins and no frame is in both; in accurate mode it stays at the first
frame at or after ``at``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from av.container import InputContainer

from core.media.errors import InvalidRequest
from core.media.output import atomic_output
from core.media.probe import media_duration, open_input, validated
from core.media.trim import (Progress, ShouldCancel, check_mode, check_range, cut_range,
                             keyframe_after, keyframe_at_or_before)
from ext.progress import Throttle


def split_point(source: InputContainer, at: float, duration: float, mode: str) -> float:
    """Where a split at ``at`` really cuts: ``at`` itself, or a keyframe in copy mode."""
    if mode != "copy":
        return at
    point = keyframe_at_or_before(source, at)
    if point <= keyframe_at_or_before(source, 0.0):
        later = keyframe_after(source, at, duration)
        if later is None:
            raise InvalidRequest("splitTime: the video has no keyframe to split at in copy mode; "
                                 "use mode 'accurate'")
        point = later
    return point


def split(src: str | os.PathLike[str], dst1: str | os.PathLike[str], dst2: str | os.PathLike[str],
          at: float, mode: str = "copy", progress: Progress = None,
          should_cancel: ShouldCancel = None) -> dict[str, Any]:
    """Write [0, at) of ``src`` to ``dst1`` and [at, end) to ``dst2`` (MP4, faststart).

    Returns ``{"parts": [{"duration": s}, {"duration": s}], "cut": {"at": s}}`` where
    ``cut.at`` is the split point actually used (seconds of the source). Progress covers
    both parts; neither file is left behind on failure or cancellation.
    """
    check_mode(mode)
    with open_input(src) as source:
        duration = validated(source, Path(src).name)[1]
        at, _ = check_range(at, duration, duration, names=("splitTime", "splitTime"))
        if at <= 0:
            raise InvalidRequest("splitTime must be after the start of the video")
        at = split_point(source, at, duration, mode)
        throttle = Throttle(duration, progress, should_cancel)
        with atomic_output(dst1) as first, atomic_output(dst2) as second:
            cut_range(mode, source, first, 0.0, at, throttle)
            cut = cut_range(mode, source, second, at, duration, throttle, offset=at)
    parts = [{"duration": round(media_duration(path), 6)} for path in (dst1, dst2)]
    throttle.finish()
    return {"parts": parts, "cut": {"at": cut["start"]}}
