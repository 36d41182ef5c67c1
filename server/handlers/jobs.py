"""REST handlers for operations (CONTRACT.md section 2, "Operations (jobs)") and their wiring.

``POST /api/edit/{trim,split,process}`` validate the request (400 naming the field, 404
for an unknown video or project), enqueue a durable job and answer 202
``{operationId, operation, status}``. An ``Idempotency-Key`` header that was used before
returns the job it created (202 again, with ``Idempotent-Replayed: true``).
``GET /api/jobs/:operationId`` is the job's state; ``POST /api/jobs/:operationId/cancel``
cancels a queued job at once (200) or asks a running one to stop (202), and is a 409 for
a finished job.

:func:`install` puts all of it on an app: the queue (``app.jobs``), the routes, the bridge
from job events to the WebSocket hub, and the local worker processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from core.errors import Conflict, NotFound, ValidationError
from core.jobs import operations
from core.jobs.queue import Job, JobQueue
from core.jobs.supervisor import Supervisor
from core.metrics import REGISTRY
from core.timeline import as_int
from server.access import check_media_owner, owner_of
from server.http.request import Request
from server.http.response import Response, json_response
from server.idempotency import REPLAYED, idempotency_key
from server.jobs_bridge import JobEventBridge

if TYPE_CHECKING:
    from server.app import App
    from server.ws.hub import Hub

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


@dataclass
class JobsService:
    """What :func:`install` added to an app, for its start-up and shutdown hooks."""

    queue: JobQueue
    bridge: JobEventBridge
    supervisor: Supervisor | None

    async def start(self) -> None:
        await self.bridge.start()
        if self.supervisor is not None:
            await self.supervisor.start()

    async def stop(self) -> None:
        """Workers first (they hand their jobs back), then the event bridge."""
        if self.supervisor is not None:
            await self.supervisor.stop()
        await self.bridge.close()

    async def readiness(self) -> dict[str, object]:
        state: dict[str, object] = {}
        state["events"] = "listening" if self.bridge.listening.is_set() else "down"
        if self.supervisor is not None:
            state["workers"] = sum(1 for p in self.supervisor.processes if p is not None and p.returncode is None)
            state["workerRestarts"] = self.supervisor.restarts
        return state


def install(app: App, hub: Hub) -> JobsService:
    """Add the job system to ``app``: ``app.jobs``, the routes, the hub bridge, local workers.

    ``hub`` (the app's WebSocket hub) gets job events and its latest-state fallback;
    ``app.settings.workers`` local worker processes are supervised, configured by
    ``app.settings.jobs``. The service starts and stops with the app.
    """
    settings = app.settings.jobs
    queue = JobQueue(app.db.acquire, settings.max_attempts)
    app.jobs = queue  # type: ignore[attr-defined]
    add = app.router.add
    add("POST", "/api/edit/trim", edit_trim, rate_limited=True)
    add("POST", "/api/edit/split", edit_split, rate_limited=True)
    add("POST", "/api/edit/process", edit_process, rate_limited=True)
    add("GET", "/api/jobs/{operationId}", get_job)
    add("POST", "/api/jobs/{operationId}/cancel", cancel_job, rate_limited=True)
    # Local delivery only: PostgreSQL already NOTIFYs every node (see server/jobs_bridge.py).
    bridge = JobEventBridge(app.db.dsn, queue, hub.deliver_local)
    hub.latest.fallback = bridge.latest
    supervisor = None
    if app.settings.workers > 0:
        supervisor = Supervisor(app.settings.workers, app.db.dsn, app.settings.media_path, settings,
                                grace=app.settings.shutdown_timeout)
    service = JobsService(queue, bridge, supervisor)
    app.on_startup.append(service.start)
    app.on_shutdown.append(service.stop)
    app.readiness["jobs"] = service.readiness
    return service
