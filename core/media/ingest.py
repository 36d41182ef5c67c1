"""What every upload goes through before it is accepted, and the browser preview it gets.

:func:`ingest` runs on the finished upload, before its answer: the deep probe
(core.media.probe) refuses what is not a usable video (a truncated file is refused
saying where its data ends) and describes the rest. A file written as a stream (a
browser's MediaRecorder WebM, OBS recording to MKV) has no duration and no cues in its
header, so it is remuxed once into the same container, where FFmpeg's Matroska muxer
writes both: players can then show its length and seek in it.

A source the major browsers cannot play (HEVC, ProRes, MPEG-TS, AVI, PCM audio: see
``browser_playable``) gets a proxy (core.media.proxy), made by a durable ``ingest`` job
(operation id :func:`ingest_operation_id`) and kept in the media dir's cache as
``<source>.preview.mp4``. :func:`preview` says where the editor can play the video now.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import av

from core.media.derived import cache_path, is_fresh
from core.media.keyframes import INDEX
from core.media.output import atomic_output
from core.media.probe import DESCRIPTION, describe, open_input, probe_indexed
from core.storage import preview_url, video_url

PREVIEW = "preview.mp4"
STREAM_WRITTEN = ("matroska",)
"""Demuxers whose files lack duration and cues when written as a stream."""


def ingest(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Probe an upload (UnsupportedMedia / CorruptMedia when it is not usable), remux it
    in place when its header has no duration, and return its description and keyframe
    index (core.media.keyframes; the caller stores both once the file has its name)."""
    info, index = probe_indexed(path)
    if info["header_duration"] is None and info["format"].startswith(STREAM_WRITTEN):
        remux(path, "webm" if Path(path).suffix.lower() == ".webm" else "matroska")
        info, index = probe_indexed(path)
    return info, index


def remux(path: str | os.PathLike[str], format_name: str) -> None:
    """Rewrite ``path`` with its video and first audio stream copied into ``format_name``
    (on a seekable file the muxer writes duration and cues), replacing it atomically."""
    with open_input(path) as source, atomic_output(path) as temp:
        streams = [source.streams.video[0], *source.streams.audio[:1]]
        with av.open(str(temp), "w", format=format_name) as output:
            outputs = {stream.index: output.add_stream_from_template(stream) for stream in streams}
            for packet in source.demux(streams):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = outputs[packet.stream_index]
                output.mux(packet)


def discard(path: str | os.PathLike[str]) -> None:
    """Remove a stored upload, its description and keyframe index (an upload that could not be recorded)."""
    for leftover in (Path(path), cache_path(path, DESCRIPTION), cache_path(path, INDEX)):
        leftover.unlink(missing_ok=True)


def preview_path(src: str | os.PathLike[str]) -> Path:
    return cache_path(src, PREVIEW)


def ingest_operation_id(filename: str) -> str:
    """The operation id of the job that makes the proxy of ``filename`` (one per file)."""
    return f"ingest-{filename}"


def preview(src: str | os.PathLike[str], info: dict[str, Any]) -> dict[str, Any]:
    """Where a browser can play ``src`` now: ``{"status", "url", "operationId"}``.

    ``status`` is ``"source"`` (the file itself plays), ``"ready"`` (its proxy exists) or
    ``"pending"`` (operation ``operationId`` is making the proxy; follow it). The server
    turns a pending one into ``"failed"`` when that job ended without a proxy.
    """
    name = Path(src).name
    if info["browser_playable"]:
        return {"status": "source", "url": video_url(name), "operationId": None}
    ready = is_fresh(Path(src), preview_path(src))
    return {"status": "ready" if ready else "pending", "url": preview_url(name),
            "operationId": ingest_operation_id(name)}


def metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata document of ``path``: its description (stored on first use) and its ``preview``."""
    info = describe(path)
    return {**info, "preview": preview(path, info)}
