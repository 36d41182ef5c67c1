"""One render split among workers: plan the chunks, render each one's video, render the
audio in one piece, join them by stream copy.

The parts are pieces of the single render (core.media.render), not renders of their own:
:func:`render_chunk` runs :func:`~core.media.render.render_part` with the chunk's
:class:`~core.media.render.Part`, i.e. the same graph, the same frame placement and the
same encoder settings as :func:`~core.media.render.render`, so the joined output shows the
same frame in every slot as the single render does, with the same timestamps.

- Chunks start at keyframes of the SOURCE that lie in a kept range (the keyframe index of
  core.media.keyframes): a chunk decodes from its own keyframe, and the GOPs of other
  chunks only for the one frame that closes its last slot (the next chunk's keyframe).
  Chunk ``i`` renders the output slots from the first one showing its keyframe's frame to
  the first one showing the next chunk's: contiguous, never overlapping (see
  :class:`~core.media.render.Placement`).
- Each chunk is a video-only MP4 whose frames are numbered from 0; its first frame is an
  IDR (x264 starts every stream with one) and its parameter sets are the single render's
  (same encoder settings, size and rate). :func:`join` refuses chunks whose stream
  descriptions differ, so the output has one set of parameter sets.
- The audio is rendered alone, in one piece (:func:`render_audio`): an AAC encoder started
  per chunk would add its priming delay and a discontinuity at every join.
- :func:`join` copies the packets: chunk ``i``'s timestamps are shifted by the end of the
  chunks before it (decode times stay strictly increasing: x264's decode delay is the
  same in every chunk), interleaved with the audio's by decode time, into one faststart
  MP4 written atomically. Nothing is re-encoded and no edit list hides an overlap.

A :class:`Chunk` is JSON-able (:meth:`Chunk.to_params`): the job queue stores it as a
sub-job's parameters, and any worker that has the source renders it.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from core.media.editplan import plan_for
from core.media.errors import MediaError
from core.media.keyframes import keyframe_index
from core.media.output import atomic_output, open_output
from core.media.probe import described, media_duration, open_input, time_base, video_stream
from core.media.render import (
    MUX_SHARE,
    PART_KEY,
    PRESET,
    Encoding,
    Part,
    Placement,
    Progress,
    default_threads,
    output_rate,
    parse_part_label,
    render_part,
)
from ext.progress import Throttle

# The last chunk is at least this share of a chunk long: a sliver of a chunk costs a
# worker's start-up (a GOP of decoding, x264's lookahead) for a few frames.
MIN_LAST_SHARE = 0.5


@dataclass(frozen=True)
class Chunk:
    """One piece of a chunked render: what a sub-job needs besides the source and edits.

    ``start``/``stop``: the source keyframes (timeline s) where this chunk and the next one
    start decoding (None: the output's start / end); ``first``: its first output frame;
    ``frames``: how many it renders; ``seconds``: their output duration (a share of the
    progress).
    """

    index: int
    start: float | None
    stop: float | None
    first: int
    frames: int
    seconds: float

    @property
    def part(self) -> Part:
        """The piece of the single render this chunk is: its video, between its keyframes."""
        return Part(video=True, audio=False, start=self.start, stop=self.stop)

    def to_params(self) -> dict[str, Any]:
        """A JSON-able dict (:meth:`from_params` reads it back)."""
        return {"index": self.index, "start": self.start, "stop": self.stop, "first": self.first,
                "frames": self.frames, "seconds": self.seconds}

    @classmethod
    def from_params(cls, data: dict[str, Any]) -> Chunk:
        def seconds(value: Any) -> float | None:
            return None if value is None else float(value)

        return cls(int(data["index"]), seconds(data["start"]), seconds(data["stop"]), int(data["first"]),
                   int(data["frames"]), float(data["seconds"]))


def _placement(src: str | os.PathLike[str], edits: list[dict[str, Any]]) -> Placement:
    """The single render's frame placement for ``edits`` of ``src`` (the header is read, no packet)."""
    info = described(src)
    plan = plan_for(edits, info)
    with open_input(src) as source:
        video = video_stream(source, Path(src).name)
        return Placement(plan, time_base(video), output_rate(video))


def plan_chunks(src: str | os.PathLike[str], edits: list[dict[str, Any]], chunk_seconds: float) -> list[Chunk]:
    """Split the render of ``edits`` into chunks of about ``chunk_seconds`` of output each.

    Chunks start at source keyframes inside kept ranges, the first one ``chunk_seconds``
    or more after the previous chunk's start (so a chunk is at least that long, at most
    that plus a GOP of output); the last one is at least half a chunk long. Returns []
    when that leaves fewer than two chunks (``chunk_seconds <= 0``: never chunk), so the
    caller renders in one piece. Raises as :func:`~core.media.render.render` does for edits
    that do not fit the source.
    """
    if chunk_seconds <= 0:
        return []
    placement = _placement(src, edits)
    index = keyframe_index(src)
    total = placement.frames
    step = chunk_seconds * placement.fps
    firsts: list[int] = [0]
    starts: list[float | None] = [None]
    for low, high in zip(placement.starts, placement.ends):
        for key in index.within(float(low * placement.tick), float(high * placement.tick)):
            if placement.place(placement.ticks(key)) is None:  # rounding at a range's edge
                continue
            first = placement.first_slot(key)
            if first - firsts[-1] >= step and total - first >= MIN_LAST_SHARE * step:
                firsts.append(first)
                starts.append(key)
    if len(firsts) < 2:
        return []
    ends = [*firsts[1:], total]
    stops = [*starts[1:], None]
    return [Chunk(number, start, stop, first, end - first, float((end - first) / placement.fps))
            for number, (start, stop, first, end) in enumerate(zip(starts, stops, firsts, ends))]


def render_chunk(src: str | os.PathLike[str], dst: str | os.PathLike[str], edits: list[dict[str, Any]],
                 chunk: Chunk, progress: Progress | None = None, should_cancel: Callable[[], bool] | None = None,
                 *, threads: int | None = None, preset: str = PRESET) -> dict[str, Any]:
    """Render ``chunk``'s video into ``dst`` (H.264 MP4, video only, faststart, atomic).

    Returns :func:`~core.media.render.render_part`'s result: ``frames`` (encoded, equal to
    ``chunk.frames``), ``decoded_frames``, ``duration``, ``width``, ``height``. Raises as
    :func:`~core.media.render.render` does, and MediaError before any decoding when the
    chunk does not fit (the edits or the source changed since :func:`plan_chunks`).
    """
    try:
        window = chunk.part.window(_placement(src, edits))
    except ValueError:  # its keyframe is not in a kept range of these edits
        window = (-1, -1)
    if window != (chunk.first, chunk.first + chunk.frames):
        raise MediaError(f"Chunk {chunk.index} does not fit these edits of this source: the source or the "
                         f"edits changed since it was planned")
    return render_part(src, dst, edits, chunk.part, progress, should_cancel,
                       Encoding(preset, threads or default_threads()))


def render_audio(src: str | os.PathLike[str], dst: str | os.PathLike[str], edits: list[dict[str, Any]],
                 progress: Progress | None = None,
                 should_cancel: Callable[[], bool] | None = None) -> dict[str, Any] | None:
    """Render the audio of ``edits`` alone into ``dst`` (AAC in MP4, atomic), in one piece:
    the single render's audio graph. Returns ``{"duration", ...}``, None (and no file)
    when the source has no audio."""
    if not described(src)["has_audio"]:
        return None
    return render_part(src, dst, edits, Part(video=False, audio=True), progress, should_cancel,
                       Encoding(PRESET, 1))


def join(dst: str | os.PathLike[str], chunk_paths: Sequence[str | os.PathLike[str]],
         audio_path: str | os.PathLike[str] | None, progress: Progress | None = None,
         should_cancel: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Join the chunks' video (in order) and the audio into ``dst`` by stream copy.

    Returns ``{"duration", "width", "height", "frames"}``. Raises MediaError when there are
    no chunks or they do not fit together (another codec, size, rate or parameter sets),
    Cancelled when ``should_cancel()`` turns true; ``dst`` exists only on success.
    """
    if not chunk_paths:
        raise MediaError("Nothing to join: no chunk")
    total = _check_chunks(chunk_paths)
    throttle = Throttle(total / MUX_SHARE, progress, should_cancel)
    with atomic_output(dst) as tmp, ExitStack() as inputs:
        output = inputs.enter_context(open_output(tmp))
        template = inputs.enter_context(av.open(str(chunk_paths[0])))
        video = output.add_stream_from_template(template.streams.video[0])
        width, height = video.codec_context.width, video.codec_context.height
        streams: list[Iterator[tuple[float, av.Packet[Any]]]] = [_video_packets(chunk_paths, video)]
        if audio_path is not None:
            sound = inputs.enter_context(av.open(str(audio_path)))
            streams.append(_audio_packets(sound, output.add_stream_from_template(sound.streams.audio[0])))
        frames = 0
        for position, packet in heapq.merge(*streams, key=lambda item: item[0]):
            output.mux_one(packet)
            if packet.stream is video:
                frames += 1
            throttle.update(position)
        inputs.close()  # the output is complete (faststart rewritten) before it is measured and renamed
        if progress is not None:
            progress(MUX_SHARE, "Finalizing")
        duration = media_duration(tmp)
    throttle.finish()
    return {"duration": duration, "width": width, "height": height, "frames": frames}


def _check_chunks(paths: Sequence[str | os.PathLike[str]]) -> float:
    """The chunks' total duration (s); MediaError unless they hold one video stream each,
    described alike (codec, size, time base, parameter sets), and follow each other: each
    starts at the output frame where the one before ends (render_part labels them), so
    a chunk of another plan, a missing one or a wrong order is refused, not joined."""
    described_as: tuple[Any, ...] | None = None
    total = 0.0
    expected = 0
    for number, path in enumerate(paths):
        name = Path(path).name
        with av.open(str(path)) as chunk:
            if len(chunk.streams) != 1 or not chunk.streams.video:
                raise MediaError(f"Chunk {number} ({name}) is not one video stream")
            stream = chunk.streams.video[0]
            context = stream.codec_context
            description = (context.name, context.width, context.height, stream.time_base,
                           bytes(context.extradata or b""))
            if described_as is None:
                described_as = description
            elif description != described_as:
                raise MediaError(f"Chunk {number} ({name}) was encoded differently from chunk 0")
            window = parse_part_label(chunk.metadata.get(PART_KEY))
            if window is None or window[0] != expected:
                held = "no frames it names" if window is None else f"output frames from {window[0]}"
                raise MediaError(f"Chunk {number} ({name}) holds {held} where frame {expected} comes next: "
                                 f"the chunks are not of one plan or not in order")
            expected = window[1]
            total += (chunk.duration or 0) / av.time_base
    return total


def _video_packets(paths: Sequence[str | os.PathLike[str]], out: Any) -> Iterator[tuple[float, av.Packet[Any]]]:
    """``(decode time in s, packet)`` of every chunk in turn, re-timed into one sequence.

    Chunk ``i`` is shifted by the end (latest pts + duration) of the chunks before it:
    each chunk's frames are numbered from 0, so that is exactly where its slots begin.
    """
    offset = Fraction(0)
    last_dts: Fraction | None = None
    for number, path in enumerate(paths):
        with av.open(str(path)) as chunk:
            stream = chunk.streams.video[0]
            tick = time_base(stream)
            shift = offset / tick
            if shift.denominator != 1:
                raise MediaError(f"Chunk {number} cannot be placed at {float(offset):.6f} s in its time base")
            end = 0
            for packet in chunk.demux(stream):
                if packet.pts is None or packet.dts is None:  # the demuxer's empty end-of-stream packets
                    continue
                end = max(end, packet.pts + (packet.duration or 0))
                packet.pts += shift.numerator
                packet.dts += shift.numerator
                dts = packet.dts * tick
                if last_dts is not None and dts <= last_dts:
                    raise MediaError(f"Chunk {number} overlaps the chunk before it (decode time "
                                     f"{float(dts):.3f} s)")
                last_dts = dts
                packet.stream = out
                yield float(dts), packet
            offset += end * tick


def _audio_packets(audio: Any, out: Any) -> Iterator[tuple[float, av.Packet[Any]]]:
    """``(decode time in s, packet)`` of the ``audio`` file's AAC stream, copied to stream ``out``."""
    stream = audio.streams.audio[0]
    tick = time_base(stream)
    for packet in audio.demux(stream):
        if packet.dts is None:  # the demuxer's empty end-of-stream packets
            continue
        packet.stream = out
        yield float(packet.dts * tick), packet
