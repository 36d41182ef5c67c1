"""Progress throttling and cooperative cancellation for every media loop.

The API is deliberately small, because every loop (remux, render, filmstrip, waveform)
shares it::

    from ext.progress import Throttle

    throttle = Throttle(total_seconds, progress=None, should_cancel=None,
                        step=0.01, interval=0.1)
    throttle.update(position_seconds)  # once per packet or frame
    throttle.check()                   # cancellation only, for loops with no position
    throttle.finish(message=None)      # after the output file is complete
    throttle.fraction                  # the last fraction reported (0.0 before any)

- ``total_seconds`` is the duration of the OUTPUT. ``position_seconds`` is how far into
  the output the loop has got, so the fraction is ``position / total``.
- ``progress(fraction, message)`` is the caller's callback (``core.media`` convention).
  ``update()`` calls it only when the fraction grew by at least ``step`` or when at least
  ``interval`` seconds passed since the last report and the fraction still grew. Calling
  back on every packet costs 6-8 us a call (+28-66 % on a remux), throttled it is noise.
- The fractions reported are strictly increasing and capped at 0.999: only ``finish()``
  reports 1.0, exactly once (later ``finish()`` calls do nothing), so a client that sees
  100 % knows the file is complete.
- ``should_cancel()`` is checked on every ``update()`` and ``check()`` call; when it
  returns true they raise :class:`core.media.errors.Cancelled`.

Written in Cython's pure-Python syntax so that ``perf/media_bench.py`` can also run this
very file as plain Python and show what compiling it gains.
"""

import cython
from time import monotonic

from core.media.errors import Cancelled

if cython.compiled:
    from cython.cimports.posix.time import CLOCK_MONOTONIC, clock_gettime, timespec


@cython.cfunc
@cython.inline
def _now() -> cython.double:
    """Monotonic seconds; compiled, a direct clock_gettime (no Python call per update)."""
    if not cython.compiled:
        return monotonic()
    ts: timespec
    clock_gettime(CLOCK_MONOTONIC, cython.address(ts))
    return ts.tv_sec + ts.tv_nsec * 1e-9


@cython.cclass
class Throttle:
    """Reports a monotonic output fraction at most every ``step`` or ``interval``."""

    _total: cython.double
    _step: cython.double
    _interval: cython.double
    _last: cython.double
    _last_time: cython.double
    _finished: cython.bint
    _progress: object
    _should_cancel: object

    def __init__(self, total_seconds: float, progress=None, should_cancel=None,
                 step: float = 0.01, interval: float = 0.1):
        self._total = total_seconds
        self._step = step
        self._interval = interval
        self._last = 0.0
        self._last_time = _now()
        self._finished = False
        self._progress = progress
        self._should_cancel = should_cancel

    @property
    def fraction(self) -> float:
        """The last fraction reported through the callback (0.0 before the first)."""
        return self._last

    def check(self) -> None:
        """Raise Cancelled if the caller asked to cancel."""
        if self._should_cancel is not None and self._should_cancel():
            raise Cancelled("The operation was cancelled")

    def update(self, position_seconds: cython.double) -> None:
        """Check for cancellation, then report ``position / total`` if it moved enough."""
        fraction: cython.double
        now: cython.double
        if self._should_cancel is not None and self._should_cancel():
            raise Cancelled("The operation was cancelled")
        if self._progress is None or self._finished or self._total <= 0.0:
            return
        fraction = position_seconds / self._total
        if fraction > 0.999:
            fraction = 0.999
        if not fraction > self._last:  # also refuses NaN
            return
        now = _now()
        if fraction - self._last < self._step and now - self._last_time < self._interval:
            return
        self._last = fraction
        self._last_time = now
        self._progress(fraction, None)

    def finish(self, message=None) -> None:
        """Report exactly 1.0 (once): the output is complete."""
        if self._finished:
            return
        self._finished = True
        self._last = 1.0
        if self._progress is not None:
            self._progress(1.0, message)
