"""The progress an upload publishes to WebSocket followers of its operation id.

An upload is an operation like a job (docs/CONTRACT.md section 3): ``progress`` messages
(operation ``upload``, whole percents, at most every 100 ms), then ``complete`` with the
stored video or ``error``. The client may choose the operation id (:func:`operation_id`)
to follow it before the upload starts; ids are the owner's (the hub keys operations by
owner and id), so another owner's use of one is neither seen nor disturbed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("nve.uploads")

Publish = Callable[[str, dict[str, Any], str], Awaitable[None]]
"""``publish(kind, data, owner)``: the WebSocket hub's publish."""

_OPERATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def operation_id(chosen: str | None, default: str) -> str:
    """The client's choice of operation id when it is a valid one, else ``default``."""
    return chosen if chosen and _OPERATION_ID.fullmatch(chosen) else default


class UploadProgress:
    """Publishes an upload's ``progress``, then its end.

    Silent while the total size is unknown; a failure to publish is logged and never
    fails the upload.
    """

    INTERVAL = 0.1

    def __init__(self, publish: Publish, operation_id: str, owner: str, total: int | None, done: int = 0) -> None:
        self.operation_id = operation_id
        self._publish_to = publish
        self._owner = owner
        self._total = total
        self._done = done
        self._sent = -1
        self._at = 0.0

    async def advance(self, count: int) -> None:
        self._done += count
        if not self._total:
            return
        percent = min(99, self._done * 100 // self._total)  # 100 is for when it is stored
        now = time.monotonic()
        if percent > self._sent and now - self._at >= self.INTERVAL:
            self._sent, self._at = percent, now
            await self._publish("progress", {"operation": "upload", "progress": percent,
                                             "message": "Uploading"})

    async def complete(self, result: dict[str, Any]) -> None:
        await self._publish("progress", {"operation": "upload", "progress": 100, "message": "Stored"})
        await self._publish("complete", {"result": result})

    async def fail(self, message: str) -> None:
        await self._publish("error", {"error": message})

    async def _publish(self, kind: str, data: dict[str, Any]) -> None:
        try:
            await self._publish_to(kind, {"operationId": self.operation_id, **data}, self._owner)
        except Exception:
            log.exception("publishing upload %s %s failed", kind, self.operation_id)
