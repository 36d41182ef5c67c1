"""The compiled loops in ext/, tested directly: throttle, packet windowing, NAL surgery."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import av
import pytest

import ext
import ext.nal
import ext.progress
import ext.remux
from core.media.errors import Cancelled
from ext.nal import annexb_to_length_prefixed, avcc_length_size, avcc_parameter_sets
from ext.progress import Throttle
from ext.remux import mux_packets, scan_video
from tests.media.clips import make_clip


def test_the_extensions_are_compiled() -> None:
    for module in (ext.progress, ext.remux, ext.nal):
        assert module.__file__.endswith(".so"), f"{module.__name__} is not built (setup.py build_ext)"


def collect() -> tuple[list[tuple[float, str | None]], object]:
    calls: list[tuple[float, str | None]] = []
    return calls, lambda fraction, message: calls.append((fraction, message))


def test_throttle_reports_every_step_and_caps_below_one() -> None:
    calls, progress = collect()
    throttle = Throttle(10.0, progress, step=0.1, interval=3600)
    for eighth in range(0, 12):
        throttle.update(eighth * 1.25)  # 0 .. 13.75 s: past the end too
        throttle.update(eighth * 1.25 + 0.5)  # a small move: not reported
    fractions = [fraction for fraction, _ in calls]
    assert fractions == [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 0.999]
    throttle.finish("done")
    throttle.finish("again")
    assert calls[-1] == (1.0, "done") and [f for f, _ in calls].count(1.0) == 1
    throttle.update(5.0)
    assert len(calls) == 9 and throttle.fraction == 1.0


def test_throttle_reports_small_moves_after_the_interval() -> None:
    calls, progress = collect()
    throttle = Throttle(100.0, progress, step=0.5, interval=0.02)
    throttle.update(1.0)
    assert calls == []
    time.sleep(0.03)
    throttle.update(1.5)
    assert calls == [(0.015, None)]
    throttle.update(1.0)  # backwards: never reported
    throttle.update(float("nan"))
    assert len(calls) == 1


def test_throttle_cancels_and_tolerates_no_callback() -> None:
    throttle = Throttle(1.0)
    throttle.update(0.5)
    throttle.finish()
    cancel = Throttle(1.0, should_cancel=lambda: True)
    with pytest.raises(Cancelled):
        cancel.update(0.1)
    with pytest.raises(Cancelled):
        cancel.check()
    assert Throttle(0.0, lambda f, m: None).fraction == 0.0


def packet(index: int, pts: int, dts: int | None = None, key: bool = False, duration: int = 1) -> SimpleNamespace:
    return SimpleNamespace(stream_index=index, pts=pts, dts=pts if dts is None else dts,
                           is_keyframe=key, duration=duration, stream=None)


def plain_python(stem: str) -> ModuleType:
    """ext/<stem>.pyx run by CPython, as perf/media_bench.py runs it for comparison."""
    path = Path(ext.__file__).parent / f"{stem}.pyx"
    loader = importlib.machinery.SourceFileLoader(f"plain_{stem}", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


@pytest.fixture(params=["compiled", "plain-python"])
def remux(request: pytest.FixtureRequest) -> ModuleType:
    return ext.remux if request.param == "compiled" else plain_python("remux")


def test_plain_python_throttle_behaves_the_same() -> None:
    calls, progress = collect()
    throttle = plain_python("progress").Throttle(2.0, progress, step=0.25, interval=3600)
    for position in (0.25, 0.5, 0.6, 1.0, 2.5):
        throttle.update(position)
    throttle.finish()
    assert [f for f, _ in calls] == [0.25, 0.5, 0.999, 1.0]


def test_copy_packets_windows_rebases_and_stops(remux: ModuleType) -> None:
    Track, copy_packets = remux.Track, remux.copy_packets
    # Video with B-frames (decode order), pts/dts in ticks; audio on stream 1.
    video = [packet(0, 10, 8, True), packet(0, 13, 9), packet(0, 11, 10), packet(0, 12, 11),
             packet(0, 16, 12), packet(0, 14, 13), packet(0, 15, 14), packet(0, 20, 15, True)]
    audio = [packet(1, t, duration=2) for t in range(6, 30, 2)]
    demuxed = sorted(video + audio, key=lambda p: p.dts)
    demuxed.insert(0, SimpleNamespace(stream_index=0, pts=None, dts=None))  # empty packet
    tracks = {0: Track("V", 10, 15, 10, 0.5, True), 1: Track("A", 10, 15, 10, 0.5, False)}
    out = list(copy_packets(iter(demuxed), tracks))
    kept_video = [p for _, p in out if p.stream == "V"]
    # dts < 15 kept (16 is the reference the B-frames 14/15 need), the keyframe at 20 not.
    assert [(p.pts, p.dts) for p in kept_video] == [(0, -2), (3, -1), (1, 0), (2, 1), (6, 2), (4, 3), (5, 4)]
    assert [p.pts for _, p in out if p.stream == "A"] == [0, 2, 4]
    assert out[0][0] == pytest.approx((10 - 10) * 0.5)
    assert tracks[0].packets == 7 and tracks[0].span == (5.0, 8.5)
    assert tracks[1].span == (5.0, 8.0)


def test_copy_packets_ends_a_video_track_at_a_keyframe(remux: ModuleType) -> None:
    Track, copy_packets = remux.Track, remux.copy_packets
    video = [packet(0, t, key=t % 5 == 0) for t in range(0, 15)]
    track = Track("V", 5, 10, 5, 1.0, True)
    out = list(copy_packets(iter(video), {0: track}))
    assert [p.pts for _, p in out] == [0, 1, 2, 3, 4] and track.done


def test_mux_packets_reports_offset_positions() -> None:
    muxed: list[object] = []
    output = SimpleNamespace(mux_one=muxed.append)
    seen: list[float] = []
    throttle = Throttle(10.0, lambda f, m: seen.append(f), step=0.0)
    count = mux_packets(output, [(1.0, "a"), (2.0, "b")], throttle, 5.0)
    assert count == 2 and muxed == ["a", "b"] and seen == [0.6, 0.7]


def test_scan_video_on_a_real_clip(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "c.mp4", seconds=2, fps=25, gop=10, audio=True)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        ticks = round(1 / video.time_base)
        keys, frames, end, reached = scan_video(container.demux(), video.index, ticks)
    assert [pts for pts, _ in keys] == [0, ticks * 10 // 25, ticks * 20 // 25]
    assert len(frames) == 26 and reached and end == frames[-1] + ticks // 25


def test_annexb_becomes_length_prefixed() -> None:
    data = b"\x00\x00\x00\x01\x67\xaa\xbb" + b"\x00\x00\x01\x68\xcc" + b"\x00\x00\x00\x01\x65" + b"\x11" * 300
    assert annexb_to_length_prefixed(data) == (b"\x00\x00\x00\x03\x67\xaa\xbb" + b"\x00\x00\x00\x02\x68\xcc"
                                               + (301).to_bytes(4, "big") + b"\x65" + b"\x11" * 300)
    assert annexb_to_length_prefixed(b"\x00\x00\x01\x09\xf0", 2) == b"\x00\x02\x09\xf0"
    with pytest.raises(ValueError):
        annexb_to_length_prefixed(b"no start code here")
    with pytest.raises(ValueError):
        annexb_to_length_prefixed(b"\x00\x00\x01" + b"\x00" * 300, 1)


def test_avcc_parameter_sets_of_a_real_clip(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "c.mp4", seconds=0.2, audio=False)
    with av.open(str(path)) as container:
        extradata = container.streams.video[0].codec_context.extradata
    assert avcc_length_size(extradata) == 4
    units = avcc_parameter_sets(extradata, 4)
    sps_size = int.from_bytes(units[:4], "big")
    assert units[4] & 0x1F == 7 and units[4 + sps_size + 4] & 0x1F == 8  # SPS then PPS
    assert avcc_length_size(b"\x00\x00\x00\x01\x67") == 0
    with pytest.raises(ValueError):
        avcc_parameter_sets(extradata[:10], 4)
