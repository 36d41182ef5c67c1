"""One attempt of a job in a worker: why it stops, and the progress it has to publish.

The media function runs in the worker's media thread and polls :attr:`Attempt.stopping`;
the worker's loop sets it (:meth:`Attempt.stop`) with the strongest reason it heard, and
receives the media callback's values through :func:`on_loop` into :meth:`Attempt.report`,
from which its lease keeper publishes the newest one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from core.jobs.queue import RUNNING_MAX_PROGRESS, Job

STOP_LOST, STOP_CANCEL, STOP_TIMEOUT, STOP_SHUTDOWN = "lost", "cancel", "timeout", "shutdown"
"""Why an attempt stops: its lease was lost, a cancel, its time limit, the worker stopping."""
_STOP_RANK = {STOP_SHUTDOWN: 1, STOP_TIMEOUT: 2, STOP_CANCEL: 3, STOP_LOST: 4}


class Attempt:
    """One running attempt: the flag the media thread polls and the progress it reported.

    ``parent`` is the attempt of the parent job this worker runs a chunk of, if any.
    """

    def __init__(self, job: Job, parent: Attempt | None = None) -> None:
        self.job = job
        self.parent = parent
        self.stopping = threading.Event()
        self.reason: str | None = None
        self.published = job.progress
        self.pending: tuple[float, str | None] | None = None

    def stop(self, reason: str) -> None:
        """Ask the media function to stop; a stronger reason (lost > cancel > timeout > shutdown) wins."""
        if self.reason is None or _STOP_RANK[reason] > _STOP_RANK[self.reason]:
            self.reason = reason
        self.stopping.set()

    def report(self, fraction: float, message: str | None) -> None:
        """The media callback's value, on the loop; kept if it moves past what was published."""
        percent = min(round(max(fraction, 0.0) * 100, 1), RUNNING_MAX_PROGRESS)
        if percent > self.published and (self.pending is None or percent > self.pending[0]):
            self.pending = (percent, message)

    def follow_parent(self) -> None:
        """A chunk of a parent whose attempt stops: cancelled with it, else handed back."""
        if self.parent is not None and self.parent.reason is not None:
            self.stop(STOP_CANCEL if self.parent.reason == STOP_CANCEL else STOP_SHUTDOWN)

    def ends(self, error: str | None) -> bool:
        """Whether the job ends with this attempt when it did not succeed (not lost, not handed back)."""
        return self.reason != STOP_LOST and (error is not None or self.reason != STOP_SHUTDOWN)


def on_loop(report: Callable[[float, str | None], None]) -> Callable[..., None]:
    """A media callback for the media thread that hands each value to ``report`` on this loop."""
    loop = asyncio.get_running_loop()

    def progress(fraction: float, message: str | None = None) -> None:
        loop.call_soon_threadsafe(report, fraction, message)

    return progress
