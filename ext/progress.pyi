"""Describes the compiled ext.progress module (built from ext/progress.pyx) for type checkers.

Only the names core/ and perf/ import are declared; change them with the .pyx.
"""

from collections.abc import Callable

from typing_extensions import disjoint_base

@disjoint_base  # a cdef class: no second extension base beside it
class Throttle:
    """Reports a monotonic output fraction at most every ``step`` or ``interval``."""

    def __init__(
        self,
        total_seconds: float,
        progress: Callable[[float, str | None], object] | None = None,
        should_cancel: Callable[[], object] | None = None,
        step: float = 0.01,
        interval: float = 0.1,
    ) -> None: ...
    @property
    def fraction(self) -> float: ...
    def check(self) -> None: ...
    def update(self, position_seconds: float) -> None: ...
    def finish(self, message: str | None = None) -> None: ...
