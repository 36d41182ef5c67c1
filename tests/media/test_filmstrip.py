"""Filmstrip sprites: exact frames at the slot centres even with one keyframe per clip, cached on
disk, shown as a player shows them (upright, displayed aspect) at timeline times."""

from __future__ import annotations

import math
import os
from pathlib import Path

import av
import numpy as np
import pytest

from core.media.errors import InvalidRequest
from core.media.filmstrip import cached_filmstrip, filmstrip
from tests.media import checks
from tests.media.clips import make_clip
from tests.media.realworld import SAMPLES

FPS = 25


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 6 s with a single keyframe: keyframe-only seeking would give one image for every slot.
    return make_clip(tmp_path_factory.mktemp("filmstrip") / "long-gop.mp4", seconds=6, fps=FPS, gop=150)


def sprite_pixels(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def tile_levels(image: np.ndarray, result: dict) -> list[int]:
    """The median red level of each tile: its grey, unmoved by the white bar."""
    w, h, columns = result["tile"]["w"], result["tile"]["h"], result["columns"]
    levels = []
    for index in range(result["count"]):
        row, column = divmod(index, columns)
        tile = image[row * h:(row + 1) * h, column * w:(column + 1) * w, 0]
        levels.append(int(np.median(tile)))
    return levels


def test_every_tile_is_the_frame_at_its_time_on_a_long_gop(long_gop, tmp_path):
    result = filmstrip(long_gop, tmp_path / "strip.jpg", 6)
    assert result["times"] == pytest.approx([0.5, 1.5, 2.5, 3.5, 4.5, 5.5])
    assert (result["count"], result["columns"], result["tile"]) == (6, 6, {"w": 160, "h": 120})
    image = sprite_pixels(tmp_path / "strip.jpg")
    assert image.shape == (result["height"], result["width"], 3) == (120, 960, 3)
    # clips.py paints frame i with grey (i*7) % 200 + 20; the nearest frame to t, ties to the earlier.
    expected = [(math.ceil(t * FPS - 0.5) * 7) % 200 + 20 for t in result["times"]]
    levels = tile_levels(image, result)
    assert len(set(levels)) == 6
    assert levels == pytest.approx(expected, abs=8)


def test_tiles_wrap_into_a_grid(long_gop, tmp_path):
    result = filmstrip(long_gop, tmp_path / "strip.jpg", 13, tile_width=64)
    assert (result["columns"], result["tile"]) == (10, {"w": 64, "h": 48})
    assert (result["width"], result["height"]) == (640, 96)
    assert sprite_pixels(tmp_path / "strip.jpg").shape == (96, 640, 3)
    assert len(result["times"]) == 13


def test_the_cache_is_used_until_the_source_changes(long_gop, tmp_path):
    first = cached_filmstrip(long_gop, tmp_path / "cache", 4)
    sprite = tmp_path / "cache" / first["sprite"]
    assert sprite.is_file() and sprite.with_suffix(".json").is_file()
    stamp = sprite.stat().st_mtime_ns
    assert cached_filmstrip(long_gop, tmp_path / "cache", 4) == first
    assert sprite.stat().st_mtime_ns == stamp
    later = sprite.stat().st_mtime + 5
    os.utime(long_gop, (later, later))
    assert cached_filmstrip(long_gop, tmp_path / "cache", 4) == first
    assert sprite.stat().st_mtime_ns != stamp


@pytest.mark.parametrize("count", [0, 201, 2.5, True])
def test_a_bad_count_is_refused(long_gop, tmp_path, count):
    with pytest.raises(InvalidRequest):
        filmstrip(long_gop, tmp_path / "strip.jpg", count)
    assert not (tmp_path / "strip.jpg").exists()


def test_tiles_of_a_rotated_source_are_upright(tmp_path):
    src = make_clip(tmp_path / "rotated.mp4", seconds=1, fps=FPS, rotate=90)
    result = filmstrip(src, tmp_path / "strip.jpg", 1, tile_width=120)
    assert result["tile"] == {"w": 120, "h": 160}
    tile = sprite_pixels(tmp_path / "strip.jpg")[:, :, 0]
    # The tile is frame 12 (t = 0.5 s), its white bar at stored x 48-56 of 320. Turned
    # counter-clockwise (rotation 90) that is shown at rows 264-272 of 320, i.e. 132-136 of the
    # half-size tile; turned the wrong way it would be at rows 24-28.
    assert tile[133:135].mean() > 200
    assert tile[25:27].mean() < 150  # the grey of frame 12 is 104


# Real-world sources (tests/media/realworld.py); sprites read with ffprobe / ffmpeg.

@pytest.mark.parametrize(("name", "tile"), [("anamorphic", (160, 90)), ("phone_hevc", (160, 284))])
def test_tiles_have_the_displayed_aspect(realworld, tmp_path, name, tile):
    # anamorphic: 480x360 stored, 640x360 shown; phone_hevc: 320x180 stored, turned to 180x320.
    result = filmstrip(realworld[name], tmp_path / "strip.jpg", 3, tile_width=160)
    assert (result["tile"]["w"], result["tile"]["h"]) == tile
    sprite = checks.stream(tmp_path / "strip.jpg", "video")
    assert (sprite["width"], sprite["height"]) == (3 * tile[0], tile[1])


@pytest.mark.parametrize("name", ["ts_late_clock", "obs_mkv"])
def test_tile_times_are_timeline_times(realworld, tmp_path, name):
    # The broadcast capture's clock starts an hour in; the OBS MKV's first packets have no
    # dts (taking them for the end of the stream lost its first GOP).
    sample = SAMPLES[name]
    result = filmstrip(realworld[name], tmp_path / "strip.jpg", 3)
    assert result["times"] == pytest.approx([sample.duration * (i + 0.5) / 3 for i in range(3)], abs=0.02)
    luma = checks.picture_luma(tmp_path / "strip.jpg")
    width = result["tile"]["w"]
    for index, t in enumerate(result["times"]):
        tile = luma[:, index * width:(index + 1) * width]
        assert sample.timecode_error(float(tile.mean()), t) <= 2 * sample.frame, t
