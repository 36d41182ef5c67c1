"""Benchmark of probe / trim / split against Debian's ffmpeg CLI doing the same.

Run ``python -m perf.media_bench [--runs N]``. On the 1080p30 60 s H.264/AAC clip that
perf.render_bench makes once and caches under perf/results/ (GOP 250, B-frames), it
times, as paired runs in alternating order, reporting medians:

- probe: :func:`core.media.probe.probe` vs an ``ffprobe`` process.
- copy trim 10-40 s: :func:`core.media.trim.trim` vs ``ffmpeg -ss 10 -to 40 -c copy``.
- split at 30 s (copy): :func:`core.media.split.split` vs the two ffmpeg commands.
- accurate trim 10-40 s: the smart cut vs our full re-encode of the range vs
  ``ffmpeg -ss 10 -to 40`` re-encoding with the same x264 and AAC settings (one run
  each: they are encode-bound and long).
- the copy trim with ext/ compiled vs the very same ext/*.pyx run as plain Python.
- progress overhead on the copy trim: no callback vs the throttled one.
- the packet loop alone (no I/O, muxing into a no-op) over every packet of the clip:
  compiled vs plain Python, and with no callback / throttled / a callback per packet.
- Throttle.update alone, in ns per call, and what it adds to a copy-trim packet.

Figures are wall times on whatever machine runs this; on a shared VM trust the ratios.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import shutil
import statistics
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType, SimpleNamespace

import av

import core.media.trim
import ext.progress
import ext.remux
from core.media.output import atomic_output
from core.media.probe import open_input, probe
from core.media.smartcut import X264_OPTIONS, smart_cut
from core.media.split import split
from core.media.trim import trim
from perf.render_bench import RESULTS, ffmpeg, make_clip, paired

EXT = Path(__file__).resolve().parent.parent / "ext"


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def interpreted(stem: str) -> ModuleType:
    """ext/<stem>.pyx executed by CPython (it is written in Cython's pure-Python syntax)."""
    loader = importlib.machinery.SourceFileLoader(f"interpreted_{stem}", str(EXT / f"{stem}.pyx"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


@contextmanager
def plain_python_ext() -> Iterator[None]:
    """Swap the compiled remux loop and throttle in core.media.trim for interpreted ones."""
    remux, progress = interpreted("remux"), interpreted("progress")
    names = {"Track": remux.Track, "copy_packets": remux.copy_packets,
             "mux_packets": remux.mux_packets, "Throttle": progress.Throttle}
    saved = {name: getattr(core.media.trim, name) for name in names}
    for name, value in names.items():
        setattr(core.media.trim, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(core.media.trim, name, value)


def cut_packets(clip: Path, start: float, end: float) -> int:
    """How many packets (all streams) a copy of [start, end) reads, about."""
    with av.open(str(clip)) as container:
        return sum(1 for packet in container.demux()
                   if packet.pts is not None and start <= float(packet.pts * packet.time_base) < end)


def loop_rows(clip: Path, repeats: int = 25) -> list[tuple[str, float, float | None, str]]:
    """The per-packet loop alone (copy_packets + mux_packets over every packet of the clip,
    muxing into a C no-op), compiled vs interpreted, and with each kind of progress."""
    with av.open(str(clip)) as container:  # open throughout: the packets point into it
        packets = [packet for packet in container.demux() if packet.size]
        streams = list(container.streams)
        duration = float(container.duration / av.time_base)
        sink = SimpleNamespace(mux_one=deque(maxlen=0).append)
        compiled = (ext.remux, ext.progress)
        plain = (interpreted("remux"), interpreted("progress"))

        def run(modules: tuple[ModuleType, ModuleType], progress: object = None,
                step: float = 0.01, interval: float = 0.1) -> float:
            remux, throttle_module = modules
            tracks = {s.index: remux.Track(s, 0, 1 << 60, 0, float(s.time_base), s.type == "video")
                      for s in streams}
            throttle = throttle_module.Throttle(duration, progress, None, step, interval)
            return timed(lambda: remux.mux_packets(sink, remux.copy_packets(iter(packets), tracks), throttle))

        callback = lambda fraction, message: None  # noqa: E731
        variants = {"compiled": (compiled,), "plain": (plain,), "throttled": (compiled, callback),
                    "every": (compiled, callback, 0.0, 0.0)}
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeats):  # interleaved, so that machine noise hits all alike
            for name, args in variants.items():
                times[name].append(run(*args))
        # The minimum: at microseconds a shared machine only ever adds time.
        fast, slow, throttled, every = (min(times[name]) for name in variants)
        bare = fast
    us = 1e6 / len(packets)
    return [
        (f"packet loop alone, {len(packets)} packets", fast, None,
         f"compiled {fast * us:.2f} us/packet vs plain Python {slow * us:.2f} ({slow / fast:.2f}x)"),
        ("packet loop + throttled progress", throttled, None,
         f"{100 * (throttled / bare - 1):+.1f} % vs no callback ({bare * us:.2f} us/packet); "
         f"a callback per packet {100 * (every / bare - 1):+.1f} %"),
    ]


def throttle_row(copy_trim_seconds: float, packets: int, calls: int = 1_000_000) -> tuple[str, None, None, str]:
    """What one Throttle.update costs (no callback / throttled / every call reported), and
    so what the throttled one adds to a copy trim's per-packet time."""
    callback = lambda fraction, message: None  # noqa: E731
    makers = {"none": lambda: ext.progress.Throttle(calls),
              "throttled": lambda: ext.progress.Throttle(calls, callback),
              "every": lambda: ext.progress.Throttle(calls, callback, None, 0.0, 0.0)}

    def per_call(update: Callable[[float], None]) -> float:
        started = time.perf_counter()
        for position in range(calls):
            update(position)
        return (time.perf_counter() - started) / calls

    cost = {name: min(per_call(make().update) for _ in range(3)) for name, make in makers.items()}
    extra = cost["throttled"] - cost["none"]
    per_packet = copy_trim_seconds / packets
    return ("Throttle.update cost", None, None,
            f"{cost['none'] * 1e9:.0f} / {cost['throttled'] * 1e9:.0f} / {cost['every'] * 1e9:.0f} ns "
            f"(none/throttled/every); throttled adds {100 * extra / per_packet:.2f} % to a copy-trim "
            f"packet ({per_packet * 1e6:.1f} us)")


def cli(*args: str) -> Callable[[], object]:
    return lambda: subprocess.run([ffmpeg(), "-v", "error", "-y", *args], check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args(argv).runs
    clip = make_clip()
    out = {name: RESULTS / f"media-{name}.mp4" for name in
           ("copy", "copy-cli", "one", "two", "one-cli", "two-cli", "smart", "full", "full-cli")}
    ffprobe = shutil.which("ffprobe") or "ffprobe"
    rows: list[tuple[str, float | None, float | None, str]] = []

    ours, theirs = paired(runs, lambda: probe(clip), lambda: subprocess.run(
        [ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(clip)],
        check=True, capture_output=True))
    rows.append(("probe", ours, theirs, "ffprobe -show_format -show_streams"))

    cut: dict = {}
    ours, theirs = paired(runs, lambda: cut.update(trim(clip, out["copy"], 10, 40)),
                          cli("-ss", "10", "-to", "40", "-i", str(clip), "-c", "copy",
                              "-movflags", "+faststart", str(out["copy-cli"])))
    rows.append(("copy trim 10-40 s", ours, theirs,
                 f"cut {cut['cut']['start']:.2f}-{cut['cut']['end']:.2f} s, out {cut['duration']:.2f} s "
                 f"(CLI presents {probe(out['copy-cli'])['duration']:.2f} s via an edit list)"))

    parts: dict = {}
    ours, theirs = paired(runs, lambda: parts.update(split(clip, out["one"], out["two"], 30)),
                          lambda: (cli("-to", "30", "-i", str(clip), "-c", "copy", str(out["one-cli"]))(),
                                   cli("-ss", "30", "-i", str(clip), "-c", "copy", str(out["two-cli"]))()))
    rows.append(("split at 30 s (copy)", ours, theirs,
                 f"at {parts['cut']['at']:.2f} s, parts {parts['parts'][0]['duration']:.2f} + "
                 f"{parts['parts'][1]['duration']:.2f} s"))

    def accurate(dst: Path, splice: bool) -> None:
        with open_input(clip) as source, atomic_output(dst) as temp:
            smart_cut(source, temp, 10, 40, ext.progress.Throttle(30.0), splice=splice)

    smart = timed(lambda: accurate(out["smart"], True))
    full = timed(lambda: accurate(out["full"], False))
    full_cli = timed(cli("-ss", "10", "-to", "40", "-i", str(clip), "-c:v", "libx264",
                         "-preset", X264_OPTIONS["preset"], "-crf", X264_OPTIONS["crf"], "-c:a", "aac",
                         "-b:a", "128k", "-movflags", "+faststart", str(out["full-cli"])))
    rows.append(("accurate trim 10-40 s: smart cut", smart, full_cli,
                 f"{full / smart:.1f}x faster than our full re-encode; out {probe(out['smart'])['duration']:.3f} s"))
    rows.append(("accurate trim 10-40 s: full re-encode", full, full_cli,
                 f"out {probe(out['full'])['duration']:.3f} s, CLI {probe(out['full-cli'])['duration']:.3f} s"))

    def copy_trim() -> None:
        trim(clip, out["copy"], 10, 40)

    compiled, plain = [], []
    for _ in range(runs):
        compiled.append(timed(copy_trim))
        with plain_python_ext():
            plain.append(timed(copy_trim))
    rows.append(("copy trim, ext compiled vs plain Python", statistics.median(compiled), None,
                 f"plain-Python ext {statistics.median(plain) * 1e3:.1f} ms "
                 f"({statistics.median(plain) / statistics.median(compiled):.2f}x)"))

    def with_callback() -> None:
        trim(clip, out["copy"], 10, 40, progress=lambda fraction, message: None)

    bare, throttled = paired(runs, copy_trim, with_callback)
    rows.append(("copy trim, progress overhead", throttled, None,
                 f"throttled callback {100 * (throttled / bare - 1):+.1f} % vs none ({bare * 1e3:.1f} ms)"))
    rows.extend(loop_rows(clip))
    rows.append(throttle_row(bare, cut_packets(clip, 10, 40)))

    print(f"{'operation':40} {'ours':>10} {'ffmpeg CLI':>11} {'ratio':>6}  note")
    for name, ours_s, cli_s, note in rows:
        ours_text = f"{ours_s * 1e3:8.1f}ms" if ours_s is not None else f"{'-':>10}"
        theirs_text = f"{cli_s * 1e3:9.1f}ms" if cli_s is not None else f"{'-':>11}"
        ratio = f"{cli_s / ours_s:5.2f}x" if cli_s is not None and ours_s else f"{'-':>6}"
        print(f"{name:40} {ours_text} {theirs_text} {ratio}  {note}")
    print("ratio = CLI time / ours (above 1: we are faster)")


if __name__ == "__main__":
    main()
