"""Trim a video to [start, end): keyframe-aligned stream copy, or a frame-accurate cut.

``mode="copy"`` copies packets without decoding, so the cut can only begin at a keyframe:
it begins at the keyframe at or before ``start`` and the result says so. FFmpeg's CLI
(and PyAV by default) would instead keep that preroll hidden behind an MP4 edit list so
that the presented file starts exactly at ``start``; players that ignore edit lists then
start up to one GOP early, and a "30 s" trim of a GOP-300 file held 40 s of stored video.
Here nothing is hidden: the output is stored and presented from the keyframe, and
``cut.start`` is that keyframe's time. The end needs no keyframe: the copy stops at the
first frame at or after ``end`` in decode order (B-frames keep the reference frame they
need, which may show a frame or two past ``end``; ``cut.end`` reports where it really
stops).

``mode="accurate"`` (core.media.smartcut) re-encodes only the partial GOPs at the two
edges and copies the whole GOPs between them; its output is within a frame of the range.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from av.container import InputContainer

from core.media.errors import InvalidRequest, UnsupportedMedia
from core.media.gop import check_delivered, scan_gops
from core.media.output import atomic_output, open_output
from core.media.probe import media_duration, open_input, validated
from core.media.smartcut import smart_cut
from ext.progress import Throttle
from ext.remux import Track, copy_packets, mux_packets

MODES = ("copy", "accurate")

Progress = Callable[[float, str | None], None] | None  # see core.media
ShouldCancel = Callable[[], bool] | None


def check_mode(mode: str) -> str:
    """Refuse an unknown mode (InvalidRequest naming the field)."""
    if mode not in MODES:
        raise InvalidRequest(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def check_range(start: float, end: float, duration: float,
                names: tuple[str, str] = ("startTime", "endTime")) -> tuple[float, float]:
    """Validate a [start, end) cut of a file ``duration`` seconds long.

    ``end`` may pass the duration by a millisecond (client-side rounding) and is then
    clamped to it. Raises InvalidRequest naming the offending field.
    """
    start_name, end_name = names
    for name, value in ((start_name, start), (end_name, end)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidRequest(f"{name} must be a finite number of seconds")
    if start < 0:
        raise InvalidRequest(f"{start_name} must be >= 0")
    if start >= duration:
        raise InvalidRequest(f"{start_name} must be before the end of the video ({duration:.3f} s)")
    if end <= start:
        raise InvalidRequest(f"{end_name} must be after {start_name}")
    if end > duration + 1e-3:
        raise InvalidRequest(f"{end_name} must not be past the end of the video ({duration:.3f} s)")
    return float(start), float(min(end, duration))


def keyframe_at_or_before(source: InputContainer, seconds: float) -> float:
    """Time (s) of the last video keyframe at or before ``seconds`` (else the first one)."""
    video = source.streams.video[0]
    ts = round(seconds / video.time_base)
    return float(scan_gops(source, video, ts, ts).keyframe_at_or_before(ts)[0] * video.time_base)


def keyframe_after(source: InputContainer, seconds: float, limit: float) -> float | None:
    """Time (s) of the first video keyframe after ``seconds`` and before ``limit``, if any."""
    video = source.streams.video[0]
    lo, hi = round(seconds / video.time_base), round(limit / video.time_base)
    later = scan_gops(source, video, lo, hi).keyframes_within(lo + 1, hi)
    return float(later[0][0] * video.time_base) if later else None


def copy_range(source: InputContainer, dst: str | os.PathLike[str], start: float, end: float,
               throttle: Throttle, offset: float = 0.0) -> dict[str, float]:
    """Stream-copy video (and the first audio stream) of [start, end) into MP4 ``dst``.

    ``start`` must be a keyframe time (keyframe_at_or_before). Both streams are re-timed
    to begin at ``start``. Returns the cut actually made, ``{"start", "end"}`` in seconds
    of the source (the end is where the last copied video frame stops).
    """
    with open_output(dst) as output:
        video = source.streams.video[0]
        streams = [video, *source.streams.audio[:1]]
        tracks = {}
        for stream in streams:
            seconds = float(stream.time_base)
            first = round(start / seconds)
            try:
                out = output.add_stream_from_template(stream)
            except ValueError as error:  # PyAV's "format does not support codec"
                raise UnsupportedMedia(f"{stream.codec_context.name} {stream.type} cannot be copied into "
                                       "MP4 as is; use mode 'accurate'") from error
            tracks[stream.index] = Track(out, first, round(end / seconds), first, seconds, stream is video)
        source.seek(tracks[video.index].start, stream=video, backward=True)
        mux_packets(output, copy_packets(source.demux(streams), tracks), throttle, offset)
        first_pts, last_end = tracks[video.index].span
        check_delivered(video, last_end if tracks[video.index].packets else start, end, Path(source.name).name)
    return {"start": round(first_pts, 6), "end": round(last_end, 6)}


def cut_range(mode: str, source: InputContainer, dst: str | os.PathLike[str], start: float,
              end: float, throttle: Throttle, offset: float = 0.0) -> dict[str, float]:
    """Cut [start, end) of the open ``source`` into ``dst`` in ``mode`` (copy: ``start``
    keyframe-aligned)."""
    if mode == "copy":
        return copy_range(source, dst, start, end, throttle, offset)
    return smart_cut(source, dst, start, end, throttle, offset)


def trim(src: str | os.PathLike[str], dst: str | os.PathLike[str], start: float, end: float,
         mode: str = "copy", progress: Progress = None, should_cancel: ShouldCancel = None) -> dict[str, Any]:
    """Keep [start, end) of ``src`` in MP4 ``dst`` (faststart), atomically.

    Returns ``{"duration": s (probed from the output), "cut": {"start": s, "end": s}}``,
    the cut points actually used. Raises InvalidRequest (startTime/endTime/mode),
    UnsupportedMedia / CorruptMedia for bad sources, Cancelled (no file left behind).
    """
    check_mode(mode)
    with open_input(src) as source:
        start, end = check_range(start, end, validated(source, Path(src).name)[1])
        if mode == "copy":
            start = keyframe_at_or_before(source, start)
        throttle = Throttle(end - start, progress, should_cancel)
        with atomic_output(dst) as temp:
            cut = cut_range(mode, source, temp, start, end, throttle)
    result = {"duration": round(media_duration(dst), 6), "cut": cut}
    throttle.finish()
    return result
