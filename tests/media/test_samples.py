"""The real-world samples are what they claim to be, by ffprobe / ffmpeg (no engine code).

Run before the engine's tests of the same files, so a generator that stopped producing
(say) a display matrix or a late audio start fails here and is not blamed on the engine.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.media import checks
from tests.media.realworld import SAMPLES, Sample

USABLE = [name for name, sample in SAMPLES.items() if sample.refused is None]
# Start facts are exact to the container's clock (Matroska's ticks in ms). Audio starts are
# looser: AAC priming puts late_audio's first packet 21 ms before its first sound.
START_TOLERANCE = 0.002
AUDIO_TOLERANCE = 0.025

# What Chromium plays (docs/MEDIA.md, "Real-world inputs"); every other file needs a proxy.
BROWSER_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm")
BROWSER_VIDEO = {"h264", "vp8", "vp9", "av1"}
BROWSER_AUDIO = {"aac", "opus", "vorbis", "mp3"}


@pytest.fixture(params=USABLE)
def usable(request: pytest.FixtureRequest, realworld: dict[str, Path]) -> tuple[Sample, Path]:
    return SAMPLES[request.param], realworld[request.param]


def test_stream_facts(usable: tuple[Sample, Path]) -> None:
    sample, path = usable
    info = checks.probe_json(path)
    video = checks.stream(path, "video")
    assert video is not None and video["codec_name"] == sample.codec
    assert checks.has_audio(path) == sample.has_audio
    assert checks.displayed_size(path) == sample.display
    assert checks.rotation(path) == sample.rotation
    assert video.get("sample_aspect_ratio", "1:1") == sample.sample_aspect
    assert (info["format"].get("duration") is None) == sample.piped, "only a streamed file lacks a duration"


def test_decodes_clean(usable: tuple[Sample, Path]) -> None:
    _, path = usable
    assert checks.decode_errors(path) == ""


def test_timing(usable: tuple[Sample, Path]) -> None:
    sample, path = usable
    first, last = checks.stream_span(path, "video")
    assert first == pytest.approx(sample.start_offset, abs=START_TOLERANCE)
    assert last - first == pytest.approx(sample.duration, abs=sample.frame + 0.01)
    if sample.has_audio:
        audio_first, _ = checks.stream_span(path, "audio")
        assert audio_first - first == pytest.approx(sample.audio_offset, abs=AUDIO_TOLERANCE)


def test_keyframes(usable: tuple[Sample, Path]) -> None:
    sample, path = usable
    frames = checks.packets(path, "video")
    keys = [p["pts"] - sample.start_offset for p in frames if p["key"]]
    if sample.intra_only:
        assert len(keys) == len(frames)
    else:
        interval = sample.keyframe_interval or sample.duration
        expected = [i * interval for i in range(math.ceil(sample.duration / interval))]
        assert keys == pytest.approx(expected, abs=START_TOLERANCE)
    assert (checks.stream(path, "video")["has_b_frames"] > 0) == sample.bframes


def test_streamed_webm_has_no_cues(realworld: dict[str, Path]) -> None:
    """Written to a pipe, the WebM has no Cues element (the seek index); written to a file,
    it has one."""
    cues = bytes.fromhex("1c53bb6b")
    assert cues not in realworld["browser_webm"].read_bytes()
    assert cues in realworld["vp9_webm_late_key"].read_bytes()


def test_browser_playable_claim(usable: tuple[Sample, Path]) -> None:
    sample, path = usable
    audio = checks.stream(path, "audio")
    playable = (checks.probe_json(path)["format"]["format_name"] in BROWSER_FORMATS
                and sample.codec in BROWSER_VIDEO
                and (audio is None or audio["codec_name"] in BROWSER_AUDIO))
    assert playable == (not sample.needs_proxy)


def test_time_code(usable: tuple[Sample, Path]) -> None:
    """Each frame's mean luma tells its time within a frame (the first frame at or after t
    may be one frame later than t)."""
    sample, path = usable
    for t in (0.0, 0.5 * sample.duration, sample.duration - 0.25):
        assert sample.timecode_error(checks.frame_luma(path, t), t) <= sample.frame + 0.01, t


def test_surround_is_5_1(realworld: dict[str, Path]) -> None:
    audio = checks.stream(realworld["surround"], "audio")
    assert audio["channels"] == 6 and audio["channel_layout"] == "5.1"


def test_late_audio_beeps(realworld: dict[str, Path]) -> None:
    """Silence (no audio at all) until 0.5 s, beeps at 1, 2, 3, 4 s, quiet between them."""
    sample = SAMPLES["late_audio"]
    window = 0.01
    peaks = checks.audio_peaks(realworld["late_audio"], window)
    assert max(peaks[: int(0.5 / window)]) < 0.01
    for beep in sample.beeps:
        at = round(beep / window)
        onset = next(i for i in range(at - 5, at + 5) if peaks[i] > 0.2) * window
        assert onset == pytest.approx(beep, abs=0.015)
        assert max(peaks[at + 10: at + 90]) < 0.01, f"not quiet after the beep at {beep}"


def test_truncated_is_broken(realworld: dict[str, Path]) -> None:
    """The header survived (ffprobe still says 5 s) but decoding runs out of data."""
    path = realworld["truncated_mp4"]
    assert checks.duration(path) == pytest.approx(SAMPLES["truncated_mp4"].duration, abs=0.05)
    assert checks.decode_errors(path) != ""


def test_audio_only_has_no_video(realworld: dict[str, Path]) -> None:
    path = realworld["audio_only"]
    assert checks.stream(path, "video") is None and checks.has_audio(path)


def test_text_file_is_not_media(realworld: dict[str, Path]) -> None:
    with pytest.raises(RuntimeError):
        checks.probe_json(realworld["text_file"])
