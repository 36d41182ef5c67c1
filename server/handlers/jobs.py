"""REST handlers for operations (docs/CONTRACT.md section 2, "Operations (jobs)") and their wiring.

``POST /api/edit/{trim,split,process}`` validate the request (400 naming the field, 404
for an unknown video or project), enqueue a durable job and answer 202
``{operationId, operation, status}``. An ``Idempotency-Key`` header that was used before
returns the job it created (202 again, with ``Idempotent-Replayed: true``).
``GET /api/jobs/:operationId`` is the job's state; ``POST /api/jobs/:operationId/cancel``
cancels a queued job at once (200) or asks a running one to stop (202), and is a 409 for
a finished job.

The queue, the bridge from job events to the WebSocket hub and the local workers are the
app's services (server/app.py); these handlers only use ``request.app.jobs``.
"""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import Counter

from core.errors import Conflict, NotFound, ValidationError
from core.jobs import operations
from core.jobs.queue import Job, JobQueue
from core.registry import REGISTRY
from core.timeline import as_int
from server.http.request import Request
from server.http.response import Response, json_response
from server.policy.access import check_media_owner, owner_of
from server.policy.idempotency import REPLAYED, idempotency_key

ENQUEUED = Counter("nve_jobs_enqueued_total", "Jobs created through the API, by operation",
                   ["operation"], registry=REGISTRY)
CANCELS = Counter("nve_jobs_cancel_requests_total", "Accepted cancel requests, by the job's status then",
                  ["status"], registry=REGISTRY)


def _queue(request: Request) -> JobQueue:
    return request.app.jobs


async def _enqueue(request: Request, operation: str, params: dict[str, Any]) -> Response:
    await check_media_owner(request, params["filename"])
    job, created = await _queue(request).enqueue(await owner_of(request), operations.new_operation_id(operation),
                                                 operation, params, idempotency_key(request))
    if created:
        ENQUEUED.labels(operation).inc()
    headers = [] if created else [REPLAYED]
    return json_response({"operationId": job.operation_id, "operation": job.operation, "status": job.status},
                         202, headers)


async def edit_trim(request: Request) -> Response:
    params = operations.trim_params(await request.json(), request.app.settings.media_path)
    return await _enqueue(request, "trim", params)


async def edit_split(request: Request) -> Response:
    params = operations.split_params(await request.json(), request.app.settings.media_path)
    return await _enqueue(request, "split", params)


async def edit_process(request: Request) -> Response:
    body = await request.json()
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object")
    media_dir = request.app.settings.media_path
    output = operations.output_label(body)
    project_id = body.get("projectId")
    if project_id is not None:
        project_id = as_int(project_id)
        if project_id is None:
            raise ValidationError("Field 'projectId' must be an integer", "projectId")
        project = json.loads((await request.app.projects.get(await owner_of(request), project_id)).json)
        timeline = project.get("timeline_state") or {}
        params = operations.process_params(project["video_filename"], timeline.get("edits", []), media_dir,
                                           output=output, filename_field="videoFilename",
                                           edits_field="timelineState.edits", project_id=project_id)
    elif "filename" in body:
        if "edits" not in body:
            raise ValidationError("Field 'edits' is required with 'filename'", "edits")
        params = operations.process_params(body["filename"], body["edits"], media_dir, output=output)
    else:
        raise ValidationError("Field 'projectId' (or 'filename' with 'edits') is required", "projectId")
    return await _enqueue(request, "process", params)


async def _job(request: Request, operation_id: str) -> Job:
    job = await _queue(request).get(await owner_of(request), operation_id)
    if job is None:
        raise NotFound(f"Job {operation_id} not found")
    return job


async def get_job(request: Request) -> Response:
    return json_response((await _job(request, request.path_params["operationId"])).to_api())


async def cancel_job(request: Request) -> Response:
    operation_id = request.path_params["operationId"]
    job = await _queue(request).cancel(await owner_of(request), operation_id)
    if job is None:
        finished = await _job(request, operation_id)
        raise Conflict(f"Job {operation_id} is already {finished.status}", jobStatus=finished.status)
    CANCELS.labels("queued" if job.finished else "running").inc()
    return json_response(job.to_api(), 200 if job.finished else 202)
