"""Probe a video file in-process with PyAV and refuse what is not a usable video.

In-process because an ffprobe process costs 115-125 ms to start where PyAV answers in
10-14 ms. Opening is not validation: FFmpeg opens random bytes as format ``bin`` and a
truncated file whose index survived, so a file is accepted only with a video stream of a
real (non text-art) codec, a first frame that decodes, and packets that reach (nearly) as
far as its header promises.

Headers are not the truth either, so :func:`probe` reads every packet (not decoding them:
~200 ms a minute of 1080p, mostly fixed cost) and describes the file on its TIMELINE
(:class:`Timeline`), which every operation uses. :func:`described` keeps that description
beside the file, so it is read once per file, not once per request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from core.media.derived import cache_path, read_json, write_json
from core.media.errors import CorruptMedia, UnsupportedMedia
from ext.remux import index_packets

# Demuxers that accept almost any bytes, and the "video" codecs they expose.
_CATCH_ALL_FORMATS = frozenset({"bin", "tty", "idf", "adf", "xbin", "data"})
_TEXT_ART_CODECS = frozenset({"bintext", "xbin", "idf", "ansi"})


def open_input(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open ``path`` for reading, turning FFmpeg's refusal into a client-facing error."""
    name = Path(path).name
    try:
        size = os.path.getsize(path)
    except OSError as error:
        raise UnsupportedMedia(f"{name} cannot be read: {error.strerror}") from error
    if size == 0:
        raise UnsupportedMedia(f"{name} is empty (0 bytes), not a video")
    try:
        return av.open(str(path), "r")
    except av.error.InvalidDataError as error:
        raise UnsupportedMedia(f"{name} is not a video file FFmpeg can read") from error
    except av.FFmpegError as error:
        raise CorruptMedia(f"{name} cannot be opened: {error.strerror}") from error


def video_stream(container: av.container.InputContainer, name: str) -> av.video.stream.VideoStream:
    """The first video stream, refusing audio-only files and catch-all formats."""
    if container.format.name in _CATCH_ALL_FORMATS:
        raise UnsupportedMedia(f"{name} is not a video file (FFmpeg only sees raw {container.format.name!r} data)")
    if not container.streams.video:
        kind = "an audio-only file" if container.streams.audio else "not a video file"
        raise UnsupportedMedia(f"{name} is {kind}: it has no video stream")
    stream = container.streams.video[0]
    codec = stream.codec_context.name
    if not codec or codec in _TEXT_ART_CODECS:
        raise UnsupportedMedia(f"{name} has no video stream in a known codec")
    if not stream.codec_context.width or not stream.codec_context.height:
        raise CorruptMedia(f"{name} has a video stream without a picture size")
    return stream


def time_base(stream: av.stream.Stream) -> Fraction:
    """``stream.time_base``, which FFmpeg sets on every stream of an opened input.

    PyAV's stubs make it optional (None stands for an unset 0/x, as on a stream still to be
    written); every stream read here has one, as the callers already relied on.
    """
    tick = stream.time_base
    assert tick is not None, "a demuxed stream without a time base"
    return tick


def container_duration(container: av.container.InputContainer) -> float:
    """Duration in seconds from the container, else from its first video stream; 0 if unknown."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    for stream in container.streams.video:
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
    return 0.0


def media_duration(path: str | os.PathLike[str]) -> float:
    """Duration in seconds of a file this package wrote (no validation: cheap)."""
    with av.open(str(path), "r") as container:
        return container_duration(container)


# Codecs and containers every major browser plays in a <video> element (Chromium, Firefox,
# Safari): anything else gets a browser proxy (core.media.proxy). H.264 only in 8-bit 4:2:0.
BROWSER_VIDEO = frozenset({"h264", "vp8", "vp9", "av1"})
BROWSER_AUDIO = frozenset({"aac", "mp3", "opus", "vorbis", "flac"})
BROWSER_FORMATS = ("mov,mp4", "matroska,webm")
BROWSER_H264_PIXELS = frozenset({"yuv420p", "yuvj420p"})

# A file whose packets end this much before its header's duration is truncated.
TRUNCATION_TOLERANCE = 0.5
TRUNCATION_SHARE = 0.02
# Frame steps differing by more than this (s) are a variable rate, not timestamp rounding.
VFR_JITTER = 0.0015


def first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                name: str) -> av.VideoFrame:
    """Decode the first frame (the proof the stream is real; rotation is only on frames).

    Call on a container just opened: the decoder is set up here, before its first use.
    """
    # Slice threading on purpose: frame threading would have to queue a frame per
    # thread before the first one comes out.
    stream.codec_context.thread_type = "SLICE"
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                return frame
    except av.FFmpegError as error:
        raise CorruptMedia(f"{name}: its first video frame cannot be decoded ({error.strerror})") from error
    raise CorruptMedia(f"{name}: its video stream holds no decodable frame")


@dataclass(frozen=True)
class Timeline:
    """Where a file's timeline starts on its clock, and how its picture is shown.

    Every operation takes and reports times on the timeline: 0 is the first presented
    video frame, wherever the container's clock starts (hours into a broadcast TS, a few
    ms into a WebM, later than the first packet with B-frames). Convert with
    :meth:`ticks` before comparing with a stream's timestamps and :meth:`seconds` after.
    """

    origin: float
    """Container seconds of timeline 0."""
    rotation: int
    """Display rotation, degrees counter-clockwise (0/90/180/270)."""
    sample_aspect: Fraction
    """Width of a stored pixel over its height (1 for square pixels)."""

    @classmethod
    def of(cls, info: dict[str, Any]) -> Timeline:
        """The timeline a :func:`probe` result describes."""
        return cls(info["start_time"], info["rotation"], Fraction(info["sample_aspect"].replace(":", "/")))

    def ticks(self, seconds: float, stream: av.stream.Stream) -> int:
        """Timeline ``seconds`` as a timestamp of ``stream``."""
        tick = stream.time_base  # time_base()'s check, inlined: this runs per packet in places
        assert tick is not None, "a demuxed stream without a time base"
        return round((seconds + self.origin) / tick)

    def seconds(self, ticks: int, stream: av.stream.Stream) -> float:
        """A timestamp of ``stream`` in timeline seconds."""
        tick = stream.time_base  # time_base()'s check, inlined: this runs per packet in places
        assert tick is not None, "a demuxed stream without a time base"
        return float(ticks * tick) - self.origin


def sample_aspect(stream: av.video.stream.VideoStream) -> Fraction:
    """The pixel aspect of ``stream`` (1 where unknown), from the container or the codec header."""
    return Fraction(stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio or 1) or Fraction(1)


def _ratio(value: Fraction) -> str:
    return f"{value.numerator}:{value.denominator}"


def browser_playable(format_name: str, codec: str, pix_fmt: str | None, audio_codec: str | None) -> bool:
    """Whether the major browsers play this file as it is (else it needs a proxy)."""
    if not format_name.startswith(BROWSER_FORMATS) or codec not in BROWSER_VIDEO:
        return False
    if codec == "h264" and pix_fmt not in BROWSER_H264_PIXELS:
        return False
    return audio_codec is None or audio_codec in BROWSER_AUDIO


def probe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe a video file, or raise UnsupportedMedia / CorruptMedia saying why not: the
    description :func:`probe_indexed` documents, without the keyframe index."""
    return probe_indexed(path)[0]


def probe_indexed(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Describe a video file, and index its keyframes from the same scan (core.media.keyframes).

    The index is ``{"times": [keyframe presentation times, timeline s, sorted], "end":
    timeline s where the video ends, "frames": video frame count}``. Raises UnsupportedMedia /
    CorruptMedia saying why the file is not a usable video.

    A deep probe: every packet of the video and first audio stream is read (not decoded),
    because headers lie or are missing (a stream-written WebM has no duration, a broadcast
    TS clock starts hours in, a truncated MP4 keeps its index). Times are on the file's
    TIMELINE: 0 is the first presented video frame, whatever the container's clock.

    The description has ``duration`` (s, the later of the video and audio ends), ``width``/``height``
    (stored), ``codec``, ``fps`` (average, float), ``bitrate`` (bit/s, None if unknown),
    ``audio_codec``, ``audio_channels``, ``audio_rate`` (None without audio), ``rotation``
    (display rotation, degrees counter-clockwise, 0/90/180/270), ``format`` (FFmpeg's demuxer
    name), ``has_audio``, and: ``start_time`` (container clock of timeline 0, s),
    ``audio_offset`` (timeline s where the audio starts, None without), ``sample_aspect``
    and ``display_aspect`` (``"W:H"``), ``display_width``/``display_height`` (as shown:
    sample aspect and rotation applied), ``frames``, ``keyframes`` (counts), ``keyframe_interval``
    (longest, s), ``intra_only``, ``vfr``, ``pix_fmt``, ``header_duration`` (what the container
    claims, None if nothing), ``browser_playable``.
    """
    name = Path(path).name
    with open_input(path) as container:
        stream = video_stream(container, name)
        ctx = stream.codec_context
        frame = first_frame(container, stream, name)
        audio = container.streams.audio[0] if container.streams.audio else None
        header = container_duration(container) or None
        container.seek(0, backward=True)
        scan = index_packets(container.demux(*(s for s in (stream, audio) if s is not None)),
                             stream.index, audio.index if audio is not None else -1)
        if scan["origin"] is None:
            raise CorruptMedia(f"{name}: its video stream holds no keyframe")
        tick = time_base(stream)
        origin = scan["origin"] * tick
        video_end = float(scan["video_end"] * tick - origin)
        audio_offset = audio_end = None
        if audio is not None and scan["audio_start"] is not None:
            audio_offset = float(scan["audio_start"] * audio.time_base - origin)
            audio_end = float(scan["audio_end"] * audio.time_base - origin)
        duration = max(video_end, audio_end or 0.0)
        container_start = (container.start_time or 0) / av.time_base
        if header is not None:
            promised = header - max(0.0, float(origin) - container_start)
            if duration < promised - max(TRUNCATION_TOLERANCE, TRUNCATION_SHARE * promised):
                raise CorruptMedia(f"{name} is truncated or damaged: its data ends at {duration:.2f} s "
                                   f"although its header promises {promised:.2f} s")
        if duration <= 0:
            raise CorruptMedia(f"{name} has no usable duration")
        frames, keys = scan["frames"], scan["keyframes"]
        steps = [b - a for a, b in zip(frames, frames[1:])]
        rate = stream.average_rate or stream.guessed_rate
        sar = sample_aspect(stream)
        rotation = int(round(frame.rotation)) % 360
        shown_w = max(2, round(ctx.width * sar / 2) * 2) if sar != 1 else ctx.width
        display_w, display_h = (ctx.height, shown_w) if rotation % 180 == 90 else (shown_w, ctx.height)
        sound = audio.codec_context if audio is not None and audio_offset is not None else None
        has_audio = sound is not None
        audio_codec = sound.name if sound is not None else None
        index = {"times": [round(float(key * tick - origin), 6) for key in keys],
                 "end": round(video_end, 6), "frames": len(frames)}
        return {
            "duration": round(duration, 6),
            "width": ctx.width,
            "height": ctx.height,
            "codec": ctx.name,
            "fps": round(float(rate), 3) if rate else None,
            "bitrate": container.bit_rate or None,
            "audio_codec": audio_codec,
            "audio_channels": sound.channels if sound is not None else None,
            "audio_rate": sound.sample_rate if sound is not None else None,
            "format": container.format.name,
            "has_audio": has_audio,
            "rotation": rotation,
            "start_time": round(float(origin), 6),
            "audio_offset": round(audio_offset, 6) if audio_offset is not None else None,
            "sample_aspect": _ratio(sar),
            "display_aspect": _ratio(Fraction(display_w, display_h)),
            "display_width": display_w,
            "display_height": display_h,
            "pix_fmt": ctx.pix_fmt,
            "frames": len(frames),
            "keyframes": len(keys),
            "keyframe_interval": round(float(max((b - a for a, b in zip(keys, keys[1:] + [scan["video_end"]])),
                                                 default=0) * tick), 6),
            "intra_only": len(keys) == len(frames),
            "vfr": bool(steps) and float((max(steps) - min(steps)) * tick) > VFR_JITTER,
            "header_duration": round(header, 6) if header is not None else None,
            "browser_playable": browser_playable(container.format.name, ctx.name, ctx.pix_fmt, audio_codec),
        }, index


DESCRIPTION = "probe.json"


def described(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`probe` of ``path``, read from its stored description when that is fresh.

    Ingest stores the description of every upload (:func:`describe`), so no later
    operation reads the whole file again; files nobody stored one for are probed now.
    """
    return read_json(path, DESCRIPTION) or probe(path)


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`described`, storing the description when there was no fresh one."""
    info = read_json(path, DESCRIPTION)
    if info is None:
        info = probe(path)
        store_description(path, info)
    return info


def store_description(path: str | os.PathLike[str], info: dict[str, Any]) -> None:
    """Keep ``info`` (a :func:`probe` result) as the description of ``path``."""
    write_json(cache_path(path, DESCRIPTION), info)
