"""A stream of project writes through the API while a fault strikes, and the check of what survived.

:class:`ProjectLoad` runs ``writers`` clients. Each creates projects of its own, updates
each one twice and deletes every third, one request after another; every update sets
every mutable field, so each write leaves a whole state of its own that no other write
repeats. Every answer is recorded with the load's *clock*, a counter the test moves
around each fault (:meth:`ProjectLoad.fault`), so the check can tell which requests were
in flight at the instant the link died.

:meth:`ProjectLoad.check` then reads the table itself, not the API:

- no project exists twice, and none exists that no request asked for;
- an acknowledged write (201, 200, 204) took effect: the row holds its state, whole (or a
  later write's, see below);
- a write answered 503 changed nothing, unless it was in flight when the fault struck:
  PostgreSQL may then have committed it and only the acknowledgement was lost on the
  wire. No server can tell (a client that must know sends an idempotency key), so such a
  write may have taken effect, but only whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

ACKNOWLEDGED = frozenset({200, 201, 204})
UNAVAILABLE = 503
FIELDS = ("name", "description", "video_filename", "video_url", "timeline_state")
BACKOFF = 0.01
"""A client's pause after a 503, so that an outage does not turn the load into a busy loop."""

State = dict[str, Any]


@dataclass
class Write:
    """One request of the load: what it would leave in the row (None: no row), and its answer."""

    kind: str
    state: State | None
    start: int
    end: int | None = None
    status: int | None = None


@dataclass
class Project:
    writer: int
    key: str
    """Its ``video_filename``: unique, and never changed by an update."""
    writes: list[Write] = field(default_factory=list)


class ProjectLoad:
    def __init__(self, base_url: str, writers: int = 6) -> None:
        self._base_url = base_url
        self._writers = writers
        self.clock = 0
        self.faults: list[tuple[int, int]] = []
        """(clock before the fault began, clock once it was in effect), per fault."""
        self.projects: list[Project] = []
        self.unexpected: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def tick(self) -> int:
        """Move the clock; requests that start from now on carry the new value."""
        self.clock += 1
        return self.clock

    @contextlib.asynccontextmanager
    async def fault(self) -> AsyncIterator[None]:
        """Wrap the action that breaks the link; requests overlapping it are in doubt."""
        begins = self.tick()
        yield
        self.faults.append((begins, self.tick()))

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._writer(index)) for index in range(self._writers)]

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.gather(*self._tasks)

    def writes(self, since: int = 0, writer: int | None = None) -> list[Write]:
        """The finished writes that started at ``since`` or later (of one writer, or all)."""
        return [write for project in self.projects if writer is None or project.writer == writer
                for write in project.writes if write.start >= since and write.end is not None]

    async def wait_until_each_writer(self, since: int, count: int, statuses: frozenset[int],
                                     timeout: float = 30.0) -> None:
        """Until every writer has ``count`` finished writes since ``since`` answered with one of ``statuses``."""

        def met() -> bool:
            return all(sum(w.status in statuses for w in self.writes(since, writer)) >= count
                       for writer in range(self._writers))

        await self.wait_for(met, f"each writer {count} x {sorted(statuses)} since {since}", timeout)

    async def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Until ``condition()`` holds while the load runs; fails at once on an unexpected answer."""
        # A generous bound: only a broken recovery ever waits it out.
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if self.unexpected:
                raise AssertionError(f"unexpected answers: {self.unexpected[:5]}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not reached within {timeout} s: {what}")
            await asyncio.sleep(0.02)

    # -- the writers ------------------------------------------------------------------------

    async def _writer(self, index: int) -> None:
        async with httpx.AsyncClient(base_url=self._base_url, timeout=10) as http:
            serial = 0
            while not self._stopping:
                serial += 1
                project = Project(index, f"w{index}-{serial}.mp4")
                self.projects.append(project)
                state = _state(project.key, serial, 0)
                created = await self._send(http, project, "create", "POST", "/api/projects", state, {
                    "name": state["name"], "description": state["description"],
                    "videoFilename": state["video_filename"], "videoUrl": state["video_url"],
                    "timelineState": state["timeline_state"]})
                if created is None:
                    continue
                path = f"/api/projects/{created['id']}"
                for revision in (1, 2):
                    changed = _state(project.key, serial, revision)
                    await self._send(http, project, "update", "PUT", path, changed, {
                        "name": changed["name"], "description": changed["description"],
                        "timelineState": changed["timeline_state"]})
                if serial % 3 == 0:
                    await self._send(http, project, "delete", "DELETE", path, None, None)

    async def _send(self, http: httpx.AsyncClient, project: Project, kind: str, method: str, path: str,
                    state: State | None, body: dict[str, Any] | None) -> dict[str, Any] | None:
        """One request, recorded; returns the row it answered with, if it was acknowledged."""
        write = Write(kind, state, self.clock)
        project.writes.append(write)
        try:
            response = await http.request(method, path, json=body)
        except httpx.HTTPError as error:  # a hang or a dropped connection: never acceptable
            write.end = self.clock
            self.unexpected.append(f"{method} {path}: {error!r}")
            return None
        write.end, write.status = self.clock, response.status_code
        if response.status_code == UNAVAILABLE:
            problem = _unavailable_problem(response)
            if problem:
                self.unexpected.append(f"{method} {path}: {problem}")
            await asyncio.sleep(BACKOFF)
            return None
        if response.status_code not in ACKNOWLEDGED:
            self.unexpected.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            return None
        if response.status_code == 204:
            return None
        row = response.json()
        if _row_state(row) != state:
            self.unexpected.append(f"{method} {path} answered {row}, not the state sent {state}")
        return row

    # -- the check ---------------------------------------------------------------------------

    def in_doubt(self, write: Write) -> bool:
        """Whether ``write`` was in flight while a fault struck (its acknowledgement may be all it lost)."""
        assert write.end is not None
        return any(write.start < in_effect and write.end >= begins for begins, in_effect in self.faults)

    def possible_states(self, project: Project) -> list[State | None]:
        """What the row may hold now: the last acknowledged state, or that of a later write in doubt."""
        settled: State | None = None
        doubtful: list[State | None] = []
        for write in project.writes:
            if write.status in ACKNOWLEDGED:
                settled, doubtful = write.state, []
            elif write.end is not None and self.in_doubt(write):
                doubtful.append(write.state)
        return [settled, *doubtful]

    async def check(self, dsn: str) -> None:
        """Assert the module docstring's rules against the table."""
        assert not self.unexpected, self.unexpected[:10]
        connection = await asyncpg.connect(dsn)
        try:
            rows = await connection.fetch(f"SELECT {', '.join(FIELDS)}, timeline_state::text AS timeline "
                                          "FROM projects")
        finally:
            await connection.close()
        stored: dict[str, list[State]] = {}
        for row in rows:
            state = {name: row[name] for name in FIELDS if name != "timeline_state"}
            state["timeline_state"] = json.loads(row["timeline"])
            stored.setdefault(state["video_filename"], []).append(state)
        twice = {key: states for key, states in stored.items() if len(states) > 1}
        assert not twice, f"projects stored more than once: {twice}"
        asked = {project.key for project in self.projects}
        assert set(stored) <= asked, f"rows nobody created: {set(stored) - asked}"
        for project in self.projects:
            actual = stored.get(project.key, [None])[0]
            allowed = self.possible_states(project)
            assert actual in allowed, (f"{project.key}: the table holds {actual}, expected one of {allowed}; "
                                       f"writes {[(w.kind, w.status, w.start, w.end) for w in project.writes]}")


def _state(key: str, serial: int, revision: int) -> State:
    """The whole state of ``key`` after its ``revision``-th write: unique to that write."""
    tag = f"{key[:-4]}.r{revision}"
    return {"name": f"project {tag}", "description": f"written by {tag}", "video_filename": key,
            "video_url": f"/videos/{key}",
            "timeline_state": {"currentTime": revision + 0.5, "zoom": 1.5,
                               "markers": [{"time": serial + 0.25, "label": tag}], "edits": []}}


def _row_state(row: dict[str, Any]) -> State:
    return {name: row.get(name) for name in FIELDS}


def _unavailable_problem(response: httpx.Response) -> str | None:
    """Why a 503 is not the contract's JSON error (None if it is)."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return f"503 with content-type {response.headers.get('content-type')!r}"
    body = response.json()
    if not isinstance(body, dict) or set(body) != {"error"} or "unavailable" not in str(body["error"]):
        return f"503 body {body!r}"
    return None
