"""Trim a video to [start, end): keyframe-aligned stream copy, or a frame-accurate cut.

``mode="copy"`` copies packets without decoding, so the cut can only begin at a keyframe:
it begins at the keyframe at or before ``start`` and the result says so. FFmpeg's CLI
(and PyAV by default) would instead keep that preroll hidden behind an MP4 edit list so
that the presented file starts exactly at ``start``; players that ignore edit lists then
start up to one GOP early, and a "30 s" trim of a GOP-300 file held 40 s of stored video.
Here nothing is hidden: the output is stored and presented from the keyframe, and
``cut.start`` is that keyframe's time. The end needs no keyframe: the copy stops where
every frame shown before ``end`` has been copied and the next one would be shown at or
after it (ext.remux.Track), so the picture has no hole, and ``cut.end`` reports where
it really stops (within a frame of ``end``).

``mode="accurate"`` (core.media.smartcut) re-encodes only the partial GOPs at the two
edges and copies the whole GOPs between them; its output is within a frame of the range.

Times are timeline seconds (core.media.probe.Timeline): 0 is the first presented frame,
whatever the container's clock says, so a TS whose clock starts hours in or a WebM whose
first keyframe is at 7 ms cut like any MP4. An all-intra source (ProRes, MJPEG) has a
keyframe on every frame, so copy cuts it at any frame.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from av.container import InputContainer

from core.media.errors import InvalidRequest
from core.media.gop import check_delivered, scan_gops, seek_before
from core.media.output import atomic_output, open_output
from core.media.probe import Timeline, described, media_duration, open_input, time_base
from core.media.smartcut import smart_cut
from ext.progress import Throttle
from ext.remux import Track, copy_packets, mux_packets, video_stop

MODES = ("copy", "accurate")
# Codecs MP4 holds as they are (FFmpeg's mp4 muxer), so a copy cut can keep them.
MP4_COPY_CODECS = frozenset({"h264", "hevc", "av1", "vp9", "mpeg4", "mpeg2video", "mpeg1video",
                             "aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"})

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


def copyable(source: InputContainer) -> bool:
    """Whether the streams a cut copies (the video, the first audio) fit MP4 as they are.

    MP4 holds neither ProRes, DNxHD, PCM nor VP8: such a source is re-encoded instead
    (the frame-accurate path), so every cut succeeds and plays anywhere.
    """
    return all(stream.codec_context.name in MP4_COPY_CODECS
               for stream in [source.streams.video[0], *source.streams.audio[:1]])


def keyframe_at_or_before(source: InputContainer, timeline: Timeline, seconds: float) -> float:
    """Time (s) of the last video keyframe at or before ``seconds`` (else the first one)."""
    video = source.streams.video[0]
    ts = timeline.ticks(seconds, video)
    return timeline.seconds(scan_gops(source, video, ts, ts).keyframe_at_or_before(ts)[0], video)


def keyframe_after(source: InputContainer, timeline: Timeline, seconds: float, limit: float) -> float | None:
    """Time (s) of the first video keyframe after ``seconds`` and before ``limit``, if any."""
    video = source.streams.video[0]
    lo, hi = timeline.ticks(seconds, video), timeline.ticks(limit, video)
    later = scan_gops(source, video, lo, hi).keyframes_within(lo + 1, hi)
    return timeline.seconds(later[0][0], video) if later else None


def copy_range(source: InputContainer, timeline: Timeline, dst: str | os.PathLike[str], start: float,
               end: float, throttle: Throttle, offset: float = 0.0) -> dict[str, float]:
    """Stream-copy video (and the first audio stream) of [start, end) into MP4 ``dst``.

    ``start`` must be a keyframe time (keyframe_at_or_before). Both streams are re-timed
    to begin at ``start``, each keeping its offset from it (audio that starts late stays
    late). Returns the cut actually made, ``{"start", "end"}`` in timeline seconds (the
    end is where the last copied video frame stops).
    """
    video = source.streams.video[0]
    streams = [video, *source.streams.audio[:1]]
    # With B-frames the video may show a frame or two past ``end`` (Track); the audio
    # runs to where the video will stop, read ahead from the last GOP.
    last = timeline.ticks(end, video)
    seek_before(source, video, scan_gops(source, video, last, last).keyframe_at_or_before(last)[0])
    planned = Track(None, timeline.ticks(start, video), last, 0, 0.0, True)
    shown_end = timeline.seconds(video_stop(source.demux(video), video.index, planned), video)
    with open_output(dst) as output:
        tracks = {}
        for stream in streams:
            first = timeline.ticks(start, stream)
            stop = timeline.ticks(end, stream) if stream is video else timeline.ticks(shown_end, stream)
            out = output.add_stream_from_template(stream)
            tracks[stream.index] = Track(out, first, stop, first, float(time_base(stream)), stream is video)
        seek_before(source, video, tracks[video.index].start)
        mux_packets(output, copy_packets(source.demux(streams), tracks), throttle, offset)
        first_pts, last_end = (seconds - timeline.origin for seconds in tracks[video.index].span)
        check_delivered(video, timeline, last_end if tracks[video.index].packets else start, end,
                        Path(source.name).name)
    return {"start": round(first_pts, 6), "end": round(last_end, 6)}


def cut_range(mode: str, source: InputContainer, timeline: Timeline, dst: str | os.PathLike[str],
              start: float, end: float, throttle: Throttle, offset: float = 0.0) -> dict[str, float]:
    """Cut [start, end) of the open ``source`` into ``dst`` in ``mode`` (copy: ``start``
    keyframe-aligned)."""
    if mode == "copy":
        return copy_range(source, timeline, dst, start, end, throttle, offset)
    return smart_cut(source, timeline, dst, start, end, throttle, offset)


def trim(src: str | os.PathLike[str], dst: str | os.PathLike[str], start: float, end: float,
         mode: str = "copy", progress: Progress = None, should_cancel: ShouldCancel = None) -> dict[str, Any]:
    """Keep [start, end) of ``src`` (timeline seconds) in MP4 ``dst`` (faststart), atomically.

    Returns ``{"duration": s (probed from the output), "cut": {"start": s, "end": s}}``,
    the cut points actually used. A source whose codecs MP4 cannot hold is cut the
    accurate way whatever ``mode`` says. Raises InvalidRequest (startTime/endTime/mode),
    UnsupportedMedia / CorruptMedia for bad sources, Cancelled (no file left behind).
    """
    check_mode(mode)
    info = described(src)
    timeline = Timeline.of(info)
    start, end = check_range(start, end, info["duration"])
    with open_input(src) as source:
        if mode == "copy" and not copyable(source):
            mode = "accurate"
        if mode == "copy":
            start = keyframe_at_or_before(source, timeline, start)
        throttle = Throttle(end - start, progress, should_cancel)
        with atomic_output(dst) as temp:
            cut = cut_range(mode, source, timeline, temp, start, end, throttle)
    result = {"duration": round(media_duration(dst), 6), "cut": cut}
    throttle.finish()
    return result
