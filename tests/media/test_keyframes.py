"""The keyframe index (core.media.keyframes): what ingest keeps, checked against ffprobe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.media.derived import cache_path
from core.media.ingest import ingest
from core.media.keyframes import INDEX, KeyframeIndex, keyframe_index, store_keyframe_index
from tests.media import checks
from tests.media.clips import make_clip


def _timeline(path: Path) -> list[float]:
    """ffprobe's keyframe times, moved onto the timeline (0: the first presented frame)."""
    first = min(packet["pts"] for packet in checks.packets(path, "video"))
    return [round(time - first, 3) for time in checks.keyframe_times(path)]


@pytest.mark.parametrize("bframes", [0, 3])
def test_ingest_indexes_the_keyframes_ffprobe_sees(tmp_path: Path, bframes: int) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=4.0, fps=25, gop=20, bframes=bframes)
    info, index = ingest(clip)
    store_keyframe_index(clip, index)
    found = keyframe_index(clip)
    assert [round(time, 3) for time in found.times] == _timeline(clip) == [0.0, 0.8, 1.6, 2.4, 3.2]
    assert found.frames == 100 == info["frames"]
    assert found.end == pytest.approx(4.0, abs=1e-6)
    assert found.longest_gop == pytest.approx(0.8)


def test_a_file_nobody_ingested_is_scanned_once_and_stored(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "out.mp4", seconds=2.0, fps=25, gop=25, audio=False)
    assert not cache_path(clip, INDEX).exists()
    assert keyframe_index(clip).times == (0.0, 1.0)
    assert cache_path(clip, INDEX).exists()


def test_a_changed_file_is_indexed_again(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=2.0, fps=25, gop=25, audio=False)
    assert keyframe_index(clip).times == (0.0, 1.0)
    make_clip(clip, seconds=2.0, fps=25, gop=10, audio=False)
    stamp = cache_path(clip, INDEX).stat().st_mtime_ns
    os.utime(clip, ns=(stamp + 10**9, stamp + 10**9))  # the rewrite is newer than the stored index
    assert keyframe_index(clip).times == (0.0, 0.4, 0.8, 1.2, 1.6)


def test_lookups() -> None:
    index = KeyframeIndex((0.0, 2.0, 4.0), end=5.0, frames=125)
    assert index.at_or_before(3.9) == 2.0 and index.at_or_before(4.0) == 4.0 and index.at_or_before(-1) == 0.0
    assert index.after(2.0) == 4.0 and index.after(4.0) is None
    assert index.within(1.0, 4.0) == [2.0] and index.within(0.0, 4.5) == [0.0, 2.0, 4.0]
    assert index.longest_gop == 2.0


def test_an_index_that_cannot_be_stored_is_still_given(tmp_path: Path) -> None:
    """The index is a cache: a render must not fail because it cannot be kept (here a directory
    stands where the file would go, so writing it fails)."""
    clip = make_clip(tmp_path / "clip.mp4", seconds=2.0, fps=25, gop=25, audio=False)
    cache_path(clip, INDEX).mkdir(parents=True)
    assert keyframe_index(clip).times == (0.0, 1.0)
    assert cache_path(clip, INDEX).is_dir()
