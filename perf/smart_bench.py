"""Benchmark of the smart render (issue #16) against the full render and the ffmpeg CLI.

Run ``python -m perf smart-render [--runs N]``. On a 60 s 1080p30 H.264/AAC clip with a 2 s
GOP and x264's default B-frames (made once with the CLI, cached under perf/results/),
three cuts at times that fall between keyframes are rendered, in alternating order:

- smart: :func:`core.media.process.process` (its choice, then the smart render);
- full: :func:`core.media.render.render` of the same edits (the reference output);
- CLI: ``ffmpeg -filter_complex`` with the same graph (:func:`core.media.render.filter_complex`),
  x264 preset and threads, AAC 128k: what a re-encode costs outside this code.

It prints the medians and the same-run ratios, then checks the smart output against the
full render's: frame count and presentation times within one frame per boundary (ffprobe),
the frames re-encoded and copied, and an ffmpeg decode that prints no error.
Figures are wall times on whatever machine runs this; on a shared VM trust the ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import av

from core.media.editplan import plan_for
from core.media.keyframes import keyframe_index
from core.media.probe import describe
from core.media.process import choose, process
from core.media.render import PRESET, default_threads, filter_complex, filter_graph, output_rate, render
from perf import render_bench
from perf.render_bench import RESULTS, alternating, ffmpeg

CLIP = RESULTS / "bench-1080p30-60s-gop2.mp4"
EDITS = [
    {"type": "cut", "start": 7.3, "end": 12.71},
    {"type": "cut", "start": 25.45, "end": 31.1},
    {"type": "cut", "start": 44.23, "end": 47.9},
]
TARGET = 8.0


def make_clip() -> Path:
    """The clip (render_bench's, with a keyframe every 60 frames), made once, and what ingest
    stores for an upload: its description and keyframe index."""
    clip = render_bench.make_clip(CLIP, ("-g", "60", "-keyint_min", "60", "-sc_threshold", "0"))
    describe(clip)
    keyframe_index(clip)
    return clip


def frame_times(path: Path) -> list[float]:
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                             "frame=pts_time", "-of", "json", str(path)], capture_output=True, check=True)
    return sorted(float(frame["pts_time"]) for frame in json.loads(result.stdout)["frames"])


def decode_errors(path: Path) -> str:
    result = subprocess.run([ffmpeg(), "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, check=False)
    return result.stderr.decode(errors="replace").strip() or ("" if result.returncode == 0 else "exit status")


def check(smart: Path, full: Path, boundaries: int, fps: float) -> tuple[str, list[str]]:
    """What the comparison with the full render found, and where the smart output differs
    from it more than the issue allows (one frame per boundary)."""
    problems = []
    ours, theirs = frame_times(smart), frame_times(full)
    if abs(len(ours) - len(theirs)) > boundaries:
        problems.append(f"{len(ours)} frames, the full render {len(theirs)}")
    drift = max((abs(a - b) for a, b in zip(ours, theirs)), default=0.0)
    if drift > boundaries / fps + 1e-3:
        problems.append(f"frame times differ by up to {drift:.3f} s")
    errors = decode_errors(smart)
    if errors:
        problems.append(f"ffmpeg decode: {errors[:200]}")
    found = (f"{len(ours)} frames (full render {len(theirs)}), frame times differ by at most {drift * 1000:.2f} ms, "
             f"ffmpeg decode {'errors' if errors else 'clean'}")
    return found, problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="alternating runs (median reported)")
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args(argv)
    clip = make_clip()
    info = describe(clip)
    plan = plan_for(EDITS, info)
    with av.open(str(clip)) as container:
        fps = output_rate(container.streams.video[0])
    started = time.perf_counter()
    choice = choose(clip, EDITS)
    chose = time.perf_counter() - started
    smart_out, full_out, cli_out = (RESULTS / f"smart-{name}.mp4" for name in ("ours", "full", "cli"))
    graph = filter_complex(filter_graph(plan, fps=fps, audio=True))
    cli = [ffmpeg(), "-v", "error", "-y", "-i", str(clip), "-filter_complex", graph, "-map", "[vout]", "-map", "[aout]",
           "-c:v", "libx264", "-preset", PRESET, "-threads", str(args.threads), "-c:a", "aac", "-b:a", "128k",
           "-movflags", "+faststart", str(cli_out)]
    results: dict[str, Any] = {}

    def smart() -> None:
        results["smart"] = process(clip, smart_out, EDITS, threads=args.threads)

    print(f"clip {clip.name}: {info['width']}x{info['height']} {info['fps']} fps, {info['duration']:.1f} s, "
          f"GOP {info['keyframe_interval']:.1f} s; cuts {[(e['start'], e['end']) for e in EDITS]} -> "
          f"{plan.duration:.2f} s; choose(): {choice.path} in {chose * 1000:.0f} ms; "
          f"x264 {PRESET}, {args.threads} threads; {args.runs} alternating runs", flush=True)
    medians = alternating(args.runs, {
        "smart": smart,
        "full": lambda: render(clip, full_out, EDITS, threads=args.threads),
        "cli": lambda: subprocess.run(cli, check=True),
    }, verbose=True)
    print("\n| render | median | full / this |")
    print("|---|---|---|")
    for name, label in (("smart", "smart render (process)"), ("full", "full render (render())"),
                        ("cli", "ffmpeg CLI re-encode")):
        print(f"| {label} | {medians[name]:.2f} s | {medians['full'] / medians[name]:.1f}x |")
    counts = results["smart"]["render"]
    speedup = medians["full"] / medians["smart"]
    print(f"\nsmart path: {counts['path']}, {counts['reencodedFrames']} frames re-encoded, "
          f"{counts['copiedFrames']} copied; {speedup:.1f}x the full render "
          f"({'meets' if speedup >= TARGET else 'MISSES'} the {TARGET:.0f}x target), "
          f"{medians['cli'] / medians['smart']:.1f}x the CLI")
    found, problems = check(smart_out, full_out, boundaries=len(plan.ranges) - 1, fps=float(fps))
    print(f"check against the full render: {found}: " + ("; ".join(problems) if problems else "OK"))


if __name__ == "__main__":
    main()
