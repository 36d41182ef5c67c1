"""Smart render: an edit list that changes no pixel of a kept frame, rendered by copying GOPs.

When the edits only choose what to keep (trim, cut, split) and perhaps fade or change the
volume, most of the output is the source's own coded frames. This module writes the same
output as :func:`core.media.render.render` (same frames at the same times, same audio)
while re-encoding only what it must::

    source    K0 ..a.. K1 ===== whole GOPs ===== K2 ..b.. | K3
    output       [head][ packets copied, decode order ][tail]

- Timing is the full render's own arithmetic (:class:`core.media.render.Placement`): each
  kept frame's output time and slot, and slot ``n`` shows the latest frame placed at
  ``n`` or before, as its ``fps`` filter picks. Where that repeats a frame (a join whose
  range ends between two frames, the end) the repeat is re-encoded too, so the output
  has the full render's frames at the full render's times, frame for frame.
- Audio is the full render's: its graph alone (:func:`core.media.render.render_part`
  without video), rendered in one piece into a file of its own while the edges are
  encoded (a thread: both spend their time in FFmpeg, outside the GIL), then copied in.
- Faded frames are re-encoded with the full render's fade filters applied at their
  output times; the copy starts after the fade-in and stops before the fade-out.
- A run of output slots showing consecutive source frames is copied from its first
  splice point on: the first IDR frame at or after the run's start (and after any fade-in
  frames). Frames before it (the head) are decoded and re-encoded. An open GOP's
  keyframe is an I picture that is no IDR: a copy goes on through it but never starts at
  it, as the splice switches parameter sets (x264's, then the source's) and resets the
  reference state, which only an IDR does (spliced at a recovery-point I picture, ffmpeg
  5.1 decodes the output with "mmco: unref short failure" errors and Chromium stops
  playing it with a decode error). The picture's leading
  B-frames (shown before it, decoded after it) belong to the head.
- At a run's end the copy goes on into the last GOP as far as a prefix of its packets in
  decode order shows exactly the frames before some point (always possible without
  B-frames, at every mini-GOP's end with them); only the frames after it (the tail, a
  few) are re-encoded. Heads and tails that meet in the output are one x264 segment.
- Re-encoded segments are fresh libx264 streams without B-frames (core.media.smartcut):
  Annex B rewritten to the track's length-prefixed form, each starting with an IDR that
  carries its own SPS/PPS in-band; each copied stretch starts with the source's SPS/PPS
  in-band, so a decoder switches back.
- Decode times are computed over the whole output at once: with ``p`` the presentation
  slots in decode order, ``dts[i] = sorted(p)[i] - D``, ``D`` the smallest shift keeping
  every ``dts[i] <= p[i]``: strictly increasing across every splice, no per-piece shifts.

The output is one H.264 track in the source's avcC form (its profile kept for the edges)
whose frames are presented at the full render's times, and the full render's audio.

What this does not do (core.media.process falls back to the full render): other codecs
or Annex B sources, other pixel formats, speed, scale/crop, rotation, non-square pixels,
and variable frame rate sources: the full render makes those constant-rate by dropping
and repeating frames, which a copied GOP cannot follow (a dropped frame may be a
reference), so their frame times could not match the full render's.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import heapq
import os
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from core.media import render as full
from core.media.editplan import RenderPlan, plan_for
from core.media.errors import CorruptMedia, MediaError, OutOfSpace
from core.media.gop import seek_before
from core.media.output import atomic_output, open_output
from core.media.probe import Timeline, described, media_duration, open_input, time_base, video_stream
from core.media.smartcut import X264_OPTIONS, Coded, Source, edge_encoder, scan_coded, source_frames
from ext.nal import annexb_to_length_prefixed, avcc_length_size, avcc_parameter_sets
from ext.progress import Throttle
from ext.remux import mux_packets

Timed = tuple[float, "av.Packet[Any]"]  # (output seconds, packet), what the muxing loop takes

# What a copied frame costs next to a re-encoded one (demux + mux vs decode + x264), for progress.
COPY_COST = 0.02
# libx264 profiles for the H.264 profiles a source may have: edges keep the source's.
X264_PROFILES = {"Baseline": "baseline", "Constrained Baseline": "baseline", "Main": "main", "High": "high"}


class NotWorthIt(MediaError):
    """The exact plan re-encodes too large a share of the output (the reason is the message)."""


@dataclass
class Stretch:
    """A stretch of the source's packets read in decode order, and its frames sorted."""

    coded: list[Coded]
    frames: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.frames = sorted(c.pts for c in self.coded)


@dataclass
class Encoded:
    """Output slots re-encoded: pieces of consecutive source frames, ``(pts, slot)`` each."""

    pieces: list[list[tuple[int, int]]]

    @property
    def slots(self) -> list[int]:
        return [slot for piece in self.pieces for _, slot in piece]


@dataclass
class Copied:
    """Source packets copied, from the IDR at ``keyframe``: their pts in decode order."""

    keyframe: int
    packets: list[int]


@dataclass
class VideoPlan:
    """The output's video: segments in decode order, and each packet's presentation slot."""

    segments: list[Encoded | Copied]
    order: list[int]  # presentation slot of every output packet, decode order
    reencoded: int
    copied: int


def _stretches(scans: list[list[Coded]]) -> list[Stretch]:
    """The scans of the kept ranges (in source order) joined where they overlap."""
    joined: list[list[Coded]] = []
    for scan in scans:
        if not scan:
            continue
        if joined:
            starts = {c.pts: i for i, c in enumerate(joined[-1])}
            if scan[0].pts in starts:  # the same decode order from there: this scan goes further
                joined[-1] = joined[-1][:starts[scan[0].pts]] + scan
                continue
        joined.append(scan)
    return [Stretch(coded) for coded in joined]


def shown_frames(placement: full.Placement, frames: list[int], origin: int) -> list[int]:
    """The frame (pts) the full render shows at each output slot.

    ``frames`` are the frames read around the kept ranges, sorted; ``origin`` is the pts
    of timeline 0. As the full render's ``fps`` filter does, slot ``n`` shows the latest
    kept frame placed at ``n`` or before (before the first one: the first), for the
    ``placement.frames`` slots of the output.
    """
    latest: list[int | None] = [None] * placement.frames
    for pts in frames:
        time = placement.place(pts - origin)
        if time is not None and (slot := placement.slot(time)) < placement.frames:
            latest[slot] = pts
    kept = [pts for pts in latest if pts is not None]
    if not kept:
        raise CorruptMedia("No video frame of the kept ranges could be read")
    shown, current = [], kept[0]
    for found in latest:
        current = current if found is None else found
        shown.append(current)
    return shown


@dataclass
class Run:
    """Output slots showing consecutive source frames of one stretch: ``(pts, slot)`` pairs.

    A frame may appear twice in a row: where the full render repeats a frame (a range
    ending between two frames, the output's end) so does the output, by re-encoding it.
    """

    stretch: int
    entries: list[tuple[int, int]]


def _runs(slots: list[int], stretches: list[Stretch]) -> list[Run]:
    """The output slots (the source pts each shows) grouped into runs."""
    where: dict[int, tuple[int, int]] = {}
    for number, stretch in enumerate(stretches):
        for position, pts in enumerate(stretch.frames):
            where.setdefault(pts, (number, position))
    runs: list[Run] = []
    previous = (-1, -1, -1)  # stretch, position, slot
    for slot, pts in enumerate(slots):
        number, position = where[pts]
        if (number, slot - 1) != previous[::2] or position - previous[1] not in (0, 1):
            runs.append(Run(number, []))
        runs[-1].entries.append((pts, slot))
        previous = (number, position, slot)
    return runs


def _copy_window(run: Run, forced: Callable[[int], bool]) -> tuple[int, int] | None:
    """The longest stretch of the run's frames (first, last pts) that may be copied: not
    faded, not repeated."""
    shown = [pts for pts, _ in run.entries]
    times = collections.Counter(shown)
    good = [not forced(slot) and times[pts] == 1 for pts, slot in run.entries]
    best: tuple[int, int] | None = None
    begin = None
    for position, ok in enumerate([*good, False]):
        if ok and begin is None:
            begin = position
        elif not ok and begin is not None:
            if best is None or position - begin > best[1] - best[0]:
                best = (begin, position)
            begin = None
    return None if best is None else (shown[best[0]], shown[best[1] - 1])


def plan_video(runs: list[Run], stretches: list[Stretch], forced: Callable[[int], bool]) -> VideoPlan:
    """Which slots are copied and which re-encoded; ``forced(slot)`` marks slots that must be
    re-encoded (faded ones)."""
    segments: list[Encoded | Copied] = []

    def encode(piece: list[tuple[int, int]]) -> None:
        if not piece:
            return
        if segments and isinstance(segments[-1], Encoded):
            segments[-1].pieces.append(piece)
        else:
            segments.append(Encoded([piece]))

    slot_of: dict[int, int] = {}
    for run in runs:
        slot_of.update(run.entries)
        window = _copy_window(run, forced)
        copy = _copyable(stretches[run.stretch], *window) if window else None
        if copy is None:
            encode(run.entries)
            continue
        first, last = copy.keyframe, max(copy.packets)
        encode([(pts, slot) for pts, slot in run.entries if pts < first])
        segments.append(copy)
        encode([(pts, slot) for pts, slot in run.entries if pts > last])
    order: list[int] = []
    copied = 0
    for segment in segments:
        if isinstance(segment, Copied):
            order += [slot_of[pts] for pts in segment.packets]
            copied += len(segment.packets)
        else:
            order += segment.slots
    return VideoPlan(segments, order, len(order) - copied, copied)


def _copyable(stretch: Stretch, lo: int, hi: int) -> Copied | None:
    """The longest copy of frames within [lo, hi] (pts): from the first IDR at or after
    ``lo``, the longest decode-order prefix whose frames are exactly those before a point."""
    start = next((i for i, c in enumerate(stretch.coded) if c.idr and lo <= c.pts <= hi), None)
    if start is None:
        return None
    keyframe = stretch.coded[start].pts
    base = bisect.bisect_left(stretch.frames, keyframe)
    taken: list[int] = []
    best = 0
    latest = keyframe
    for coded in stretch.coded[start:]:
        if coded.pts < keyframe:  # a leading picture of an open GOP: it needs the GOP before
            continue
        if coded.pts > hi:
            break
        taken.append(coded.pts)
        latest = max(latest, coded.pts)
        if len(taken) == bisect.bisect_left(stretch.frames, latest) - base + 1:
            best = len(taken)
    return Copied(keyframe, taken[:best]) if best else None


def _order_dts(order: list[int]) -> list[int]:
    """Decode slots for packets presented at ``order`` (slots, decode order): strictly
    increasing and never after the packet's presentation (see the module docstring)."""
    ranked = sorted(order)
    shift = max(0, max(r - p for r, p in zip(ranked, order)))
    return [r - shift for r in ranked]


@dataclass
class _Writer:
    """What the video packets need while they are produced."""

    source: Source
    video: Any
    time_base: Fraction  # of the output's timestamps (the muxer rescales to the track's own)
    tick: int  # output ticks per slot
    length_size: int
    fades: Any  # the fade graph's (buffer, sink), None without fades
    keyframes: dict[int, int]  # pts -> the keyframe at or before it, where decoding starts
    threads: int  # x264's threads (the job's codec threads)
    out: Any = None  # the output's video stream


def _video_packets(writer: _Writer, plan: VideoPlan, edges: list[list[tuple[int, av.Packet[Any]]]],
                   slot_of: dict[int, int]) -> Iterator[Timed]:
    """The output's video packets in decode order, re-timed to their planned slots;
    ``edges`` are the re-encoded segments' packets, in order."""
    dts = _order_dts(plan.order)
    seconds = float(writer.time_base)
    parameter_sets = avcc_parameter_sets(writer.video.codec_context.extradata, writer.length_size)
    encoded = iter(edges)
    at = 0
    for segment in plan.segments:
        if isinstance(segment, Copied):
            packets: Iterable[tuple[int, av.Packet[Any]]] = _copied(writer, segment, slot_of, parameter_sets)
        else:
            packets = next(encoded)
        for slot, packet in packets:
            if at >= len(plan.order) or slot != plan.order[at]:
                raise MediaError("Smart render: the packets written strayed from the plan")
            packet.pts, packet.dts = slot * writer.tick, dts[at] * writer.tick
            packet.duration = writer.tick
            packet.time_base = writer.time_base
            packet.stream = writer.out
            yield packet.dts * seconds, packet
            at += 1
    if at != len(plan.order):
        raise CorruptMedia(f"{writer.source.name}: {len(plan.order) - at} planned video frames were not written")


def _copied(writer: _Writer, copy: Copied, slot_of: dict[int, int],
            parameter_sets: bytes) -> Iterator[tuple[int, av.Packet[Any]]]:
    """The copied packets with their slots, the source's SPS/PPS in-band on the first."""
    with open_input(writer.source.path) as container:
        video = container.streams.video[0]
        seek_before(container, video, copy.keyframe)
        wanted = iter(copy.packets)
        expected = next(wanted, None)
        started = False
        for packet in container.demux(video):
            writer.source.check()
            if expected is None:
                return
            pts = packet.pts
            if pts is None or not packet.size:
                continue
            copied: av.Packet[Any] = packet
            if not started:  # the seek may land on an earlier keyframe
                if not (packet.is_keyframe and pts == copy.keyframe):
                    continue
                started = True
                copied = av.Packet(parameter_sets + bytes(packet))
                copied.is_keyframe = True
            elif pts < copy.keyframe:  # a leading picture of the keyframe's open GOP: not copied
                continue
            if pts != expected:
                raise MediaError("Smart render: the source's packets are not in the planned order")
            yield slot_of[pts], copied
            expected = next(wanted, None)
        if expected is not None:
            raise CorruptMedia(f"{writer.source.name}: the source ended inside a copied GOP")


def _encoded(writer: _Writer, segment: Encoded, done: Callable[[], None]) -> Iterator[tuple[int, av.Packet[Any]]]:
    """The segment's frames decoded, faded where the plan fades, encoded by a fresh x264;
    ``done()`` after each frame is given to the encoder."""
    encoder = edge_encoder(writer.video, _edge_options(writer.video), writer.time_base)
    encoder.thread_count = writer.threads

    def encode(frame: av.VideoFrame | None) -> Iterator[tuple[int, av.Packet[Any]]]:
        for packet in encoder.encode(frame):
            data = annexb_to_length_prefixed(bytes(packet), writer.length_size)
            spliced = av.Packet(data)
            spliced.is_keyframe = packet.is_keyframe
            assert packet.pts is not None  # an encoder's packets always have one
            yield packet.pts // writer.tick, spliced

    for piece in segment.pieces:
        lo, hi = piece[0][0], piece[-1][0] + 1
        decoded = source_frames(writer.source, writer.keyframes[lo], lo, hi)
        assert isinstance(decoded, Generator)
        held: av.VideoFrame | None = None
        held_pts = -1
        for pts, slot in piece:
            # A frame shown twice is encoded twice; one the decoder could not give is
            # replaced by the one before it.
            while held_pts < pts:
                following = next(decoded, None)
                if following is None or following.pts is None:
                    break
                held, held_pts = following, following.pts
            if held is None:
                raise CorruptMedia(f"{writer.source.name}: a video frame to re-encode cannot be decoded")
            yield from encode(_faded(writer, held, slot))
            done()
        decoded.close()
    yield from encode(None)


def _faded(writer: _Writer, frame: av.VideoFrame, slot: int) -> av.VideoFrame:
    """``frame`` re-timed to ``slot``, faded as the full render fades that slot.

    The fade filter works on its own copy (the decoder's frame is shared), and x264 copies
    what it is given, so one decoded frame may stand for two slots.
    """
    frame.pts, frame.time_base = slot * writer.tick, writer.time_base
    frame.pict_type = av.video.frame.PictureType.NONE  # or x264 copies the source's pattern
    if writer.fades is None:
        return frame
    buffer, sink = writer.fades
    buffer.push(frame)
    faded: av.VideoFrame = sink.pull()
    faded.pict_type = av.video.frame.PictureType.NONE
    return faded


def _edge_options(video: Any) -> dict[str, str]:
    options = {**X264_OPTIONS, "bf": "0"}
    profile = X264_PROFILES.get(video.codec_context.profile or "")
    if profile:
        options["profile"] = profile
    return options


def _fade_graph(plan: RenderPlan, fps: Fraction, video: Any, tick: Fraction) -> Any:
    """buffer -> the full render's fade filters -> sink, in output time; None without fades."""
    fades = [(name, args) for name, args in full.video_effects(plan, fps) if name == "fade"]
    if not fades:
        return None
    graph = av.filter.Graph()
    ctx = video.codec_context
    chain = [graph.add_buffer(width=ctx.width, height=ctx.height, format="yuv420p", time_base=tick)]
    chain += [graph.add(name, args) for name, args in fades] + [graph.add("buffersink")]
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    graph.configure()
    return chain[0], chain[-1]


def smart_render(src: str | os.PathLike[str], dst: str | os.PathLike[str], edits: list[dict[str, Any]],
                 progress: full.Progress | None = None, should_cancel: Callable[[], bool] | None = None, *,
                 max_share: float = 1.0, threads: int | None = None) -> dict[str, Any]:
    """Render ``edits`` of ``src`` into ``dst`` as the full render would, copying GOPs.

    The caller (core.media.process.choose) has checked the source and the edits qualify.
    Raises :class:`NotWorthIt` (nothing written) when more than ``max_share`` of the output
    frames would be re-encoded. Returns ``{"duration", "width", "height", "frames",
    "reencodedFrames", "copiedFrames"}``.
    """
    info = described(src)
    plan = plan_for(edits, info)
    timeline = Timeline.of(info)
    throttle = Throttle(plan.duration / full.ENCODE_SHARE, progress, should_cancel)
    with atomic_output(dst) as tmp, open_input(src) as container:
        video = video_stream(container, Path(src).name)
        fps = full.output_rate(video)
        origin = timeline.ticks(0.0, video)
        length_size = avcc_length_size(video.codec_context.extradata)
        stretches = _stretches([scan_coded(container, video, timeline.ticks(start, video), timeline.ticks(end, video),
                                      length_size) for start, end in plan.ranges])
        frames = sorted({pts for stretch in stretches for pts in stretch.frames})
        runs = _runs(shown_frames(full.Placement(plan, time_base(video), fps), frames, origin), stretches)
        fade_in, fade_out = plan.fade_in * fps, (plan.duration - plan.fade_out) * fps
        video_plan = plan_video(runs, stretches,
                                lambda slot: slot < fade_in or (plan.fade_out > 0 and slot >= fade_out))
        total = len(video_plan.order)
        if video_plan.reencoded > max_share * total:
            raise NotWorthIt(f"{video_plan.reencoded} of the {total} output frames would be re-encoded")
        tick = Fraction(1, fps.numerator)
        keyframes = sorted(c.pts for stretch in stretches for c in stretch.coded if c.key)
        writer = _Writer(Source(str(src), throttle.check), video, tick, fps.denominator, length_size,
                         _fade_graph(plan, fps, video, tick),
                         {pts: keyframes[max(0, bisect.bisect_right(keyframes, pts) - 1)] for pts in frames},
                         threads or full.default_threads())
        sound = _Audio(src, tmp.with_name(f"{tmp.name}.audio.mp4"), Path(dst).name, edits, threads, should_cancel)
        _write(tmp, writer, video_plan, runs, sound if info["has_audio"] else None, plan.duration, throttle)
        if progress is not None:
            progress(full.MUX_SHARE, "Finalizing")
        duration = media_duration(tmp)
    throttle.finish()
    return {"duration": duration, "width": plan.width, "height": plan.height, "frames": total,
            "reencodedFrames": video_plan.reencoded, "copiedFrames": video_plan.copied}


@dataclass(frozen=True)
class _Audio:
    """The full render's audio of ``edits`` (core.media.render.render_part), rendered to ``path``,
    a piece of the output named ``output``."""

    src: str | os.PathLike[str]
    path: Path
    output: str
    edits: list[dict[str, Any]]
    threads: int | None
    should_cancel: Callable[[], bool] | None

    def render(self) -> None:
        try:
            full.render_part(self.src, self.path, self.edits, full.Part(video=False), None, self.should_cancel,
                             full.Encoding(full.PRESET, self.threads or full.default_threads()))
        except OutOfSpace as error:  # the client asked for the output: that is what did not fit
            raise OutOfSpace(f"Not enough disk space to write {self.output}") from error


def _write(tmp: Path, writer: _Writer, plan: VideoPlan, runs: list[Run], sound: _Audio | None,
           duration: float, throttle: Throttle) -> None:
    """Encode the edges while the audio renders beside them (its own file, a thread: both
    spend their time in FFmpeg, outside the GIL), then write the output in one remux pass.

    Progress: the edges cost about as much a frame as a full render's; a copied frame
    about ``COPY_COST`` of that. The edges are held in memory until the pass: a few
    frames per join, however long the output.
    """
    share = plan.reencoded / max(1.0, plan.reencoded + COPY_COST * plan.copied)
    encoded = 0

    def done() -> None:
        nonlocal encoded
        encoded += 1
        throttle.update(duration * share * encoded / plan.reencoded)

    with ThreadPoolExecutor(1) as pool:
        rendering = None
        if sound is not None:
            rendering = pool.submit(sound.render)
        try:
            edges = [list(_encoded(writer, segment, done)) for segment in plan.segments
                     if isinstance(segment, Encoded)]
            if rendering is not None:
                rendering.result()
            slot_of = {pts: slot for run in runs for pts, slot in run.entries}
            with open_output(tmp) as output, contextlib.ExitStack() as stack:
                writer.out = output.add_stream_from_template(writer.video)
                writer.out.time_base = writer.time_base  # the track's timescale follows (exact slots)
                streams = [_video_packets(writer, plan, edges, slot_of)]
                if sound is not None:
                    container = stack.enter_context(av.open(str(sound.path)))
                    ain = container.streams.audio[0]
                    streams.append(_copied_audio(container.demux(ain), output.add_stream_from_template(ain)))
                merged = heapq.merge(*streams, key=lambda timed: timed[0])
                mux_packets(output, ((duration * share + (1 - share) * position, packet)
                                     for position, packet in merged), throttle)
        finally:
            if rendering is not None:
                futures.wait([rendering])  # cancelled with this job, or finishing: then gone
            if sound is not None:
                sound.path.unlink(missing_ok=True)


def _copied_audio(packets: Iterator[av.Packet[Any]], out: Any) -> Iterator[Timed]:
    """The audio file's packets for the output's stream ``out``, timed (AAC priming at 0)."""
    for packet in packets:
        if packet.size and packet.pts is not None and packet.time_base is not None:
            packet.stream = out
            yield max(0.0, float(packet.pts * packet.time_base)), packet
