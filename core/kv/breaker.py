"""A circuit breaker for one remote dependency: a pure state machine with an injectable clock.

It decides, without doing any I/O itself, whether a caller may touch the dependency now:

- ``CLOSED``: calls go through; ``failure_threshold`` consecutive failures open the breaker.
- ``OPEN``: calls are refused at once (the caller fails fast instead of waiting on a dead
  server). After a reconnect delay the breaker lets one probe through.
- ``HALF_OPEN``: a probe is in flight; ordinary calls are still refused. A successful probe
  closes the breaker, a failed one opens it again with a longer delay.

The reconnect delay after the n-th failed attempt in a row is ``min(n * 50 ms, 2 s)`` (the
contract's reconnect backoff), so a server that comes back is noticed within 2 s at most.
Whoever owns the breaker runs the probes (see :mod:`core.kv.connection`); keeping the
machine free of I/O lets tests drive it with a fake clock.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class BreakerState(enum.Enum):
    """Where the breaker stands; the value is the label used in metrics."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def reconnect_delay(attempt: int) -> float:
    """Seconds to wait before reconnect attempt ``attempt + 1`` after ``attempt`` failures in a row."""
    return min(attempt * 0.05, 2.0)


Listener = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    """Consecutive-failure breaker; see the module docstring for the states."""

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        delay: Callable[[int], float] = reconnect_delay,
        clock: Callable[[], float] = time.monotonic,
        on_change: Listener | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self._threshold = failure_threshold
        self._delay = delay
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive failed calls while closed
        self._attempts = 0  # consecutive failed reconnect attempts (the opening counts as one)
        self._probe_at = 0.0

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def failed_attempts(self) -> int:
        """Failed reconnect attempts in a row since the breaker last opened (0 while closed)."""
        return self._attempts

    def allow_request(self) -> bool:
        """Whether an ordinary call may touch the dependency now."""
        return self._state is BreakerState.CLOSED

    def seconds_until_probe(self) -> float:
        """How long until :meth:`begin_probe` will succeed (0 when due; 0 too while closed)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._probe_at - self._clock())

    def begin_probe(self) -> bool:
        """Move OPEN -> HALF_OPEN when the reconnect delay has passed; True if the probe may run."""
        if self._state is not BreakerState.OPEN or self._clock() < self._probe_at:
            return False
        self._set(BreakerState.HALF_OPEN)
        return True

    def record_success(self) -> None:
        """A call or probe succeeded. A late success while OPEN is ignored: the probe decides."""
        if self._state is BreakerState.CLOSED:
            self._failures = 0
        elif self._state is BreakerState.HALF_OPEN:
            self._failures = 0
            self._attempts = 0
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """A call or probe failed. Late failures of calls begun before the opening are ignored."""
        if self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self._threshold:
                self._open()
        elif self._state is BreakerState.HALF_OPEN:
            self._open()

    def _open(self) -> None:
        self._attempts += 1
        self._probe_at = self._clock() + self._delay(self._attempts)
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        old, self._state = self._state, state
        if self._on_change is not None and old is not state:
            self._on_change(old, state)
