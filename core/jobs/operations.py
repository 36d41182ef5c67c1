"""The operations a job can run: request validation, file naming, and the media call.

A job's ``params`` name its source by filename in MEDIA_DIR (never a path: the server
and the workers, possibly on other machines, share MEDIA_DIR but not their paths). Its
outputs are named from the operationId and the attempt (``trim-<hex>.mp4``, then
``trim-<hex>.r2.mp4`` for a second attempt, ...): unique, safe, and a worker that lost
its lease can remove its own output without touching the next attempt's. Results have
the contract's shape: ``{filename, url, duration}``, trim adds ``cut: {start, end}``,
split adds ``parts`` (both parts; filename/url/duration are part one's) and ``cut: {at}``,
process adds ``render`` (which path the render took and what it re-encoded).

A ``process`` job that is a full re-encode long enough to split (:func:`chunk_plan`) runs
as a parent of ``render-chunk`` jobs (core/jobs/worker.py). Its pieces (the chunks' video
files, its audio) are hidden files named ``.<parent id>.piece...``: attempts of the parent
leave them for the next attempt to reuse (:func:`remove_outputs` skips them), and they are
removed when the parent ends (:func:`remove_pieces`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import NotFound, ValidationError
from core.media.chunks import Chunk, join, plan_chunks, render_audio, render_chunk
from core.media.ingest import preview_path
from core.media.process import choose, process
from core.media.proxy import make_proxy
from core.media.split import split
from core.media.trim import MODES, trim
from core.shapes import Enum, FileName, Named, Number, Obj, Prop, greater
from core.storage import is_regular_file, preview_url, video_url
from core.timeline import validate_edits

Progress = Callable[[float, str | None], None]
ShouldCancel = Callable[[], bool]

OPERATIONS = ("trim", "split", "process")
"""What clients may ask for; the server also runs ``ingest`` jobs (a browser proxy per upload)."""
OUTPUT_MAX = 100
"""Longest ``output`` label of a process request."""
CHUNK = "render-chunk"
"""The operation of a chunk of a parent ``process`` job (never asked for by a client)."""
PIECE = ".piece"
"""What follows a parent's operation id in the ids of its chunks and the names of its pieces."""


def new_operation_id(operation: str) -> str:
    return f"{operation}-{uuid.uuid4().hex}"


FILE_NAME = Named("FileName", FileName(),
                  description="A file directly in the media directory: [A-Za-z0-9._-], not starting with a dot")
MODE = Enum(MODES, default="copy")
_TIME = Number(minimum=0, noun="a number of seconds")
_SOURCE = Prop(FILE_NAME, required=True)

TRIM_REQUEST = Named("TrimRequest", Obj({
    "filename": _SOURCE,
    "startTime": Prop(_TIME, required=True),
    "endTime": Prop(_TIME, required=True),
    "mode": Prop(MODE),
}, rules=(greater("endTime", "startTime"),), description="endTime must be greater than startTime (a 400 otherwise)."))

SPLIT_REQUEST = Named("SplitRequest", Obj({
    "filename": _SOURCE,
    "splitTime": Prop(Number(minimum=0, above=0, noun=_TIME.noun, above_says="must be after the start of the video"),
                      required=True),
    "mode": Prop(MODE),
}))

OUTPUT = FileName(max_length=OUTPUT_MAX)
"""``output?`` of a process request: a name the result file starts with (``.mp4`` optional)."""


def source_path(media_dir: Path, filename: object, field: str = "filename") -> Path:
    """The existing file ``filename`` names in ``media_dir``; 400 if not a plain name, 404 if absent."""
    name: str = FILE_NAME.check(filename, field)
    path = media_dir / name
    if not is_regular_file(path):  # a symlink is not followed out of the media directory
        raise NotFound(f"Video {filename} not found")
    return path


def _request(shape: Named, body: object, media_dir: Path) -> dict[str, Any]:
    """``body`` checked by ``shape``; an unknown source is a 404 before any other field is read."""
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object")
    source_path(media_dir, body.get("filename"))
    checked: dict[str, Any] = shape.check(body, "")
    return checked


def trim_params(body: object, media_dir: Path) -> dict[str, Any]:
    """``{filename, startTime, endTime, mode?}`` -> the job's params."""
    body = _request(TRIM_REQUEST, body, media_dir)
    return {"filename": body["filename"], "start": float(body["startTime"]), "end": float(body["endTime"]),
            "mode": body.get("mode", MODE.default)}


def split_params(body: object, media_dir: Path) -> dict[str, Any]:
    """``{filename, splitTime, mode?}`` -> the job's params (without a mode the worker chooses)."""
    body = _request(SPLIT_REQUEST, body, media_dir)
    return {"filename": body["filename"], "at": float(body["splitTime"]), "mode": body.get("mode")}


def output_label(body: dict[str, Any]) -> str | None:
    """``output?`` of a process request, without ``.mp4``: the result is output-process-<id>.mp4
    in the media dir, so it must be a name /videos serves."""
    output = body.get("output")
    if output is None:
        return None
    label: str = OUTPUT.check(output, "output")
    return label.removesuffix(".mp4")


def process_params(filename: object, edits: object, media_dir: Path, *, output: str | None = None,
                   filename_field: str = "filename", edits_field: str = "edits",
                   project_id: int | None = None) -> dict[str, Any]:
    """A source and an edit list (from the body or from a project) -> the job's params."""
    source_path(media_dir, filename, filename_field)
    params: dict[str, Any] = {"filename": filename, "edits": validate_edits(edits, edits_field)}
    if output is not None:
        params["output"] = output
    if project_id is not None:
        params["projectId"] = project_id
    return params


def output_names(operation: str, operation_id: str, attempt: int, params: dict[str, Any]) -> list[str]:
    """The files attempt ``attempt`` of the job writes in the media directory (two for
    split; none for ingest, whose proxy is a cached derivative of its source)."""
    if operation == "ingest":
        return []
    base = operation_id if attempt <= 1 else f"{operation_id}.r{attempt}"
    if operation == CHUNK:
        return [f".{base}.mp4"]  # hidden: a piece of the parent's output, never served
    if "output" in params:
        base = f"{params['output']}-{base}"
    if operation == "split":
        return [f"{base}-part1.mp4", f"{base}-part2.mp4"]
    return [f"{base}.mp4"]


def remove_outputs(media_dir: Path, operation: str, operation_id: str, attempt: int,
                   params: dict[str, Any]) -> None:
    """Delete what an attempt may have left: its outputs and any unfinished temporary file.

    Temporary outputs are hidden names that contain the output's stem (core.media.output),
    so the glob finds those of every attempt; only call this when no attempt is running.
    A parent's pieces are not an attempt's: they stay for the next one (:func:`remove_pieces`).
    """
    for name in output_names(operation, operation_id, attempt, params):
        (media_dir / name).unlink(missing_ok=True)
    pieces = operation_id + PIECE
    for leftover in media_dir.glob(f".*{operation_id}*"):
        if pieces not in leftover.name:
            leftover.unlink(missing_ok=True)


def remove_pieces(media_dir: Path, operation_id: str) -> None:
    """Delete the pieces of a parent job (its chunks' files, its audio): it has ended."""
    for piece in media_dir.glob(f".*{operation_id}{PIECE}*"):
        piece.unlink(missing_ok=True)


def chunk_id(parent_id: str, index: int) -> str:
    """The operation id of chunk ``index`` of ``parent_id``: sorts in chunk order, and names
    its files as pieces of the parent."""
    return f"{parent_id}{PIECE}{index:04d}"


def audio_name(parent_id: str) -> str:
    """The parent's audio piece: one name for every attempt, so a later attempt reuses it."""
    return f".{parent_id}{PIECE}-audio.m4a"


def chunk_plan(media_dir: Path, params: dict[str, Any], chunk_seconds: float) -> list[dict[str, Any]]:
    """The params of the chunks a ``process`` job is worth splitting into; [] to render it in one piece.

    Only a full re-encode is split (a smart render copies most of its output, chunking it
    would gain nothing), and only into two chunks or more (``chunk_seconds`` 0: never).
    Blocking (reads the keyframe index): in the media thread.
    """
    if chunk_seconds <= 0:
        return []
    src = media_dir / params["filename"]
    if choose(src, params["edits"]).path != "full":
        return []
    chunks = plan_chunks(src, params["edits"], chunk_seconds)
    if len(chunks) < 2:
        return []
    return [{"filename": params["filename"], "edits": params["edits"], "chunk": chunk.to_params(),
             "weight": chunk.frames} for chunk in chunks]


def render_audio_piece(media_dir: Path, parent_id: str, params: dict[str, Any], progress: Progress,
                       should_cancel: ShouldCancel) -> str | None:
    """Render (or find, from an earlier attempt) the parent's audio; its file name, None without audio."""
    name = audio_name(parent_id)
    if (media_dir / name).exists():  # written atomically: it exists whole or not at all
        return name
    done = render_audio(media_dir / params["filename"], media_dir / name, params["edits"], progress, should_cancel)
    return name if done is not None else None


def join_pieces(media_dir: Path, operation_id: str, attempt: int, params: dict[str, Any],
                chunk_results: list[dict[str, Any]], audio: str | None, progress: Progress,
                should_cancel: ShouldCancel) -> dict[str, Any]:
    """Join the chunks' files (in order) and the audio into the parent's output; its result."""
    [name] = output_names("process", operation_id, attempt, params)
    done = join(media_dir / name, [media_dir / result["file"] for result in chunk_results],
                media_dir / audio if audio is not None else None, progress, should_cancel)
    frames = sum(int(result["frames"]) for result in chunk_results)
    reason = choose(media_dir / params["filename"], params["edits"]).reason  # why it was not smart
    return {**_described(name, done["duration"]),
            "render": {"path": "chunked", "chunks": len(chunk_results), "reencodedFrames": frames,
                       "copiedFrames": 0, "reason": reason}}


def _described(filename: str, duration: float) -> dict[str, Any]:
    return {"filename": filename, "url": video_url(filename), "duration": duration}


def run(operation: str, operation_id: str, attempt: int, params: dict[str, Any], media_dir: Path,
        progress: Progress, should_cancel: ShouldCancel, codec_threads: int) -> dict[str, Any]:
    """Run one attempt of a job (blocking; in a worker process). Returns the contract's result."""
    src = media_dir / params["filename"]
    names = output_names(operation, operation_id, attempt, params)
    if operation == "trim":
        done = trim(src, media_dir / names[0], params["start"], params["end"], params["mode"],
                    progress, should_cancel)
        return {**_described(names[0], done["duration"]), "cut": done["cut"]}
    if operation == "split":
        done = split(src, media_dir / names[0], media_dir / names[1], params["at"], params["mode"],
                     progress, should_cancel)
        parts = [_described(name, part["duration"]) for name, part in zip(names, done["parts"])]
        return {**parts[0], "parts": parts, "cut": done["cut"]}
    if operation == "process":
        done = process(src, media_dir / names[0], params["edits"], progress, should_cancel,
                       threads=codec_threads)
        return {**_described(names[0], done["duration"]), "render": done["render"]}
    if operation == CHUNK:
        done = render_chunk(src, media_dir / names[0], params["edits"], Chunk.from_params(params["chunk"]),
                            progress, should_cancel, threads=codec_threads)
        return {"file": names[0], "frames": done["frames"]}
    if operation == "ingest":
        done = make_proxy(src, preview_path(src), progress, should_cancel, threads=codec_threads)
        return {"filename": params["filename"], "url": preview_url(params["filename"]), "duration": done["duration"]}
    raise ValueError(f"unknown operation {operation!r}")
