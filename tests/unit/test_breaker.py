from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from atlas.llm.base import ErrorKind, LLMError
from atlas.llm.breaker import CloudBreaker
from atlas.llm.config import BreakerConfig


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def server_error() -> LLMError:
    return LLMError(ErrorKind.SERVER, "500 from upstream")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CloudBreaker:
    return CloudBreaker("haiku", BreakerConfig(fail_max=3, reset_timeout_s=60.0), clock=clock)


def trip(b: CloudBreaker) -> None:
    for _ in range(3):
        assert b.allow()
        b.record_failure(server_error())


def test_three_failures_open_it(breaker: CloudBreaker, clock: FakeClock) -> None:
    for n in range(2):
        assert breaker.allow()
        breaker.record_failure(server_error())
        assert breaker.state == "closed"
        assert breaker.failure_count == n + 1
    assert breaker.allow()
    with capture_logs() as logs:
        breaker.record_failure(LLMError(ErrorKind.OVERLOADED, "529"))
    assert breaker.state == "open"
    assert breaker.opened_at == clock.now
    assert any(e["log_level"] == "warning" and "open" in e["event"] for e in logs)


def test_a_success_in_between_resets_the_count(breaker: CloudBreaker) -> None:
    for _ in range(2):
        breaker.record_failure(server_error())
    breaker.record_success()
    assert breaker.failure_count == 0
    for _ in range(2):
        breaker.record_failure(server_error())
    assert breaker.state == "closed"
    breaker.record_failure(server_error())
    assert breaker.state == "open"


def test_open_rejects_until_the_reset_timeout(breaker: CloudBreaker, clock: FakeClock) -> None:
    trip(breaker)
    assert not breaker.allow()
    clock.now += 59.9
    assert not breaker.allow()
    assert breaker.state == "open"


def test_after_the_timeout_exactly_one_trial(breaker: CloudBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.now += 60.0
    assert breaker.allow()
    assert breaker.state == "half_open"
    assert [breaker.allow() for _ in range(5)] == [False] * 5


def test_trial_success_closes(breaker: CloudBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.now += 61
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.opened_at is None
    assert all(breaker.allow() for _ in range(3))


def test_trial_failure_reopens_for_another_period(breaker: CloudBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.now += 61
    assert breaker.allow()
    breaker.record_failure(LLMError(ErrorKind.TIMEOUT, "no first token"))
    assert breaker.state == "open"
    assert breaker.opened_at == clock.now
    assert not breaker.allow()
    clock.now += 61
    assert breaker.allow()


@pytest.mark.parametrize(
    "err",
    [
        asyncio.CancelledError(),
        GeneratorExit(),
        LLMError(ErrorKind.AUTH, "invalid x-api-key"),
        LLMError(ErrorKind.BAD_REQUEST, "400"),
        ValueError("our own bug"),
    ],
    ids=["cancelled", "generator-exit", "auth", "bad-request", "not-an-llm-error"],
)
def test_non_upstream_errors_never_count(breaker: CloudBreaker, err: BaseException) -> None:
    breaker.record_failure(server_error())
    for _ in range(10):
        assert breaker.allow()
        breaker.record_failure(err)
    assert breaker.state == "closed"
    # They do not reset the count either: two more real failures open it.
    assert breaker.failure_count == 1
    breaker.record_failure(server_error())
    breaker.record_failure(server_error())
    assert breaker.state == "open"


def test_non_upstream_errors_do_not_close_a_half_open_breaker(
    breaker: CloudBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.now += 61
    assert breaker.allow()
    breaker.record_failure(asyncio.CancelledError())
    assert breaker.state == "half_open"


def test_release_of_a_trial_lets_the_next_caller_try(
    breaker: CloudBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.now += 61
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release()  # the trial was cut short by a barge-in
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()


def test_a_trial_that_never_reports_does_not_block_forever(
    breaker: CloudBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.now += 61
    assert breaker.allow()
    clock.now += 30
    assert not breaker.allow()
    clock.now += 31
    assert breaker.allow()


def test_late_verdicts_while_open_change_nothing(breaker: CloudBreaker, clock: FakeClock) -> None:
    trip(breaker)
    opened = breaker.opened_at
    clock.now += 30
    breaker.record_failure(server_error())  # a call started before the trip
    breaker.record_success()
    assert breaker.state == "open"
    assert breaker.opened_at == opened


async def test_concurrent_tasks_one_trial_and_cancellations_never_trip(
    breaker: CloudBreaker, clock: FakeClock
) -> None:
    """Many concurrent turns through allow/record, as the router does it."""
    upstream_up = False
    sent = 0

    async def turn(barge_in: bool) -> str:
        nonlocal sent
        if not breaker.allow():
            return "local"
        sent += 1
        try:
            await asyncio.sleep(0)
            if barge_in:
                raise asyncio.CancelledError
            if not upstream_up:
                raise LLMError(ErrorKind.CONNECTION, "refused")
        except LLMError as e:
            breaker.record_failure(e)
            return "failed"
        except asyncio.CancelledError as e:
            breaker.record_failure(e)
            return "cancelled"
        breaker.record_success()
        return "cloud"

    # Barge-ins only: nothing counts, however many.
    results = await asyncio.gather(*(turn(True) for _ in range(20)))
    assert set(results) == {"cancelled"} and breaker.state == "closed"

    # Upstream down: concurrent failures open it; later turns go local at once.
    results = await asyncio.gather(*(turn(False) for _ in range(10)))
    assert breaker.state == "open"
    assert results.count("failed") == 10  # all were admitted while closed
    sent = 0
    results = await asyncio.gather(*(turn(False) for _ in range(10)))
    assert results == ["local"] * 10 and sent == 0

    # Half-open with 10 concurrent turns: exactly one goes upstream.
    upstream_up = True
    clock.now += 60
    results = await asyncio.gather(*(turn(False) for _ in range(10)))
    assert sent == 1
    assert sorted(results) == ["cloud"] + ["local"] * 9
    assert breaker.state == "closed"
