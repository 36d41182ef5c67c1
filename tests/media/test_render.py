"""The process operation on real clips: every output probed for duration, frame count and content."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from core.media.editplan import build_plan
from core.media.errors import Cancelled, InvalidRequest, MediaError
from core.media.probe import probe
from core.media.render import filter_complex, filter_graph, render
from tests.media.clips import make_clip

FPS = 25
FRAME = 1 / FPS


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("render-clips")
    return {
        "av": make_clip(base / "av.mp4", seconds=4, fps=FPS, gop=50),
        "silent": make_clip(base / "video-only.mp4", seconds=3, fps=FPS, audio=False),
        "vfr": make_clip(base / "vfr.mp4", seconds=3, fps=FPS, vfr=True),
    }


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def first_frame_luma(path: Path) -> float:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return float(frame.to_ndarray(format="gray").mean())


def audio_peak(path: Path) -> float:
    with av.open(str(path)) as container:
        return max(float(np.abs(frame.to_ndarray()).max()) for frame in container.decode(audio=0))


def rendered(src: Path, tmp_path: Path, edits: list[dict], **kwargs) -> tuple[Path, dict]:
    dst = tmp_path / "out.mp4"
    result = render(src, dst, edits, **kwargs)
    return dst, result


def test_ranges_speed_fades_and_scale_in_one_pass(clips, tmp_path):
    edits = [{"type": "cut", "start": 1, "end": 2}, {"type": "trim", "start": 0, "end": 3.6},
             {"type": "speed", "factor": 1.25}, {"type": "fade", "in": 0.4, "out": 0.4},
             {"type": "scale", "width": 160, "height": -1}]
    expected = build_plan(edits, duration=4.0, width=320, height=240)
    dst, result = rendered(clips["av"], tmp_path, edits)
    info = probe(dst)
    assert result["duration"] == pytest.approx(expected.duration, abs=FRAME)
    assert info["duration"] == pytest.approx(expected.duration, abs=FRAME)
    assert abs(frame_count(dst) - expected.duration * FPS) <= 1
    assert (info["width"], info["height"], info["codec"], info["audio_codec"]) == (160, 120, "h264", "aac")
    assert info["fps"] == FPS
    with open(dst, "rb") as handle:  # faststart: the index comes before the media data
        head = handle.read(4096)
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


def test_the_kept_frames_are_the_right_ones(clips, tmp_path):
    # Frame i of the clip is grey (i*7) % 200 + 20; after cutting [0, 2) the first frame is frame 50.
    dst, _ = rendered(clips["av"], tmp_path, [{"type": "cut", "start": 0, "end": 2}])
    assert first_frame_luma(dst) == pytest.approx((50 * 7) % 200 + 20, abs=12)
    assert frame_count(dst) == 50


def test_speed_two_halves_the_duration(clips, tmp_path):
    dst, result = rendered(clips["av"], tmp_path, [{"type": "speed", "factor": 2}])
    assert result["duration"] == pytest.approx(2.0, abs=FRAME)
    assert frame_count(dst) == 50  # constant frame rate: every other frame is dropped


def test_slow_motion_doubles_it(clips, tmp_path):
    dst, result = rendered(clips["av"], tmp_path, [{"type": "trim", "start": 0, "end": 1}, {"type": "speed", "factor": 0.5}])
    assert result["duration"] == pytest.approx(2.0, abs=FRAME)
    assert frame_count(dst) == 50


def test_fade_in_starts_black(clips, tmp_path):
    edits = [{"type": "trim", "start": 2, "end": 4}]
    plain, _ = rendered(clips["av"], tmp_path, edits)
    assert first_frame_luma(plain) > 100
    faded, _ = rendered(clips["av"], tmp_path, [*edits, {"type": "fade", "in": 1}])
    assert first_frame_luma(faded) < 20


def test_volume_zero_silences_and_gain_is_applied(clips, tmp_path):
    muted, _ = rendered(clips["av"], tmp_path, [{"type": "volume", "gain": 0}])
    assert audio_peak(muted) < 1e-3
    louder, _ = rendered(clips["av"], tmp_path, [{"type": "volume", "gain": 1.5}])
    assert audio_peak(louder) == pytest.approx(0.75, abs=0.08)


def test_scale_then_crop_sets_the_output_size(clips, tmp_path):
    dst, _ = rendered(clips["av"], tmp_path, [{"type": "scale", "width": 640, "height": -1},
                                              {"type": "crop", "x": 100, "y": 60, "width": 200, "height": 150}])
    info = probe(dst)
    assert (info["width"], info["height"]) == (200, 150)


def test_a_video_without_audio_renders_without_audio(clips, tmp_path):
    dst, result = rendered(clips["silent"], tmp_path, [{"type": "cut", "start": 1, "end": 2}, {"type": "fade", "out": 0.5}])
    info = probe(dst)
    assert info["has_audio"] is False
    assert result["duration"] == pytest.approx(2.0, abs=FRAME)
    assert frame_count(dst) == 50


def test_vfr_input_becomes_constant_rate(clips, tmp_path):
    source = probe(clips["vfr"])
    dst, result = rendered(clips["vfr"], tmp_path, [])
    assert result["duration"] == pytest.approx(source["duration"], abs=2 / source["fps"])
    assert abs(frame_count(dst) - source["duration"] * source["fps"]) <= 1


def test_progress_is_monotonic_and_reaches_one_once_at_the_end(clips, tmp_path):
    reports: list[tuple[float, str | None]] = []
    dst = tmp_path / "out.mp4"
    render(clips["av"], dst, [{"type": "speed", "factor": 0.5}],
           progress=lambda fraction, message: reports.append((fraction, message)))
    fractions = [fraction for fraction, _ in reports]
    assert len(fractions) > 5
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert all(a < b for a, b in zip(fractions, fractions[1:]))
    assert fractions.count(1.0) == 1 and fractions[-1] == 1.0
    assert fractions[-2] >= 0.9  # encoding, then the flush and mux, covered the whole render


def test_cancel_mid_render_leaves_no_file(clips, tmp_path):
    calls = 0

    def should_cancel() -> bool:
        nonlocal calls
        calls += 1
        return calls > 30

    dst = tmp_path / "out.mp4"
    with pytest.raises(Cancelled):
        render(clips["av"], dst, [{"type": "speed", "factor": 0.5}], should_cancel=should_cancel)
    assert list(tmp_path.iterdir()) == []


def test_edits_past_the_end_are_refused_before_any_output(clips, tmp_path):
    with pytest.raises(InvalidRequest, match=r"Edit 0: field 'end'"):
        render(clips["av"], tmp_path / "out.mp4", [{"type": "trim", "start": 1, "end": 9}])
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_source_fails_cleanly(clips, tmp_path):
    broken = tmp_path / "broken.mp4"
    data = clips["av"].read_bytes()
    broken.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(MediaError):
        render(broken, tmp_path / "out.mp4", [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


def test_the_graph_renders_as_an_ffmpeg_filter_complex():
    plan = build_plan([{"type": "cut", "start": 1, "end": 2}, {"type": "speed", "factor": 3}, {"type": "volume", "gain": 2}],
                      duration=4, width=320, height=240)
    text = filter_complex(filter_graph(plan, fps=25, audio=True))
    assert text.startswith("[0:v]split=2[")
    assert "concat=n=2:v=1:a=1" in text
    assert "atempo=2.0" in text and "atempo=1.5" in text
    assert text.count("[vout]") == 1 and text.count("[aout]") == 1


def test_a_rotated_source_is_rendered_upright(tmp_path):
    # Display rotation 90 degrees counter-clockwise: the stored left edge (where frame 0's white
    # bar is) is shown at the bottom, and the picture is 240 wide by 320 high.
    src = make_clip(tmp_path / "rotated.mp4", seconds=1, fps=FPS, rotate=90)
    dst, _ = rendered(src, tmp_path, [{"type": "crop", "x": 0, "y": 160, "width": 240, "height": 160}])
    info = probe(dst)
    assert (info["width"], info["height"], info["rotation"]) == (240, 160, 0)
    with av.open(str(dst)) as container:
        luma = next(container.decode(video=0)).to_ndarray(format="gray")
    assert luma[-4:].mean() > 200 and luma[:4].mean() < 60
