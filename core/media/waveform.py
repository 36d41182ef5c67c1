"""Timeline waveform: the audio's peak level in N equal slices of its length, as JSON.

Peaks are absolute full-scale levels in 0..1 (the largest |sample| in the slice over all
channels), not normalised to the loudest slice, so silence reads 0 and a clip reads 1.
The per-sample reduction runs in ``ext.peaks`` (compiled; see perf/render_bench.py).

Peaks are placed on the video's timeline (core.media.probe.Timeline): audio that starts
half a second after the picture is drawn half a second in, with silence before it.

A video without audio gives ``{"audio": false, "peaks": [], "sample_rate": null}`` with its
duration, so a timeline can draw "no audio" rather than a flat line that looks like silence.
Results are cached on disk beside each other like the filmstrip (:func:`cached_waveform`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer

from core.media.decode import TolerantDecoder
from core.media.derived import is_fresh, write_json
from core.media.errors import InvalidRequest
from core.media.probe import described, open_input
from ext.peaks import BlockPeaks, reduce_peaks
from ext.progress import Throttle

DEFAULT_PEAKS = 1000
MAX_PEAKS = 20_000
# ~5 ms at 48 kHz: fine enough that any requested peak count is exact to the eye.
BLOCK = 256


def cached_waveform(src: str | os.PathLike[str], cache_dir: str | os.PathLike[str],
                    peaks: int = DEFAULT_PEAKS) -> dict[str, Any]:
    """The waveform of ``src`` stored as ``<cache_dir>/<source name>.waveform-<peaks>.json``, made if stale."""
    src, cache_dir = Path(src), Path(cache_dir)
    path = cache_dir / f"{src.name}.waveform-{peaks}.json"
    if is_fresh(src, path):
        cached: dict[str, Any] = json.loads(path.read_bytes())
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    result = waveform(src, peaks=peaks)
    write_json(path, result)
    return result


def waveform(src: str | os.PathLike[str], peaks: int = DEFAULT_PEAKS, *,
             should_cancel: Callable[[], bool] | None = None) -> dict[str, Any]:
    """``{"peaks": [float 0..1] * peaks, "duration", "sample_rate", "audio": bool}`` of ``src``'s first audio stream.

    The peaks cover the video's timeline (0 = its first frame, to its duration), not the
    audio's own span: audio that starts late or ends early leaves silence there, and
    audio before the first frame is left out, so a peak is drawn where it is heard.
    """
    if isinstance(peaks, bool) or not isinstance(peaks, int) or not 1 <= peaks <= MAX_PEAKS:
        raise InvalidRequest(f"peaks must be an integer from 1 to {MAX_PEAKS}")
    info = described(src)
    duration = float(info["duration"])
    if not info["has_audio"]:
        return {"peaks": [], "duration": duration, "sample_rate": None, "audio": False}
    throttle = Throttle(0.0, None, should_cancel)
    with open_input(src) as container:
        stream = container.streams.audio[0]
        sample_rate = stream.codec_context.sample_rate
        decoder = TolerantDecoder(stream, Path(src).name)
        # Planar float whatever the codec decodes to; a no-op for AAC (already fltp).
        resampler = av.AudioResampler(format="fltp")
        reducer = BlockPeaks(BLOCK)
        # Samples to skip (before the first frame) or to pad with silence (a late start).
        lead = round(float(info["audio_offset"]) * sample_rate)
        if lead > 0:
            reducer.feed(np.zeros((1, lead), dtype=np.float32))
        fed = max(lead, 0)
        for frame in chain(_decoded(container, stream, decoder), [None]):  # None drains the resampler
            throttle.check()
            for planar in resampler.resample(frame):
                samples = planar.to_ndarray()
                if lead < 0:
                    samples, lead = samples[:, -lead:], min(0, lead + samples.shape[1])
                if samples.shape[1]:
                    reducer.feed(np.ascontiguousarray(samples))
                    fed += samples.shape[1]
        missing = round(duration * sample_rate) - fed
        if missing > 0:
            reducer.feed(np.zeros((1, missing), dtype=np.float32))
    # Four decimals are below a pixel on any timeline and keep the JSON small.
    return {"peaks": [round(peak, 4) for peak in reduce_peaks(reducer.finish(), peaks)], "duration": duration,
            "sample_rate": sample_rate, "audio": True}


def _decoded(container: InputContainer, stream: AudioStream,
             decoder: TolerantDecoder[AudioFrame]) -> Iterator[AudioFrame]:
    """Every frame of ``stream``, the decoder's flush included (its last frames are lost without it)."""
    for packet in container.demux(stream):
        if packet.dts is not None:  # skip demux's end-of-stream marker: the flush drains instead
            yield from decoder.decode(packet)
    yield from decoder.decode(None)
