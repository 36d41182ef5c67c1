"""ProjectStore.get batched (core/projects.py, core/batch.py): the gets of one event-loop turn
share one statement and one pooled connection, and each still gets exactly its own answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from core.db.pool import Database
from core.errors import NotFound, Unavailable
from core.projects import Document, NewProject, ProjectChanges, ProjectStore
from tests.conftest import PG_HOST, PG_PORT, dsn_through
from tests.tcpproxy import TCPProxy

ALICE, BOB = "tenant:alice", "tenant:bob"


def new(name: str) -> NewProject:
    return NewProject(name=name, description=None, video_filename="a.mp4", video_url="/videos/a.mp4",
                      timeline_state={})


def count_acquires(db: Database) -> list[int]:
    """Wrap ``db.acquire`` (this instance's) to count its uses: one element per acquire."""
    uses: list[int] = []
    acquire = db.acquire

    def counted() -> Any:
        uses.append(1)
        return acquire()

    db.acquire = counted  # type: ignore[method-assign]  # spy on this one instance
    return uses


async def outcome(lookup: Any) -> Document | type[BaseException]:
    try:
        doc: Document = await lookup
    except (NotFound, Unavailable) as error:
        return type(error)
    return doc


async def test_gets_of_one_turn_are_one_statement_and_each_gets_its_own_answer(db: Database) -> None:
    store = ProjectStore(db)
    alices = [(await store.create(ALICE, new(f"a{n}")))[0] for n in range(3)]
    bobs = [(await store.create(BOB, new(f"b{n}")))[0] for n in range(2)]
    ids = {doc: int(doc.json.split(b'"id":')[1].split(b",")[0]) for doc in (*alices, *bobs)}
    missing = max(ids.values()) + 100
    asks: list[tuple[str, int, Document | type[BaseException]]] = [
        *((ALICE, ids[doc], doc) for doc in alices),
        *((BOB, ids[doc], doc) for doc in bobs),
        (ALICE, ids[bobs[0]], NotFound),  # another owner's project is not found
        (BOB, ids[alices[1]], NotFound),
        (ALICE, missing, NotFound),
        (BOB, ids[bobs[1]], bobs[1]),  # the same key twice in a batch
        ("session:nobody", ids[alices[0]], NotFound),
    ]
    uses = count_acquires(db)
    got = await asyncio.gather(*(outcome(store.get(owner, project_id)) for owner, project_id, _ in asks))
    assert got == [expected for _, _, expected in asks]
    assert len(uses) == 1  # one pooled connection, one statement, for the whole turn


async def test_a_get_started_after_a_write_finished_sees_the_write(db: Database) -> None:
    store = ProjectStore(db)
    doc, _ = await store.create(ALICE, new("v"))
    project_id = int(doc.json.split(b'"id":')[1].split(b",")[0])
    finished = 1  # the version of the last update that has returned

    async def writer() -> None:
        nonlocal finished
        for _ in range(30):
            finished = (await store.update(ALICE, project_id, ProjectChanges(), None)).version

    async def reader() -> None:
        while not writing.done():
            floor = finished
            assert (await store.get(ALICE, project_id)).version >= floor

    writing = asyncio.create_task(writer())
    await asyncio.gather(writing, *(reader() for _ in range(8)))
    assert (await store.get(ALICE, project_id)).version == finished == 31


async def test_a_waiter_that_gives_up_does_not_break_the_others(db: Database) -> None:
    store = ProjectStore(db)
    doc, _ = await store.create(ALICE, new("c"))
    project_id = int(doc.json.split(b'"id":')[1].split(b",")[0])
    gate = asyncio.Event()
    acquire = db.acquire

    @contextlib.asynccontextmanager
    async def held() -> AsyncIterator[Any]:
        await gate.wait()  # the batch is in flight until the gate opens
        async with acquire() as connection:
            yield connection

    db.acquire = held  # type: ignore[method-assign]  # hold this one instance's batch
    tasks = [asyncio.create_task(store.get(ALICE, project_id)) for _ in range(4)]
    await asyncio.sleep(0.05)
    tasks[1].cancel()
    await asyncio.sleep(0)
    gate.set()
    assert [await tasks[n] for n in (0, 2, 3)] == [doc, doc, doc]
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    db.acquire = acquire  # type: ignore[method-assign]
    assert await store.get(ALICE, project_id) == doc


async def wait_for(check: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_an_outage_fails_every_waiter_with_unavailable_and_then_recovers(migrated_dsn: str) -> None:
    assert Unavailable.status == 503
    proxy = TCPProxy(PG_HOST, PG_PORT)
    await proxy.start()
    db = Database(dsn_through(proxy.port, migrated_dsn.rsplit("/", 1)[1]), max_size=4)
    await db.open()
    try:
        store = ProjectStore(db)
        doc, _ = await store.create(ALICE, new("o"))
        project_id = int(doc.json.split(b'"id":')[1].split(b",")[0])
        await proxy.cut()  # the pooled connection dies under the batch's statement
        got = await asyncio.gather(*(outcome(store.get(owner, project_id)) for owner in (ALICE, BOB, ALICE)))
        assert got == [Unavailable] * 3
        assert not db.available
        assert await outcome(store.get(ALICE, project_id)) is Unavailable  # the latch answers at once
        await proxy.restore()

        async def recovered() -> bool:
            return await outcome(store.get(ALICE, project_id)) == doc

        await wait_for(recovered, "the pool to recover")
        assert await asyncio.gather(*(outcome(store.get(owner, project_id)) for owner in (ALICE, BOB))) == [
            doc, NotFound]
    finally:
        await db.close()
        await proxy.close()


async def test_concurrent_gets_through_the_server_during_an_outage_are_503s(
        migrated_dsn: str, start_server: Any) -> None:
    proxy = TCPProxy(PG_HOST, PG_PORT)
    await proxy.start()
    server = await start_server(database_url=dsn_through(proxy.port, migrated_dsn.rsplit("/", 1)[1]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
            created = await http.post("/api/projects", json={"name": "x", "videoFilename": "a.mp4",
                                                             "videoUrl": "/videos/a.mp4"})
            path = f"/api/projects/{created.json()['id']}"
            await proxy.cut()
            answers = await asyncio.gather(*(http.get(path) for _ in range(16)))
            assert [answer.status_code for answer in answers] == [503] * 16
            assert all("unavailable" in answer.json()["error"] for answer in answers)
            await proxy.restore()

            async def recovered() -> bool:
                answers = await asyncio.gather(*(http.get(path) for _ in range(4)))
                return all(answer.status_code == 200 and answer.json() == created.json() for answer in answers)

            await wait_for(recovered, "GETs to succeed again")
    finally:
        await proxy.close()
