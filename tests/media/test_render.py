"""The process operation (and the browser proxy built on it) on real clips: every output probed
for duration, frame count and content; the real-world sources checked with ffprobe / ffmpeg."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from core.media import render as render_module
from core.media.editplan import build_plan
from core.media.errors import Cancelled, CorruptMedia, InvalidRequest, MediaError
from core.media.probe import probe
from core.media.proxy import make_proxy, proxy_edits
from core.media.render import filter_complex, filter_graph, render
from tests.media import checks
from tests.media.clips import make_clip
from tests.media.realworld import AAC, BITEXACT, H264, SAMPLES, Sample, ffmpeg, timecoded, tone

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


def test_a_source_whose_data_ends_before_its_description_fails_cleanly(clips, tmp_path, monkeypatch):
    # As if the file had lost its last seconds after it was described: the render reads less
    # than it was asked to deliver (padding the audio must not hide that).
    info = probe(clips["av"])
    monkeypatch.setattr(render_module, "described", lambda src: {**info, "duration": info["duration"] + 2})
    with pytest.raises(CorruptMedia, match="ended early"):
        render(clips["av"], tmp_path / "out.mp4", [])
    assert list(tmp_path.iterdir()) == []


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


# Real-world sources (tests/media/realworld.py), every output checked with ffprobe / ffmpeg.

def assert_shows(sample: Sample, dst: Path, times: dict[float, float]) -> None:
    """Output second -> the source timeline second its frame must show (within a frame or so)."""
    for out_t, source_t in times.items():
        assert sample.timecode_error(checks.frame_luma(dst, out_t), source_t) <= 1.5 * sample.frame, out_t


def assert_together(dst: Path, duration: float) -> None:
    """Video and audio both span [0, duration] within 0.1 s, by ffprobe's packets."""
    for kind in ("video", "audio"):
        first, last = checks.stream_span(dst, kind)
        assert first == pytest.approx(0, abs=0.1) and last == pytest.approx(duration, abs=0.1), kind


def test_anamorphic_pixels_are_made_square_before_the_scale(realworld, tmp_path):
    # 480x360 stored with 4:3 pixels is shown 640x360: a width of 320 keeps 16:9.
    dst, result = rendered(realworld["anamorphic"], tmp_path, [{"type": "scale", "width": 320, "height": -1}])
    video = checks.stream(dst, "video")
    assert (video["width"], video["height"], video["sample_aspect_ratio"]) == (320, 180, "1:1")
    assert (result["width"], result["height"]) == (320, 180)


def test_crops_of_an_anamorphic_source_are_in_displayed_pixels(realworld, tmp_path):
    dst, _ = rendered(realworld["anamorphic"], tmp_path, [{"type": "crop", "x": 0, "y": 0, "width": 600, "height": 300}])
    video = checks.stream(dst, "video")
    assert (video["width"], video["height"], video["sample_aspect_ratio"]) == (600, 300, "1:1")


def test_a_phone_clip_renders_upright_without_rotation_data(realworld, tmp_path):
    dst, _ = rendered(realworld["phone_hevc"], tmp_path, [{"type": "cut", "start": 1, "end": 2}])
    video = checks.stream(dst, "video")
    assert (video["width"], video["height"]) == (180, 320)
    assert not any("rotation" in side for side in video.get("side_data_list", []))
    assert_shows(SAMPLES["phone_hevc"], dst, {0.0: 0.0, 1.5: 2.5})


def test_late_audio_stays_late_and_both_streams_span_the_output(realworld, tmp_path):
    sample = SAMPLES["late_audio"]
    # Cut [1.5, 2.5): the beeps at 1, 3 and 4 s of the source are heard at 1, 2 and 3 s.
    dst, result = rendered(realworld["late_audio"], tmp_path, [{"type": "cut", "start": 1.5, "end": 2.5}])
    assert result["duration"] == pytest.approx(sample.duration - 1, abs=0.05)
    assert_together(dst, sample.duration - 1)
    window = 0.01
    peaks = checks.audio_peaks(dst, window)
    assert max(peaks[: int(0.45 / window)]) < 0.01, "silence before the audio starts"
    onsets = [i * window for i in range(1, len(peaks)) if peaks[i] > 0.2 and peaks[i - 1] <= 0.2]
    assert onsets == pytest.approx([1.0, 2.0, 3.0], abs=0.03)
    assert_shows(sample, dst, {0.5: 0.5, 2.0: 3.0})


def test_a_range_before_the_audio_starts_gets_silence(realworld, tmp_path):
    dst, _ = rendered(realworld["late_audio"], tmp_path, [{"type": "trim", "start": 0, "end": 0.4}])
    assert_together(dst, 0.4)
    assert max(checks.audio_peaks(dst)) < 0.01


def test_a_bframe_mkv_starts_on_time_with_its_fade(realworld, tmp_path):
    # Matroska leaves the first packets' dts unset: skipping them lost the first GOP (the
    # picture started 2 s late) and the fade with it.
    sample = SAMPLES["obs_mkv"]
    dst, _ = rendered(realworld["obs_mkv"], tmp_path, [{"type": "fade", "in": 0.5}, {"type": "cut", "start": 1, "end": 2}])
    assert checks.frame_luma(dst, 0) < 20  # black: the fade starts from the first frame
    assert_shows(sample, dst, {0.6: 0.6, 1.2: 2.2, 3.5: 4.5})
    assert_together(dst, sample.duration - 1)


def test_a_broadcast_ts_is_cut_on_its_timeline(realworld, tmp_path):
    # Its clock starts an hour in; edit times count from its first frame.
    sample = SAMPLES["ts_late_clock"]
    dst, result = rendered(realworld["ts_late_clock"], tmp_path, [{"type": "trim", "start": 1, "end": 2.5}])
    assert result["duration"] == pytest.approx(1.5, abs=0.05)
    assert_together(dst, 1.5)
    assert_shows(sample, dst, {0.0: 1.0, 1.0: 2.0})


@pytest.fixture(scope="module")
def short_gop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sample, Path]:
    """20 s of time-coded 160x90 video at 10 fps with a keyframe every second, and a tone."""
    sample = Sample(name="short_gop", suffix=".mp4", duration=20, has_audio=True, display=(160, 90), fps=10,
                    codec="h264", ramp=10,
                    args=(*timecoded(160, 90, 10, 20, ramp=10), *tone(20), *H264, "-g", "10", *AAC, "-ac", "2"))
    path = tmp_path_factory.mktemp("short-gop") / sample.filename
    ffmpeg([*sample.args, *BITEXACT, str(path)])
    return sample, path


def test_removed_stretches_are_sought_over_not_decoded(short_gop, tmp_path):
    # 200 frames; keeping [4, 5) and [15, 16) decodes those 20 and at most a GOP (10) before
    # each. The last frames before the second seek come out of the drained decoder.
    sample, src = short_gop
    dst = tmp_path / "out.mp4"
    result = render(src, dst, [{"type": "trim", "start": 4, "end": 16}, {"type": "cut", "start": 5, "end": 15}])
    assert 20 <= result["decoded_frames"] <= 44
    assert len(checks.packets(dst, "video")) == 20
    assert_together(dst, 2.0)
    assert_shows(sample, dst, {0.0: 4.0, 0.9: 4.9, 1.0: 15.0, 1.9: 15.9})


def test_close_ranges_are_decoded_through(short_gop, tmp_path):
    sample, src = short_gop
    dst = tmp_path / "out.mp4"
    result = render(src, dst, [{"type": "trim", "start": 4, "end": 8}, {"type": "cut", "start": 5, "end": 6.5}])
    assert 40 <= result["decoded_frames"] <= 52  # [4, 8) whole, from the keyframe at 4
    assert_shows(sample, dst, {0.0: 4.0, 0.9: 4.9, 1.0: 6.5, 2.4: 7.9})


def test_the_end_of_a_long_source_decodes_little(realworld, tmp_path):
    dst, result = rendered(realworld["long_clip"], tmp_path, [{"type": "trim", "start": 57, "end": 59}])
    assert result["decoded_frames"] < 300  # from the last keyframe (about 35 s) on, of 600
    assert_shows(SAMPLES["long_clip"], dst, {0.0: 57.0, 1.9: 58.9})


@pytest.mark.parametrize("name", ["phone_hevc", "prores_pcm"])
def test_a_proxy_plays_in_a_browser_and_keeps_the_timeline(realworld, tmp_path, name):
    sample = SAMPLES[name]
    dst = tmp_path / "proxy.mp4"
    result = make_proxy(realworld[name], dst)
    video, audio = checks.stream(dst, "video"), checks.stream(dst, "audio")
    assert (video["codec_name"], video["pix_fmt"], audio["codec_name"]) == ("h264", "yuv420p", "aac")
    assert (video["width"], video["height"]) == sample.display == (result["width"], result["height"])
    assert checks.rotation(dst) == 0 and video["sample_aspect_ratio"] == "1:1"
    head = dst.read_bytes()[:1 << 16]
    assert -1 < head.find(b"moov") < head.find(b"mdat") or head.find(b"mdat") == -1  # faststart
    keys = checks.keyframe_times(dst)
    assert keys[0] == pytest.approx(0, abs=0.01)
    assert max(b - a for a, b in zip(keys, [*keys[1:], sample.duration])) <= 1.0 + sample.frame
    assert checks.duration(dst) == pytest.approx(sample.duration, abs=0.1)
    assert_together(dst, sample.duration)
    assert checks.decode_errors(dst) == ""
    assert_shows(sample, dst, {0.0: 0.0, 1.5: 1.5, 2.5: 2.5})


def test_a_proxy_never_has_a_short_side_past_its_limit_nor_upscales(realworld, tmp_path):
    dst = tmp_path / "proxy.mp4"
    assert proxy_edits({"display_width": 1920, "display_height": 1080}) == [{"type": "scale", "width": -1, "height": 720}]
    assert proxy_edits({"display_width": 1080, "display_height": 1920}) == [{"type": "scale", "width": 720, "height": -1}]
    assert proxy_edits({"display_width": 320, "display_height": 240}) == [{"type": "scale", "width": -1, "height": 240}]
    make_proxy(realworld["anamorphic"], dst, short_side=180)
    video = checks.stream(dst, "video")
    assert (video["width"], video["height"], video["sample_aspect_ratio"]) == (320, 180, "1:1")
