"""Benchmark of a chunked render (issue #16) on ONE worker against the single render.

Run ``python -m perf chunk-render [--runs N] [--sizes 5,10,20]``. On the 60 s 1080p30
H.264/AAC clip with a 2 s GOP of perf/smart_bench.py (made once, cached under
perf/results/), a full re-encode (scale to 720p, 1 s fades) is rendered, in alternating
order:

- single: :func:`core.media.render.render`;
- chunked at each size: :func:`core.media.chunks.plan_chunks`, every
  :func:`~core.media.chunks.render_chunk` one after the other, :func:`~core.media.chunks.render_audio`,
  :func:`~core.media.chunks.join`, each timed.

On one worker the chunks cannot gain: the ratio chunked / single is the OVERHEAD of
chunking (per chunk: a preroll frame, the graph and x264 set-up and x264's lookahead
start, and the muxing of one more file; once: the audio alone and the join). Those
parts are what docs/DEPLOYMENT.md ("Distributed rendering") builds its N-machine model
on. The chunked output is checked against the single one (frame count, duration).
Last, the fixed cost of a chunk is fitted through a one-GOP chunk and a 16 s one.
Figures are wall times on whatever machine runs this; on a shared VM trust the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from core.media.chunks import join, plan_chunks, render_audio, render_chunk
from core.media.render import default_threads, render
from perf.render_bench import RESULTS, alternating
from perf.smart_bench import make_clip

EDITS: list[dict[str, Any]] = [{"type": "scale", "width": -1, "height": 720}, {"type": "fade", "in": 1, "out": 1}]


class Stopwatch:
    """Wall and CPU seconds (this process, every thread) since the last lap."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        spent = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return spent


def chunked(clip: Path, seconds: float, threads: int, timings: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    """One chunked render on this worker, its phases' (wall, CPU) seconds appended to ``timings``."""
    directory = RESULTS / f"chunks-{seconds:g}"
    directory.mkdir(exist_ok=True)
    whole, watch = Stopwatch(), Stopwatch()
    spent: dict[str, tuple[float, float]] = {}
    chunks = plan_chunks(clip, EDITS, seconds)
    spent["plan"] = watch.lap()
    paths, decoded = [], 0
    for chunk in chunks:
        path = directory / f"chunk{chunk.index}.mp4"
        decoded += render_chunk(clip, path, EDITS, chunk, threads=threads)["decoded_frames"]
        paths.append(path)
    spent["chunks"] = watch.lap()
    render_audio(clip, directory / "audio.m4a", EDITS)
    spent["audio"] = watch.lap()
    result = join(RESULTS / f"chunked-{seconds:g}.mp4", paths, directory / "audio.m4a")
    spent["join"] = watch.lap()
    spent["total"] = whole.lap()
    for name, value in spent.items():
        timings.setdefault(name, []).append(value)
    return {**result, "chunks": len(chunks), "decoded": decoded}


def fixed_cost(clip: Path, threads: int, runs: int) -> tuple[float, float, float, float]:
    """The cost of a chunk as ``fixed + per_second * seconds``, fitted through a 2 s chunk
    (one GOP) and a 16 s one, rendered ``runs`` times each in alternating order: medians
    of ``(fixed wall, per-second wall, fixed CPU, per-second CPU)``."""
    short = plan_chunks(clip, EDITS, 2.0)[1]
    long = plan_chunks(clip, EDITS, 16.0)[1]
    spent: dict[float, list[tuple[float, float]]] = {short.seconds: [], long.seconds: []}
    for run in range(runs):
        for chunk in (short, long)[:: 1 if run % 2 == 0 else -1]:
            watch = Stopwatch()
            render_chunk(clip, RESULTS / "chunk-fixed.mp4", EDITS, chunk, threads=threads)
            spent[chunk.seconds].append(watch.lap())
    (short_wall, short_cpu), (long_wall, long_cpu) = median(spent[short.seconds]), median(spent[long.seconds])
    span = long.seconds - short.seconds
    wall_rate, cpu_rate = (long_wall - short_wall) / span, (long_cpu - short_cpu) / span
    return short_wall - wall_rate * short.seconds, wall_rate, short_cpu - cpu_rate * short.seconds, cpu_rate


def median(values: list[tuple[float, float]]) -> tuple[float, float]:
    """Median wall and median CPU seconds."""
    return statistics.median(wall for wall, _ in values), statistics.median(cpu for _, cpu in values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="alternating runs per configuration (median reported)")
    parser.add_argument("--sizes", default="5,10,20", help="chunk sizes, seconds of output, comma-separated")
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args(argv)
    sizes = [float(size) for size in args.sizes.split(",")]
    clip = make_clip()
    with av.open(str(clip)) as container:
        frames = container.streams.video[0].frames
    print(f"clip {clip.name} ({frames} frames, GOP 2 s); edits {EDITS}; PyAV {av.__version__} "
          f"(FFmpeg {av.ffmpeg_version_info}); x264 veryfast, {args.threads} threads; {args.runs} run(s)\n",
          flush=True)

    single: list[tuple[float, float]] = []
    phases: dict[float, dict[str, list[tuple[float, float]]]] = {size: {} for size in sizes}
    facts: dict[float, dict[str, Any]] = {}
    reference: dict[str, Any] = {}

    def run_single() -> None:
        watch = Stopwatch()
        reference.update(render(clip, RESULTS / "chunk-single.mp4", EDITS, threads=args.threads))
        single.append(watch.lap())

    def run_chunked(size: float) -> Callable[[], None]:
        def run() -> None:
            facts[size] = chunked(clip, size, args.threads, phases[size])
        return run

    jobs: dict[str, Callable[[], object]] = {"single": run_single}
    jobs.update({f"chunked {size:g} s": run_chunked(size) for size in sizes})
    alternating(args.runs, jobs, verbose=True)  # each job keeps its own wall and CPU figures

    base_wall, base_cpu = median(single)
    print(f"\nsingle render: {base_wall:.2f} s wall, {base_cpu:.2f} s CPU; {reference['frames']} frames, "
          f"{reference['decoded_frames']} decoded\n")
    print("Each cell: wall s / CPU s (this process, all threads). Overhead per chunk: what the "
          "chunks' sum costs over the single render less its audio, divided by the chunks.\n")
    print("| chunk size | chunks | total | chunked / single (wall, CPU) | plan | chunks (sum) "
          "| audio alone | join | overhead per chunk (wall, CPU) | frames decoded |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        fact = facts[size]
        assert fact["frames"] == reference["frames"], (size, fact["frames"], reference["frames"])
        assert abs(fact["duration"] - reference["duration"]) < 0.05, (size, fact["duration"])
        cells = {name: median(values) for name, values in phases[size].items()}
        (total_wall, total_cpu), (audio_wall, audio_cpu) = cells["total"], cells["audio"]
        chunks_wall, chunks_cpu = cells["chunks"]
        extra_wall = (chunks_wall - (base_wall - audio_wall)) / fact["chunks"]
        extra_cpu = (chunks_cpu - (base_cpu - audio_cpu)) / fact["chunks"]
        pair = {name: f"{wall:.2f} / {cpu:.2f}" for name, (wall, cpu) in cells.items()}
        print(f"| {size:g} s | {fact['chunks']} | {pair['total']} | {total_wall / base_wall:.3f}, "
              f"{total_cpu / base_cpu:.3f} | {pair['plan']} | {pair['chunks']} | {pair['audio']} | {pair['join']} "
              f"| {extra_wall * 1000:+.0f} ms, {extra_cpu * 1000:+.0f} ms | {fact['decoded']} |", flush=True)
    fixed_wall, rate_wall, fixed_cpu, rate_cpu = fixed_cost(clip, args.threads, max(3, args.runs))
    print(f"\nper chunk, fitted through a 2 s and a 16 s chunk: fixed {fixed_wall * 1000:.0f} ms wall, "
          f"{fixed_cpu * 1000:.0f} ms CPU; then {rate_wall:.2f} s wall, {rate_cpu:.2f} s CPU per output second")


if __name__ == "__main__":
    main()
