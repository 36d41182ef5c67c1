"""Benchmark of what an upload costs: the deep probe and the browser proxy, beside the ffmpeg CLI.

Run ``python -m perf ingest [--seconds 20] [--size 1920x1080] [--runs 3] [--json PATH] [--plot PATH]``.
It writes a phone-style clip with the CLI (HEVC 10-bit, 30 fps, ``testsrc2`` and a 440 Hz
tone in a .MOV; kept under ``--dir``, perf/results/ by default, named by its parameters)
and times, as paired runs in alternating order (medians):

- probe: :func:`core.media.probe.probe`, which reads every packet, in ms per minute of
  media, beside ``ffprobe -count_packets`` (which reads them all too).
- proxy: :func:`core.media.proxy.make_proxy` with ``threads=1`` and a short side of
  ``--short-side`` (540) beside the CLI making the same proxy on one thread
  (``-threads 1``, x264 ``ultrafast``, ``-g 30``, AAC, faststart): speed as x real time,
  by the wall clock and per CPU second (what a run costs one core, steadier on a shared
  machine), and our time over the CLI's.

Figures are wall times on whatever machine runs this; on a shared VM trust the ratios.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.media.probe import probe
from core.media.proxy import make_proxy
from perf.render_bench import RESULTS, ffmpeg, paired
from perf.stats import add_output_args, print_table, write_json

FPS = 30
CLI_GOP = 30  # the CLI's keyframe interval for the same one second at FPS


def make_clip(directory: Path, seconds: float, width: int, height: int) -> Path:
    """The HEVC 10-bit .MOV test clip, written once per parameters."""
    clip = directory / f"ingest-hevc10-{width}x{height}-{FPS}fps-{seconds:g}s.mov"
    if clip.exists():
        return clip
    directory.mkdir(parents=True, exist_ok=True)
    partial = clip.with_name(f"partial-{clip.name}")
    subprocess.run([ffmpeg(), "-v", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={FPS}:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
                    "-x265-params", "log-level=error", "-tag:v", "hvc1",
                    "-c:a", "aac", "-ac", "2", "-b:a", "128k", str(partial)], check=True)
    partial.rename(clip)
    return clip


@dataclass
class Runs:
    """Wall and CPU seconds of each run of one operation: the CPU time (this process's and its
    children's: the CLI) is what a run costs a core, whatever else the machine is doing."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def measured(self, fn: Callable[[], object]) -> Callable[[], None]:
        """``fn``, recording each call."""
        def run() -> None:
            cpu, wall = _cpu_seconds(), time.perf_counter()
            fn()
            self.wall.append(time.perf_counter() - wall)
            self.cpu.append(_cpu_seconds() - cpu)
        return run


def _cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def cli_proxy(clip: Path, dst: Path, short_side: int) -> list[str]:
    """The ffmpeg command for the proxy make_proxy writes: one thread everywhere, never upscaled."""
    return [ffmpeg(), "-v", "error", "-nostdin", "-y", "-threads", "1", "-i", str(clip), "-threads", "1",
            "-filter_threads", "1", "-vf", f"scale=-2:'min(ih,{short_side})'", "-c:v", "libx264",
            "-preset", "ultrafast", "-g", str(CLI_GOP), "-c:a", "aac", "-b:a", "128k",
            "-movflags", "+faststart", str(dst)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the test clip")
    parser.add_argument("--size", default="1920x1080", help="stored picture size of the test clip")
    parser.add_argument("--short-side", type=int, default=540, help="the proxy's short side")
    parser.add_argument("--runs", type=int, default=3, help="paired runs per operation (median reported)")
    parser.add_argument("--dir", type=Path, default=RESULTS, help="where the clip and the outputs go")
    add_output_args(parser)
    args = parser.parse_args(argv)
    width, height = (int(side) for side in args.size.split("x"))
    clip = make_clip(args.dir, args.seconds, width, height)
    minutes = probe(clip)["duration"] / 60
    ffprobe = shutil.which("ffprobe") or "ffprobe"
    runs = {name: Runs() for name in ("probe", "ffprobe -count_packets", "proxy", "proxy (CLI)")}

    paired(args.runs, runs["probe"].measured(lambda: probe(clip)), runs["ffprobe -count_packets"].measured(
        lambda: subprocess.run([ffprobe, "-v", "error", "-count_packets", "-show_streams", "-show_format", "-of",
                                "json", str(clip)], check=True, capture_output=True)))
    ours_out, cli_out = args.dir / "ingest-proxy-ours.mp4", args.dir / "ingest-proxy-cli.mp4"
    made: dict = {}
    paired(args.runs,
           runs["proxy"].measured(lambda: made.update(make_proxy(clip, ours_out, threads=1,
                                                                   short_side=args.short_side))),
           runs["proxy (CLI)"].measured(lambda: subprocess.run(cli_proxy(clip, cli_out, args.short_side), check=True)))

    wall = {name: statistics.median(run.wall) for name, run in runs.items()}
    cpu = {name: statistics.median(run.cpu) for name, run in runs.items()}
    seconds = minutes * 60
    rows = [
        {"operation": "probe (deep)", "ours_ms": wall["probe"] * 1000, "cli_ms": wall["ffprobe -count_packets"] * 1000,
         "ours_over_cli": wall["probe"] / wall["ffprobe -count_packets"],
         "ms_per_media_minute": wall["probe"] * 1000 / minutes},
        {"operation": f"proxy {made['width']}x{made['height']}, 1 thread", "ours_ms": wall["proxy"] * 1000,
         "cli_ms": wall["proxy (CLI)"] * 1000, "ours_over_cli": wall["proxy"] / wall["proxy (CLI)"],
         "x_realtime": seconds / wall["proxy"], "cli_x_realtime": seconds / wall["proxy (CLI)"],
         "x_realtime_per_cpu": seconds / cpu["proxy"], "cli_x_realtime_per_cpu": seconds / cpu["proxy (CLI)"]},
    ]
    print(f"clip {clip.name} ({seconds:g} s); medians of {args.runs} paired runs; ours_over_cli = our time / the CLI's")
    print_table(rows, ["operation", "ours_ms", "cli_ms", "ours_over_cli", "ms_per_media_minute", "x_realtime",
                       "cli_x_realtime", "x_realtime_per_cpu", "cli_x_realtime_per_cpu"])
    write_json(args.json, rows)
    if args.plot:
        from perf.plot import plot

        plot(args.plot, f"ingest of {clip.name}: wall time per run", {name: run.wall for name, run in runs.items()})


if __name__ == "__main__":
    main()
