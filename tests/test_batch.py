"""core/batch.py: the calls of one event-loop turn are sent together, each gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from core.batch import TurnBatcher


class Recorder:
    """A ``send`` that records its batches and answers ``key * 10``; it can be held or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.error: Exception | None = None

    async def __call__(self, keys: list[int]) -> list[int]:
        self.batches.append(keys)
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return [key * 10 for key in keys]


async def test_calls_of_one_turn_are_one_batch_and_each_gets_its_answer() -> None:
    send = Recorder()
    batcher: TurnBatcher[int, int] = TurnBatcher(send)
    assert await asyncio.gather(*(batcher(key) for key in (3, 1, 3, 2))) == [30, 10, 30, 20]
    assert send.batches == [[3, 1, 3, 2]]
    # The next turn is the next batch.
    assert await batcher(7) == 70
    assert send.batches[1:] == [[7]]


async def test_a_call_made_while_a_batch_is_in_flight_goes_to_the_next_batch() -> None:
    send = Recorder()
    send.release.clear()
    batcher: TurnBatcher[int, int] = TurnBatcher(send)
    first = batcher(1)
    while not send.batches:
        await asyncio.sleep(0)
    second = batcher(2)  # the first batch was sent without it: it must not be lost
    send.release.set()
    assert (await first, await second) == (10, 20)
    assert send.batches == [[1], [2]]


async def test_an_error_reaches_every_caller_of_the_batch() -> None:
    send = Recorder()
    send.error = ConnectionResetError("gone")
    batcher: TurnBatcher[int, int] = TurnBatcher(send)
    results = await asyncio.gather(batcher(1), batcher(2), return_exceptions=True)
    assert results == [send.error, send.error]
    send.error = None
    assert await batcher(3) == 30  # the batcher is not stuck after a failed batch


async def test_a_caller_that_stops_waiting_does_not_stop_the_others_batch() -> None:
    send = Recorder()
    send.release.clear()
    batcher: TurnBatcher[int, int] = TurnBatcher(send)

    async def ask(key: int) -> int:
        return await batcher(key)

    tasks = [asyncio.create_task(ask(key)) for key in (1, 2, 3)]
    while not send.batches:
        await asyncio.sleep(0)
    tasks[1].cancel()
    await asyncio.sleep(0)
    send.release.set()
    assert await tasks[0] == 10 and await tasks[2] == 30
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]


async def test_a_send_that_answers_the_wrong_number_of_keys_fails_every_caller() -> None:
    async def short(keys: list[int]) -> list[int]:
        return keys[:1]

    batcher: TurnBatcher[int, int] = TurnBatcher(short)
    results = await asyncio.gather(batcher(1), batcher(2), return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results), results


async def test_a_batch_cancelled_before_it_started_cancels_its_callers_and_leaves_the_batcher_usable() -> None:
    send = Recorder()
    batcher: TurnBatcher[int, int] = TurnBatcher(send)
    waiter = batcher(1)
    await asyncio.sleep(0)  # the turn ended: the batch's task exists, and has not run yet
    for task in batcher._sending:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiter, 5)  # not a hang (which wait_for would turn into TimeoutError)
    assert send.batches == []
    assert await batcher(2) == 20
