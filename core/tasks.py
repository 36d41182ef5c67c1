"""Small asyncio helpers shared by the services that own background tasks."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel each task (None is skipped) and wait until it has finished unwinding.

    Stopping a service must not return while its task may still touch what the caller is
    about to close (a pool, a connection), so cancelling alone is not enough.
    """
    pending = [task for task in tasks if task is not None]
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
