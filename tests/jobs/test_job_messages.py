"""The PL/pgSQL that NOTIFYs job messages is held to their one definition (core/jobs/messages.py).

``nve_job_event()`` and the trigger of sql/003_jobs.sql (sql/004_owners.sql) build each job
message in SQL, where the Python definition cannot be imported. So this test drives every
transition of a job through the queue's own API against a real PostgreSQL, LISTENing on
``nve_job_events``, and checks each step's NOTIFYs three ways:

- every payload is ``<owner> LF <message>`` and decodes *strictly* to the definition (an
  unknown or missing field, a null or a wrong type fails the decode);
- the last payload of a step equals, field for field and in JSON value terms, what
  :meth:`Job.to_message` builds from the row as it now is;
- and what the latest-state fallback (:meth:`JobQueue.event`) answers for it.

A step ends at a sentinel NOTIFY sent after it committed: PostgreSQL delivers notifications
in commit order, so everything the step announced has arrived by then, and nothing is
waited for by the clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import asyncpg
import msgspec
import pytest

from core.jobs import messages
from core.jobs.queue import CANCELLED_TEXT, Job, JobEvent, JobQueue
from server.ws.messages import unpack

CHANNEL = "nve_job_events"
OWNER = "tenant:acme"
PARAMS = {"filename": "clip.mp4", "start": 0.0, "end": 1.0, "mode": "copy"}
SENTINEL = "end of step"


class Listener:
    """A LISTEN on the job events channel that collects each step's payloads."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.heard: asyncio.Queue[str] = asyncio.Queue()

    async def step(self, action: Awaitable[Any]) -> list[str]:
        """Run ``action``; the payloads NOTIFYed by it, in order."""
        await action
        await self.connection.execute("SELECT pg_notify($1, $2)", CHANNEL, SENTINEL)
        payloads = []
        while (payload := await asyncio.wait_for(self.heard.get(), 10)) != SENTINEL:
            payloads.append(payload)
        return payloads


@pytest.fixture
async def listener(migrated_dsn: str) -> AsyncIterator[Listener]:
    connection = await asyncpg.connect(migrated_dsn)
    listening = Listener(connection)
    await connection.add_listener(CHANNEL, lambda *args: listening.heard.put_nowait(args[3]))
    yield listening
    await connection.close()


def as_sent(payload: str) -> tuple[messages.JobMessage, Any]:
    """The message of a NOTIFY payload read the way every node reads it (strictly), and its plain JSON."""
    envelope = unpack(payload.encode())
    assert envelope.owner == OWNER
    return messages.decode(envelope.payload), msgspec.json.decode(envelope.payload)


async def announced(queue: JobQueue, listener: Listener, action: Awaitable[Any], operation_id: str,
                    count: int = 1) -> Job:
    """Run ``action``, expect ``count`` NOTIFYs, and check the last against the Python builders."""
    sent = [as_sent(payload) for payload in await listener.step(action)]
    assert len(sent) == count, sent
    job = await queue.get(OWNER, operation_id)
    assert job is not None
    for message, plain in sent:
        # Nothing of what PostgreSQL sent is lost or added by reading it with the definition.
        assert msgspec.json.decode(messages.encode(message)) == plain
    if count == 0:
        return job
    message, plain = sent[-1]
    assert message == job.to_message()
    assert await queue.event(operation_id) == JobEvent(OWNER, plain["type"], plain["data"])
    if count == 2:  # done: progress 100 is announced first, by the same UPDATE (sql/003_jobs.sql)
        assert sent[0][0] == dataclasses.replace(job, status="running").to_message()
    return job


async def test_every_transition_notifies_the_message_python_builds(queue: JobQueue, listener: Listener,
                                                                    migrated_dsn: str) -> None:
    # queued -> running -> progress (odd values, a note that needs escaping) -> done
    job = await announced(queue, listener, queue.enqueue(OWNER, "trim-1", "trim", PARAMS), "trim-1")
    assert job.to_message() == messages.ProgressMessage(messages.Progress(
        operation_id="trim-1", operation="trim", progress=0, message="Queued"))
    await announced(queue, listener, queue.claim("w1", 30), "trim-1")
    await announced(queue, listener, queue.progress("trim-1", "w1", 100 / 3, 'Fading «in» "x"\\\n\t☃'), "trim-1")
    await announced(queue, listener, queue.progress("trim-1", "w1", 50, None), "trim-1")
    result = {"filename": "trim-1.mp4", "url": "/videos/trim-1.mp4", "duration": 1.25,
              "cut": {"start": 0, "end": 1.25}, "parts": [], "ok": True, "none": None}
    job = await announced(queue, listener, queue.complete("trim-1", "w1", result), "trim-1", count=2)
    assert job.to_message() == messages.CompleteMessage(messages.Complete(operation_id="trim-1", result=result))

    # failed by its worker
    await announced(queue, listener, queue.enqueue(OWNER, "split-2", "split", PARAMS), "split-2")
    await announced(queue, listener, queue.claim("w1", 30), "split-2")
    job = await announced(queue, listener, queue.fail("split-2", "w1", "Encoder failed: «x»"), "split-2")
    assert job.to_message() == messages.ErrorMessage(messages.Failure(operation_id="split-2",
                                                                      error="Encoder failed: «x»"))

    # cancelled while queued; cancelled while running (the request itself is not announced)
    await announced(queue, listener, queue.enqueue(OWNER, "process-3", "process", PARAMS), "process-3")
    job = await announced(queue, listener, queue.cancel(OWNER, "process-3"), "process-3")
    assert job.error == CANCELLED_TEXT
    await announced(queue, listener, queue.enqueue(OWNER, "process-4", "process", PARAMS), "process-4")
    await announced(queue, listener, queue.claim("w1", 30), "process-4")
    await announced(queue, listener, queue.cancel(OWNER, "process-4"), "process-4", count=0)
    await announced(queue, listener, queue.finish_cancelled("process-4", "w1"), "process-4")

    # handed back at shutdown, requeued by the reaper, then failed by it (attempts spent)
    await announced(queue, listener, queue.enqueue(OWNER, "trim-5", "trim", PARAMS), "trim-5")
    await announced(queue, listener, queue.claim("w1", 30), "trim-5")
    await announced(queue, listener, queue.hand_back("trim-5", "w1"), "trim-5")
    for expected in ("queued", "failed"):
        await announced(queue, listener, queue.claim("w2", 0.01), "trim-5")
        await asyncio.sleep(0.05)
        job = await announced(queue, listener, queue.reap(lambda _: None), "trim-5")
        assert job.status == expected

    # The schema allows a job without a message: ``message`` is then absent, never null.
    await announced(queue, listener, queue.enqueue(OWNER, "trim-6", "trim", PARAMS), "trim-6")
    job = await announced(queue, listener, listener.connection.execute(
        "UPDATE jobs SET message = NULL WHERE operation_id = 'trim-6'"), "trim-6")
    assert "message" not in messages.to_data(job.to_message())


@pytest.mark.parametrize("text, reason", [
    ('{"type":"progress","data":{"operationId":"a","operation":"trim","progress":1,"extra":1}}', "unknown field"),
    ('{"type":"progress","data":{"operationId":"a","operation":"trim"}}', "missing required field `progress`"),
    ('{"type":"progress","data":{"operationId":"a","operation":"trim","progress":"1"}}', "Expected `float`"),
    ('{"type":"progress","data":{"operationId":"a","operation":"trim","progress":1,"message":null}}',
     "Expected `str`, got `null`"),
    ('{"type":"complete","data":{"operationId":"a","result":null}}', "Expected `object`, got `null`"),
    ('{"type":"error","data":{"operationId":"","error":"x"}}', "length >= 1"),
    ('{"type":"done","data":{"operationId":"a"}}', "Invalid value 'done'"),
])
def test_the_decoder_refuses_what_the_definition_lacks(text: str, reason: str) -> None:
    """What the test above relies on: a drifted payload does not decode."""
    with pytest.raises(messages.InvalidJobMessage, match=reason):
        messages.decode(text)


def test_the_field_table_is_read_off_the_structs() -> None:
    assert messages.FIELDS == {
        "progress": {"operationId", "operation", "progress", "message", "sentAt"},
        "complete": {"operationId", "result"},
        "error": {"operationId", "error"},
    }
    assert messages.FINAL_KINDS < messages.KINDS == set(messages.FIELDS)
