"""probe(): the fields it reports, and refusing what is not a usable video."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.media.derived import read_json
from core.media.errors import CorruptMedia, MediaError, UnsupportedMedia
from core.media.ingest import metadata
from core.media.probe import DESCRIPTION, probe
from tests.media.clips import make_audio_clip, make_clip


def test_fields_of_an_h264_aac_clip(tmp_path: Path) -> None:
    info = probe(make_clip(tmp_path / "a.mp4", seconds=2, fps=25))
    assert info["duration"] == pytest.approx(2.0, abs=0.05)
    assert (info["width"], info["height"], info["codec"], info["fps"]) == (320, 240, "h264", 25.0)
    assert info["bitrate"] > 0
    assert (info["audio_codec"], info["audio_channels"], info["audio_rate"]) == ("aac", 2, 48_000)
    assert info["has_audio"] is True and info["rotation"] == 0
    assert "mp4" in info["format"]


def test_no_audio_and_rotation(tmp_path: Path) -> None:
    info = probe(make_clip(tmp_path / "r.mp4", seconds=1, audio=False, rotate=90))
    assert info["has_audio"] is False
    assert info["audio_codec"] is info["audio_channels"] is info["audio_rate"] is None
    assert info["rotation"] == 90


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(os.urandom(1 << 16))
    with pytest.raises(UnsupportedMedia, match="not a video"):
        probe(path)


def test_zero_length_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(UnsupportedMedia, match="empty"):
        probe(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMedia, match="cannot be read"):
        probe(tmp_path / "nothing.mp4")


def test_audio_only_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMedia, match="audio-only"):
        probe(make_audio_clip(tmp_path / "tone.m4a"))


def test_truncated_file_without_its_index_is_refused(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "t.mp4", seconds=2)  # index (moov) at the end
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MediaError):
        probe(path)


def test_corrupt_first_frame_is_refused(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "c.mp4", seconds=1, faststart=True, audio=False)
    data = bytearray(path.read_bytes())
    mdat = data.index(b"mdat") + 4
    data[mdat:] = bytes(len(data) - mdat)  # every sample zeroed: the index survives
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptMedia):
        probe(path)


def test_a_stale_description_is_made_again_and_stored(tmp_path: Path) -> None:
    video = make_clip(tmp_path / "video.mp4", seconds=2)
    assert metadata(video)["duration"] == pytest.approx(2.0, abs=0.1)
    os.replace(make_clip(tmp_path / "longer.mp4", seconds=3), video)  # the file changed after it was described
    assert metadata(video)["duration"] == pytest.approx(3.0, abs=0.1)
    assert read_json(video, DESCRIPTION)["duration"] == pytest.approx(3.0, abs=0.1)
