"""Warm worker processes for the server's SHORT blocking media calls (probe, filmstrip, waveform).

Why processes, and warm ones: a PyAV call holds the GIL in its per-packet Python (a thread
would lag the event loop by tens of ms), and ``import av`` costs ~130 ms, so a process per
call would be slower than the call. The pool starts its workers with ``spawn`` (never a
``fork`` of a process running an event loop and threads), imports the media modules in
each once, lowers their priority so the server's loop keeps a core, and keeps them.
A worker exits as soon as the server is gone, even SIGKILLed (the OOM killer): nothing
else would end it, since it holds its own call queue's pipe open, and with it the
multiprocessing resource tracker that waits for every holder of its pipe to go.

A call that takes longer than its timeout (a file that makes FFmpeg spin) has its
workers killed and replaced: FFmpeg cannot be interrupted, and a worker that never
returns would take a slot for good. A worker that dies (a crash inside FFmpeg) breaks
the executor for every call in flight; those are retried once on a fresh pool, so only a
file that crashes a worker twice fails, with :class:`WorkerCrashed`.

Long jobs (trim, split, render) do not belong here: they are durable jobs with progress
and cancellation, run by the job workers.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from core.media.errors import MediaError

log = logging.getLogger("nve.media.pool")

T = TypeVar("T")

WARM_MODULES = ("core.media.ingest", "core.media.filmstrip", "core.media.waveform")
DEFAULT_TIMEOUT = 60.0


class WorkerTimeout(MediaError):
    """The call ran past its timeout; its worker was replaced."""

    status = 503


class WorkerCrashed(MediaError):
    """The worker process died on this call (twice)."""

    status = 422


def _init_worker(niceness: int, modules: tuple[str, ...]) -> None:
    # The parent handles Ctrl-C and shuts the pool down; a worker must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness:
        os.nice(niceness)
    threading.Thread(target=_exit_with_parent, name="nve-parent-watch", daemon=True).start()
    for module in modules:
        __import__(module)


def _exit_with_parent() -> None:
    # A spawned process's parent sentinel is a pipe only the parent holds open: EOF is its death.
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)  # mid-call or idle alike: nobody is left to want a result


def _ready() -> int:
    return os.getpid()


class MediaPool:
    """``await pool.run(fn, *args)`` runs ``fn`` (a module-level, picklable function) in a worker.

    With ``warm`` (the default), :meth:`start` starts all ``size`` workers at once so the
    first request does not pay for ``import av``; without it a worker starts on first use
    (for short-lived servers, tests, that may never make a media call). :meth:`close`
    stops them.
    """

    def __init__(self, size: int = 1, *, timeout: float = DEFAULT_TIMEOUT, niceness: int = 5,
                 modules: tuple[str, ...] = WARM_MODULES, warm: bool = True) -> None:
        if size < 1:
            raise ValueError("a media pool needs at least one worker")
        self.size = size
        self.timeout = timeout
        self._niceness = niceness
        self._modules = modules
        self._warm_on_start = warm
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.size, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self._niceness, self._modules))

    async def start(self) -> None:
        """Make the pool usable; when warm, return once every worker has imported the media modules."""
        self._closed = False
        self._executor = self._new_executor()
        if self._warm_on_start:
            await self._warm(self._executor)

    async def _warm(self, executor: ProcessPoolExecutor) -> None:
        # The executor spawns a worker per call while none is idle, so `size` concurrent
        # calls start all of them.
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(executor, _ready) for _ in range(self.size)))

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """``fn(*args)`` in a worker; its exceptions are raised here (MediaError included)."""
        for attempt in (1, 2):
            executor = self._executor
            if executor is None or self._closed:
                raise RuntimeError("the media pool is not running")
            future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
            try:
                return await asyncio.wait_for(future, self.timeout if timeout is None else timeout)
            except TimeoutError:
                log.warning("media call %s%r timed out; replacing the workers", fn.__name__, args)
                self._replace(executor)
                raise WorkerTimeout(f"The media worker took too long on {fn.__name__}") from None
            except BrokenProcessPool:
                self._replace(executor)
                if attempt == 2:
                    raise WorkerCrashed("The media worker crashed on this file") from None
                log.warning("media worker died during %s%r; retrying once", fn.__name__, args)
        raise AssertionError("unreachable")

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Kill ``broken``'s workers and put a fresh executor in its place (once per break)."""
        if self._executor is not broken or self._closed:
            return
        self._executor = self._new_executor()
        processes = _processes(broken)
        broken.shutdown(wait=False, cancel_futures=True)
        _kill(processes)

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting calls, let running ones finish within ``grace`` s, then kill."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is None:
            return
        processes = _processes(executor)
        executor.shutdown(wait=False, cancel_futures=True)

        def join() -> None:
            for process in processes:
                process.join(grace)

        await asyncio.get_running_loop().run_in_executor(None, join)
        _kill(processes)


def _processes(executor: ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
    # ProcessPoolExecutor can neither cancel a running call nor kill its workers before
    # Python 3.14 (terminate_workers); its process table is the only handle on them.
    return list((getattr(executor, "_processes", None) or {}).values())


def _kill(processes: list[multiprocessing.process.BaseProcess]) -> None:
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(1.0)
