"""ProjectStore's creations, updates and pages batched per event-loop turn (core/projects.py,
core/batch.py): one statement and one commit for the writes of a turn, one read for identical
pages, and each caller still gets exactly its own answer: its new row, 404 for a project it does
not own or that does not exist, 412 for a stale If-Match, a second update of one project in the
same turn applied after the first, an idempotency key honoured inside a batch as across them."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.db.pool import Database
from core.errors import NotFound, PreconditionFailed, ValidationError
from core.projects import Document, ProjectChanges, ProjectStore
from tests.db.test_project_lookups import count_acquires, new

ALICE, BOB = "tenant:alice", "tenant:bob"


def named(name: str) -> ProjectChanges:
    return ProjectChanges(name=name, has_name=True)


def project_id(doc: Document) -> int:
    return int(json.loads(doc.json)["id"])


async def outcome(update: object) -> tuple[int, str] | type[BaseException]:
    """(version, name) of the updated row, or the error's type."""
    try:
        doc: Document = await update  # type: ignore[misc]
    except (NotFound, PreconditionFailed) as error:
        return type(error)
    row = json.loads(doc.json)
    assert doc.version == row["version"]
    return row["version"], row["name"]


async def test_updates_of_one_turn_are_one_statement_and_each_gets_its_own_answer(db: Database) -> None:
    store = ProjectStore(db)
    a1, a2, a3 = [project_id((await store.create(ALICE, new(f"a{n}")))[0]) for n in (1, 2, 3)]
    b1 = project_id((await store.create(BOB, new("b1")))[0])
    asks = [
        (store.update(ALICE, a3, named("x3"), None), (2, "x3")),
        (store.update(ALICE, a1, named("x1"), 1), (2, "x1")),  # If-Match of the current version
        (store.update(ALICE, a2, named("x2"), 7), PreconditionFailed),  # a stale one
        (store.update(ALICE, b1, named("stolen"), None), NotFound),  # another owner's
        (store.update(BOB, b1, ProjectChanges(timeline_state={"edits": []}, has_timeline=True), None), (2, "b1")),
        (store.update(ALICE, a3, named("y3"), None), (3, "y3")),  # the same project again: after the first
        (store.update(ALICE, a1, named("z1"), 1), PreconditionFailed),  # ... and its If-Match went stale
        (store.update(ALICE, 2**31 - 2, named("none"), None), NotFound),
    ]
    uses = count_acquires(db)
    got = await asyncio.gather(*(outcome(update) for update, _ in asks))
    assert got == [expected for _, expected in asks]
    # One connection for the batch; the two 412s and the 404s each read the current row on their own.
    assert len(uses) == 1 + 4
    assert json.loads((await store.get(BOB, b1)).json)["timeline_state"] == {"edits": []}
    assert json.loads((await store.get(ALICE, a2)).json)["name"] == "a2", "a stale update changed nothing"


async def test_many_writers_of_many_projects_lose_no_update(db: Database) -> None:
    store = ProjectStore(db)
    ids = [project_id((await store.create(ALICE, new(f"p{n}")))[0]) for n in range(5)]

    async def writer(index: int) -> None:
        for round_ in range(20):
            await store.update(ALICE, ids[(index + round_) % len(ids)], ProjectChanges(), None)

    await asyncio.gather(*(writer(index) for index in range(8)))
    versions = [(await store.get(ALICE, one)).version for one in ids]
    assert sum(versions) == len(ids) + 8 * 20  # each update counted once, none lost or doubled


async def test_a_failing_batch_runs_each_update_alone(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A statement error costs the batch, not its callers: each update then runs alone."""
    store = ProjectStore(db)
    mine, theirs = [project_id((await store.create(owner, new("p")))[0]) for owner in (ALICE, BOB)]
    # Fault injected: the batch's statement fails in PostgreSQL (a deadlock would, the same way).
    monkeypatch.setattr("core.projects._UPDATE_MANY", "SELECT 1 / 0, $1::integer[], $2::text[], $3::boolean[], "
                        "$4::text[], $5::boolean[], $6::text[], $7::boolean[], $8::text[], $9::integer[]")
    got = await asyncio.gather(outcome(store.update(ALICE, mine, named("m"), None)),
                               outcome(store.update(ALICE, theirs, named("t"), None)),
                               outcome(store.update(BOB, theirs, named("b"), 1)))
    assert got == [(2, "m"), NotFound, (2, "b")]


@pytest.mark.parametrize("changes", [named("n"), ProjectChanges(description=None, has_description=True)])
async def test_a_single_update_is_the_one_row_statement(db: Database, changes: ProjectChanges) -> None:
    store = ProjectStore(db)
    one = project_id((await store.create(ALICE, new("p")))[0])
    doc = await store.update(ALICE, one, changes, None)
    assert doc.version == 2 and json.loads(doc.json)["id"] == one


async def test_creations_of_one_turn_are_one_statement_and_keys_still_hold(db: Database) -> None:
    store = ProjectStore(db)
    before, _ = await store.create(ALICE, new("old"), "k-old")
    uses = count_acquires(db)
    got = await asyncio.gather(
        store.create(ALICE, new("n1")), store.create(BOB, new("n2")),
        store.create(ALICE, new("k1"), "k-new"), store.create(ALICE, new("k1 again"), "k-new"),
        store.create(ALICE, new("replayed"), "k-old"), store.create(BOB, new("bob's k-old"), "k-old"))
    names = [json.loads(doc.json)["name"] for doc, _ in got]
    assert [created for _, created in got] == [True, True, True, False, False, True]
    # A key used earlier in the batch, or before it, answers that key's project; keys are per owner.
    assert names == ["n1", "n2", "k1", "k1", "old", "bob's k-old"]
    assert got[3][0] == got[2][0] and got[4][0] == before
    ids = [project_id(doc) for doc, _ in got]
    assert len({ids[0], ids[1], ids[2], ids[5]}) == 4
    assert len(uses) == 1 + 2  # the batch, then the two replays' lookups
    for (doc, _), owner in zip(got, (ALICE, BOB, ALICE, ALICE, ALICE, BOB)):
        assert await store.get(owner, project_id(doc)) == doc


async def test_identical_pages_of_one_turn_are_read_once(db: Database) -> None:
    store = ProjectStore(db)
    for n in range(3):
        await store.create(ALICE, new(f"a{n}"))
    await store.create(BOB, new("b"))
    first = await store.page(ALICE, 2, None)
    uses = count_acquires(db)
    pages = await asyncio.gather(*(store.page(ALICE, 2, None) for _ in range(5)), store.page(BOB, 2, None),
                                 store.page(ALICE, 2, first.next_cursor), store.page(ALICE, 2, "not-a-cursor"),
                                 return_exceptions=True)
    assert len(uses) == 1
    assert pages[:5] == [first] * 5 and first.next_cursor is not None
    assert [row["name"] for row in json.loads(pages[5].json)] == ["b"]  # type: ignore[union-attr]
    assert [row["name"] for row in json.loads(pages[6].json)] == ["a0"]  # type: ignore[union-attr]
    assert isinstance(pages[7], ValidationError)  # a bad cursor fails its own caller only
    await store.update(ALICE, project_id(Document(0, json.dumps(json.loads(first.json)[1]).encode())),
                       named("moved up"), None)
    assert json.loads((await store.page(ALICE, 2, None)).json)[0]["name"] == "moved up"
