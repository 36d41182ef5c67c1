"""Small test clips written with PyAV, so every media test runs on real files it made.

Frames carry their index as a solid grey level and a moving bar, so a test can tell
frames apart after a cut; audio is a sine tone whose amplitude a test can measure.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_clip(
    path: Path,
    *,
    seconds: float = 4.0,
    fps: int = 25,
    width: int = 320,
    height: int = 240,
    gop: int = 25,
    audio: bool = True,
    sample_rate: int = 48_000,
    vfr: bool = False,
    rotate: int | None = None,
    codec: str = "libx264",
    bframes: int = 0,
    faststart: bool = False,
    open_gop: bool = False,
) -> Path:
    """Write an H.264/AAC MP4 (or what ``codec`` says) and return its path.

    ``gop`` is the keyframe interval in frames; ``vfr`` alternates frame durations of
    two and three ticks; ``rotate`` sets the display-matrix rotation side data (degrees
    counter-clockwise, as ``VideoFrame.rotation`` reads it back); ``bframes`` is x264's
    B-frame count; ``faststart`` puts the index first (so a truncated copy still opens);
    ``open_gop`` makes x264 start GOPs (after the first) with a recovery-point I picture
    instead of an IDR, whose leading B-frames refer to the GOP before.
    """
    frames = int(round(seconds * fps))
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.time_base = Fraction(1, fps * 2)
        video.codec_context.time_base = Fraction(1, fps * 2)
        video.codec_context.gop_size = gop
        video.codec_context.options = {"preset": "ultrafast", "bf": str(bframes), "sc_threshold": "0",
                                       "keyint_min": str(gop),
                                       **({"x264-params": "open-gop=1"} if open_gop else {})} if codec == "libx264" else {}
        if rotate is not None:
            video.set_display_rotation(rotate)
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "stereo"
        pts = 0
        audio_pts = 0
        samples_per_frame = sample_rate // fps
        for index in range(frames):
            image = np.full((height, width, 3), (index * 7) % 200 + 20, dtype=np.uint8)
            bar = (index * 4) % width
            image[:, bar:bar + 8, :] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pts
            frame.time_base = video.codec_context.time_base
            pts += 3 if (vfr and index % 2) else 2
            for packet in video.encode(frame):
                container.mux(packet)
            if astream is not None:
                t = (audio_pts + np.arange(samples_per_frame)) / sample_rate
                tone = (0.5 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
                samples = np.stack([tone, tone])
                aframe = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                aframe.sample_rate = sample_rate
                aframe.pts = audio_pts
                audio_pts += samples_per_frame
                for packet in astream.encode(aframe):
                    container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if astream is not None:
            for packet in astream.encode():
                container.mux(packet)
    return path


def make_audio_clip(path: Path, *, seconds: float = 2.0, sample_rate: int = 48_000) -> Path:
    """Write an AAC-only .m4a (a file with no video stream) and return its path."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        chunk = 1024
        for start in range(0, int(seconds * sample_rate), chunk):
            t = (start + np.arange(chunk)) / sample_rate
            samples = (0.5 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)[np.newaxis, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_index(frame: av.VideoFrame, width: int = 320) -> int:
    """Which source frame a decoded frame shows: the inverse of make_clip's grey level.

    Levels repeat every 200/gcd(7, 200) = 200 frames, so indices are exact below 200.
    """
    grey = frame.to_ndarray(format="gray")
    # The bar is 8 px wide; its neighbourhood-free column tells the level.
    row = grey[grey.shape[0] // 2]
    level = int(np.median(row))
    return next(i for i in range(200) if abs((i * 7) % 200 + 20 - level) <= 3)
