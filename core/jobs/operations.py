"""The operations a job can run: request validation, file naming, and the media call.

A job's ``params`` name its source by filename in MEDIA_DIR (never a path: the server
and the workers, possibly on other machines, share MEDIA_DIR but not their paths). Its
outputs are named from the operationId and the attempt (``trim-<hex>.mp4``, then
``trim-<hex>.r2.mp4`` for a second attempt, ...): unique, safe, and a worker that lost
its lease can remove its own output without touching the next attempt's. Results have
the contract's shape: ``{filename, url, duration}``, trim adds ``cut: {start, end}``,
split adds ``parts`` (both parts; filename/url/duration are part one's) and ``cut: {at}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import NotFound, ValidationError
from core.media.ingest import preview_path
from core.media.proxy import make_proxy
from core.media.render import render
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
    """
    for name in output_names(operation, operation_id, attempt, params):
        (media_dir / name).unlink(missing_ok=True)
    for leftover in media_dir.glob(f".*{operation_id}*"):
        leftover.unlink(missing_ok=True)


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
        done = render(src, media_dir / names[0], params["edits"], progress, should_cancel,
                      threads=codec_threads)
        return _described(names[0], done["duration"])
    if operation == "ingest":
        done = make_proxy(src, preview_path(src), progress, should_cancel, threads=codec_threads)
        return {"filename": params["filename"], "url": preview_url(params["filename"]), "duration": done["duration"]}
    raise ValueError(f"unknown operation {operation!r}")
