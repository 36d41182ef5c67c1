"""The ``process`` operation: render an edit list into one H.264/AAC MP4 in one filter-graph pass.

The source is decoded once and pushed through a single FFmpeg filter graph (built by
:func:`filter_graph` from a :class:`~core.media.editplan.RenderPlan`)::

    video: buffer -> split -> trim+setpts (per range) -> concat -> transpose (rotated
           source) -> setpts(speed) -> fps
           -> fade in/out -> scale/crop -> format=yuv420p -> buffersink
    audio: abuffer -> asplit -> atrim+asetpts (per range) -> concat -> atempo... -> afade
           -> volume -> aformat -> abuffersink

The same description renders as an ``ffmpeg -filter_complex`` string
(:func:`filter_complex`), so the benchmark compares like with like.

Choices worth knowing:
- Timestamps are rebased to the container start before the graph, as the ffmpeg CLI does,
  so edit times mean "seconds since the start the player shows".
- The output is constant frame rate at the source's average rate (the ``fps`` filter): a
  2x speed drops every other frame instead of doubling the encode, and VFR sources are
  made regular (frames duplicated or dropped, like ffmpeg's CFR mode).
- A rotated source (display-matrix side data, as phones write) is turned upright first,
  as the ffmpeg CLI's autorotate does, and the output carries no rotation: edit sizes and
  crops refer to the picture as it is shown.
- Progress is a fraction of the OUTPUT duration; encoding covers up to ``ENCODE_SHARE``,
  the encoder flush and the faststart mux the rest, and 1.0 is reported once, after the
  output is in place.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from av.video.frame import PictureType

from core.media.decode import TolerantDecoder
from core.media.editplan import RenderPlan, Scale, atempo_chain, build_plan
from core.media.errors import CorruptMedia
from core.media.output import atomic_output, open_output
from core.media.probe import media_duration, open_input, probe, video_stream
from ext.progress import Throttle

Progress = Callable[[float, str | None], None]

ENCODE_SHARE = 0.98
MUX_SHARE = 0.99
# A delivered duration shorter than the plan by more than this means the source ended early.
SHORTFALL_TOLERANCE = 0.5
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

    def chain(self, head: tuple[str, int], filters: list[tuple[str, str | None]], prefix: str) -> tuple[str, int]:
        """Append ``filters`` one after another from output pad ``head``; return the last pad."""
        for position, (name, args) in enumerate(filters):
            label = f"{prefix}{position}_{name}"
            self.nodes.append(FilterNode(label, name, args))
            self.links.append((head[0], head[1], label, 0))
            head = (label, 0)
        return head


def filter_graph(plan: RenderPlan, *, fps: Fraction, audio: bool, rotation: int = 0) -> GraphSpec:
    """The filter graph for ``plan``: sources labelled ``vin``/``ain``, sinks ``vout``/``aout``.

    ``rotation`` is the source's display rotation (degrees counter-clockwise, as probed).

    ``vin``/``ain``/``vout``/``aout`` are placeholders the caller binds (buffers and sinks in
    PyAV, stream specifiers on the CLI); every other node is a real filter.
    """
    spec = GraphSpec()
    count = len(plan.ranges)
    kinds = [("v", "", "vin")] + ([("a", "a", "ain")] if audio else [])
    segments: dict[str, list[tuple[str, int]]] = {}
    for kind, a, source in kinds:
        if count > 1:
            spec.nodes.append(FilterNode(f"{kind}split", f"{a}split", str(count)))
            spec.links.append((source, 0, f"{kind}split", 0))
            heads = [(f"{kind}split", index) for index in range(count)]
        else:
            heads = [(source, 0)]
        segments[kind] = [
            spec.chain(head, [(f"{a}trim", f"start={start!r}:end={end!r}"), (f"{a}setpts", "PTS-STARTPTS")],
                       f"{kind}r{index}_")
            for index, (head, (start, end)) in enumerate(zip(heads, plan.ranges))
        ]
    if count > 1:
        spec.nodes.append(FilterNode("concat", "concat", f"n={count}:v=1:a={int(audio)}"))
        for index in range(count):
            for pad, (kind, _, _) in enumerate(kinds):
                src, src_pad = segments[kind][index]
                spec.links.append((src, src_pad, "concat", index * len(kinds) + pad))
        video_head, audio_head = ("concat", 0), ("concat", 1)
    else:
        video_head = segments["v"][0]
        audio_head = segments["a"][0] if audio else ("", 0)

    spec.links.append((*spec.chain(video_head, upright(rotation) + video_effects(plan, fps), "vpost"), "vout", 0))
    if audio:
        spec.links.append((*spec.chain(audio_head, audio_effects(plan), "apost"), "aout", 0))
    return spec


def upright(rotation: int) -> list[tuple[str, str | None]]:
    """Filters that turn a picture with this display rotation (degrees counter-clockwise) upright."""
    return {90: [("transpose", "cclock")], 180: [("hflip", None), ("vflip", None)],
            270: [("transpose", "clock")]}.get(rotation % 360, [])


def video_effects(plan: RenderPlan, fps: Fraction) -> list[tuple[str, str | None]]:
    """The video filters applied after the ranges are joined, in order: speed, rate, fades, geometry."""
    video: list[tuple[str, str | None]] = []
    if plan.speed != 1:
        video.append(("setpts", f"PTS/{plan.speed!r}"))
    video.append(("fps", str(fps)))
    video += [("fade", args) for args in _fades(plan)]
    for step in plan.geometry:
        if isinstance(step, Scale):
            video.append(("scale", f"{step.width}:{step.height}"))
        else:
            video.append(("crop", f"{step.width}:{step.height}:{step.x}:{step.y}"))
    video.append(("format", "pix_fmts=yuv420p"))
    return video


def audio_effects(plan: RenderPlan) -> list[tuple[str, str | None]]:
    """The audio filters applied after the ranges are joined: tempo (pitch kept), fades, gain."""
    sound: list[tuple[str, str | None]] = []
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


class _Feed:
    """One source stream: its tolerant decoder feeding its buffer source, rebased to the container start."""

    def __init__(self, stream: Any, buffer: Any, start: float, name: str) -> None:
        self.stream = stream
        self.decoder = TolerantDecoder(stream, name)
        self.buffer = buffer
        self.offset = round(start / stream.time_base)
        self.open = True
        self.frames = 0

    def push(self, frame: Any) -> None:
        if not self.open or frame.pts is None:
            return
        frame.pts -= self.offset
        self.frames += 1
        try:
            self.buffer.push(frame)
        except av.error.EOFError:  # every range of this stream is complete: the graph wants no more
            self.open = False

    def close(self) -> None:
        """Signal the end of this stream to the graph (once)."""
        if self.open:
            self.open = False
            try:
                self.buffer.push(None)
            except av.error.EOFError:
                pass


def displayed_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """The size of a stored ``width`` x ``height`` picture as shown with ``rotation``."""
    return (height, width) if rotation % 180 == 90 else (width, height)


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


def render(src: str | os.PathLike[str], dst: str | os.PathLike[str], edits: list[dict[str, Any]],
           progress: Progress | None = None, should_cancel: Callable[[], bool] | None = None, *,
           preset: str = "veryfast", threads: int | None = None) -> dict[str, float]:
    """Render ``edits`` of ``src`` into ``dst`` (H.264/AAC MP4, faststart); return its probed duration.

    Raises :class:`InvalidRequest` when the edits do not fit the source, :class:`UnsupportedMedia`
    without a video stream, :class:`CorruptMedia` when the source cannot be decoded to the end,
    :class:`Cancelled` when ``should_cancel()`` turns true. ``dst`` exists only on success.
    """
    info = probe(src)
    threads = threads or default_threads()
    with atomic_output(dst) as tmp:
        with open_input(src) as source:
            plan, throttle = _encode(source, tmp, edits, info, progress, should_cancel, preset, threads)
        if progress is not None:
            progress(MUX_SHARE, "Finalizing")
        duration = media_duration(tmp)
        if duration < plan.duration - SHORTFALL_TOLERANCE:
            raise CorruptMedia(f"The source ended early: rendered {duration:.2f} s of the expected {plan.duration:.2f} s")
    throttle.finish()
    return {"duration": duration}


def _encode(source: Any, tmp: Path, edits: list[dict[str, Any]], info: dict[str, Any], progress: Progress | None,
            should_cancel: Callable[[], bool] | None, preset: str, threads: int) -> tuple[RenderPlan, Throttle]:
    """Decode ``source``, filter and encode into ``tmp``; return the plan and the progress throttle."""
    name = Path(source.name).name
    vin = video_stream(source, name)
    ain = source.streams.audio[0] if source.streams.audio else None
    vin.codec_context.thread_count = threads
    width, height = displayed_size(vin.codec_context.width, vin.codec_context.height, info["rotation"])
    plan = build_plan(edits, duration=float(info["duration"]), width=width, height=height)
    fps = vin.average_rate or vin.guessed_rate or Fraction(25)
    fps = Fraction(fps).limit_denominator(1001)
    spec = filter_graph(plan, fps=fps, audio=ain is not None, rotation=info["rotation"])

    graph, contexts = _build(spec, vin, ain, threads)

    start = (source.start_time or 0) / av.time_base
    with open_output(tmp) as output:
        vout = output.add_stream("libx264", rate=fps)
        vout.width, vout.height, vout.pix_fmt = plan.width, plan.height, "yuv420p"
        vout.codec_context.time_base = 1 / fps
        vout.codec_context.thread_type = "AUTO"
        vout.codec_context.thread_count = threads
        vout.codec_context.options = {"preset": preset}
        sinks = [(contexts["vout"], vout)]
        if ain is not None:
            aout = output.add_stream("aac", rate=ain.codec_context.sample_rate)
            aout.layout = ain.codec_context.layout.name
            aout.bit_rate = AUDIO_BIT_RATE
            aout.codec_context.time_base = Fraction(1, ain.codec_context.sample_rate)
            graph.set_audio_frame_size(AAC_FRAME_SIZE)
            sinks.append((contexts["aout"], aout))

        # Scaled so encoding reports up to ENCODE_SHARE; flush, mux and rename own the rest.
        throttle = Throttle(plan.duration / ENCODE_SHARE, progress, should_cancel)
        feeds = {vin.index: _Feed(vin, contexts["vin"], start, name)}
        if ain is not None:
            feeds[ain.index] = _Feed(ain, contexts["ain"], start, name)
        # Decoding past the last kept second is wasted: stop once every stream is beyond it.
        last_end = plan.ranges[-1][1] + start + 1.0
        first = plan.ranges[0][0]
        if first > 1.0:
            source.seek(int((first + start) * av.time_base), backward=True)

        def pump() -> None:
            for sink, stream in sinks:
                for frame in _drain(sink):
                    if stream is vout:
                        frame.pict_type = PictureType.NONE
                        throttle.update(float(frame.pts * frame.time_base))
                    _rescale(frame, stream.codec_context.time_base)
                    output.mux(stream.encode(frame))

        for packet in source.demux(*(s for s in (vin, ain) if s is not None)):
            throttle.check()
            feed = feeds[packet.stream.index]
            if packet.pts is not None and packet.pts * packet.time_base > last_end:
                feed.close()
            if not any(f.open for f in feeds.values()):
                break
            if packet.dts is None or not feed.open:
                continue
            for frame in feed.decoder.decode(packet):
                feed.push(frame)
            pump()
        for feed in feeds.values():
            if feed.open:  # flushing the decoder: its last frames are lost without this
                for frame in feed.decoder.decode(None):
                    feed.push(frame)
            feed.close()
        pump()
        if feeds[vin.index].frames == 0:
            raise CorruptMedia("No video frame of the source could be decoded")
        for _, stream in sinks:
            output.mux(stream.encode(None))
    return plan, throttle


def _build(spec: GraphSpec, vin: Any, ain: Any, threads: int) -> tuple[av.filter.Graph, dict[str, Any]]:
    """The configured PyAV graph for ``spec``, fed by buffers shaped like the decoders' output."""
    graph = av.filter.Graph()
    graph.threads = threads
    video = vin.codec_context
    contexts: dict[str, Any] = {
        "vin": graph.add_buffer(width=video.width, height=video.height, format=video.pix_fmt or "yuv420p",
                                time_base=vin.time_base),
        "vout": graph.add("buffersink"),
    }
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
