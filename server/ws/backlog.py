"""A queue of outgoing messages that coalesces progress: latest value wins, finals stay.

Used wherever messages must wait: for a client whose socket buffer is over budget, and
for the Redis bus while Redis is unreachable. Job messages are keyed by operationId, so
a newer progress (or the final complete/error) replaces an older progress of the same
operation in place; messages without an operation (pongs, errors, pings) get keys of
their own and are all kept. Upstream filtering guarantees nothing follows a final of the
same operation, so a final is never replaced.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")
Key = str | int


class Backlog(Generic[T]):
    __slots__ = ("_items", "nbytes", "_seq")

    def __init__(self) -> None:
        self._items: dict[Key, tuple[T, int]] = {}
        self.nbytes = 0
        """Sum of the sizes given with the items now held."""
        self._seq = 0

    def put(self, item: T, size: int, operation_id: str | None = None) -> bool:
        """Queue ``item``; return True when it replaced an older one of the same operation."""
        key: Key
        if operation_id is None:
            self._seq += 1
            key = self._seq
        else:
            key = operation_id
        old = self._items.get(key)
        self._items[key] = (item, size)
        self.nbytes += size
        if old is None:
            return False
        self.nbytes -= old[1]
        return True

    def popleft(self) -> tuple[Key, T, int]:
        key = next(iter(self._items))
        item, size = self._items.pop(key)
        self.nbytes -= size
        return key, item, size

    def take_all(self) -> list[tuple[Key, T, int]]:
        items = [(key, item, size) for key, (item, size) in self._items.items()]
        self._items.clear()
        self.nbytes = 0
        return items

    def put_back(self, items: Iterable[tuple[Key, T, int]]) -> None:
        """Requeue taken items ahead of what was queued since; newer progress still wins."""
        newer = self._items
        self._items = {key: (item, size) for key, item, size in items}
        self.nbytes = sum(size for _, size in self._items.values())
        for key, (item, size) in newer.items():
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            self._items[key] = (item, size)
            self.nbytes += size

    def __len__(self) -> int:
        return len(self._items)
