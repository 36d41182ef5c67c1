"""Frame-accurate cut by smart cut: re-encode only the partial GOPs at the two edges.

Plan for [start, end) of an H.264 video in an MP4-style (avcC) track::

    source   K0 ... start ... K1 ======= whole GOPs ======= K2 ... end
    output        [ head: re-encoded ][ middle: packets copied ][ tail: re-encoded ]

K1 is the first IDR keyframe at or after the first frame kept, K2 the last IDR keyframe
before ``end`` (an open GOP's keyframes that are no IDR are copied through, never spliced
at: see :func:`scan_coded`). The edges are encoded by libx264 without B-frames into the source's track: its
Annex B output is rewritten to length-prefixed NAL units carrying its own SPS/PPS
in-band, and the source's SPS/PPS are put back in-band on K1 (ext.nal). Head packets get
their decode times pulled back by the middle's reorder delay so decode times stay
increasing across the splice. Audio is decoded, cut to the sample and re-encoded (AAC).

Anything else (another codec, Annex B extradata, another pixel format, fewer than two
IDR keyframes inside the range) takes the full re-encode of the range. Either way the
output starts at the first frame at or after ``start`` (output time 0) and ends with the
last frame before ``end``: within one frame of ``end - start``.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeAlias

import av
from av.container import InputContainer
from av.video.codeccontext import VideoCodecContext

from core.media.decode import TolerantDecoder
from core.media.errors import CorruptMedia, InvalidRequest, MediaError
from core.media.gop import GopMap, check_delivered, scan_gops, seek_before
from core.media.output import open_output
from core.media.probe import Timeline, open_input, time_base
from ext.nal import annexb_to_length_prefixed, avcc_length_size, avcc_parameter_sets, has_idr
from ext.progress import Throttle
from ext.remux import Track, copy_packets, mux_packets

Timed: TypeAlias = "tuple[float, av.Packet[Any]]"  # (output seconds, packet), what the muxing loop takes

# x264 settings for re-encoded video. Edges take no B-frames so that their decode order
# is their presentation order (the splice relies on it).
X264_OPTIONS = {"preset": "veryfast", "crf": "18"}
EDGE_OPTIONS = {**X264_OPTIONS, "bf": "0"}
AUDIO_BIT_RATE = 128_000


def _can_splice(video: av.video.stream.VideoStream, inner_keyframes: list[tuple[int, int]]) -> bool:
    """Whether the smart cut applies: H.264 in avcC form, 4:2:0, a whole GOP to copy."""
    ctx = video.codec_context
    return (ctx.name == "h264" and avcc_length_size(ctx.extradata) > 0
            and ctx.pix_fmt == "yuv420p" and len(inner_keyframes) >= 2)


def edge_encoder(video: av.video.stream.VideoStream, options: dict[str, str],
                 tick: Fraction | None = None) -> VideoCodecContext:
    """A fresh libx264 context in the source's picture size and time base (or ``tick``)."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width = video.codec_context.width
    encoder.height = video.codec_context.height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = tick or time_base(video)
    rate = video.average_rate or video.guessed_rate
    assert rate is not None, "an H.264 stream without a frame rate"  # PyAV would fail on None too
    encoder.framerate = rate
    encoder.thread_type = "AUTO"
    encoder.options = options
    return encoder


@dataclass(frozen=True)
class Coded:
    """One video packet of the source, as read in decode order (pts in its ticks)."""

    pts: int
    key: bool
    idr: bool


def scan_coded(container: InputContainer, video: av.video.stream.VideoStream, lo: int, hi: int,
               length_size: int) -> list[Coded]:
    """The packets of ``video`` from a keyframe at or before ``lo`` to the last decoded no
    later than ``hi`` (ticks), in decode order, IDR slices recognised (ext.nal.has_idr).

    A splice must land on an IDR: it switches parameter sets and must reset the reference
    state. An open GOP's keyframes are I pictures that do not; spliced there, ffmpeg 5.1
    decodes the output with "mmco: unref short failure" errors and Chromium stops playing.
    """
    seek_before(container, video, lo)
    found = []
    for packet in container.demux(video):
        if packet.pts is None or not packet.size:
            continue
        if (packet.dts if packet.dts is not None else (packet.pts if packet.is_keyframe else -1)) > hi:
            break
        key = packet.is_keyframe
        found.append(Coded(packet.pts, key, key and has_idr(bytes(packet), length_size)))
    return found


@dataclass
class Source:
    """The file being cut, how much of it was decoded, and the cancellation check
    (``Throttle.check``), called per packet read: decoding ahead of the muxer (a GOP's
    preroll, x264's lookahead) must not delay a cancel."""

    path: str
    check: Callable[[], None]
    frames: int = 0
    errors: int = 0

    @property
    def name(self) -> str:
        return Path(self.path).name


def source_frames(source: Source, seek_to: int, lo: int, hi: int) -> Iterator[av.VideoFrame]:
    """Decoded video frames with ``lo <= pts < hi``, decoding forward from ``seek_to``.

    Feeds every packet decoded before ``hi`` (a B-frame shown before ``hi`` may need a
    reference decoded, not shown, before it), then flushes the decoder. Frames shown
    before ``lo`` that nothing refers to (most B-frames) are skipped, not decoded: up to a
    GOP is decoded to reach ``lo``, and about half of it is that.
    """
    with open_input(source.path) as container:
        video = container.streams.video[0]
        decoder = TolerantDecoder(video, source.name)
        seek_before(container, video, seek_to)
        context = video.codec_context

        def wanted(packet: av.Packet[Any]) -> bool:
            # Set per packet: the frame threads take the setting with the packet they decode.
            context.skip_frame = "NONREF" if packet.pts is not None and packet.pts < lo else "DEFAULT"
            return packet.dts is None or packet.dts < hi

        packets = itertools.takewhile(wanted, container.demux(video))
        try:
            for frame in decoder.frames(packets, source.check):
                if frame.pts is not None and lo <= frame.pts < hi:
                    source.frames += 1
                    yield frame
        finally:
            source.errors += decoder.errors


def _encode(frames: Iterator[av.VideoFrame], encode: Callable[[av.VideoFrame | None], list[av.Packet[Any]]],
            origin: int) -> Iterator[av.Packet[Any]]:
    """Encode frames re-timed to ``pts - origin``, then flush the encoder."""
    for frame in frames:
        assert frame.pts is not None  # _frames yields only frames with a pts
        frame.pts -= origin
        frame.pict_type = av.video.frame.PictureType.NONE  # or x264 copies the source's pattern
        yield from encode(frame)
    yield from encode(None)


def _spliced(packets: Iterator[av.Packet[Any]], out: av.video.stream.VideoStream, seconds: float,
             dts_shift: int, length_size: int) -> Iterator[Timed]:
    """Edge packets from a standalone x264 rewritten for the source's avcC track."""
    for packet in packets:
        pts = packet.pts
        assert pts is not None  # an encoder's packets always have one
        spliced = av.Packet(annexb_to_length_prefixed(bytes(packet), length_size))
        spliced.pts = pts
        spliced.dts = pts - dts_shift
        spliced.duration = packet.duration
        spliced.time_base = packet.time_base
        spliced.is_keyframe = packet.is_keyframe
        spliced.stream = out
        yield pts * seconds, spliced


def _middle(source: Source, k1: int, k2: int, origin: int, out: av.video.stream.VideoStream,
            parameter_sets: bytes) -> Iterator[Timed]:
    """The whole GOPs [k1, k2) copied, the source's SPS/PPS prepended to the first."""
    with open_input(source.path) as container:
        video = container.streams.video[0]
        seek_before(container, video, k1)
        track = Track(out, k1, k2, origin, float(time_base(video)), True)
        timed = copy_packets(container.demux(video), {video.index: track})
        for position, packet in timed:
            if track.packets == 1:
                if not packet.is_keyframe or packet.pts != k1 - origin:
                    raise MediaError("Smart cut: the copied GOPs do not start at the planned keyframe")
                first = av.Packet(parameter_sets + bytes(packet))
                first.pts, first.dts, first.duration = packet.pts, packet.dts, packet.duration
                first.time_base, first.is_keyframe, first.stream = packet.time_base, True, out
                packet = first
            yield position, packet


def _smart_video(source: Source, video: av.video.stream.VideoStream, gops: GopMap, inner: list[tuple[int, int]],
                 first: int, end: int, out: av.video.stream.VideoStream) -> Iterator[Timed]:
    """Head (re-encoded), middle (copied from the first to the last of the ``inner`` IDR
    keyframes), tail (re-encoded) video packets, in order."""
    (k1, k1_dts), (k2, _) = inner[0], inner[-1]
    length_size = avcc_length_size(video.codec_context.extradata)
    seconds = float(time_base(video))
    delay = k1 - k1_dts  # the middle decodes this long before it presents
    if first < k1:
        head = source_frames(source, gops.keyframe_at_or_before(first)[0], first, k1)
        encoder = edge_encoder(video, EDGE_OPTIONS)
        yield from _spliced(_encode(head, encoder.encode, first), out, seconds, delay, length_size)
    yield from _middle(source, k1, k2, first, out, avcc_parameter_sets(video.codec_context.extradata, length_size))
    source.frames += len(gops.frames_within(k1, k2))
    encoder = edge_encoder(video, EDGE_OPTIONS)
    tail = source_frames(source, k2, k2, end)
    yield from _spliced(_encode(tail, encoder.encode, first), out, seconds, 0, length_size)


def _full_video(source: Source, gops: GopMap, first: int, end: int,
                out: av.video.stream.VideoStream) -> Iterator[Timed]:
    """The whole range decoded and re-encoded (the fallback)."""
    seconds = float(out.codec_context.time_base)

    def encode(frame: av.VideoFrame | None) -> list[av.Packet[Any]]:
        if frame is not None and frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        return out.encode(frame)

    frames = source_frames(source, gops.keyframe_at_or_before(first)[0], first, end)
    for packet in _encode(frames, encode, first):
        assert packet.pts is not None  # an encoder's packets always have one
        yield packet.pts * seconds, packet


def _audio(source: Source, timeline: Timeline, start: float, end: float,
           out: av.audio.stream.AudioStream) -> Iterator[Timed]:
    """The first audio stream's [start, end) (timeline s) decoded, cut to the sample, re-encoded.

    Audio that begins after ``start`` (a recording whose sound starts late) keeps its
    offset: the output's audio starts that much after its video, as in the source.
    """
    rate = out.codec_context.sample_rate
    seconds = 1 / rate
    written = None
    with open_input(source.path) as container:
        audio = container.streams.audio[0]
        decoder = TolerantDecoder(audio, source.name)
        seek_before(container, audio, timeline.ticks(start, audio))
        for frame in decoder.frames(container.demux(audio), source.check):
            if frame.pts is None:
                continue
            begin = timeline.seconds(frame.pts, audio)
            if begin >= end:
                break
            lo = max(0, round((start - begin) * frame.sample_rate))
            hi = min(frame.samples, round((end - begin) * frame.sample_rate))
            if hi <= lo:
                continue
            # Planar audio is (channels, samples); packed is (1, samples * channels).
            channels = 1 if frame.format.is_planar else len(frame.layout.channels)
            cut = av.AudioFrame.from_ndarray(frame.to_ndarray()[:, lo * channels:hi * channels],
                                             format=frame.format.name, layout=frame.layout.name)
            cut.sample_rate = rate
            if written is None:
                written = round((begin - start) * rate) + lo
            cut.pts = written
            cut.time_base = Fraction(1, rate)
            written += hi - lo
            for packet in out.encode(cut):
                assert packet.pts is not None  # an encoder's packets always have one
                yield max(packet.pts * seconds, 0.0), packet
    for packet in out.encode(None):
        assert packet.pts is not None
        yield max(packet.pts * seconds, 0.0), packet


def smart_cut(source: InputContainer, timeline: Timeline, dst: str | os.PathLike[str], start: float,
              end: float, throttle: Throttle, offset: float = 0.0, splice: bool = True) -> dict[str, float]:
    """Write [start, end) (timeline s) of the open ``source`` frame-accurately to MP4 ``dst``.

    Returns the cut used, ``{"start", "end"}`` in timeline seconds: ``start`` is
    the first frame kept (the first at or after the asked start), ``end`` the asked end.
    ``throttle`` sees ``offset`` + output seconds as packets are muxed. ``splice=False``
    forces the full re-encode where the smart cut would apply (perf/media_bench.py).
    """
    name = Path(source.name).name
    video = source.streams.video[0]
    lo, hi = timeline.ticks(start, video), timeline.ticks(end, video)
    gops = scan_gops(source, video, lo, hi)
    wanted = gops.frames_within(lo, hi)
    if not wanted:
        raise InvalidRequest("startTime/endTime: no video frame falls in that range")
    if not gops.reached:
        check_delivered(video, timeline, timeline.seconds(gops.end, video), end, name)
    first = wanted[0]
    has_audio = bool(source.streams.audio)
    inner: list[tuple[int, int]] = []
    if splice and _can_splice(video, gops.keyframes_within(first, hi)):
        length_size = avcc_length_size(video.codec_context.extradata)
        idr = {c.pts for c in scan_coded(source, video, lo, hi, length_size) if c.idr}
        inner = [key for key in gops.keyframes_within(first, hi) if key[0] in idr]
    splice = len(inner) >= 2
    decoded = Source(source.name, throttle.check)
    cut_start = timeline.seconds(first, video)
    with open_output(dst) as output:
        if splice:
            vout = output.add_stream_from_template(video)
            packets = _smart_video(decoded, video, gops, inner, first, hi, vout)
        else:
            vout = output.add_stream("libx264", rate=video.average_rate or video.guessed_rate)
            vout.width, vout.height, vout.pix_fmt = video.codec_context.width, video.codec_context.height, "yuv420p"
            vout.codec_context.time_base = time_base(video)
            vout.codec_context.sample_aspect_ratio = timeline.sample_aspect
            vout.thread_type = "AUTO"
            vout.codec_context.options = X264_OPTIONS
            if timeline.rotation:
                vout.set_display_rotation(timeline.rotation)
            packets = _full_video(decoded, gops, first, hi, vout)
        streams = [packets]
        if has_audio:
            template = source.streams.audio[0].codec_context
            aout = output.add_stream("aac", rate=template.sample_rate, layout=template.layout.name)
            aout.bit_rate = AUDIO_BIT_RATE
            aout.codec_context.thread_type = "AUTO"  # what ``aout.thread_type =`` sets; AudioStream's stub lacks it
            streams.append(_audio(decoded, timeline, cut_start, end, aout))
        mux_packets(output, heapq.merge(*streams, key=lambda timed: timed[0]), throttle, offset)
    if len(wanted) - decoded.frames > decoded.errors + 2:
        raise CorruptMedia(f"{name}: only {decoded.frames} of the {len(wanted)} video frames "
                           "in that range could be decoded")
    return {"start": round(cut_start, 6), "end": round(end, 6)}
