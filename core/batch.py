"""Calls of one event-loop turn as one (the DataLoader pattern).

A :class:`TurnBatcher` hands each caller a future for its key; the keys asked for during
one turn of the event loop go to ``send`` together, in one call, and each future gets the
answer at its key's position. Under load many requests reach the same lookup in the same
turn (their reads were ready together), so one round trip serves them all.

The batch is sent by a task started from a ``loop.call_soon`` of the turn's first call:
that callback runs behind every callback already ready, so after every caller of this
turn has arrived, never before; a lookup that starts after a write finished is sent after
that write.

The task is the batch's own: a caller that stops waiting (its future cancelled) leaves the
others' send running. Whatever ``send`` raises reaches every caller still waiting; if the
task itself is cancelled (the loop is closing), so are the callers' futures.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TurnBatcher(Generic[K, V]):
    """``batcher(key)``: a future of ``send([... key ...])[i]``, sent with its turn's other keys."""

    def __init__(self, send: Callable[[list[K]], Awaitable[Sequence[V]]]) -> None:
        self._send = send
        self._keys: list[K] = []
        self._waiters: list[asyncio.Future[V]] = []
        # Batches in flight, referenced so that no task is collected before it is done.
        self._sending: set[asyncio.Task[None]] = set()

    def __call__(self, key: K) -> asyncio.Future[V]:
        loop = asyncio.get_running_loop()
        if not self._waiters:
            loop.call_soon(self._flush)
        waiter: asyncio.Future[V] = loop.create_future()
        self._keys.append(key)
        self._waiters.append(waiter)
        return waiter

    def _flush(self) -> None:
        keys, waiters = self._keys, self._waiters
        self._keys, self._waiters = [], []
        task = asyncio.get_running_loop().create_task(self._run(keys, waiters))
        self._sending.add(task)
        task.add_done_callback(functools.partial(self._sent, waiters))

    def _sent(self, waiters: list[asyncio.Future[V]], task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        # Only futures the batch never settled: its task was cancelled, even before it started.
        for waiter in waiters:
            waiter.cancel()

    async def _run(self, keys: list[K], waiters: list[asyncio.Future[V]]) -> None:
        try:
            answers = await self._send(keys)
            if len(answers) != len(keys):
                raise RuntimeError(f"a batch of {len(keys)} keys got {len(answers)} answers")
        except Exception as error:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            return
        for waiter, answer in zip(waiters, answers):
            if not waiter.done():
                waiter.set_result(answer)
