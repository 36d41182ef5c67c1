"""Every media operation on every kind of real-world file, graded by an independent decoder.

The engine (PyAV in-process) probes, trims, splits, renders, filmstrips and waveforms the
samples of :mod:`tests.media.realworld`; ffprobe / ffmpeg 5.1 (:mod:`tests.media.checks`)
then says whether the output decodes cleanly, lasts as long as claimed, keeps audio and
video in step, keeps the picture's shape and orientation, and shows the right frames:
the samples' pictures are time-coded by their mean luma, so a shifted join or a picture
starting late is measured, not guessed.

Times are on the timeline: 0 is the first presented video frame, whatever the container's
clock says (an MPEG-TS an hour in, a WebM whose video starts at 7 ms).
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest

from core.media.errors import CorruptMedia
from core.media.filmstrip import filmstrip
from core.media.probe import probe
from core.media.render import render
from core.media.split import split
from core.media.trim import trim
from core.media.waveform import waveform
from tests.media import checks
from tests.media.realworld import SAMPLES, Sample

USABLE = [name for name, sample in SAMPLES.items() if sample.refused is None]
REFUSED = [name for name, sample in SAMPLES.items() if sample.refused is not None]

TRIM = (1.0, 2.5)
RENDER_CUT = (1.0, 2.0)
FADE_IN = 0.5
# Audio and video of one output end within this of each other.
SYNC = 0.1
# Mean luma levels a frame loses to lossy coding (measured on the samples: up to 1).
VIDEO_LUMA_ERROR = 1.5
# Mean luma levels a thumbnail loses to its trip through RGB and JPEG (measured: 0.3-2.6).
JPEG_LUMA_ERROR = 3.5


@pytest.fixture(params=USABLE)
def case(request: pytest.FixtureRequest, realworld: dict[str, Path]) -> tuple[Sample, Path]:
    return SAMPLES[request.param], realworld[request.param]


def aspect(size: tuple[int, int]) -> Fraction:
    return Fraction(size[0], size[1])


def assert_shows(sample: Sample, output: Path, t_output: float, t_source: float) -> None:
    """The frame of ``output`` at ``t_output`` is the source's frame at ``t_source``."""
    luma = checks.frame_luma(output, t_output)
    error = sample.timecode_error(luma, t_source)
    # One frame: the first frame at or after a time may be the next one.
    assert error <= sample.frame + VIDEO_LUMA_ERROR / sample.luma_per_second, (
        f"{output.name} at {t_output:.3f} s shows the source at {t_source:.3f} s "
        f"+- {error:.3f} s (mean luma {luma:.1f}, expected {sample.luma_at(t_source):.1f})")


def assert_av(sample: Sample, output: Path) -> None:
    """Audio present iff the source has it, and ending with the video."""
    assert checks.has_audio(output) == sample.has_audio
    if sample.has_audio:
        video_end = checks.stream_span(output, "video")[1]
        audio_end = checks.stream_span(output, "audio")[1]
        assert abs(video_end - audio_end) <= SYNC, f"video ends at {video_end:.3f} s, audio at {audio_end:.3f} s"


def assert_shape(sample: Sample, output: Path) -> None:
    """The picture shows with the source's displayed aspect (2 %) and orientation."""
    shown = checks.displayed_size(output)
    assert float(aspect(shown)) == pytest.approx(float(aspect(sample.display)), rel=0.02), (
        f"{output.name} shows {shown}, the source {sample.display}")
    assert (shown[1] > shown[0]) == sample.portrait


# --- probe -------------------------------------------------------------------------------

def test_probe(case: tuple[Sample, Path]) -> None:
    sample, path = case
    info = probe(path)
    assert info["duration"] == pytest.approx(sample.duration, abs=0.1)
    assert (info["width"], info["height"]) == sample.stored
    assert (info["display_width"], info["display_height"]) == sample.display
    shown = aspect(sample.display)
    assert info["display_aspect"] == f"{shown.numerator}:{shown.denominator}"
    assert info["sample_aspect"] == sample.sample_aspect
    assert info["rotation"] == sample.rotation
    assert info["codec"] == sample.codec
    assert info["has_audio"] == sample.has_audio
    assert info["browser_playable"] == (not sample.needs_proxy)
    assert info["start_time"] == pytest.approx(sample.start_offset, abs=0.05)
    if sample.has_audio:
        assert info["audio_offset"] == pytest.approx(sample.audio_offset, abs=0.05)
    else:
        assert info["audio_offset"] is None
    assert info["intra_only"] is sample.intra_only
    assert info["vfr"] is False  # every sample is constant-rate (Matroska's rounding to 1 ms included)
    assert info["keyframes"] == len(checks.keyframe_times(path))


@pytest.mark.parametrize("name", REFUSED)
def test_probe_refuses(name: str, realworld: dict[str, Path]) -> None:
    with pytest.raises(SAMPLES[name].refused) as refusal:
        probe(realworld[name])
    if SAMPLES[name].refused is CorruptMedia:
        # A truncated upload says how much of it is there.
        found = re.search(r"ends at (\d+(?:\.\d+)?)", str(refusal.value))
        assert found, f"no 'ends at <seconds>' in {str(refusal.value)!r}"
        assert 0 < float(found.group(1)) < SAMPLES[name].duration


# --- trim --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["copy", "accurate"])
def test_trim(case: tuple[Sample, Path], mode: str, tmp_path: Path) -> None:
    sample, path = case
    start, end = TRIM
    output = tmp_path / "trim.mp4"
    result = trim(path, output, start, end, mode)
    cut = result["cut"]
    assert checks.decode_errors(output) == ""
    if mode == "copy":
        # Copy cuts at the keyframe at or before the start (a frame of intra-only video is one).
        assert cut["start"] <= start + 1e-6
        if sample.intra_only:
            assert cut["start"] >= start - sample.frame
        expected = cut["end"] - cut["start"]
    else:
        assert cut["start"] == pytest.approx(start, abs=sample.frame)
        expected = end - start
    assert checks.duration(output) == pytest.approx(expected, abs=sample.frame + 0.05)
    assert result["duration"] == pytest.approx(checks.duration(output), abs=sample.frame)
    assert_av(sample, output)
    assert_shape(sample, output)
    assert_shows(sample, output, 0.0, cut["start"])


# --- split -------------------------------------------------------------------------------

def test_split(case: tuple[Sample, Path], tmp_path: Path) -> None:
    sample, path = case
    # In the middle, between keyframes and between frames: where a user drops the playhead.
    at = round(0.45 * sample.duration, 2) + 0.013
    if not sample.intra_only:
        keyframes = [t - sample.start_offset for t in checks.keyframe_times(path)]
        assert all(abs(at - key) > sample.frame for key in keyframes), "the split point must not be a keyframe"
    first, second = tmp_path / "part1.mp4", tmp_path / "part2.mp4"
    result = split(path, first, second, at)
    cut_at = result["cut"]["at"]
    assert 0 < cut_at < sample.duration
    durations = [checks.duration(part) for part in (first, second)]
    assert sum(durations) == pytest.approx(sample.duration, abs=2 * sample.frame + 0.05)
    assert durations[0] == pytest.approx(cut_at, abs=sample.frame + 0.05)
    for part in (first, second):
        assert checks.decode_errors(part) == "", part.name
        assert_av(sample, part)
        assert_shape(sample, part)
    assert_shows(sample, first, 0.0, 0.0)
    assert_shows(sample, second, 0.0, cut_at)


# --- render ------------------------------------------------------------------------------

def test_render(case: tuple[Sample, Path], tmp_path: Path) -> None:
    sample, path = case
    cut_start, cut_end = RENDER_CUT
    output = tmp_path / "render.mp4"
    render(path, output, [{"type": "cut", "start": cut_start, "end": cut_end}, {"type": "fade", "in": FADE_IN},
                          {"type": "scale", "width": 320, "height": -1}])
    assert checks.decode_errors(output) == ""
    assert checks.duration(output) == pytest.approx(sample.duration - (cut_end - cut_start), abs=0.1)
    width, height = checks.displayed_size(output)
    assert width == 320 and height % 2 == 0
    assert height == pytest.approx(320 / aspect(sample.display), abs=2), "displayed aspect not kept"
    assert checks.sample_aspect(output) == 1, "the output must have square pixels"
    assert checks.rotation(output) == 0, "the output must be upright, without a display matrix"
    assert_av(sample, output)
    # After the fade-in, before the cut: the source's own time (nothing shifted at the start) ...
    assert_shows(sample, output, FADE_IN + 0.2, FADE_IN + 0.2)
    # ... and right after the join, the source from the end of the cut on.
    assert_shows(sample, output, cut_start, cut_end)


def test_render_seeks_to_what_it_keeps(realworld: dict[str, Path], tmp_path: Path) -> None:
    """Keeping the last 5 s of a minute decodes from the keyframe before them, not the
    55 s removed."""
    sample, path = SAMPLES["long_clip"], realworld["long_clip"]
    keep_from = sample.duration - 5
    result = render(path, tmp_path / "end.mp4", [{"type": "cut", "start": 0, "end": keep_from}])
    assert checks.duration(tmp_path / "end.mp4") == pytest.approx(5, abs=0.1)
    preroll = keep_from - max(t for t in checks.keyframe_times(path) if t <= keep_from)
    # The kept frames, the preroll from their keyframe, and a few in the decoder's pipeline.
    budget = (5 + preroll) * sample.fps + 10
    assert result["decoded_frames"] <= budget, (
        f"decoded {result['decoded_frames']} frames to keep {5 * sample.fps:.0f} (budget {budget:.0f})")


# --- filmstrip ---------------------------------------------------------------------------

def test_filmstrip(case: tuple[Sample, Path], tmp_path: Path) -> None:
    sample, path = case
    sprite = tmp_path / "strip.jpg"
    result = filmstrip(path, sprite, count=4)
    tile = result["tile"]
    assert tile["w"] / tile["h"] == pytest.approx(float(aspect(sample.display)), rel=0.03), (
        f"tiles {tile['w']}x{tile['h']}, the video shows {sample.display}")
    assert checks.decode_errors(sprite) == ""


def test_filmstrip_tiles_show_their_times(case: tuple[Sample, Path], tmp_path: Path) -> None:
    """Each tile shows the frame at the timeline time the result gives for it (a frame, and
    the 1-3 luma levels the RGB and JPEG round trip of a thumbnail costs)."""
    sample, path = case
    sprite = tmp_path / "strip.jpg"
    result = filmstrip(path, sprite, count=4)
    luma = checks.picture_luma(sprite)
    w, h, columns = result["tile"]["w"], result["tile"]["h"], result["columns"]
    for index, t in enumerate(result["times"]):
        row, column = divmod(index, columns)
        mean = float(luma[row * h:(row + 1) * h, column * w:(column + 1) * w].mean())
        error = sample.timecode_error(mean, t)
        assert error <= sample.frame + JPEG_LUMA_ERROR / sample.luma_per_second, (
            f"tile {index} shows {t:.3f} s +- {error:.3f} s")


# --- waveform ----------------------------------------------------------------------------

def test_waveform(case: tuple[Sample, Path]) -> None:
    sample, path = case
    result = waveform(path, peaks=100)
    assert result["audio"] == sample.has_audio
    assert result["duration"] == pytest.approx(sample.duration, abs=0.1)
    if sample.has_audio:
        assert len(result["peaks"]) == 100
        # lavfi's sine has amplitude 1/8: a steady tone, not silence.
        assert max(result["peaks"]) > 0.05


def test_waveform_is_on_the_timeline(realworld: dict[str, Path]) -> None:
    """Audio that starts 0.5 s into the video: the beeps at 1, 2, 3, 4 s of the timeline are
    the loudest buckets there, and nothing sounds before 0.5 s."""
    sample = SAMPLES["late_audio"]
    result = waveform(realworld["late_audio"], peaks=100)
    peaks, bucket = result["peaks"], result["duration"] / 100
    assert max(peaks[: int(sample.audio_offset / bucket)]) < 0.02
    for beep in sample.beeps:
        near = [i for i in range(len(peaks)) if abs(i * bucket - beep) <= 0.3]
        loudest = max(near, key=lambda i: peaks[i])
        assert loudest * bucket == pytest.approx(beep, abs=0.05), f"the beep at {beep} s shows at {loudest * bucket:.2f} s"
