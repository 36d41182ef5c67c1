"""split(): two parts that add up to the source, cut where the result says."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from core.media.errors import Cancelled, InvalidRequest
from core.media.split import split
from tests.media.clips import frame_index, make_clip

FPS = 25


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("split") / "src.mp4", seconds=4, fps=FPS, gop=25)


def frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return sorted(container.decode(video=0), key=lambda frame: frame.pts)


@pytest.mark.parametrize("mode", ["copy", "accurate"])
def test_parts_add_up_to_the_source(src: Path, tmp_path: Path, mode: str) -> None:
    one, two = tmp_path / "one.mp4", tmp_path / "two.mp4"
    seen: list[float] = []
    result = split(src, one, two, 2.1, mode=mode, progress=lambda f, m: seen.append(f))
    at = result["cut"]["at"]
    assert at == (pytest.approx(2.0) if mode == "copy" else pytest.approx(2.12))  # keyframe / next frame
    first, second = (part["duration"] for part in result["parts"])
    assert first == pytest.approx(at, abs=1.5 / FPS)
    assert first + second == pytest.approx(4.0, abs=1.5 / FPS)
    head, tail = frames(one), frames(two)
    assert len(head) + len(tail) == 4 * FPS
    assert frame_index(tail[0]) == frame_index(head[-1]) + 1
    assert seen[-1] == 1.0 and seen.count(1.0) == 1 and seen == sorted(set(seen))


def test_copy_split_inside_the_first_gop_moves_to_the_next_keyframe(src: Path, tmp_path: Path) -> None:
    result = split(src, tmp_path / "one.mp4", tmp_path / "two.mp4", 0.4, mode="copy")
    assert result["cut"]["at"] == pytest.approx(1.0)


@pytest.mark.parametrize(("at", "expected"), [(2.0, 2.0), (2.1, 2.12)])
def test_the_server_chooses_copy_on_a_keyframe_and_an_accurate_cut_elsewhere(
        src: Path, tmp_path: Path, at: float, expected: float) -> None:
    one, two = tmp_path / "one.mp4", tmp_path / "two.mp4"
    result = split(src, one, two, at)
    assert result["cut"]["at"] == pytest.approx(expected)
    head, tail = frames(one), frames(two)
    assert len(head) + len(tail) == 4 * FPS
    assert frame_index(tail[0]) == frame_index(head[-1]) + 1


def test_copy_split_of_a_video_with_one_keyframe_cuts_accurately(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "screen.mp4", seconds=3, fps=FPS, gop=1000)
    result = split(src, tmp_path / "one.mp4", tmp_path / "two.mp4", 1.3, mode="copy")
    assert result["cut"]["at"] == pytest.approx(1.32)
    assert len(frames(tmp_path / "one.mp4")) + len(frames(tmp_path / "two.mp4")) == 3 * FPS


@pytest.mark.parametrize("at", [0, -1, 4.0, 9, float("inf")])
def test_bad_split_time_names_the_field(src: Path, tmp_path: Path, at: float) -> None:
    with pytest.raises(InvalidRequest, match="splitTime"):
        split(src, tmp_path / "one.mp4", tmp_path / "two.mp4", at)


@pytest.mark.parametrize("mode", ["copy", "accurate"])
def test_cancel_during_part_two_leaves_neither_part(src: Path, tmp_path: Path, mode: str) -> None:
    def should_cancel() -> bool:
        return stage["muxed"]

    stage = {"muxed": False}

    def progress(fraction: float, message: str | None) -> None:
        stage["muxed"] = fraction > 0.6  # well into part two

    with pytest.raises(Cancelled):
        split(src, tmp_path / "one.mp4", tmp_path / "two.mp4", 2.1, mode=mode, progress=progress,
              should_cancel=should_cancel)
    assert list(tmp_path.iterdir()) == []
