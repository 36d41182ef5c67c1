"""trim(): copy mode cuts at real keyframes, accurate mode within a frame, bad input refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import av
import pytest

from core.media.decode import TolerantDecoder
from core.media.errors import Cancelled, CorruptMedia, InvalidRequest, UnsupportedMedia
from core.media.probe import probe
from core.media.trim import trim
from tests.media.clips import frame_index, make_audio_clip, make_clip

FPS = 25


def keyframe_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        return sorted(float(p.pts * video.time_base) for p in container.demux(video)
                      if p.pts is not None and p.is_keyframe)


def decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return sorted(container.decode(video=0), key=lambda frame: frame.pts)


def video_packets(path: Path) -> set[bytes]:
    with av.open(str(path)) as container:
        return {bytes(p) for p in container.demux(video=0) if p.size}


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def recorder() -> tuple[list[float], object]:
    seen: list[float] = []
    return seen, lambda fraction, message: seen.append(fraction)


def assert_progress(seen: list[float]) -> None:
    assert seen and seen[-1] == 1.0 and seen.count(1.0) == 1
    assert all(a < b for a, b in zip(seen, seen[1:])), "progress must be strictly increasing"


CLIPS = {
    "gop25": dict(gop=25),
    "odd-gop-7": dict(gop=7),
    "odd-gop-13-bframes": dict(gop=13, bframes=2),
    "vfr": dict(gop=20, vfr=True),
    "no-audio": dict(gop=25, audio=False),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("trim-clips")
    return {name: make_clip(directory / f"{name}.mp4", seconds=4, fps=FPS, **options)
            for name, options in CLIPS.items()}


@pytest.mark.parametrize("name", CLIPS)
def test_copy_trim_starts_at_the_keyframe_before_start(clips: dict[str, Path], tmp_path: Path,
                                                       name: str) -> None:
    src, dst = clips[name], tmp_path / "out.mp4"
    seen, progress = recorder()
    result = trim(src, dst, 1.3, 3.1, progress=progress)
    keys = keyframe_times(src)
    expected_start = max(k for k in keys if k <= 1.3 + 1e-9)
    assert result["cut"]["start"] == pytest.approx(expected_start, abs=1e-6)
    assert result["cut"]["end"] >= 3.1 - 2 / FPS
    assert result["duration"] == pytest.approx(result["cut"]["end"] - result["cut"]["start"], abs=1.5 / FPS)
    frames = decoded(dst)
    assert frames[0].key_frame
    source_frames = [f for f in decoded(src) if expected_start - 1e-6 <= float(f.time) < 3.1]
    assert len(frames) >= len(source_frames)
    assert frame_index(frames[0]) == frame_index(source_frames[0])
    assert probe(dst)["duration"] == result["duration"]
    assert_progress(seen)
    assert leftovers(tmp_path, {"out.mp4"}) == []


@pytest.mark.parametrize("name", CLIPS)
def test_accurate_trim_is_within_one_frame(clips: dict[str, Path], tmp_path: Path, name: str) -> None:
    src, dst = clips[name], tmp_path / "out.mp4"
    seen, progress = recorder()
    result = trim(src, dst, 0.3, 3.5, mode="accurate", progress=progress)
    wanted = [f for f in decoded(src) if 0.3 - 1e-6 <= float(f.time) < 3.5]
    assert result["cut"] == {"start": pytest.approx(float(wanted[0].time), abs=1e-6), "end": 3.5}
    assert abs(result["duration"] - 3.2) <= 1 / FPS + 1e-6
    frames = decoded(dst)
    assert len(frames) == len(wanted)
    assert [frame_index(f) for f in frames[:3]] == [frame_index(f) for f in wanted[:3]]
    assert frame_index(frames[-1]) == frame_index(wanted[-1])
    assert_progress(seen)
    assert leftovers(tmp_path, {"out.mp4"}) == []


def test_accurate_trim_copies_the_whole_gops_in_the_middle(clips: dict[str, Path], tmp_path: Path) -> None:
    src = clips["gop25"]
    trim(src, tmp_path / "smart.mp4", 0.3, 3.5, mode="accurate")
    copied = video_packets(src) & video_packets(tmp_path / "smart.mp4")
    assert len(copied) >= 2 * FPS - 1  # GOPs [1 s, 3 s) byte for byte (the first one gets SPS/PPS)
    assert probe(tmp_path / "smart.mp4")["codec"] == "h264"


def test_accurate_trim_inside_one_gop_falls_back_to_a_full_re_encode(clips: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    src, dst = clips["gop25"], tmp_path / "out.mp4"
    result = trim(src, dst, 1.2, 1.8, mode="accurate")
    assert not video_packets(src) & video_packets(dst)
    assert abs(result["duration"] - 0.6) <= 1 / FPS + 1e-6
    assert len(decoded(dst)) == 15


def test_accurate_trim_audio_covers_the_range(clips: dict[str, Path], tmp_path: Path) -> None:
    dst = tmp_path / "out.mp4"
    trim(clips["gop25"], dst, 0.5, 2.5, mode="accurate")
    with av.open(str(dst)) as container:
        audio = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio))
        assert samples / audio.sample_rate == pytest.approx(2.0, abs=0.03)


@pytest.mark.parametrize("mode", ["copy", "accurate"])
def test_truncated_source_is_corrupt_and_leaves_nothing(tmp_path: Path, mode: str) -> None:
    src = make_clip(tmp_path / "src.mp4", seconds=4, faststart=True)
    src.write_bytes(src.read_bytes()[: int(src.stat().st_size * 0.6)])
    with pytest.raises(CorruptMedia, match="truncated"):
        trim(src, tmp_path / "out.mp4", 0.5, 3.9, mode=mode)
    assert leftovers(tmp_path, {"src.mp4"}) == []


@pytest.mark.parametrize(("start", "end", "field"), [
    (-1, 2, "startTime"), (5, 6, "startTime"), (2, 1, "endTime"), (1, 4.5, "endTime"),
    (float("nan"), 2, "startTime"), (0, "2", "endTime"),
])
def test_bad_ranges_name_the_field(clips: dict[str, Path], tmp_path: Path, start: float, end: float,
                                   field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        trim(clips["gop25"], tmp_path / "out.mp4", start, end)
    assert leftovers(tmp_path, set()) == []


def test_unknown_mode_is_refused(clips: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="mode"):
        trim(clips["gop25"], tmp_path / "out.mp4", 0, 1, mode="fast")


def test_end_a_hair_past_the_duration_is_clamped(clips: dict[str, Path], tmp_path: Path) -> None:
    result = trim(clips["gop25"], tmp_path / "out.mp4", 2.0, 4.0005)
    assert result["cut"]["end"] <= 4.0 + 1e-6


@pytest.mark.parametrize("mode", ["copy", "accurate"])
def test_cancel_mid_trim_leaves_no_file(clips: dict[str, Path], tmp_path: Path, mode: str) -> None:
    calls = 0

    def should_cancel() -> bool:
        nonlocal calls
        calls += 1
        return calls > 20

    seen, progress = recorder()
    with pytest.raises(Cancelled):
        trim(clips["gop25"], tmp_path / "out.mp4", 0.3, 3.5, mode=mode, progress=progress,
             should_cancel=should_cancel)
    assert leftovers(tmp_path, set()) == []
    assert 1.0 not in seen


@pytest.mark.parametrize(("mode", "start", "end"), [("copy", 0.3, 3.5), ("accurate", 0.3, 3.5),
                                                    ("accurate", 1.2, 1.8)])  # last: full re-encode
def test_rotation_is_kept(tmp_path: Path, mode: str, start: float, end: float) -> None:
    src = make_clip(tmp_path / "rotated.mp4", seconds=4, rotate=270, audio=False)
    trim(src, tmp_path / "out.mp4", start, end, mode=mode)
    assert probe(tmp_path / "out.mp4")["rotation"] == 270


def test_audio_only_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMedia, match="audio-only"):
        trim(make_audio_clip(tmp_path / "tone.m4a"), tmp_path / "out.mp4", 0, 1)
    assert leftovers(tmp_path, {"tone.m4a"}) == []


class FlakyStream:
    """A stream whose decoder fails on the packets a test names (FFmpeg's own error)."""

    type = "audio"

    def __init__(self, bad: int) -> None:
        self.codec_context = SimpleNamespace(thread_type=None)
        self.bad = bad

    def decode(self, packet: SimpleNamespace | None) -> list[object]:
        if packet is not None and packet.n < self.bad:
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
        return [packet]


def test_a_few_bad_packets_are_skipped_more_fail() -> None:
    packets = [SimpleNamespace(size=1, n=n) for n in range(30)]
    decoder = TolerantDecoder(FlakyStream(3), "x.mp4", limit=3)  # type: ignore[arg-type]
    frames = list(decoder.frames(packets, lambda: None))
    assert decoder.errors == 3 and len(frames) == 27 + 1  # + what the flush returns
    decoder = TolerantDecoder(FlakyStream(4), "x.mp4", limit=3)  # type: ignore[arg-type]
    with pytest.raises(CorruptMedia, match="more than 3 audio packets"):
        list(decoder.frames(packets, lambda: None))


@pytest.mark.parametrize("mode", ["copy", "accurate"])
def test_a_codec_mp4_cannot_hold_is_re_encoded_in_either_mode(tmp_path: Path, mode: str) -> None:
    src = make_clip(tmp_path / "raw.mkv", seconds=2, codec="rawvideo")
    result = trim(src, tmp_path / "out.mp4", 0.5, 1.5, mode=mode)
    assert result["cut"] == {"start": 0.52, "end": 1.5}  # the first frame at or after 0.5
    assert abs(result["duration"] - 1.0) <= 1 / FPS + 1e-6
    assert probe(tmp_path / "out.mp4")["codec"] == "h264"
    assert len(decoded(tmp_path / "out.mp4")) == 25
    assert leftovers(tmp_path, {"raw.mkv", "out.mp4"}) == []
