"""What an independent decoder says about a file: helpers over the ffprobe / ffmpeg CLI.

The engine reads media with PyAV (FFmpeg 8.1 inside the wheel); these helpers ask Debian's
ffmpeg 5.1 command-line tools instead, so a test never grades the engine with the engine.
Times are seconds; "timeline" times count from the file's start as ffmpeg's ``-ss`` does.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

STREAM = {"video": "v:0", "audio": "a:0"}


def _run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)


def probe_json(path: str | Path) -> dict[str, Any]:
    """ffprobe's ``-show_streams -show_format`` of ``path`` as a dict (raises if ffprobe fails).

    Remembered per version of the file (its inode, size and change time), since a test
    asks several questions of one output and each ffprobe costs ~0.1 s. Do not modify it.
    """
    stat = os.stat(path)
    return _probe_json(str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _probe_json(path: str, *version: int) -> dict[str, Any]:
    result = _run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path])
    if result.returncode != 0:
        raise RuntimeError(f"ffprobe {path}: {result.stderr.decode(errors='replace').strip()}")
    return json.loads(result.stdout)


def stream(path: str | Path, kind: str) -> dict[str, Any] | None:
    """ffprobe's description of the first ``kind`` ("video"/"audio") stream, if any."""
    return next((s for s in probe_json(path)["streams"] if s.get("codec_type") == kind), None)


def has_audio(path: str | Path) -> bool:
    return stream(path, "audio") is not None


def duration(path: str | Path) -> float | None:
    """The container's duration as ffprobe computes it; None when the file does not say
    (a stream-written WebM: ffprobe does not read the packets to find it)."""
    value = probe_json(path)["format"].get("duration")
    return float(value) if value not in (None, "N/A") else None


def decode_errors(path: str | Path) -> str:
    """Everything ffmpeg complains about while decoding the whole file; empty means clean."""
    result = _run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"])
    errors = result.stderr.decode(errors="replace").strip()
    return errors or ("" if result.returncode == 0 else f"ffmpeg exited with {result.returncode}")


def packets(path: str | Path, kind: str) -> list[dict[str, Any]]:
    """``{"pts", "duration", "key"}`` (seconds, seconds or None when the file does not say,
    bool) of every presented packet of the first ``kind`` stream, in file order.

    Packets an edit list hides (flag ``D``: a copy cut's preroll, AAC priming) are left out.
    """
    result = _run(["ffprobe", "-v", "error", "-select_streams", STREAM[kind], "-show_entries",
                   "packet=pts_time,duration_time,flags", "-of", "json", str(path)])
    if result.returncode != 0:
        raise RuntimeError(f"ffprobe {path}: {result.stderr.decode(errors='replace').strip()}")
    found = []
    for packet in json.loads(result.stdout).get("packets", []):
        flags = packet.get("flags", "")
        if "D" in flags or packet.get("pts_time") in (None, "N/A"):
            continue
        length = packet.get("duration_time")
        found.append({"pts": float(packet["pts_time"]), "key": "K" in flags,
                      "duration": float(length) if length not in (None, "N/A") else None})
    return found


def stream_span(path: str | Path, kind: str) -> tuple[float, float]:
    """``(first pts, last pts + duration)`` of the first ``kind`` stream, container seconds.

    Minimum and maximum rather than first and last packet: with B-frames the packet order
    is not the presentation order. A packet without a duration (an MP4 whose video starts
    with negative decoding times gives none) lasts as long as the typical gap between two
    presentation times.
    """
    found = packets(path, kind)
    if not found:
        raise AssertionError(f"{Path(path).name} has no {kind} packets")
    times = sorted(p["pts"] for p in found)
    gaps = [later - earlier for earlier, later in zip(times, times[1:]) if later > earlier]
    typical = statistics.median(gaps) if gaps else 0.0
    return times[0], max(p["pts"] + (typical if p["duration"] is None else p["duration"]) for p in found)


def keyframe_times(path: str | Path) -> list[float]:
    """Container seconds of the video keyframes, ascending."""
    return sorted(p["pts"] for p in packets(path, "video") if p["key"])


def audio_peaks(path: str | Path, window: float = 0.01) -> list[float]:
    """Peak amplitude (0..1) of the first audio stream, mono, in ``window``-second slices.

    Slice 0 starts at the file's start: ``aresample``'s ``first_pts=0`` pads the time before
    a late audio stream's first sample with silence, so slice ``i`` is at ``i * window``.
    """
    rate = 8000
    result = _run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-vn", "-af",
                   "aresample=async=1:first_pts=0", "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"])
    if result.returncode != 0:
        raise AssertionError(f"cannot decode the audio of {Path(path).name}: "
                             f"{result.stderr.decode(errors='replace').strip()}")
    pcm = np.abs(np.frombuffer(result.stdout, np.int16).astype(np.float64)) / 32768
    size = max(1, round(window * rate))
    slices = len(pcm) // size
    return [float(v) for v in pcm[: slices * size].reshape(slices, size).max(axis=1)]


def rotation(path: str | Path) -> int:
    """Display-matrix rotation of the first video stream, degrees counter-clockwise, 0..359."""
    video = stream(path, "video") or {}
    for side in video.get("side_data_list", []):
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    return 0


def sample_aspect(path: str | Path) -> Fraction:
    """The sample (pixel) aspect ratio of the first video stream; 1 when absent or unknown."""
    text = (stream(path, "video") or {}).get("sample_aspect_ratio", "1:1")
    num, _, den = text.partition(":")
    return Fraction(int(num), int(den)) if int(num) > 0 and int(den) > 0 else Fraction(1)


def displayed_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of the picture as shown: stretched by the SAR, turned by the rotation."""
    video = stream(path, "video")
    if video is None:
        raise AssertionError(f"{Path(path).name} has no video stream")
    width = round(video["width"] * sample_aspect(path))
    height = int(video["height"])
    return (height, width) if rotation(path) % 180 == 90 else (width, height)


def _luma_plane(path: str | Path, t: float) -> np.ndarray:
    """The luma plane, flat, of the first frame at or after ``t`` (see :func:`frame_luma`)."""
    result = _run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-ss", f"{t:.6f}", "-frames:v", "1",
                   "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
    if result.returncode != 0 or not result.stdout:
        raise AssertionError(f"no frame of {Path(path).name} at {t:.3f} s: "
                             f"{result.stderr.decode(errors='replace').strip()}")
    picture = np.frombuffer(result.stdout, np.uint8)
    return picture[: len(picture) * 2 // 3]


def frame_luma(path: str | Path, t: float) -> float:
    """Mean luma (8-bit, limited range) of the first frame at or after ``t``.

    ``t`` is seconds from the file's start (ffmpeg subtracts the container's start time).
    ``-ss`` is an output option: ffmpeg decodes from the first packet and drops frames
    before ``t``, which is exact on any file, where input seeking in an MPEG-TS or a WebM
    without cues may land past a keyframe and yield nothing. The frame is converted to
    yuv420p and its Y plane read: ``-pix_fmt gray`` would stretch limited range to full
    (and a full-range JPEG is brought to limited range, comparable with video).
    """
    return float(_luma_plane(path, t).mean())


def picture_luma(path: str | Path) -> np.ndarray:
    """The luma plane (height x width, as :func:`frame_luma` measures it) of a still picture."""
    video = stream(path, "video")
    if video is None:
        raise AssertionError(f"{Path(path).name} has no picture")
    return _luma_plane(path, 0.0).reshape(int(video["height"]), int(video["width"]))
