"""Waveform peaks: the compiled reduction, tone vs silence, audio-less video, the disk cache."""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np
import pytest

from core.media.errors import InvalidRequest
from core.media.render import render
from core.media.waveform import cached_waveform, waveform
from ext.peaks import BlockPeaks, reduce_peaks
from tests.media.clips import make_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("waveform")
    tone = make_clip(base / "tone.mp4", seconds=3)
    silent = base / "silent.mp4"
    render(tone, silent, [{"type": "cut", "start": 1, "end": 2}, {"type": "volume", "gain": 0}])
    return {"tone": tone, "silent": silent, "video-only": make_clip(base / "video-only.mp4", seconds=2, audio=False)}


def test_block_peaks_span_frames_and_channels():
    rng = np.random.default_rng(7)
    samples = (rng.random((2, 1000), dtype=np.float32) - 0.5) * 2
    reducer = BlockPeaks(64)
    for start in range(0, 1000, 300):  # frames that do not line up with blocks
        reducer.feed(np.ascontiguousarray(samples[:, start:start + 300]))
    blocks = reducer.finish()
    padded = np.zeros((2, 1024), dtype=np.float32)
    padded[:, :1000] = np.abs(samples)
    expected = padded.max(axis=0).reshape(16, 64).max(axis=1)
    assert np.asarray(blocks) == pytest.approx(expected)


def test_reduce_peaks_buckets_clip_and_stretch():
    blocks = array("f", [0.1, 0.9, 0.2, 1.5, 0.3, 0.0])
    assert reduce_peaks(blocks, 3) == pytest.approx([0.9, 1.0, 0.3])
    assert reduce_peaks(blocks, 12) == pytest.approx([0.1, 0.1, 0.9, 0.9, 0.2, 0.2, 1.0, 1.0, 0.3, 0.3, 0.0, 0.0])
    assert reduce_peaks(array("f"), 5) == []


def test_a_tone_reads_at_its_level(clips):
    result = waveform(clips["tone"], peaks=50)
    assert len(result["peaks"]) == 50
    assert result["sample_rate"] == 48_000 and result["audio"] is True
    assert result["duration"] == pytest.approx(3.0, abs=0.05)
    assert min(result["peaks"]) > 0.4 and max(result["peaks"]) < 0.6  # clips.py writes a 0.5 sine


def test_silence_reads_zero(clips):
    result = waveform(clips["silent"], peaks=20)
    assert len(result["peaks"]) == 20
    assert max(result["peaks"]) < 1e-3


def test_a_video_without_audio_says_so(clips):
    result = waveform(clips["video-only"], peaks=20)
    assert result == {"peaks": [], "duration": pytest.approx(2.0, abs=0.05), "sample_rate": None, "audio": False}


def test_the_cache_is_reused(clips, tmp_path):
    first = cached_waveform(clips["tone"], tmp_path, peaks=10)
    path = tmp_path / "tone.mp4.waveform-10.json"
    stamp = path.stat().st_mtime_ns
    assert cached_waveform(clips["tone"], tmp_path, peaks=10) == first
    assert path.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("peaks", [0, -3, 20_001, 1.5])
def test_a_bad_peak_count_is_refused(clips, peaks):
    with pytest.raises(InvalidRequest):
        waveform(clips["tone"], peaks=peaks)
