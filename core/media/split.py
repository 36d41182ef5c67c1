"""Split a video in two at a time point; it always succeeds.

Both parts are cuts of the same source made by core.media.trim (one machinery, one set
of rules), and part one ends exactly where part two begins: no frame is in both, none is
lost. Where the split point is (within half a frame) on a keyframe, both parts are stream
copies; elsewhere they are frame-accurate cuts (core.media.smartcut: only the GOPs at the
edges are re-encoded, or the whole part when the codec cannot be spliced). The server
chooses; a client may force ``mode``: ``"copy"`` moves the point to the keyframe at or
before it (or, inside the first GOP, to the first keyframe after it) and falls back to an
accurate cut when there is none, ``"accurate"`` cuts at the first frame at or after it.
"""

from __future__ import annotations

import os
from typing import Any

from av.container import InputContainer

from core.media.errors import InvalidRequest
from core.media.output import atomic_output
from core.media.probe import Timeline, described, media_duration, open_input
from core.media.trim import (
    Progress,
    ShouldCancel,
    check_mode,
    check_range,
    copyable,
    cut_range,
    keyframe_after,
    keyframe_at_or_before,
)
from ext.progress import Throttle


def split_point(source: InputContainer, timeline: Timeline, at: float, duration: float,
                mode: str | None) -> tuple[float, str]:
    """Where a split at ``at`` really cuts, and how: ``(point, "copy" | "accurate")``."""
    if mode == "accurate" or not copyable(source):
        return at, "accurate"
    half_frame = 0.5 / float(source.streams.video[0].average_rate or 25)
    point = keyframe_at_or_before(source, timeline, at + half_frame)
    if mode is None:
        return (point, "copy") if at - point <= half_frame else (at, "accurate")
    if point <= keyframe_at_or_before(source, timeline, 0.0):
        later = keyframe_after(source, timeline, at, duration)
        if later is None:
            return at, "accurate"
        point = later
    return point, "copy"


def split(src: str | os.PathLike[str], dst1: str | os.PathLike[str], dst2: str | os.PathLike[str],
          at: float, mode: str | None = None, progress: Progress = None,
          should_cancel: ShouldCancel = None) -> dict[str, Any]:
    """Write [0, at) of ``src`` to ``dst1`` and [at, end) to ``dst2`` (MP4, faststart).

    Returns ``{"parts": [{"duration": s}, {"duration": s}], "cut": {"at": s}}`` where
    ``cut.at`` is the split point actually used (timeline seconds). Progress covers
    both parts; neither file is left behind on failure or cancellation.
    """
    if mode is not None:
        check_mode(mode)
    info = described(src)
    timeline = Timeline.of(info)
    duration = info["duration"]
    at, _ = check_range(at, duration, duration, names=("splitTime", "splitTime"))
    if at <= 0:
        raise InvalidRequest("splitTime must be after the start of the video")
    with open_input(src) as source:
        at, how = split_point(source, timeline, at, duration, mode)
        throttle = Throttle(duration, progress, should_cancel)
        with atomic_output(dst1) as first, atomic_output(dst2) as second:
            cut_range(how, source, timeline, first, 0.0, at, throttle)
            cut = cut_range(how, source, timeline, second, at, duration, throttle, offset=at)
    parts = [{"duration": round(media_duration(path), 6)} for path in (dst1, dst2)]
    throttle.finish()
    return {"parts": parts, "cut": {"at": cut["start"]}}
