"""Smart render (core.media.smartrender) and its choice (core.media.process), checked against
the full render of the same edits and an independent decoder (ffprobe / ffmpeg 5.1).

Every smart output is compared with ``render()`` of the same edits: the same frame count,
the same presentation times (ffprobe's frame list), the same pictures frame by frame (the
source frame a make_clip picture shows, or the mean luma of a time-coded picture), a clean
ffmpeg decode, and keyframes only where a decoder may start (I pictures).
"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from playwright.async_api import async_playwright

from core.media.errors import Cancelled
from core.media.process import choose, process
from core.media.render import render
from core.media.smartrender import NotWorthIt, smart_render
from core.media.trim import trim
from ext.nal import avcc_length_size, avcc_parameter_sets, has_idr
from tests.media import checks
from tests.media.clips import frame_index, make_clip
from tests.media.realworld import AAC, BITEXACT, H264, build, ffmpeg, timecoded, tone
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS

FPS = 25
CUTS = [{"type": "cut", "start": 1.3, "end": 2.52}, {"type": "cut", "start": 4.1, "end": 4.5}]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Sources in a directory of their own (the keyframe index is stored beside them)."""
    base = tmp_path_factory.mktemp("smart-sources")
    late = base / "late_start.mp4"
    # An MP4 whose clock starts at 0.5 s: B-frames, a keyframe a second.
    ffmpeg([*timecoded(fps=30, seconds=5), *tone(5), *H264, "-bf", "3", "-g", "30", "-keyint_min", "30",
            "-sc_threshold", "0", *AAC, "-output_ts_offset", "0.5", *BITEXACT, str(late)])
    yuv422 = base / "yuv422.mp4"
    ffmpeg([*timecoded(seconds=1), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv422p",
            *BITEXACT, str(yuv422)])
    return {
        "bframes": make_clip(base / "bframes.mp4", seconds=6, fps=FPS, gop=25, bframes=2),
        "plain": make_clip(base / "plain.mp4", seconds=6, fps=FPS, gop=25),
        "silent": make_clip(base / "silent.mp4", seconds=6, fps=FPS, gop=25, bframes=2, audio=False),
        "open_gop": make_clip(base / "open_gop.mp4", seconds=6, fps=FPS, gop=25, bframes=3, open_gop=True),
        "vfr": make_clip(base / "vfr.mp4", seconds=3, fps=FPS, gop=25, vfr=True),
        "rotated": make_clip(base / "rotated.mp4", seconds=2, fps=FPS, rotate=90),
        "mpeg4": make_clip(base / "mpeg4.mp4", seconds=2, fps=FPS, codec="mpeg4"),
        "long_gop": make_clip(base / "long_gop.mp4", seconds=6, fps=FPS, gop=250, bframes=2),
        "late_start": late,
        "yuv422": yuv422,
        **{name: build(name, base) for name in ("obs_mkv", "ts_late_clock", "anamorphic")},
    }


def frame_list(path: Path) -> list[dict[str, Any]]:
    """ffprobe's decoded frames: ``{"t", "key", "type"}``, in presentation order."""
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                             "frame=pts_time,key_frame,pict_type", "-of", "json", str(path)],
                            capture_output=True, check=True)
    frames = [{"t": float(f["pts_time"]), "key": f["key_frame"] == 1, "type": f["pict_type"]}
              for f in json.loads(result.stdout)["frames"]]
    return sorted(frames, key=lambda frame: frame["t"])


def pictures(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def luma(frames: list[av.VideoFrame]) -> np.ndarray:
    return np.array([frame.to_ndarray(format="gray").mean() for frame in frames])


def both(src: Path, tmp_path: Path, edits: list[dict[str, Any]], **kwargs: Any) -> tuple[Path, dict[str, Any], Path]:
    """The smart render and the full render of ``edits``."""
    smart, full = tmp_path / "smart.mp4", tmp_path / "full.mp4"
    result = smart_render(src, smart, edits, **kwargs)
    render(src, full, edits)
    return smart, result, full


def assert_like_full_render(smart: Path, full: Path, *, indexed: bool, tolerance: float = 3.0) -> None:
    """Same frames at the same times as the full render, decoding cleanly."""
    assert checks.decode_errors(smart) == ""
    ours, theirs = frame_list(smart), frame_list(full)
    assert len(ours) == len(theirs)
    assert [f["t"] for f in ours] == pytest.approx([f["t"] for f in theirs], abs=1e-3)
    assert ours[0]["key"]
    assert all(f["type"] == "I" for f in ours if f["key"]), "a keyframe that is no I picture"
    mine, reference = pictures(smart), pictures(full)
    if indexed:
        assert [frame_index(p) for p in mine] == [frame_index(p) for p in reference]
    assert np.abs(luma(mine) - luma(reference)).max() < tolerance
    # Not the video's span: ffprobe 5.1 takes a copied packet's duration from the source's
    # SPS timing (make_clip's says 1/50 s a frame), not from the container.
    assert checks.duration(smart) == pytest.approx(checks.duration(full), abs=1e-3)
    if checks.has_audio(full):
        assert checks.stream_span(smart, "audio") == pytest.approx(checks.stream_span(full, "audio"), abs=1e-3)


@pytest.mark.parametrize("name", ["bframes", "plain", "silent"])
def test_cuts_copy_whole_gops_and_match_the_full_render(sources, tmp_path, name):
    smart, result, full = both(sources[name], tmp_path, CUTS)
    assert_like_full_render(smart, full, indexed=True)
    frames = len(frame_list(smart))
    assert result["reencodedFrames"] + result["copiedFrames"] == frames == result["frames"]
    # Three ranges: at most a GOP (25 frames) before each one's first keyframe, a few at its end.
    assert 0 < result["reencodedFrames"] < frames / 3


def audio_packets(path: Path) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as container:
        return [(packet.pts, bytes(packet)) for packet in container.demux(audio=0) if packet.size]


def test_audio_is_the_full_renders(sources, tmp_path):
    smart, _, full = both(sources["bframes"], tmp_path, [*CUTS, {"type": "volume", "gain": 0.5}])
    assert audio_packets(smart) == audio_packets(full)  # the same graph, encoded the same way
    ours, theirs = checks.audio_peaks(smart), checks.audio_peaks(full)
    assert len(ours) == len(theirs)
    assert np.abs(np.array(ours) - np.array(theirs)).max() < 0.02
    assert max(ours) == pytest.approx(0.25, abs=0.03)  # the 0.5 tone at half gain


def test_cuts_on_keyframes_and_volume_copy_every_frame(sources, tmp_path):
    edits = [{"type": "cut", "start": 1.0, "end": 2.0}, {"type": "split", "at": 3.0}, {"type": "volume", "gain": 2.0}]
    smart, result, full = both(sources["bframes"], tmp_path, edits)
    assert_like_full_render(smart, full, indexed=True)
    assert result["reencodedFrames"] == 0 and result["copiedFrames"] == 125
    with av.open(str(sources["bframes"])) as source, av.open(str(smart)) as output:
        kept = [bytes(p) for p in source.demux(video=0) if p.size and not 25 <= p.pts * FPS * p.time_base < 50]
        copied = [bytes(p) for p in output.demux(video=0) if p.size]
        extradata = source.streams.video[0].codec_context.extradata
    # The source's packets, each copied stretch's first with the source's SPS/PPS in front.
    parameter_sets = avcc_parameter_sets(extradata, avcc_length_size(extradata))
    assert [c.removeprefix(parameter_sets) for c in copied] == kept
    assert sum(c.startswith(parameter_sets) for c in copied) == 2


def test_fades_re_encode_only_the_faded_frames_and_their_gop(sources, tmp_path):
    edits = [*CUTS, {"type": "fade", "in": 1.5, "out": 0.7}]  # the fade-in crosses the keyframe at 1 s
    smart, result, full = both(sources["bframes"], tmp_path, edits)
    assert_like_full_render(smart, full, indexed=False, tolerance=2.0)
    faded = round(1.5 * FPS) + round(0.7 * FPS)
    assert faded <= result["reencodedFrames"] < faded + 3 * 25
    assert result["copiedFrames"] > 0
    middle = pictures(smart)[40]  # 1.6 s: past the fade-in, copied
    assert frame_index(middle) == frame_index(pictures(full)[40])


def test_open_gop_splices_only_at_idr_frames(sources, tmp_path):
    with av.open(str(sources["open_gop"])) as container:
        keyframes = [bytes(p) for p in container.demux(video=0) if p.size and p.is_keyframe]
    assert [has_idr(k, 4) for k in keyframes] == [True] + [False] * (len(keyframes) - 1)
    smart, result, full = both(sources["open_gop"], tmp_path, CUTS)
    assert_like_full_render(smart, full, indexed=True)
    assert result["copiedFrames"] > 0  # the first range, from the IDR at 0, through its recovery-point keyframe
    # Only the first keyframe is an IDR: the later ranges have nothing to splice at, so
    # process() finds out from the exact plan and renders in full.
    done = process(sources["open_gop"], tmp_path / "processed.mp4", CUTS)
    assert done["render"]["path"] == "full"
    assert "IDR" in done["render"]["reason"]
    assert done["render"]["reencodedFrames"] == len(frame_list(tmp_path / "processed.mp4"))


def test_accurate_trim_of_an_open_gop_splices_only_at_idr_frames(sources, tmp_path):
    # The smart cut (core.media.smartcut) shares the rule: its keyframes at 2, 3 and 4 s are
    # no IDR, so [1.3, 4.5) is re-encoded whole rather than spliced into a broken stream.
    dst = tmp_path / "trim.mp4"
    assert trim(sources["open_gop"], dst, 1.3, 4.5, "accurate")["cut"] == {"start": 1.32, "end": 4.5}
    assert checks.decode_errors(dst) == ""
    source = [frame_index(picture) for picture in pictures(sources["open_gop"])]
    assert [frame_index(picture) for picture in pictures(dst)] == source[33:113]


@pytest.mark.parametrize("name", ["late_start", "obs_mkv"])
def test_a_clock_that_does_not_start_at_zero(sources, tmp_path, name):
    # late_start: an MP4 starting at 0.5 s; obs_mkv: a Matroska file (B-frames, no dts on
    # some packets) whose first frame is at 21 ms.
    edits = [{"type": "cut", "start": 1.0, "end": 1.9}, {"type": "cut", "start": 3.1, "end": 3.3},
             {"type": "fade", "out": 0.3}]
    assert choose(sources[name], edits).path == "smart"
    smart, result, full = both(sources[name], tmp_path, edits)
    # The time-coded luma ramps 1.2 a frame: a frame shown a slot early or late is caught.
    assert_like_full_render(smart, full, indexed=False, tolerance=1.0)
    assert result["copiedFrames"] > result["reencodedFrames"]


def test_process_reports_the_smart_path(sources, tmp_path):
    dst = tmp_path / "out.mp4"
    seen: list[float] = []
    done = process(sources["bframes"], dst, CUTS, lambda fraction, message: seen.append(fraction))
    assert set(done) == {"duration", "width", "height", "render"}
    assert done["render"]["path"] == "smart" and "reason" not in done["render"]
    assert done["render"]["reencodedFrames"] + done["render"]["copiedFrames"] == len(frame_list(dst))
    assert (done["width"], done["height"]) == (320, 240)
    assert done["duration"] == pytest.approx(checks.duration(dst), abs=0.05)
    assert seen[-1] == 1.0 and seen.count(1.0) == 1 and seen == sorted(seen)


@pytest.mark.parametrize(("name", "edits", "reason"), [
    ("bframes", [{"type": "speed", "factor": 1.5}], "speed"),
    ("bframes", [{"type": "scale", "width": 160, "height": -1}], "scale or crop"),
    ("bframes", [{"type": "crop", "x": 0, "y": 0, "width": 160, "height": 120}], "scale or crop"),
    ("rotated", [], "rotated"),
    ("anamorphic", [], "not square"),
    ("mpeg4", [], "mpeg4, not H.264"),
    ("yuv422", [], "yuv422p"),
    ("ts_late_clock", [], "Annex B"),
    ("vfr", [{"type": "cut", "start": 1, "end": 2}], "variable frame rate"),
    ("long_gop", CUTS, "Too little to gain"),
])
def test_what_falls_back_to_the_full_render(sources, name, edits, reason):
    choice = choose(sources[name], edits)
    assert choice.path == "full"
    assert reason in (choice.reason or "")


def test_a_fallback_renders_in_full_and_says_why(sources, tmp_path):
    # VFR: the full render makes the rate constant (frames repeated), which copied GOPs
    # could not follow; the fallback output is the full render's.
    dst = tmp_path / "out.mp4"
    done = process(sources["vfr"], dst, [{"type": "cut", "start": 1, "end": 2}])
    assert done["render"]["path"] == "full" and "variable frame rate" in done["render"]["reason"]
    assert done["render"]["copiedFrames"] == 0
    assert done["render"]["reencodedFrames"] == len(frame_list(dst))
    render(sources["vfr"], tmp_path / "full.mp4", [{"type": "cut", "start": 1, "end": 2}])
    assert [f["t"] for f in frame_list(dst)] == [f["t"] for f in frame_list(tmp_path / "full.mp4")]


def test_too_little_to_gain_writes_nothing(sources, tmp_path):
    with pytest.raises(NotWorthIt):
        smart_render(sources["long_gop"], tmp_path / "out.mp4", CUTS, max_share=0.5)
    assert list(tmp_path.iterdir()) == []


def test_cancel_leaves_no_file(sources, tmp_path):
    checked = itertools.count()
    with pytest.raises(Cancelled):  # cancelled after 20 checks, while the edges are encoded
        smart_render(sources["bframes"], tmp_path / "out.mp4", CUTS, should_cancel=lambda: next(checked) > 20)
    assert list(tmp_path.iterdir()) == []


def test_a_frame_the_full_render_repeats_is_repeated(sources, tmp_path):
    # Kept from 0.01 s: the first frame kept (0.04 s) is placed at 0.03 s, slot 1; the full
    # render shows it in slot 0 too. The smart render re-encodes both slots.
    edits = [{"type": "cut", "start": 0, "end": 0.01}, *CUTS]
    smart, result, full = both(sources["bframes"], tmp_path, edits)
    assert_like_full_render(smart, full, indexed=True)
    shown = [frame_index(picture) for picture in pictures(smart)]
    assert shown[:3] == [1, 1, 2]
    assert result["copiedFrames"] > 0


PLAY_TO_END = """async (src) => {
  const video = document.querySelector("video");
  video.muted = true;
  video.src = src;
  video.playbackRate = 8;
  await video.play();
  await new Promise((done) => { video.onended = done; video.onerror = done; });
  return {error: video.error && video.error.code, time: video.currentTime, duration: video.duration};
}"""


async def test_the_output_plays_to_its_end_in_chromium(sources, tmp_path):
    # The browser's decoder meets every splice: x264's parameter sets, then the source's.
    # (Spliced at an open GOP's recovery-point I picture, Chromium stopped with a decode error.)
    outputs = []
    for name in ("bframes", "open_gop"):
        outputs.append(tmp_path / f"{name}.mp4")
        smart_render(sources[name], outputs[-1], [*CUTS, {"type": "fade", "in": 0.5}])
    (tmp_path / "page.html").write_text("<video></video>")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = await browser.new_page()
        await page.goto((tmp_path / "page.html").as_uri())
        for output in outputs:
            played = await page.evaluate(PLAY_TO_END, output.as_uri())
            assert played["error"] is None, f"{output.name}: media error {played['error']}"
            assert played["time"] == pytest.approx(played["duration"], abs=0.05) == checks.duration(output)
        await browser.close()
