"""The video timeline around a cut: where its keyframes and frames are (read without
decoding), and whether a cut delivered all the video it should have."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import av

from core.media.errors import CorruptMedia
from core.media.probe import Timeline, time_base
from ext.remux import scan_video


@dataclass(frozen=True)
class GopMap:
    """Keyframes and frame times (pts, in the stream's time base) from a keyframe at or
    before ``lo`` through the last packet decoded no later than ``hi``.

    ``reached`` is False when the stream ended before ``hi`` (``end`` is then where it
    stopped: the pts plus duration of its latest frame).
    """

    keyframes: list[tuple[int, int]]
    frames: list[int]
    end: int
    reached: bool

    def keyframe_at_or_before(self, pts: int) -> tuple[int, int]:
        """The (pts, dts) of the last keyframe whose pts is <= ``pts``."""
        index = bisect.bisect_right(self.keyframes, (pts, float("inf"))) - 1
        return self.keyframes[max(index, 0)]

    def keyframes_within(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Keyframes with ``lo <= pts < hi``."""
        return [key for key in self.keyframes if lo <= key[0] < hi]

    def frames_within(self, lo: int, hi: int) -> list[int]:
        """Frame pts with ``lo <= pts < hi``."""
        return self.frames[bisect.bisect_left(self.frames, lo):bisect.bisect_left(self.frames, hi)]


def seek_before(container: av.container.InputContainer, stream: av.stream.Stream, ts: int) -> None:
    """Seek so that demuxing ``stream`` starts at a keyframe at or before ``ts`` (its ticks).

    A seek may land past its target: MPEG-TS seeks by bytes, and with B-frames the
    keyframe a seek finds may be presented after ``ts``. So step back two seconds at a
    time until the first keyframe read is not after ``ts`` (or the target is before the
    stream's start), then seek there again for the caller.
    """
    step = max(int(2 / time_base(stream)), 1)
    floor = (stream.start_time or 0) - step  # a seek before the start lands on the start
    target = ts
    while True:
        container.seek(target, stream=stream, backward=True)
        key = next((packet.pts for packet in container.demux(stream)
                    if packet.pts is not None and packet.is_keyframe), None)
        if (key is not None and key <= ts) or target <= floor:
            break
        target -= step
    container.seek(target, stream=stream, backward=True)


def scan_gops(container: av.container.InputContainer, video: av.video.stream.VideoStream,
              lo: int, hi: int) -> GopMap:
    """Map the GOPs of ``video`` covering [lo, hi] (pts), from a keyframe at or before ``lo``."""
    seek_before(container, video, lo)
    keys, frames, end, reached = scan_video(container.demux(video), video.index, hi)
    if not frames and not reached:
        raise CorruptMedia("The video stream holds no frame at that time")
    if not keys:
        raise CorruptMedia("The video stream holds no keyframe before that time")
    return GopMap(keys, frames, end, reached)


def check_delivered(video: av.video.stream.VideoStream, timeline: Timeline, delivered_end: float,
                    wanted_end: float, name: str) -> None:
    """Raise CorruptMedia when the video delivered stops short of ``wanted_end`` (timeline s).

    A truncated file whose index survived opens and cuts "fine" but yields a short
    output; the tolerance is two frames (the last frame of a stream may be shorter).
    """
    rate = float(video.average_rate or video.guessed_rate or 25)
    if video.duration and video.time_base:
        wanted_end = min(wanted_end, timeline.seconds((video.start_time or 0) + video.duration, video))
    if delivered_end < wanted_end - 2 / rate:
        raise CorruptMedia(
            f"{name} is truncated or damaged: its video stops at {delivered_end:.3f} s "
            f"although it should run to {wanted_end:.3f} s"
        )
