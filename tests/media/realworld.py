"""Real-world test media, written with the ffmpeg CLI, and what is known about each file.

The media engine meets phone HEVC with a rotation matrix, ProRes with PCM audio, AVI,
MPEG-TS whose clock starts an hour in, browser recordings without duration or cues, OBS
MKVs with B-frames, files whose first video frame sits a few milliseconds after 0, audio
that starts late, and so on. Each :class:`Sample` here is one such file, made small (a few
seconds, a few hundred pixels) by one ``ffmpeg`` command, together with the facts a test
expects an independent decoder (ffprobe) to confirm: duration, displayed size, rotation,
where video and audio start, whether a browser can play it.

Every picture is time-coded: its mean luma (8-bit, limited range) ramps linearly with the
timeline time, ``LUMA_BASE + LUMA_SPAN * (t mod ramp) / ramp``, with a sine band pattern that
scrolls over it so the encoders see motion without moving the mean (a whole number of
periods per picture). ``Sample.timecode_error`` turns a measured mean luma back into time,
so a test can tell which source frame an output frame shows.

Facts are on the *timeline*: 0 is the first presented video frame. ``start_offset`` is where
that frame sits on the container clock and ``audio_offset`` where audio starts on the
timeline (negative when audio leads the picture, as AAC priming and Opus pre-skip do).
The start figures were measured with ffprobe on Debian's ffmpeg 5.1; ``test_samples.py``
checks every claim, so a broken generator is caught by itself, not blamed on the engine.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.media.errors import CorruptMedia, MediaError, UnsupportedMedia

LUMA_BASE = 36.0
LUMA_SPAN = 180.0
# Amplitude of the scrolling bands: BASE - WAVE and BASE + SPAN + WAVE stay within 16..235.
LUMA_WAVE = 20.0

# Reproducible files: no encoder version strings, and one encoder thread (x264 and x265
# output depends on the thread count).
BITEXACT = ("-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-threads", "1")
H264 = ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p")
AAC = ("-c:a", "aac", "-b:a", "96k")


def timecoded(width: int = 320, height: int = 240, fps: int = 25, seconds: float = 3.0, *,
              ramp: float | None = None, motion: float = 1.0) -> tuple[str, ...]:
    """A lavfi input of ``seconds`` of time-coded video (see the module docstring).

    The pattern depends on the row only, so it is computed on a 2-pixel-wide picture and
    widened with nearest-neighbour scaling (``setsar=1``: scale would keep the 2-pixel
    picture's shape through the pixel aspect): ``geq`` costs ~65 ns a pixel, too slow at full
    size. ``motion`` is how many band periods scroll by per second (0: a still picture
    that only brightens, like a screen recording).
    """
    ramp = ramp or seconds
    # geq truncates to an integer: +0.5 rounds instead, so the mean is not biased low.
    luma = (f"0.5+{LUMA_BASE}+{LUMA_SPAN}*mod(T,{ramp})/{ramp}"
            f"+{LUMA_WAVE}*sin(2*PI*(2*Y/H-{motion}*T))")
    graph = (f"nullsrc=s=2x{height}:r={fps}:d={seconds},format=yuv420p,"
             f"geq=lum='{luma}':cb=128:cr=128,scale={width}:{height}:flags=neighbor,setsar=1")
    return ("-f", "lavfi", "-i", graph)


def tone(seconds: float, layout: str = "stereo") -> tuple[str, ...]:
    """A lavfi input of a steady 440 Hz tone at amplitude 1/8, the same in every channel."""
    return ("-f", "lavfi", "-i", f"sine=f=440:r=48000:d={seconds},aformat=channel_layouts={layout}")


def beeps(seconds: float, delay: float) -> tuple[str, ...]:
    """A lavfi input of 50 ms 880 Hz beeps at every whole second of the timeline, silence
    otherwise, for an audio stream whose first sample sits at ``delay`` on the timeline."""
    expr = f"0.5*sin(2*PI*880*t)*lt(mod(t+{delay},1),0.05)"
    return ("-itsoffset", str(delay), "-f", "lavfi", "-i",
            f"aevalsrc='{expr}':s=48000:d={seconds},aformat=channel_layouts=stereo")


def ffmpeg(args: tuple[str, ...] | list[str], *, stdout: int | None = subprocess.DEVNULL) -> None:
    """Run ``ffmpeg -v error -y ARGS``; raise with its stderr if it fails."""
    result = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], stdout=stdout,
                            stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {result.stderr.strip()}")


def rotate(degrees: int) -> Callable[[Path], None]:
    """A finishing step that sets the display-matrix rotation (``degrees`` counter-clockwise).

    ffmpeg 5.1 has no ``-display_rotation`` and drops a ``rotate`` tag when it encodes, but
    its MOV muxer turns ``rotate`` into the display matrix on a stream copy. (The tag's
    "clockwise" meaning is not what 5.1 writes: ``rotate=90`` reads back as 90 degrees
    counter-clockwise from both ffprobe 5.1 and PyAV, hence ``degrees`` here is what they read.)
    """
    def finish(path: Path) -> None:
        copy = path.with_name(f"rotating-{path.name}")
        ffmpeg(["-i", str(path), "-map", "0", "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}",
                *BITEXACT, str(copy)])
        copy.replace(path)
    return finish


def truncate(fraction: float) -> Callable[[Path], None]:
    """A finishing step that cuts the file to ``fraction`` of its bytes (a broken upload)."""
    def finish(path: Path) -> None:
        os.truncate(path, int(path.stat().st_size * fraction))
    return finish


def text(content: str) -> Callable[[Path], None]:
    """A "finishing" step that writes plain text: the file is not media at all."""
    def finish(path: Path) -> None:
        path.write_text(content)
    return finish


@dataclass(frozen=True)
class Sample:
    """One test file: how to write it and what an independent decoder must find in it."""

    name: str
    suffix: str
    # ffmpeg arguments that write the file (its path is appended); empty when `finish` writes it.
    args: tuple[str, ...]
    duration: float
    has_audio: bool
    display: tuple[int, int]
    fps: float
    codec: str
    # Width and height of the picture as stored (before the pixel aspect and the rotation).
    stored: tuple[int, int] = (0, 0)
    rotation: int = 0
    needs_proxy: bool = False
    intra_only: bool = False
    # Seconds between keyframes (None: the first frame is the only one, or every frame is).
    keyframe_interval: float | None = None
    # The video has B-frames: its decoding order is not its presentation order.
    bframes: bool = False
    start_offset: float = 0.0
    # Timeline seconds where audio starts (None without audio).
    audio_offset: float | None = 0.0
    # Seconds of the luma ramp's period (None: not time-coded).
    ramp: float | None = None
    # Timeline seconds of the beeps in the audio, if it has beeps.
    beeps: tuple[float, ...] = ()
    # Sample aspect ratio of the stored picture, as ffprobe writes it.
    sample_aspect: str = "1:1"
    # The file is written to a pipe, as a browser's MediaRecorder does: no duration, no cues.
    piped: bool = False
    # A step run on the written file (set rotation, truncate), or that writes it alone.
    finish: Callable[[Path], None] | None = field(default=None, compare=False)
    # The error the engine must refuse the file with (None: a usable video).
    refused: type[MediaError] | None = None

    @property
    def filename(self) -> str:
        return f"{self.name}{self.suffix}"

    @property
    def portrait(self) -> bool:
        return self.display[1] > self.display[0]

    @property
    def frame(self) -> float:
        """Seconds of one video frame."""
        return 1.0 / self.fps

    @property
    def luma_per_second(self) -> float:
        """How fast the mean luma ramps: what a luma error costs in seconds."""
        assert self.ramp is not None, f"{self.name} is not time-coded"
        return LUMA_SPAN / self.ramp

    def luma_at(self, t: float) -> float:
        """Mean luma of the picture shown at timeline second ``t``."""
        assert self.ramp is not None, f"{self.name} is not time-coded"
        return LUMA_BASE + LUMA_SPAN * (t % self.ramp) / self.ramp

    def timecode_error(self, luma: float, t: float) -> float:
        """Seconds between the time a picture of mean ``luma`` shows and ``t`` (modulo the ramp)."""
        assert self.ramp is not None, f"{self.name} is not time-coded"
        shown = (luma - LUMA_BASE) / LUMA_SPAN * self.ramp
        gap = (shown - t) % self.ramp
        return min(gap, self.ramp - gap)


def _sample(name: str, suffix: str, args: tuple[str, ...], *, seconds: float, size: tuple[int, int],
            fps: int, codec: str, **facts) -> Sample:
    """A time-coded sample whose picture is stored as ``size`` and shown so unless ``facts``
    say otherwise."""
    facts.setdefault("display", size)
    facts.setdefault("stored", size)
    # x264 (veryfast) and x265 (ultrafast) use B-frames unless told otherwise.
    facts.setdefault("bframes", codec in ("h264", "hevc"))
    facts.setdefault("ramp", seconds)
    return Sample(name=name, suffix=suffix, args=args, duration=seconds, fps=fps, codec=codec, **facts)


def _samples() -> dict[str, Sample]:
    samples = [
        # An iPhone-style portrait clip: HEVC 10-bit stored landscape, shown portrait through
        # the display matrix.
        _sample("phone_hevc", ".MOV",
                (*timecoded(320, 180, 30), *tone(3), "-vf", "format=yuv420p10le", "-c:v", "libx265",
                 "-preset", "ultrafast", "-x265-params", "log-level=error:pools=1:frame-threads=1",
                 "-tag:v", "hvc1", *AAC),
                seconds=3, size=(320, 180), fps=30, codec="hevc", display=(180, 320), rotation=90,
                needs_proxy=True, has_audio=True, finish=rotate(90)),
        _sample("prores_pcm", ".mov",
                (*timecoded(), *tone(3), "-c:v", "prores_ks", "-profile:v", "2", "-c:a", "pcm_s16le"),
                seconds=3, size=(320, 240), fps=25, codec="prores", needs_proxy=True, intra_only=True,
                has_audio=True),
        _sample("avi_mpeg4_mp3", ".avi",
                (*timecoded(), *tone(3), "-c:v", "mpeg4", "-q:v", "2", "-g", "50",
                 # Shifting the MP3 delay to 0 would drop video frame 0.04 s and show every later one a frame late.
                 "-avoid_negative_ts", "disabled", "-c:a", "libmp3lame",
                 "-b:a", "128k"),
                seconds=3, size=(320, 240), fps=25, codec="mpeg4", needs_proxy=True, has_audio=True,
                keyframe_interval=2),
        # A broadcast capture: the clock starts an hour in; AAC priming puts audio 21 ms ahead.
        _sample("ts_late_clock", ".ts",
                (*timecoded(fps=30), *tone(3), *H264, *AAC, "-output_ts_offset", "3600",
                 "-muxdelay", "0", "-muxpreload", "0"),
                seconds=3, size=(320, 240), fps=30, codec="h264", needs_proxy=True, has_audio=True,
                start_offset=3600.0, audio_offset=-0.021),
        # MediaRecorder-style: written as a stream, so no duration and no cues. The muxer
        # shifts Opus's pre-skip to 0, which puts the first video frame at 7 ms.
        _sample("browser_webm", ".webm",
                (*timecoded(fps=30), *tone(3), "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
                 "-b:v", "600k", "-c:a", "libopus", "-f", "webm"),
                seconds=3, size=(320, 240), fps=30, codec="vp8", has_audio=True, start_offset=0.007,
                audio_offset=-0.014, piped=True),
        # OBS-style: B-frames, a keyframe every 2 s; AAC priming shifted to 0 puts video at 21 ms.
        _sample("obs_mkv", ".mkv",
                (*timecoded(fps=30, seconds=5), *tone(5), *H264, "-bf", "3", "-g", "60", "-keyint_min", "60",
                 "-sc_threshold", "0", *AAC),
                seconds=5, size=(320, 240), fps=30, codec="h264", has_audio=True, start_offset=0.021,
                audio_offset=-0.021, keyframe_interval=2),
        _sample("vp9_webm_late_key", ".webm",
                (*timecoded(fps=30), *tone(3), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                 "-b:v", "600k", "-c:a", "libopus"),
                seconds=3, size=(320, 240), fps=30, codec="vp9", has_audio=True, start_offset=0.007,
                audio_offset=-0.014),
        # Both streams shifted 7 ms: the MP4 muxer starts the video track at 7 ms (an empty
        # edit) and the audio track, AAC priming first, at 0.
        _sample("mp4_late_key", ".mp4",
                (*timecoded(fps=30), *tone(3), *H264, *AAC, "-output_ts_offset", "0.007"),
                seconds=3, size=(320, 240), fps=30, codec="h264", has_audio=True, start_offset=0.007,
                audio_offset=-0.007),
        # A screen recording: a still picture that only brightens, one keyframe for it all.
        _sample("screen_one_key", ".mp4",
                (*timecoded(fps=10, seconds=6, motion=0), *tone(6), *H264, "-g", "100000",
                 "-keyint_min", "100000", "-sc_threshold", "0", *AAC),
                seconds=6, size=(320, 240), fps=10, codec="h264", has_audio=True),
        # 480x360 stored with 4:3 pixels: shown as 640x360 (16:9), like HDV's 1440x1080.
        _sample("anamorphic", ".mp4",
                (*timecoded(480, 360), *tone(3), "-vf", "setsar=4/3", *H264, *AAC),
                seconds=3, size=(480, 360), fps=25, codec="h264", display=(640, 360), sample_aspect="4:3",
                has_audio=True),
        # The audio track starts 0.5 s into the video (its first packet at 0.479 s: AAC's 1024
        # priming samples), not silence added in front; 50 ms beeps at 1, 2, 3, 4 s.
        _sample("late_audio", ".mp4",
                (*timecoded(seconds=5), *beeps(4.5, 0.5), *H264, *AAC),
                seconds=5, size=(320, 240), fps=25, codec="h264", has_audio=True, audio_offset=0.5,
                beeps=(1.0, 2.0, 3.0, 4.0)),
        # A broken upload: the index is at the front (faststart), the media data cut at 60 %.
        _sample("truncated_mp4", ".mp4",
                (*timecoded(seconds=5), *tone(5), *H264, *AAC, "-movflags", "+faststart"),
                seconds=5, size=(320, 240), fps=25, codec="h264", has_audio=True, finish=truncate(0.6),
                refused=CorruptMedia),
        _sample("silent", ".mp4", (*timecoded(), *H264),
                seconds=3, size=(320, 240), fps=25, codec="h264", has_audio=False, audio_offset=None),
        _sample("surround", ".mp4", (*timecoded(), *tone(3, "5.1"), *H264, *AAC),
                seconds=3, size=(320, 240), fps=25, codec="h264", has_audio=True),
        _sample("fps60", ".mp4", (*timecoded(fps=60), *tone(3), *H264, *AAC),
                seconds=3, size=(320, 240), fps=60, codec="h264", has_audio=True),
        _sample("portrait", ".mp4", (*timecoded(270, 480, fps=30), *tone(3), *H264, *AAC),
                seconds=3, size=(270, 480), fps=30, codec="h264", has_audio=True),
        # One GOP longer than the clip, with B-frames: every cut lands between keyframes.
        _sample("long_gop_bframes", ".mp4",
                (*timecoded(fps=30, seconds=5), *tone(5), *H264, "-g", "250", "-keyint_min", "250",
                 "-sc_threshold", "0", "-bf", "3", *AAC),
                seconds=5, size=(320, 240), fps=30, codec="h264", has_audio=True),
        # A minute of small video, so a render that keeps its end shows whether it seeks.
        # Keyframes at 0, 25, 50 s only (no scene-cut ones where the luma ramp wraps).
        _sample("long_clip", ".mp4",
                (*timecoded(160, 90, fps=10, seconds=60, ramp=10), *tone(60), *H264, "-g", "250",
                 "-sc_threshold", "0", *AAC),
                seconds=60, size=(160, 90), fps=10, codec="h264", has_audio=True, ramp=10,
                keyframe_interval=25),
        Sample("audio_only", ".m4a", (*tone(3), *AAC), duration=3, has_audio=True,
               display=(0, 0), fps=0, codec="", refused=UnsupportedMedia),
        Sample("text_file", ".mp4", (), duration=0, has_audio=False, display=(0, 0), fps=0, codec="",
               audio_offset=None, finish=text("This is not a video.\n" * 40), refused=UnsupportedMedia),
    ]
    return {sample.name: sample for sample in samples}


SAMPLES: dict[str, Sample] = _samples()


def build(name: str, directory: Path) -> Path:
    """Write sample ``name`` as ``directory/<name><suffix>`` unless it is there; return its path.

    Written under a temporary name and renamed, so an interrupted build is never reused.
    """
    sample = SAMPLES[name]
    path = Path(directory) / sample.filename
    if path.exists():
        return path
    partial = path.with_name(f"partial-{sample.filename}")
    if sample.args:
        args = [*sample.args, *BITEXACT]
        if sample.piped:
            with open(partial, "wb") as out:
                ffmpeg([*args, "pipe:1"], stdout=out.fileno())
        else:
            ffmpeg([*args, str(partial)])
    if sample.finish is not None:
        sample.finish(partial)
    partial.replace(path)
    return path
