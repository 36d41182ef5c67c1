"""Benchmark of the render-side media operations against Debian's ffmpeg CLI doing the same.

Run ``python -m perf.render_bench [--runs N] [--preset veryfast]``. On a 1080p30 60 s
H.264/AAC clip (GOP 250, made once with the CLI and cached under perf/results/) it times,
as paired runs in alternating order, reporting medians:

- process: 3 kept ranges, speed 1.25, 1 s fades, scale to 720p. In-process
  :func:`core.media.render.render` vs ``ffmpeg -filter_complex`` with the very same graph
  (:func:`core.media.render.filter_complex`) and x264 preset and threads.
- filmstrip, 20 exact thumbnails: :func:`core.media.filmstrip.filmstrip` vs one ffmpeg
  pass ``fps=20/duration,scale,tile`` (it decodes the whole file as well).
- waveform, 1000 peaks: :func:`core.media.waveform.waveform` vs ffmpeg decoding to f32le
  on a pipe, reduced here with numpy.
- peak reduction alone over the clip's decoded audio: ext.peaks (Cython) vs numpy vs a
  plain-Python loop (run on the first 5 s and scaled, it is that slow).

Figures are wall times on whatever machine runs this; on a shared VM trust the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from core.media.editplan import plan_for
from core.media.filmstrip import filmstrip
from core.media.probe import probe
from core.media.render import default_threads, filter_complex, filter_graph, render
from core.media.waveform import BLOCK, waveform
from ext.peaks import BlockPeaks, reduce_peaks

RESULTS = Path(__file__).parent / "results"
CLIP = RESULTS / "bench-1080p30-60s.mp4"
EDITS = [
    {"type": "trim", "start": 5, "end": 55},
    {"type": "cut", "start": 15, "end": 25},
    {"type": "cut", "start": 35, "end": 40},
    {"type": "speed", "factor": 1.25},
    {"type": "fade", "in": 1, "out": 1},
    {"type": "scale", "width": -1, "height": 720},
]
THUMBS = 20
PEAKS = 1000


def ffmpeg() -> str:
    binary = shutil.which("ffmpeg")
    if binary is None:
        sys.exit("ffmpeg is not installed: apt-get update && apt-get install -y ffmpeg")
    return binary


def make_clip(clip: Path = CLIP, keyframes: tuple[str, ...] = ("-g", "250")) -> Path:
    """A 1080p30 60 s H.264/AAC test clip, made once (testsrc2 picture, 440 Hz stereo tone);
    ``keyframes`` are x264's GOP options (the default: x264's own 250-frame GOP)."""
    if clip.exists():
        return clip
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = clip.with_suffix(".part.mp4")
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "60",
                    "-c:v", "libx264", "-preset", "veryfast", *keyframes, "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-ac", "2", "-b:a", "128k", str(tmp)], check=True)
    tmp.rename(clip)
    return clip


def alternating(runs: int, jobs: dict[str, Callable[[], object]], *, verbose: bool = False) -> dict[str, float]:
    """Median wall seconds of each job, the order rotated every run (each job's time printed
    as it is taken when ``verbose``)."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    names = list(jobs)
    for run in range(runs):
        for name in names[run % len(names):] + names[:run % len(names)]:
            started = time.perf_counter()
            jobs[name]()
            times[name].append(time.perf_counter() - started)
            if verbose:
                print(f"  run {run + 1} {name}: {times[name][-1]:.2f} s", flush=True)
    return {name: statistics.median(values) for name, values in times.items()}


def paired(runs: int, ours: Callable[[], object], theirs: Callable[[], object]) -> tuple[float, float]:
    """Median wall seconds of ``ours`` and ``theirs``, run in alternating order."""
    medians = alternating(runs, {"ours": ours, "theirs": theirs})
    return medians["ours"], medians["theirs"]


def bench_process(clip: Path, runs: int, preset: str, threads: int) -> tuple[float, float, str]:
    info = probe(clip)
    plan = plan_for(EDITS, info)
    with av.open(str(clip)) as container:
        fps = container.streams.video[0].average_rate
    graph = filter_complex(filter_graph(plan, fps=fps, audio=True))
    ours_out, cli_out = RESULTS / "process-ours.mp4", RESULTS / "process-cli.mp4"
    cli = [ffmpeg(), "-v", "error", "-y", "-i", str(clip), "-filter_complex", graph, "-map", "[vout]", "-map", "[aout]",
           "-c:v", "libx264", "-preset", preset, "-threads", str(threads), "-c:a", "aac", "-b:a", "128k",
           "-movflags", "+faststart", str(cli_out)]
    ours, theirs = paired(runs, lambda: render(clip, ours_out, EDITS, preset=preset, threads=threads),
                          lambda: subprocess.run(cli, check=True))
    note = (f"plan {plan.duration:.2f} s; out {probe(ours_out)['duration']:.2f} s vs CLI "
            f"{probe(cli_out)['duration']:.2f} s, {info['width']}x{info['height']} -> {plan.width}x{plan.height}")
    return ours, theirs, note


def bench_filmstrip(clip: Path, runs: int) -> tuple[float, float, str]:
    duration = probe(clip)["duration"]
    cli = [ffmpeg(), "-v", "error", "-y", "-i", str(clip), "-an", "-vf",
           f"fps={THUMBS}/{duration},scale=160:-2,tile=10x2", "-frames:v", "1", str(RESULTS / "filmstrip-cli.jpg")]
    ours, theirs = paired(runs, lambda: filmstrip(clip, RESULTS / "filmstrip-ours.jpg", THUMBS),
                          lambda: subprocess.run(cli, check=True))
    return ours, theirs, f"{THUMBS} exact frames (GOP 250 = 8.3 s: seek + decode forward)"


def cli_waveform(clip: Path) -> list[float]:
    raw = subprocess.run([ffmpeg(), "-v", "error", "-i", str(clip), "-vn", "-f", "f32le", "-acodec", "pcm_f32le",
                          "pipe:"], check=True, capture_output=True).stdout
    samples = np.abs(np.frombuffer(raw, dtype=np.float32).reshape(-1, 2)).max(axis=1)
    return numpy_peaks(samples[None, :], PEAKS)


def bench_waveform(clip: Path, runs: int) -> tuple[float, float, str]:
    ours, theirs = paired(runs, lambda: waveform(clip, peaks=PEAKS), lambda: cli_waveform(clip))
    return ours, theirs, f"{PEAKS} peaks; CLI = decode to an f32le pipe + numpy reduction"


def decoded_audio(clip: Path) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        return [frame.to_ndarray() for frame in container.decode(audio=0)]


def cython_peaks(frames: list[np.ndarray], peaks: int) -> list[float]:
    reducer = BlockPeaks(BLOCK)
    for frame in frames:
        reducer.feed(frame)
    return reduce_peaks(reducer.finish(), peaks)


def numpy_peaks(samples: np.ndarray, peaks: int) -> list[float]:
    """The same reduction in numpy over the whole (channels x samples) array at once."""
    level = np.abs(samples).max(axis=0)
    blocks = -(-level.size // BLOCK)
    padded = np.zeros(blocks * BLOCK, dtype=np.float32)
    padded[: level.size] = level
    block_peaks = padded.reshape(blocks, BLOCK).max(axis=1)
    edges = np.arange(peaks + 1) * blocks // peaks
    return [min(1.0, float(block_peaks[lo:max(hi, lo + 1)].max())) for lo, hi in zip(edges, edges[1:])]


def python_peaks(frames: list[np.ndarray], peaks: int) -> list[float]:
    """The same reduction as a plain-Python loop (what ext.peaks compiles)."""
    block_peaks: list[float] = []
    current, filled = 0.0, 0
    for frame in frames:
        channels = frame.tolist()
        for column in zip(*channels):
            for value in column:
                value = -value if value < 0 else value
                if value > current:
                    current = value
            filled += 1
            if filled == BLOCK:
                block_peaks.append(current)
                current, filled = 0.0, 0
    if filled:
        block_peaks.append(current)
    n = len(block_peaks)
    return [min(1.0, max(block_peaks[i * n // peaks:max((i + 1) * n // peaks, i * n // peaks + 1)]))
            for i in range(peaks)]


def bench_peaks(clip: Path) -> list[tuple[str, float, str]]:
    frames = decoded_audio(clip)
    samples = sum(frame.shape[1] for frame in frames)
    whole = np.concatenate(frames, axis=1)
    rows = []
    timings: dict[str, float] = {}
    for name, fn in (("ext.peaks (Cython)", lambda: cython_peaks(frames, PEAKS)),
                     ("numpy", lambda: numpy_peaks(whole, PEAKS))):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        timings[name] = statistics.median(times)
    share = frames[: max(1, len(frames) // 12)]  # ~5 s of the 60
    started = time.perf_counter()
    python_peaks(share, PEAKS)
    scale = samples / sum(frame.shape[1] for frame in share)
    timings["plain Python (scaled from 5 s)"] = (time.perf_counter() - started) * scale
    base = timings["ext.peaks (Cython)"]
    for name, seconds in timings.items():
        rows.append((name, seconds, f"{samples * 2 / seconds / 1e6:.0f} M samples/s, {seconds / base:.1f}x Cython"))
    assert np.allclose(cython_peaks(frames, PEAKS), numpy_peaks(whole, PEAKS), atol=1e-6)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="paired runs per operation (median reported)")
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args(argv)
    clip = make_clip()
    version = subprocess.run([ffmpeg(), "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"clip {CLIP.name}; PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}); CLI: {version}; "
          f"x264 {args.preset}, {args.threads} threads; medians of {args.runs} paired runs\n")
    print("| operation | in-process | ffmpeg CLI | ours / CLI | note |")
    print("|---|---|---|---|---|")
    for name, (ours, theirs, note) in (
        ("process (3 ranges, speed 1.25, fades, 720p)", bench_process(clip, args.runs, args.preset, args.threads)),
        (f"filmstrip, {THUMBS} thumbs", bench_filmstrip(clip, args.runs)),
        (f"waveform, {PEAKS} peaks", bench_waveform(clip, args.runs)),
    ):
        print(f"| {name} | {ours:.2f} s | {theirs:.2f} s | {ours / theirs:.2f} | {note} |", flush=True)
    print("\n| peak reduction, 60 s stereo 48 kHz | time | note |")
    print("|---|---|---|")
    for name, seconds, note in bench_peaks(clip):
        print(f"| {name} | {seconds * 1000:.1f} ms | {note} |")


if __name__ == "__main__":
    main()
