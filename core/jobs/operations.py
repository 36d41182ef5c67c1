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
from core.storage import is_regular_file, is_safe_name, preview_url, video_url
from core.media.ingest import preview_path
from core.media.proxy import make_proxy
from core.media.render import render
from core.media.split import split
from core.media.trim import MODES, trim
from core.timeline import is_number, validate_edits

Progress = Callable[[float, str | None], None]
ShouldCancel = Callable[[], bool]

OPERATIONS = ("trim", "split", "process")
"""What clients may ask for; the server also runs ``ingest`` jobs (a browser proxy per upload)."""
OUTPUT_MAX = 100
"""Longest ``output`` label of a process request."""


def new_operation_id(operation: str) -> str:
    return f"{operation}-{uuid.uuid4().hex}"


def source_path(media_dir: Path, filename: object, field: str = "filename") -> Path:
    """The existing file ``filename`` names in ``media_dir``; 400 if not a plain name, 404 if absent."""
    if not isinstance(filename, str) or not filename:
        raise ValidationError(f"Field '{field}' must be a non-empty string", field)
    if not is_safe_name(filename):
        raise ValidationError(f"Field '{field}' must be a plain file name", field)
    path = media_dir / filename
    if not is_regular_file(path):  # a symlink is not followed out of the media directory
        raise NotFound(f"Video {filename} not found")
    return path


def _seconds(body: dict[str, Any], field: str) -> float:
    if field not in body:
        raise ValidationError(f"Field '{field}' is required", field)
    value = body[field]
    if not is_number(value):
        raise ValidationError(f"Field '{field}' must be a number of seconds", field)
    if value < 0:
        raise ValidationError(f"Field '{field}' must be at least 0", field)
    return float(value)


def _mode(body: dict[str, Any]) -> str:
    mode = body.get("mode", "copy")
    if mode not in MODES:
        raise ValidationError(f"Field 'mode' must be one of {', '.join(MODES)}", "mode")
    return mode


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object")
    return body


def trim_params(body: object, media_dir: Path) -> dict[str, Any]:
    """``{filename, startTime, endTime, mode?}`` -> the job's params."""
    body = _object(body)
    filename = body.get("filename")
    source_path(media_dir, filename)
    start, end = _seconds(body, "startTime"), _seconds(body, "endTime")
    if end <= start:
        raise ValidationError("Field 'endTime' must be greater than startTime", "endTime")
    return {"filename": filename, "start": start, "end": end, "mode": _mode(body)}


def split_params(body: object, media_dir: Path) -> dict[str, Any]:
    """``{filename, splitTime, mode?}`` -> the job's params (without a mode the worker chooses)."""
    body = _object(body)
    filename = body.get("filename")
    source_path(media_dir, filename)
    at = _seconds(body, "splitTime")
    if at == 0:
        raise ValidationError("Field 'splitTime' must be after the start of the video", "splitTime")
    return {"filename": filename, "at": at, "mode": _mode(body) if "mode" in body else None}


def output_label(body: dict[str, Any]) -> str | None:
    """``output?`` of a process request: a name the result file starts with (``.mp4`` optional)."""
    output = body.get("output")
    if output is None:
        return None
    # The result is output-process-<id>.mp4 in the media dir: it must be servable by /videos.
    if not isinstance(output, str) or not is_safe_name(output) or len(output) > OUTPUT_MAX:
        raise ValidationError(f"Field 'output' must be a plain file name of at most {OUTPUT_MAX} characters",
                              "output")
    return output.removesuffix(".mp4")


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
