"""The circuit breaker as a pure state machine, driven by a fake clock."""

from __future__ import annotations

import pytest

from core.kv.breaker import BreakerState, CircuitBreaker, reconnect_delay
from tests.kv.helpers import FakeClock


def test_reconnect_delay_grows_by_50ms_up_to_2s() -> None:
    assert [reconnect_delay(n) for n in (1, 2, 3, 10)] == pytest.approx([0.05, 0.1, 0.15, 0.5])
    assert reconnect_delay(40) == 2.0
    assert reconnect_delay(1000) == 2.0


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.allow_request()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow_request()


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=FakeClock())
    for _ in range(10):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_probe_only_after_the_reconnect_delay() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, clock=clock)
    breaker.record_failure()
    assert breaker.seconds_until_probe() == pytest.approx(0.05)
    assert not breaker.begin_probe()
    clock.advance(0.05)
    assert breaker.seconds_until_probe() == 0
    assert breaker.begin_probe()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow_request(), "only the probe touches the server while half-open"
    assert not breaker.begin_probe(), "one probe at a time"


def test_failed_probes_back_off_linearly_then_cap() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, clock=clock)
    breaker.record_failure()
    delays = []
    for _ in range(45):
        delays.append(breaker.seconds_until_probe())
        clock.advance(delays[-1])
        assert breaker.begin_probe()
        breaker.record_failure()
        assert breaker.state is BreakerState.OPEN
    assert delays[:3] == pytest.approx([0.05, 0.1, 0.15])
    assert delays[-1] == 2.0
    assert breaker.failed_attempts == 46


def test_successful_probe_closes_and_resets() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(1)
    assert breaker.begin_probe()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failed_attempts == 0
    breaker.record_failure()
    assert breaker.allow_request(), "the count starts again from zero"
    breaker.record_failure()
    assert breaker.seconds_until_probe() == pytest.approx(0.05), "backoff starts again too"


def test_late_results_while_open_are_ignored() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, clock=clock)
    breaker.record_failure()
    due = breaker.seconds_until_probe()
    breaker.record_failure()
    breaker.record_success()
    assert breaker.state is BreakerState.OPEN
    assert breaker.seconds_until_probe() == due


def test_listener_sees_each_transition_once() -> None:
    clock = FakeClock()
    seen: list[tuple[str, str]] = []
    breaker = CircuitBreaker(failure_threshold=1, clock=clock,
                             on_change=lambda old, new: seen.append((old.value, new.value)))
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(1)
    breaker.begin_probe()
    breaker.record_success()
    breaker.record_success()
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
