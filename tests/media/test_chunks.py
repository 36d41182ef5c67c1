"""A render split into chunks (core.media.chunks) against the single render of the same edits.

Every comparison decodes both outputs independently (ffprobe's frame list, ffmpeg's
decode) and frame by frame with PyAV at the clips' low resolution: the same frame count,
the same timestamps, the same source frame in every slot, the same audio, no decode error.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from core.media.chunks import Chunk, join, plan_chunks, render_audio, render_chunk
from core.media.errors import Cancelled, MediaError
from core.media.keyframes import keyframe_index
from core.media.render import render
from tests.media import checks
from tests.media.clips import frame_index, make_clip

FPS = 25
CHUNK = 2.0  # s of output per chunk: 10 s clips with a keyframe every second make 3 to 5 chunks

EDITS: dict[str, list[dict[str, Any]]] = {
    "cuts": [{"type": "cut", "start": 2.5, "end": 3.7}, {"type": "cut", "start": 6.2, "end": 6.9}],
    "faster": [{"type": "cut", "start": 1.3, "end": 2.1}, {"type": "speed", "factor": 1.5}],
    "slower": [{"type": "trim", "start": 1.1, "end": 7.3}, {"type": "speed", "factor": 0.75}],
    # 3 s fades over 2 s chunks: both cross a join.
    "fades": [{"type": "cut", "start": 4.5, "end": 5.2}, {"type": "fade", "in": 3, "out": 3}],
    "geometry": [{"type": "scale", "width": 200, "height": -1},
                 {"type": "crop", "x": 10, "y": 20, "width": 120, "height": 100}],
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("chunk-sources")
    return {
        "cfr": make_clip(base / "cfr.mp4", seconds=10, fps=FPS, gop=FPS),
        "bframes": make_clip(base / "bframes.mp4", seconds=10, fps=FPS, gop=FPS, bframes=2),
        "vfr": make_clip(base / "vfr.mp4", seconds=8, fps=FPS, gop=FPS, vfr=True),
        # Chunks start at recovery-point I pictures whose leading B-frames refer to the GOP before.
        "open_gop": make_clip(base / "open-gop.mp4", seconds=10, fps=FPS, gop=FPS, bframes=3, open_gop=True),
        "silent": make_clip(base / "silent.mp4", seconds=8, fps=FPS, gop=FPS, audio=False),
    }


def chunked(src: Path, edits: list[dict[str, Any]], directory: Path,
            seconds: float = CHUNK) -> tuple[Path, list[Chunk], list[dict[str, Any]]]:
    """Plan, render every chunk and the audio, join: the output, the chunks, their results."""
    chunks = plan_chunks(src, edits, seconds)
    paths = [directory / f"chunk{chunk.index}.mp4" for chunk in chunks]
    results = [render_chunk(src, path, edits, chunk) for chunk, path in zip(chunks, paths)]
    audio = directory / "audio.m4a"
    has_audio = render_audio(src, audio, edits) is not None
    joined = directory / "joined.mp4"
    assert join(joined, paths, audio if has_audio else None)["frames"] == sum(r["frames"] for r in results)
    return joined, chunks, results


def frame_times(path: Path) -> list[str]:
    """ffprobe's presentation times of every decoded video frame, as it prints them."""
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                             "frame=pts_time", "-of", "json", str(path)], capture_output=True, check=True)
    return [frame["pts_time"] for frame in json.loads(result.stdout)["frames"]]


def pictures(path: Path, identify: bool = True) -> tuple[list[int], list[float]]:
    """Per decoded frame: the source frame it shows (clips.frame_index; not under a fade,
    which changes the grey level it reads) and its mean luma."""
    shown, luma = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if identify:
                shown.append(frame_index(frame))
            luma.append(float(frame.to_ndarray(format="gray").mean()))
    return shown, luma


def audio_packets(path: Path) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as container:
        return [(packet.pts, bytes(packet)) for packet in container.demux(audio=0) if packet.dts is not None]


@pytest.mark.parametrize(("source", "edit"), [
    ("cfr", "cuts"), ("cfr", "faster"), ("cfr", "slower"), ("cfr", "fades"), ("cfr", "geometry"),
    ("bframes", "cuts"), ("bframes", "fades"), ("vfr", "cuts"), ("vfr", "faster"), ("open_gop", "slower"),
])
def test_a_chunked_render_is_the_single_render(sources, tmp_path, source, edit):
    src, edits = sources[source], EDITS[edit]
    single = tmp_path / "single.mp4"
    expected = render(src, single, edits)
    joined, chunks, results = chunked(src, edits, tmp_path)
    assert len(chunks) >= 2
    assert sum(chunk.frames for chunk in chunks) == expected["frames"]

    times = frame_times(joined)
    assert len(times) == expected["frames"]
    assert times == frame_times(single)  # no frame duplicated, missing or moved at a join
    assert checks.decode_errors(joined) == ""
    shown, luma = pictures(joined, identify=edit != "fades")
    single_shown, single_luma = pictures(single, identify=edit != "fades")
    assert shown == single_shown
    assert np.allclose(luma, single_luma, atol=2.0)  # fades at the same output times

    # One set of parameter sets: one video stream, every chunk encoded alike.
    streams = checks.probe_json(joined)["streams"]
    assert [s["codec_type"] for s in streams] == ["video", "audio"]
    extradata = set()
    for chunk in chunks:
        with av.open(str(tmp_path / f"chunk{chunk.index}.mp4")) as container:
            extradata.add(bytes(container.streams.video[0].codec_context.extradata or b""))
    assert len(extradata) == 1
    # Every chunk starts with a keyframe where its first frame is.
    keys = checks.keyframe_times(joined)
    rate = Fraction(streams[0]["r_frame_rate"])  # the VFR clip's average rate is not FPS
    for chunk in chunks:
        assert any(abs(key - chunk.first / rate) < 1e-3 for key in keys), chunk

    # The audio is the single render's, packet for packet, and contiguous.
    assert audio_packets(joined) == audio_packets(single)
    packets = checks.packets(joined, "audio")
    assert all(abs(a["pts"] + a["duration"] - b["pts"]) < 1e-5 for a, b in zip(packets, packets[1:]))
    assert checks.duration(joined) == pytest.approx(checks.duration(single), abs=1e-3)


def test_the_audio_has_no_gap_nor_click_at_a_join(sources, tmp_path):
    joined, chunks, _ = chunked(sources["cfr"], EDITS["cuts"], tmp_path)
    window = 0.01
    peaks = checks.audio_peaks(joined, window)
    for chunk in chunks[1:]:
        at = round(chunk.first / FPS / window)
        # The 0.5 sine's envelope is flat across the join: no silence, no spike.
        assert all(0.4 < peak < 0.6 for peak in peaks[at - 5:at + 5]), chunk


def test_chunks_start_at_keyframes_and_decode_only_their_own_gops(sources, tmp_path):
    src = sources["cfr"]
    index = keyframe_index(src)
    _, chunks, results = chunked(src, [{"type": "cut", "start": 3.3, "end": 3.6}], tmp_path)
    assert chunks[0].start is None
    assert all(chunk.start in index.times for chunk in chunks[1:])
    for before, after in zip(chunks, chunks[1:]):
        assert before.stop == after.start and before.first + before.frames == after.first
    for chunk, result in zip(chunks, results):
        start = chunk.start or 0.0
        stop = chunk.stop if chunk.stop is not None else index.end
        # The chunk's own source frames plus the next chunk's keyframe (and what the
        # frame-threaded decoder reads ahead with it), nothing of the GOPs before.
        assert result["decoded_frames"] <= round((stop - start) * FPS) + 3, chunk


def test_a_short_output_is_not_chunked(sources):
    src = sources["cfr"]
    assert plan_chunks(src, [{"type": "trim", "start": 1, "end": 3.5}], CHUNK) == []
    assert plan_chunks(src, [], 0) == []
    # 10 s with a keyframe every second: chunks start at the first keyframe 4.5 s or more
    # after the previous start; the one at 9 s would leave a tail shorter than half a chunk.
    assert [chunk.start for chunk in plan_chunks(src, [], 4.5)] == [None, 5.0]


def test_a_chunk_travels_as_json(sources):
    chunks = plan_chunks(sources["cfr"], EDITS["faster"], CHUNK)
    assert [Chunk.from_params(json.loads(json.dumps(chunk.to_params()))) for chunk in chunks] == chunks


def test_a_source_without_audio_joins_video_only(sources, tmp_path):
    src = sources["silent"]
    assert render_audio(src, tmp_path / "audio.m4a", []) is None
    assert not (tmp_path / "audio.m4a").exists()
    joined, chunks, _ = chunked(src, [{"type": "fade", "out": 1}], tmp_path)
    single = tmp_path / "single.mp4"
    render(src, single, [{"type": "fade", "out": 1}])
    assert len(chunks) >= 3
    assert not checks.has_audio(joined)
    assert frame_times(joined) == frame_times(single)


def test_a_chunk_planned_for_other_edits_is_refused(sources, tmp_path):
    src = sources["cfr"]
    chunk = plan_chunks(src, EDITS["cuts"], CHUNK)[1]
    with pytest.raises(MediaError, match="since it was planned"):
        render_chunk(src, tmp_path / "chunk.mp4", EDITS["faster"], chunk)
    assert list(tmp_path.iterdir()) == []


def test_chunks_encoded_differently_are_not_joined(sources, tmp_path):
    src = sources["cfr"]
    small = [{"type": "scale", "width": 160, "height": -1}]
    first = plan_chunks(src, [], CHUNK)[0]
    second = plan_chunks(src, small, CHUNK)[1]
    render_chunk(src, tmp_path / "a.mp4", [], first)
    render_chunk(src, tmp_path / "b.mp4", small, second)
    with pytest.raises(MediaError, match="encoded differently"):
        join(tmp_path / "out.mp4", [tmp_path / "a.mp4", tmp_path / "b.mp4"], None)
    assert not (tmp_path / "out.mp4").exists()


def test_cancel_mid_chunk_leaves_no_file(sources, tmp_path):
    chunk = plan_chunks(sources["cfr"], [], CHUNK)[1]
    calls = 0

    def should_cancel() -> bool:
        nonlocal calls
        calls += 1
        return calls > 20

    with pytest.raises(Cancelled):
        render_chunk(sources["cfr"], tmp_path / "chunk.mp4", [], chunk, should_cancel=should_cancel)
    assert list(tmp_path.iterdir()) == []


def test_progress_of_a_chunk_is_monotonic_to_one(sources, tmp_path):
    chunk = plan_chunks(sources["cfr"], [], CHUNK)[2]
    reports: list[float] = []
    render_chunk(sources["cfr"], tmp_path / "chunk.mp4", [], chunk, progress=lambda f, _: reports.append(f))
    assert reports == sorted(set(reports)) and reports[-1] == 1.0 and reports.count(1.0) == 1
    assert len(reports) > 3


def test_a_bframe_mkv_with_a_late_clock_chunks_like_its_single_render(realworld, tmp_path):
    # OBS-style: Matroska (no dts on the first packets), B-frames, keyframes every 2 s,
    # the video 21 ms after the container's start.
    src = realworld["obs_mkv"]
    edits = [{"type": "cut", "start": 0.5, "end": 1.2}, {"type": "speed", "factor": 1.25}, {"type": "fade", "in": 1}]
    single = tmp_path / "single.mp4"
    render(src, single, edits)
    joined, chunks, _ = chunked(src, edits, tmp_path, seconds=1.0)
    assert [chunk.start for chunk in chunks] == [None, 2.0, 4.0]
    assert frame_times(joined) == frame_times(single)
    assert np.allclose(pictures(joined, identify=False)[1], pictures(single, identify=False)[1], atol=2.0)
    assert audio_packets(joined) == audio_packets(single)
    assert checks.decode_errors(joined) == ""


def test_a_range_before_a_late_audio_stream_is_silence_in_the_audio_alone(realworld, tmp_path):
    # The first range holds no audio packet at all (the audio starts at 0.5 s): its silence
    # must still take its place, so the beep at 1 s of the source is heard at 0.5 s.
    edits = [{"type": "trim", "start": 0, "end": 2.5}, {"type": "cut", "start": 0.4, "end": 0.9}]
    single = tmp_path / "single.mp4"
    render(realworld["late_audio"], single, edits)
    alone = tmp_path / "audio.m4a"
    assert render_audio(realworld["late_audio"], alone, edits) is not None
    assert audio_packets(alone) == audio_packets(single)
    peaks = checks.audio_peaks(single)
    onsets = [i * 0.01 for i in range(1, len(peaks)) if peaks[i] > 0.2 and peaks[i - 1] <= 0.2]
    assert onsets == pytest.approx([0.5, 1.5], abs=0.03)


def test_chunks_from_workers_with_other_core_counts_join(sources, tmp_path):
    # Workers of different machines run x264 with different thread counts: the parameter
    # sets do not depend on them, so their chunks join.
    src, edits = sources["cfr"], EDITS["faster"]
    chunks = plan_chunks(src, edits, CHUNK)
    paths = [tmp_path / f"chunk{chunk.index}.mp4" for chunk in chunks]
    for number, (chunk, path) in enumerate(zip(chunks, paths)):
        render_chunk(src, path, edits, chunk, threads=1 + number % 3)
    joined = tmp_path / "joined.mp4"
    join(joined, paths, None)
    single = tmp_path / "single.mp4"
    render(src, single, edits)
    assert frame_times(joined) == frame_times(single)
    assert checks.decode_errors(joined) == ""


def test_a_missing_or_misplaced_chunk_is_refused(sources, tmp_path):
    src = sources["cfr"]
    chunks = plan_chunks(src, [], CHUNK)
    paths = [tmp_path / f"chunk{chunk.index}.mp4" for chunk in chunks]
    for chunk, path in zip(chunks[:3], paths):
        render_chunk(src, path, [], chunk)
    for order in ([paths[0], paths[2]], [paths[1], paths[0]], [paths[1], paths[2]]):
        with pytest.raises(MediaError, match="not of one plan or not in order"):
            join(tmp_path / "out.mp4", order, None)
    assert not (tmp_path / "out.mp4").exists()
    join(tmp_path / "out.mp4", paths[:3], None)  # a prefix of the plan in order is fine
