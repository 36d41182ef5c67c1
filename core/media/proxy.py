"""Browser proxies: an H.264/AAC MP4 that every browser plays, made of any source.

Chromium plays no HEVC (a phone .MOV shows black), ProRes, MPEG-4 Part 2 or MPEG-TS, so
the editor plays a proxy of such sources instead. The proxy keeps the source's TIMELINE
(core.media.probe.Timeline): its frame at time t is the source's frame at timeline time
t and its audio sits where the source's does, so times read on the proxy apply to the
source unchanged.

A proxy is a render (core.media.render) of the whole source with one scale edit, not a
pipeline of its own: the timeline, the audio alignment, the upright square-pixel picture
and the faststart MP4 come from there. What makes it a proxy are its settings:

- a short side of at most ``MAX_SHORT_SIDE`` (720) pixels, never upscaled, even sizes;
- x264 ``ultrafast``: it is made once per upload and must be fast (the ffmpeg CLI makes
  a 540p proxy of 1080p HEVC 10-bit at ~4x real time on one thread);
- a keyframe every ``KEYFRAME_INTERVAL`` (1 s), so a seek while scrubbing decodes at most
  a second of video.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from core.media.probe import described
from core.media.render import Progress, render

MAX_SHORT_SIDE = 720
KEYFRAME_INTERVAL = 1.0
PRESET = "ultrafast"


def proxy_edits(info: dict[str, Any], short_side: int = MAX_SHORT_SIDE) -> list[dict[str, Any]]:
    """The scale edit that brings the displayed picture's short side to at most ``short_side``."""
    width, height = info["display_width"], info["display_height"]
    if width >= height:
        return [{"type": "scale", "width": -1, "height": min(height, short_side)}]
    return [{"type": "scale", "width": min(width, short_side), "height": -1}]


def make_proxy(src: str | os.PathLike[str], dst: str | os.PathLike[str], progress: Progress | None = None,
               should_cancel: Callable[[], bool] | None = None, *, threads: int | None = None,
               short_side: int = MAX_SHORT_SIDE) -> dict[str, Any]:
    """Write the browser proxy of ``src`` at ``dst`` (MP4, atomically); return what render returns:
    ``{"duration", "width", "height", "decoded_frames"}``.

    Raises as :func:`core.media.render.render` does (UnsupportedMedia, CorruptMedia, Cancelled).
    """
    return render(src, dst, proxy_edits(described(src), short_side), progress, should_cancel,
                  preset=PRESET, threads=threads, keyframe_interval=KEYFRAME_INTERVAL)
