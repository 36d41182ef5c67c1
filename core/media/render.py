"""The ``process`` operation: render an edit list into one H.264/AAC MP4 in one filter-graph pass.

The kept stretches of the source are decoded once and pushed through a single FFmpeg
filter graph (built by :func:`filter_graph` from a :class:`~core.media.editplan.RenderPlan`)::

    video: buffer (kept frames only, placed: see below) -> transpose (rotated source)
           -> fps -> fade in/out -> scale to square pixels (anamorphic source)
           -> scale/crop -> setsar=1 -> format=yuv420p -> buffersink
    audio: abuffer -> asplit -> atrim+asetpts+aresample+apad (per range) -> concat -> apad
           -> asetpts -> atempo... -> afade -> volume -> aformat -> abuffersink

The video's ranges and speed are applied in Python (:class:`Placement`): each kept
frame is given its output time (the ranges end to end, divided by the speed) in exact
integer arithmetic, before the ``fps`` filter makes the rate constant. That is what
lets one render be split among workers (core.media.chunks): a part that starts decoding
at a keyframe places its frames exactly where the whole render does, so its ``fps`` picks
the same frame for every output slot, and :class:`Part` keeps the slots of its window.
A graph of trim+setpts+concat cannot: concat times each range from the frames it saw.

The same description renders as an ``ffmpeg -filter_complex`` string
(:func:`filter_complex`, ``placed=False``: the CLI has no Python to place frames, so
its ranges are trim+setpts+concat, which puts each range's first frame at the range's
output start, within a frame of the placement), so the benchmark compares like with like.

Choices worth knowing:
- One timeline (core.media.probe.Timeline): frames are rebased so that 0 is the first
  presented video frame, wherever the container's clock starts (hours into a broadcast
  TS, after the first packets of a B-frame MKV), and edit times are timeline seconds.
- Audio keeps its place on that timeline: each kept range's audio is placed at its time
  within the range, and silence fills what the source lacks (audio starting after the
  video, or ending before it), so the output's audio and video start and end together.
  Per-range ``asetpts=PTS-STARTPTS`` would pull late audio to the range start instead.
- The output is constant frame rate at the source's average rate (the ``fps`` filter): a
  2x speed drops every other frame instead of doubling the encode, and VFR sources are
  made regular (frames duplicated or dropped, like ffmpeg's CFR mode). Output slot ``n``
  shows the latest frame whose placed time rounds to ``n`` or earlier, and the output has
  exactly :attr:`Placement.frames` slots: the last frame is held to the end of the kept
  time (a last frame is pushed again at the end), whatever the source's last duration.
- The picture is handled as SHOWN: a rotated source (display-matrix side data, as phones
  write) is turned upright first, as the ffmpeg CLI's autorotate does, and anamorphic
  pixels are resampled to square ones (the displayed size probe reports) unless the
  first geometry edit is a scale, which does both in one resampling. Edit sizes and crops
  refer to that picture, and the output carries no rotation and a 1:1 sample aspect.
- Cost follows the output: ranges closer than a seek is worth are decoded as one span,
  and the decoder seeks over longer removed stretches (:meth:`RenderPlan.spans`), so
  keeping 2 s of an hour decodes about 2 s plus a GOP. The decoders are drained before
  each seek (a seek discards the frames they hold) and never fed past a span's end.
- Progress is a fraction of the OUTPUT duration; encoding covers up to ``ENCODE_SHARE``,
  the encoder flush and the faststart mux the rest, and 1.0 is reported once, after the
  output is in place.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from av.video.frame import PictureType

from core.media.decode import TolerantDecoder
from core.media.editplan import RenderPlan, Scale, atempo_chain, plan_for
from core.media.errors import CorruptMedia
from core.media.gop import seek_before
from core.media.keyframes import keyframe_index
from core.media.output import atomic_output, open_output
from core.media.probe import Timeline, described, media_duration, open_input, time_base, video_stream
from ext.progress import Throttle
from ext.remux import presented_at

Progress = Callable[[float, str | None], None]
Filters = list[tuple[str, str | None]]

ENCODE_SHARE = 0.98
MUX_SHARE = 0.99
# The source's data ending this much before the last kept second means it ended early.
SHORTFALL_TOLERANCE = 0.5
# A removed stretch longer than this and than the source's longest GOP is sought over:
# reaching the next range after a seek costs up to a GOP of decoding.
SEEK_GAP = 2.0
# How far (s) one stream's packets may trail another's in a file: a span's reading stops
# this far past its end even when a stream (ended early, or gapped) never gets there.
INTERLEAVE = 1.0
AAC_FRAME_SIZE = 1024
AUDIO_BIT_RATE = 128_000


def default_threads() -> int:
    """Codec threads: every core, capped at 8 (x264 gains little beyond that at 720p-1080p)."""
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass(frozen=True)
class FilterNode:
    """One filter instance of the graph: a unique ``label``, the filter's name and its args."""

    label: str
    name: str
    args: str | None = None


@dataclass
class GraphSpec:
    """A filter graph as data: nodes and ``(src, src_pad, dst, dst_pad)`` links between labels."""

    nodes: list[FilterNode] = field(default_factory=list)
    links: list[tuple[str, int, str, int]] = field(default_factory=list)

    def chain(self, head: tuple[str, int], filters: Filters, prefix: str) -> tuple[str, int]:
        """Append ``filters`` one after another from output pad ``head``; return the last pad."""
        for position, (name, args) in enumerate(filters):
            label = f"{prefix}{position}_{name}"
            self.nodes.append(FilterNode(label, name, args))
            self.links.append((head[0], head[1], label, 0))
            head = (label, 0)
        return head


def filter_graph(plan: RenderPlan, *, fps: Fraction, audio: bool, rotation: int = 0,
                 shown: tuple[int, int] | None = None, video: bool = True, placed: bool = False,
                 start_time: float | None = None) -> GraphSpec:
    """The filter graph for ``plan``: sources labelled ``vin``/``ain``, sinks ``vout``/``aout``.

    ``rotation`` is the source's display rotation (degrees counter-clockwise, as probed);
    ``shown`` its displayed size (probe's ``display_width``/``display_height``) when its
    pixels are not square, None when they are. The sources' timestamps must be timeline
    times (0: the first presented video frame), as the plan's ranges are.

    ``placed``: ``vin`` is fed only the kept frames, already at their output times
    (:class:`Placement`, speed applied), so the video has no ranges of its own; each
    audio range is then padded to its own length (no video in its concat to pad it to).
    ``start_time``: where the ``fps`` filter's first slot is (output seconds; 0 makes it
    slot 0 even when the first frame is placed a little later), None: the first frame
    fed's slot (a later part of a chunked render). ``video=False`` leaves the video out.

    ``vin``/``ain``/``vout``/``aout`` are placeholders the caller binds (buffers and sinks in
    PyAV, stream specifiers on the CLI); every other node is a real filter.
    """
    spec = GraphSpec()
    count = len(plan.ranges)
    kinds: list[tuple[str, str, str, Callable[[float, float], Filters]]] = []
    if video and not placed:
        kinds.append(("v", "", "vin", video_range))
    if audio:
        kinds.append(("a", "a", "ain", lambda start, end: audio_range(start, end, pad=placed)))
    segments: dict[str, list[tuple[str, int]]] = {}
    for kind, a, source, kept in kinds:
        if count > 1:
            spec.nodes.append(FilterNode(f"{kind}split", f"{a}split", str(count)))
            spec.links.append((source, 0, f"{kind}split", 0))
            heads = [(f"{kind}split", index) for index in range(count)]
        else:
            heads = [(source, 0)]
        segments[kind] = [spec.chain(head, kept(start, end), f"{kind}r{index}_")
                          for index, (head, (start, end)) in enumerate(zip(heads, plan.ranges))]
    if count > 1 and kinds:
        spec.nodes.append(FilterNode("concat", "concat", f"n={count}:v={int('v' in segments)}:a={int(audio)}"))
        for index in range(count):
            for pad, (kind, *_) in enumerate(kinds):
                src, src_pad = segments[kind][index]
                spec.links.append((src, src_pad, "concat", index * len(kinds) + pad))
        joined = {kind: ("concat", pad) for pad, (kind, *_) in enumerate(kinds)}
    else:
        joined = {kind: heads[0] for kind, heads in segments.items()}

    if video:
        effects = upright(rotation) + video_effects(plan, fps, shown, placed=placed, start_time=start_time)
        spec.links.append((*spec.chain(joined.get("v", ("vin", 0)), effects, "vpost"), "vout", 0))
    if audio:
        spec.links.append((*spec.chain(joined["a"], audio_effects(plan), "apost"), "aout", 0))
    return spec


def video_range(start: float, end: float) -> Filters:
    """The frames of [start, end) (timeline s), the first at 0."""
    return [("trim", f"start={start!r}:end={end!r}"), ("setpts", "PTS-STARTPTS")]


def audio_range(start: float, end: float, *, pad: bool = False) -> Filters:
    """The audio of [start, end) (timeline s) at its own time in the range, silence before it.

    Shifted by the range's start, not by its first sample's, so audio that starts late
    stays late, and ``aresample``'s ``first_pts=0`` fills the stretch before the first
    sample with silence (``async=1``: and any gap inside). The stretch after the last
    sample is filled by ``concat`` when video shares it (it pads each range's audio to its
    video), else by ``apad`` to the range's length (``pad``), and for the last range by
    :func:`audio_effects`.
    """
    filters: Filters = [("atrim", f"start={start!r}:end={end!r}"), ("asetpts", f"PTS-{start!r}/TB"),
                        ("aresample", "async=1:first_pts=0")]
    if pad:
        # Numbered afresh, as in audio_effects: the silence apad makes for a range with no
        # audio at all (before a late audio stream starts) has no timestamps of its own.
        filters += [("apad", f"whole_dur={end - start!r}"), ("asetpts", "N/SR/TB")]
    return filters


def upright(rotation: int) -> Filters:
    """Filters that turn a picture with this display rotation (degrees counter-clockwise) upright."""
    turns: dict[int, Filters] = {90: [("transpose", "cclock")], 180: [("hflip", None), ("vflip", None)],
                                 270: [("transpose", "clock")]}
    return turns.get(rotation % 360, [])


def video_effects(plan: RenderPlan, fps: Fraction, shown: tuple[int, int] | None = None, *,
                  placed: bool = False, start_time: float | None = None) -> Filters:
    """The video filters applied after the ranges are joined, in order: speed (unless the
    frames come ``placed``), rate (from ``start_time``, see :func:`filter_graph`), fades, geometry."""
    video: Filters = []
    if plan.speed != 1 and not placed:
        video.append(("setpts", f"PTS/{plan.speed!r}"))
    video.append(("fps", str(fps) if start_time is None else f"{fps}:start_time={start_time!r}"))
    video += [("fade", args) for args in _fades(plan)]
    video += geometry(plan, shown)
    video.append(("format", "pix_fmts=yuv420p"))
    return video


def geometry(plan: RenderPlan, shown: tuple[int, int] | None) -> Filters:
    """The picture's resampling: to square pixels at its ``shown`` size, then the scale and crop edits.

    A first edit that is a scale already resamples the stored picture to a size given in
    shown pixels: the squaring would be a second, wasted pass. ``setsar=1`` declares the
    result square (a scale to another aspect than the picture's is a stretch, as asked,
    not a new pixel aspect).
    """
    steps = plan.geometry
    filters: Filters = []
    if shown is not None and not (steps and isinstance(steps[0], Scale)):
        filters.append(("scale", f"{shown[0]}:{shown[1]}"))
    for step in steps:
        if isinstance(step, Scale):
            filters.append(("scale", f"{step.width}:{step.height}"))
        else:
            filters.append(("crop", f"{step.width}:{step.height}:{step.x}:{step.y}"))
    filters.append(("setsar", "1"))
    return filters


def audio_effects(plan: RenderPlan) -> Filters:
    """The audio filters applied after the ranges are joined: silence to the end, tempo
    (pitch kept), fades, gain.

    ``apad`` fills what the source lacks up to the kept duration (audio ending before the
    video). The joined audio is contiguous from 0, so its samples are numbered afresh:
    ``apad`` leaves the silence it makes without timestamps when no audio came at all.
    """
    sound: Filters = [("apad", f"whole_dur={plan.kept!r}"), ("asetpts", "N/SR/TB")]
    if plan.speed != 1:
        sound += [("atempo", repr(factor)) for factor in atempo_chain(plan.speed)]
    sound += [("afade", args) for args in _fades(plan)]
    if plan.gain != 1:
        sound.append(("volume", f"volume={plan.gain!r}"))
    sound.append(("aformat", "sample_fmts=fltp"))
    return sound


def _fades(plan: RenderPlan) -> list[str]:
    """Arguments of the fade/afade filters, in seconds of the OUTPUT (after speed)."""
    fades = []
    if plan.fade_in:
        fades.append(f"t=in:st=0:d={plan.fade_in!r}")
    if plan.fade_out:
        fades.append(f"t=out:st={plan.duration - plan.fade_out!r}:d={plan.fade_out!r}")
    return fades


def filter_complex(spec: GraphSpec) -> str:
    """``spec`` as an ``ffmpeg -filter_complex`` string reading ``0:v``/``0:a``, writing ``[vout]``/``[aout]``.

    For a rotated source give the CLI ``-noautorotate``: the graph already turns it upright.
    """
    inputs: dict[str, list[tuple[int, str]]] = {}
    outputs: dict[str, list[tuple[int, str]]] = {}
    names = {"vin": "0:v", "ain": "0:a"}
    for src, src_pad, dst, dst_pad in spec.links:
        name = names.get(src) or (dst if dst in ("vout", "aout") else f"{src}_{src_pad}")
        inputs.setdefault(dst, []).append((dst_pad, name))
        if src not in names:
            outputs.setdefault(src, []).append((src_pad, name))
    parts = []
    for node in spec.nodes:
        pads_in = "".join(f"[{n}]" for _, n in sorted(inputs.get(node.label, [])))
        pads_out = "".join(f"[{n}]" for _, n in sorted(outputs.get(node.label, [])))
        body = f"{node.name}={node.args}" if node.args else node.name
        parts.append(f"{pads_in}{body}{pads_out}")
    return ";".join(parts)


MICROSECOND = Fraction(1, 1_000_000)
"""The time base of the placed video frames: fine enough for any source's ticks divided by a speed."""
HALF = Fraction(1, 2)


def output_rate(video: Any) -> Fraction:
    """The output's constant frame rate: the source's average rate (25 when it gives none)."""
    return Fraction(video.average_rate or video.guessed_rate or 25).limit_denominator(1001)


class Placement:
    """Where the render shows each kept source frame: its output time and output slot.

    The kept ranges are placed end to end in the source's own ticks (range bounds rounded
    to ticks once, offsets summed as integers), divided by the speed and rounded to
    :data:`MICROSECOND` s; output slot ``n`` (at ``n / fps``) is where the ``fps`` filter
    puts a frame placed at ``t``: ``n = round(t * fps)``, halves up, as its rescaling
    rounds. Every part of a chunked render computes the same numbers from the same plan,
    which is what makes the parts join without a gap or an overlap.

    ``frames`` is the output's frame count: the slots before the end of the kept time
    (at least one).
    """

    def __init__(self, plan: RenderPlan, tick: Fraction, fps: Fraction) -> None:
        self.tick = tick
        self.fps = fps
        self.scale = tick / Fraction(plan.speed) / MICROSECOND
        self.starts = [self.ticks(start) for start, _ in plan.ranges]
        self.ends = [self.ticks(end) for _, end in plan.ranges]
        self.offsets = [0]
        for start, end in zip(self.starts, self.ends):
            self.offsets.append(self.offsets[-1] + end - start)
        self.end = self.time(self.offsets.pop())
        """Output time (us) where the kept time ends."""
        # At least one frame: an output shorter than half a frame still shows its picture.
        self.frames = max(1, self.slot(self.end))

    def ticks(self, seconds: float) -> int:
        """Timeline ``seconds`` in ticks of the source's video (0: its first presented frame)."""
        return math.floor(Fraction(seconds) / self.tick + HALF)

    def time(self, kept: int) -> int:
        """Output time (us) of ``kept`` ticks of kept source time."""
        return math.floor(kept * self.scale + HALF)

    def place(self, pts: int) -> int | None:
        """Output time (us) of the frame at ``pts`` (timeline ticks), None when it is not kept."""
        index = bisect.bisect_right(self.starts, pts) - 1
        if index < 0 or pts >= self.ends[index]:
            return None
        return self.time(pts - self.starts[index] + self.offsets[index])

    def slot(self, time: int) -> int:
        """The output slot (frame number) a frame placed at ``time`` (us) lands in."""
        return math.floor(time * MICROSECOND * self.fps + HALF)

    def first_slot(self, seconds: float) -> int:
        """The first output slot that shows the kept frame at timeline ``seconds`` (or a later one)."""
        time = self.place(self.ticks(seconds))
        if time is None:
            raise ValueError(f"{seconds} s is not in a kept range")
        return self.slot(time)


@dataclass(frozen=True)
class Part:
    """What one render writes: ``video`` and/or ``audio``, and which output frames.

    The video part starts at the source keyframe at timeline ``start`` (None: the output's
    start) and ends where the part starting at the keyframe ``stop`` begins (None: the
    output's end). Its frames are the output slots ``[first_slot(start), first_slot(stop))``
    of :class:`Placement`: decoding starts at ``start`` (a keyframe: nothing before it is
    needed) and stops once the frame at ``stop`` is decoded (it closes the last slot).
    """

    video: bool = True
    audio: bool = True
    start: float | None = None
    stop: float | None = None

    def window(self, placement: Placement) -> tuple[int, int]:
        """The output slots ``[first, end)`` this part renders."""
        first = 0 if self.start is None else placement.first_slot(self.start)
        end = placement.frames if self.stop is None else placement.first_slot(self.stop)
        return first, end

    def spans(self, spans: list[tuple[float, float]], tick: Fraction) -> list[tuple[float, float]]:
        """``spans`` (timeline s, to decode) cut to this part's source window."""
        low = -math.inf if self.start is None else self.start
        # Past ``stop`` (a tick, and a millisecond for the rounding of timeline seconds):
        # the frame there must be decoded, so its packet must not count as past the span.
        high = math.inf if self.stop is None else self.stop + float(tick) + 1e-3
        return [(max(start, low), min(end, high)) for start, end in spans if end > low and start < high]


WHOLE = Part()

PART_KEY = "comment"
"""The MP4 metadata tag in which a part's file names the output frames it holds."""


def part_label(first: int, end: int) -> str:
    """The :data:`PART_KEY` text of a part holding the output frames ``[first, end)``."""
    return f"output frames {first}-{end}"


def parse_part_label(text: str | None) -> tuple[int, int] | None:
    """``(first, end)`` from a :func:`part_label` text; None for any other text."""
    match = re.fullmatch(r"output frames (\d+)-(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None


class _Picker:
    """The video frames one part pushes into the graph, and their placed times (us).

    Only kept frames of the part's source window ``[low, high]`` (timeline ticks) go in;
    the last part pushes its last frame once more at the end of the kept time, so the
    ``fps`` filter fills every slot to the output's end (see :class:`Placement`).
    """

    def __init__(self, placement: Placement, part: Part) -> None:
        self.placement = placement
        self.low = -math.inf if part.start is None else placement.ticks(part.start)
        self.high = math.inf if part.stop is None else placement.ticks(part.stop)
        self.last_part = part.stop is None

    def pick(self, pts: int) -> int | None:
        if not self.low <= pts <= self.high:
            return None
        return self.placement.place(pts)

    def tail(self, last: int) -> int | None:
        """Where to push the last frame again (us), after one pushed at ``last``; None: no need.

        At the end of the kept time, whose slot is the first past the output, or at the
        end of the output's last slot when that is later (an output shorter than a frame).
        """
        if not self.last_part:
            return None
        past = math.ceil(Fraction(self.placement.frames) / self.placement.fps / MICROSECOND)
        return max(last + 1, self.placement.end, past)


class _Feed:
    """One source stream: its tolerant decoder feeding its buffer source, in timeline time
    (video: placed by a :class:`_Picker`, in :data:`MICROSECOND` s)."""

    def __init__(self, stream: Any, buffer: Any, timeline: Timeline, name: str,
                 picker: _Picker | None = None) -> None:
        self.stream = stream
        self.decoder = TolerantDecoder(stream, name)
        self.buffer = buffer
        self.offset = timeline.ticks(0.0, stream)
        self.video = stream.type == "video"
        self.picker = picker
        self.open = True
        self.decoded = 0
        self.last: int | None = None  # pts of the last frame decoded and not older than the one before
        self.held: Any = None  # the last frame pushed, and its placed time (us)
        self.held_at = 0

    def passed(self, packet: av.Packet[Any], end: int) -> bool:
        """Whether ``packet`` and all later ones of this stream start at or after ``end`` (ticks).

        Video packets come in decode order, so the test is the decode time: a frame decoded
        at or after ``end`` is presented after it, and so is every later one. A packet
        without one (the first packets of a Matroska B-frame stream) is past only when it
        is a keyframe presented after ``end``.
        """
        if self.video:
            if packet.dts is not None:
                return packet.dts >= end
            return packet.is_keyframe and packet.pts is not None and packet.pts >= end
        at = presented_at(packet)
        return at is not None and at >= end

    def decode(self, packet: av.Packet[Any] | None) -> None:
        """Decode ``packet`` (None drains the decoder) into the graph."""
        for frame in self.decoder.decode(packet):
            self.decoded += 1
            self.push(frame)

    def push(self, frame: Any) -> None:
        # Frames not after the last one pushed are not new: a seek that had to land
        # earlier than asked (seek_before steps back) decodes some frames a second time.
        if not self.open or frame.pts is None or (self.last is not None and frame.pts <= self.last):
            return
        self.last = frame.pts
        frame.pts -= self.offset
        if self.picker is not None:
            placed = self.picker.pick(frame.pts)
            if placed is None:
                return
            frame.pts, frame.time_base = placed, MICROSECOND
            self.held, self.held_at = frame, placed
        self._push(frame)

    def _push(self, frame: Any) -> None:
        try:
            self.buffer.push(frame)
        except av.error.EOFError:  # every range of this stream is complete: the graph wants no more
            self.open = False

    def close(self) -> None:
        """Signal the end of this stream to the graph (once)."""
        if self.open and self.picker is not None and self.held is not None:
            tail = self.picker.tail(self.held_at)
            if tail is not None:
                self.held.pts = tail
                self._push(self.held)
        self.held = None
        if self.open:
            self.open = False
            try:
                self.buffer.push(None)
            except av.error.EOFError:
                pass


class _Sinks:
    """The graph's sinks drained into the output's encoders, with progress on the video
    (on the audio when there is no video).

    The video sink's frames are output slots (time base 1/fps): those of ``window``
    (``[first, end)``) are encoded, renumbered from 0; ``frames`` counts them.
    """

    def __init__(self, output: Any, pairs: list[tuple[Any, Any]], throttle: Throttle,
                 video: Any, window: tuple[int, int], fps: Fraction) -> None:
        self.output = output
        self.pairs = pairs
        self.video = video
        self.throttle = throttle
        self.first, self.end = window
        self.fps = fps
        self.frames = 0

    def pump(self) -> None:
        """Encode and mux every frame the graph has ready."""
        for sink, stream in self.pairs:
            for frame in _drain(sink):
                if stream is self.video:
                    slot = math.floor(frame.pts * frame.time_base * self.fps + HALF)
                    if not self.first <= slot < self.end:
                        continue
                    frame.pts, frame.time_base = slot - self.first, 1 / self.fps
                    frame.pict_type = PictureType.NONE
                    self.frames += 1
                    self.throttle.update(float(frame.pts / self.fps))
                elif self.video is None:
                    self.throttle.update(float(frame.pts * frame.time_base))
                _rescale(frame, stream.codec_context.time_base)
                self.output.mux(stream.encode(frame))

    def flush(self) -> None:
        """Mux what the encoders still hold."""
        for _, stream in self.pairs:
            self.output.mux(stream.encode(None))


class _Reader:
    """Feeds the kept spans of the source to the graph, seeking over what lies between them."""

    def __init__(self, source: Any, feeds: dict[int, _Feed], video: Any, timeline: Timeline,
                 throttle: Throttle, sinks: _Sinks) -> None:
        self.source = source
        self.feeds = feeds
        self.video = video
        self.timeline = timeline
        self.throttle = throttle
        self.sinks = sinks
        self.error: av.FFmpegError | None = None
        self.reached = -float("inf")
        """Timeline end (s) of the latest packet read: where the source's data got to."""
        self.packets = self._demux()

    def _demux(self) -> Iterator[av.Packet[Any]]:
        """The fed streams' packets in file order, ending at a read error as probe's scan
        does (a damaged tail ends the file there; :meth:`read`'s caller judges the shortfall)."""
        packets = self.source.demux(*(feed.stream for feed in self.feeds.values()))
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as error:
                self.error = error
                return
            yield packet

    def read(self, spans: list[tuple[float, float]], gap: float, *, seek_first: bool = False) -> None:
        """Feed every span (timeline s), seeking to those that start more than ``gap`` past
        where decoding is (between spans always: ``gap`` is what separates them), and to
        the first one when ``seek_first`` (a later part of a chunked render starts at its keyframe)."""
        previous = -math.inf if seek_first else 0.0
        for start, end in spans:
            if start > previous + gap:
                self._seek(start)
            self._span(end)
            previous = end
        self._drain()

    def _seek(self, start: float) -> None:
        self._drain()  # a seek flushes the decoders: the frames they hold come out now or never
        seek_before(self.source, self.video, self.timeline.ticks(start, self.video))

    def _drain(self) -> None:
        for feed in self.feeds.values():
            feed.decode(None)
        self.sinks.pump()

    def _span(self, end: float) -> None:
        """Decode on until every stream is past ``end``, or one is ``INTERLEAVE`` past it."""
        ends = {index: self.timeline.ticks(end, feed.stream) for index, feed in self.feeds.items()}
        short = set(self.feeds)
        for packet in self.packets:
            self.throttle.check()
            at = presented_at(packet)
            if at is None:  # the demuxer's empty end-of-stream packets: _drain flushes instead
                continue
            self.reached = max(self.reached, self.timeline.seconds(at + (packet.duration or 0), packet.stream))
            feed = self.feeds[packet.stream_index]
            if feed.passed(packet, ends[packet.stream_index]):
                short.discard(packet.stream_index)
                if not short or self.timeline.seconds(at, packet.stream) > end + INTERLEAVE:
                    return
                continue
            feed.decode(packet)
            self.sinks.pump()


def _drain(sink: Any) -> Iterator[Any]:
    """Frames ready at ``sink`` now; ends quietly when it needs more input or is finished."""
    while True:
        try:
            yield sink.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return


def _rescale(frame: Any, time_base: Fraction) -> None:
    if frame.time_base != time_base:
        frame.pts = round(frame.pts * frame.time_base / time_base)
        frame.time_base = time_base


PRESET = "veryfast"


@dataclass(frozen=True)
class Encoding:
    """How the output is encoded: x264 ``preset``, codec ``threads``, and at most
    ``keyframe_interval`` seconds between keyframes (None: x264's default, 250 frames)."""

    preset: str
    threads: int
    keyframe_interval: float | None = None


def render(src: str | os.PathLike[str], dst: str | os.PathLike[str], edits: list[dict[str, Any]],
           progress: Progress | None = None, should_cancel: Callable[[], bool] | None = None, *,
           preset: str = PRESET, threads: int | None = None,
           keyframe_interval: float | None = None) -> dict[str, Any]:
    """Render ``edits`` of ``src`` into ``dst`` (H.264/AAC MP4, faststart).

    Returns ``{"duration"}`` (s, probed from the output), ``"width"``/``"height"`` (the
    output's), ``"frames"`` (video frames encoded) and ``"decoded_frames"`` (video frames
    decoded: what the render cost).
    ``keyframe_interval`` (s) bounds the distance between keyframes (a scrubbing proxy).

    Raises :class:`InvalidRequest` when the edits do not fit the source, :class:`UnsupportedMedia`
    without a video stream, :class:`CorruptMedia` when the source cannot be decoded to the end,
    :class:`Cancelled` when ``should_cancel()`` turns true. ``dst`` exists only on success.
    """
    return render_part(src, dst, edits, WHOLE, progress, should_cancel,
                       Encoding(preset, threads or default_threads(), keyframe_interval))


def render_part(src: str | os.PathLike[str], dst: str | os.PathLike[str], edits: list[dict[str, Any]],
                part: Part, progress: Progress | None, should_cancel: Callable[[], bool] | None,
                encoding: Encoding) -> dict[str, Any]:
    """Render ``part`` of the output of ``edits`` into ``dst`` (MP4, faststart, atomic);
    the one code path of :func:`render` and of every piece of a chunked render.

    Returns as :func:`render` does (``frames`` 0 without video; ``width``/``height`` the
    video's even without it). Audio is left out of a part without ``audio`` and of a
    source without audio: asking for nothing else then is the caller's mistake.
    """
    info = described(src)
    with atomic_output(dst) as tmp:
        with open_input(src) as source:
            plan, decoded, frames, throttle = _encode(source, tmp, edits, info, part, progress, should_cancel,
                                                      encoding)
        if progress is not None:
            progress(MUX_SHARE, "Finalizing")
        duration = media_duration(tmp)
    throttle.finish()
    return {"duration": duration, "width": plan.width, "height": plan.height, "frames": frames,
            "decoded_frames": decoded}


def _encode(source: Any, tmp: Path, edits: list[dict[str, Any]], info: dict[str, Any], part: Part,
            progress: Progress | None, should_cancel: Callable[[], bool] | None,
            encoding: Encoding) -> tuple[RenderPlan, int, int, Throttle]:
    """Decode ``source``, filter and encode ``part`` into ``tmp``; return the plan, the video
    frames decoded and encoded, and the progress throttle."""
    name = Path(source.name).name
    vin = video_stream(source, name)
    ain = source.streams.audio[0] if info["has_audio"] and part.audio else None
    if not part.video and ain is None:
        raise ValueError("A render part with neither video nor audio")
    vin.codec_context.thread_count = encoding.threads
    plan = plan_for(edits, info)
    fps = output_rate(vin)
    placement = Placement(plan, time_base(vin), fps)
    first, end = part.window(placement)
    shown = (info["display_width"], info["display_height"]) if info["sample_aspect"] != "1:1" else None
    spec = filter_graph(plan, fps=fps, audio=ain is not None, rotation=info["rotation"], shown=shown,
                        video=part.video, placed=True, start_time=0.0 if part.start is None else None)
    graph, contexts = _build(spec, vin if part.video else None, ain, encoding.threads)
    timeline = Timeline.of(info)

    with open_output(tmp) as output:
        pairs = []
        video_out = None
        if part.video:
            if part != WHOLE:
                output.metadata[PART_KEY] = part_label(first, end)
            video_out = _video_encoder(output, plan, fps, encoding)
            pairs.append((contexts["vout"], video_out))
        if ain is not None:
            graph.set_audio_frame_size(AAC_FRAME_SIZE)
            pairs.append((contexts["aout"], _audio_encoder(output, ain)))
        # Scaled so encoding reports up to ENCODE_SHARE; flush, mux and rename own the rest.
        total = float((end - first) / fps) if part.video else plan.duration
        throttle = Throttle(total / ENCODE_SHARE, progress, should_cancel)
        sinks = _Sinks(output, pairs, throttle, video_out, (first, end), fps)
        feeds: dict[int, _Feed] = {}
        if part.video:
            feeds[vin.index] = _Feed(vin, contexts["vin"], timeline, name, _Picker(placement, part))
        if ain is not None:
            feeds[ain.index] = _Feed(ain, contexts["ain"], timeline, name)
        reader = _Reader(source, feeds, vin, timeline, throttle, sinks)
        gap = max(SEEK_GAP, float(info["keyframe_interval"]))
        spans = part.spans(plan.spans(gap), placement.tick)
        reader.read(spans, gap, seek_first=part.start is not None)
        for feed in feeds.values():
            feed.close()
        sinks.pump()
        decoded = feeds[vin.index].decoded if part.video else 0
        if part.video and decoded == 0:
            raise CorruptMedia("No video frame of the source could be decoded")
        _check_reached(reader, spans[-1][1], part, info["has_audio"] and ain is None, source.name)
        if part.video and sinks.frames != end - first:
            raise CorruptMedia(f"The source's video yielded {sinks.frames} of the {end - first} frames to render")
        sinks.flush()
    return plan, decoded, sinks.frames, throttle


def _check_reached(reader: _Reader, wanted: float, part: Part, audio_left_out: bool, path: str) -> None:
    """Raise CorruptMedia when the source's data stopped short of ``wanted`` (timeline s).

    A part without the audio stream judges by the video's end (the keyframe index knows
    it): the audio may run longer. An audio-only part is not judged: the video parts of
    the same render read the same stretches and judge them.
    """
    if not part.video:
        return
    if audio_left_out and part.stop is None:
        wanted = min(wanted, keyframe_index(path).end)
    if reader.reached < wanted - SHORTFALL_TOLERANCE:
        raise CorruptMedia(f"The source ended early: its data stops at {max(reader.reached, 0.0):.2f} s "
                           f"of the {wanted:.2f} s to render") from reader.error


def _video_encoder(output: Any, plan: RenderPlan, fps: Fraction, encoding: Encoding) -> Any:
    """The output's libx264 stream: the plan's size, square pixels, constant ``fps``."""
    stream = output.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, "yuv420p"
    context = stream.codec_context
    context.sample_aspect_ratio = Fraction(1)
    context.time_base = 1 / fps
    context.thread_type = "AUTO"
    context.thread_count = encoding.threads
    if encoding.keyframe_interval is not None:
        context.gop_size = max(1, round(encoding.keyframe_interval * fps))
    context.options = {"preset": encoding.preset}
    return stream


def _audio_encoder(output: Any, ain: Any) -> Any:
    """The output's AAC stream, at the source's rate and channel layout."""
    stream = output.add_stream("aac", rate=ain.codec_context.sample_rate)
    stream.layout = ain.codec_context.layout.name
    stream.bit_rate = AUDIO_BIT_RATE
    stream.codec_context.time_base = Fraction(1, ain.codec_context.sample_rate)
    return stream


def _build(spec: GraphSpec, vin: Any, ain: Any, threads: int) -> tuple[av.filter.Graph, dict[str, Any]]:
    """The configured PyAV graph for ``spec``, fed by buffers shaped like the decoders' output
    (the video's timestamps are placed times, in :data:`MICROSECOND` s)."""
    graph = av.filter.Graph()
    graph.threads = threads
    contexts: dict[str, Any] = {}
    if vin is not None:
        video = vin.codec_context
        contexts["vin"] = graph.add_buffer(width=video.width, height=video.height,
                                           format=video.pix_fmt or "yuv420p", time_base=MICROSECOND)
        contexts["vout"] = graph.add("buffersink")
    if ain is not None:
        audio = ain.codec_context
        contexts["ain"] = graph.add_abuffer(sample_rate=audio.sample_rate, format=audio.format.name,
                                            layout=audio.layout.name, time_base=ain.time_base)
        contexts["aout"] = graph.add("abuffersink")
    for node in spec.nodes:
        contexts[node.label] = graph.add(node.name, node.args)
    for src, src_pad, dst, dst_pad in spec.links:
        contexts[src].link_to(contexts[dst], src_pad, dst_pad)
    graph.configure()
    return graph, contexts
