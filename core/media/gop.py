"""The video timeline around a cut: where its keyframes and frames are (read without
decoding), and whether a cut delivered all the video it should have."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import av

from core.media.errors import CorruptMedia
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


def scan_gops(container: av.container.InputContainer, video: av.video.stream.VideoStream,
              lo: int, hi: int) -> GopMap:
    """Map the GOPs of ``video`` covering [lo, hi] (pts), seeking back until a keyframe
    at or before ``lo`` is included (a seek may land on a keyframe whose pts is past
    ``lo`` when B-frames delay presentation)."""
    target = lo
    step = max(int(2 / video.time_base), 1)  # two seconds, in ticks
    while True:
        container.seek(target, stream=video, backward=True)
        keys, frames, end, reached = scan_video(container.demux(video), video.index, hi)
        if not frames and not reached:
            raise CorruptMedia("The video stream holds no frame at that time")
        if (keys and keys[0][0] <= lo) or target <= (video.start_time or 0):
            if not keys:
                raise CorruptMedia("The video stream holds no keyframe before that time")
            return GopMap(keys, frames, end, reached)
        target -= step



def check_delivered(video: av.video.stream.VideoStream, delivered_end: float, wanted_end: float,
                    name: str) -> None:
    """Raise CorruptMedia when the video delivered stops short of ``wanted_end`` (s).

    A truncated file whose index survived opens and cuts "fine" but yields a short
    output; the tolerance is two frames (the last frame of a stream may be shorter).
    """
    rate = float(video.average_rate or video.guessed_rate or 25)
    if video.duration and video.time_base:
        stream_end = float(((video.start_time or 0) + video.duration) * video.time_base)
        wanted_end = min(wanted_end, stream_end)
    if delivered_end < wanted_end - 2 / rate:
        raise CorruptMedia(
            f"{name} is truncated or damaged: its video stops at {delivered_end:.3f} s "
            f"although it should run to {wanted_end:.3f} s"
        )
