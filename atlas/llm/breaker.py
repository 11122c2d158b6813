"""A circuit breaker per cloud tier that counts only real upstream failures.

Built on pybreaker's `CircuitBreaker`, which keeps the failure count and the state and
does the transitions (closed -> open at `fail_max` consecutive failures, half-open ->
closed on a success, half-open -> open on a failure). It is never wrapped around async
code (that counts nothing, and a cancellation would count as a failure); instead the
caller reports a verdict after the call, and this class feeds only real verdicts to
pybreaker by calling it with a function that returns or raises synchronously:

* `allow()` before a call; then `record_success()`, `record_failure(err)` or `release()`.
* Only an `LLMError` whose kind counts for the breaker is a failure. Cancellations
  (barge-in, shutdown), AUTH and BAD_REQUEST are no verdict at all: nothing is counted,
  reset, opened or closed.
* Half-open admits exactly one trial call at a time (pybreaker lets every concurrent
  caller through); a trial that ends without a verdict is `release()`d so the next
  caller may try.

The open -> half-open timing is kept here, on an injected monotonic clock, rather than
by pybreaker (which compares `datetime.now()` with its `opened_at` only when a call is
made through it in the open state, which never happens here): tests can then step time
without patching pybreaker, and a wall-clock jump cannot reopen or close the circuit.

All bookkeeping is synchronous and under a lock, so it is safe from asyncio tasks (no
await in between) and from threads.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Literal

import pybreaker
import structlog

from atlas.llm.base import LLMError
from atlas.llm.config import BreakerConfig

log = structlog.get_logger("atlas.llm.breaker")

BreakerState = Literal["closed", "open", "half_open"]

_STATES: dict[str, BreakerState] = {
    pybreaker.STATE_CLOSED: "closed",
    pybreaker.STATE_OPEN: "open",
    pybreaker.STATE_HALF_OPEN: "half_open",
}


def counts_as_failure(err: BaseException) -> bool:
    """Only upstream faults count: cancellations (CancelledError, GeneratorExit), AUTH,
    BAD_REQUEST and anything that is not an LLMError never do."""
    return isinstance(err, LLMError) and err.counts_for_breaker


class _Failure(Exception):
    """What pybreaker sees for a counted failure (the original is only logged)."""


def _succeed() -> None:
    return None


def _fail() -> None:
    raise _Failure


class _TransitionLog(pybreaker.CircuitBreakerListener):
    def __init__(self, on_change: Callable[[str, str], None]) -> None:
        self._on_change = on_change

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._on_change(old_state.name if old_state else "", new_state.name)


class CloudBreaker:
    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._clock = clock
        self._reset_timeout = config.reset_timeout_s
        self._lock = threading.Lock()
        self._opened_at: float | None = None
        self._trial_started: float | None = None
        self._cb = pybreaker.CircuitBreaker(
            fail_max=config.fail_max,
            reset_timeout=config.reset_timeout_s,
            name=name,
            listeners=[_TransitionLog(self._on_transition)],
        )

    @property
    def state(self) -> BreakerState:
        return _STATES[self._cb.current_state]

    @property
    def opened_at(self) -> float | None:
        """When (on the breaker's clock) the circuit last opened; None while closed."""
        return self._opened_at

    @property
    def failure_count(self) -> int:
        """Consecutive counted failures since the last success."""
        return int(self._cb.fail_counter)

    def allow(self) -> bool:
        """May a call go upstream now? In half-open, True for exactly one caller at a time."""
        with self._lock:
            state = self.state
            if state == "closed":
                return True
            now = self._clock()
            if state == "open":
                if self._opened_at is not None and now - self._opened_at < self._reset_timeout:
                    return False
                self._cb.half_open()
                self._trial_started = now
                return True
            # Half-open: one trial. A trial that never reported back (a bug upstream of
            # us) must not block the tier forever: after another reset period, let the
            # next caller try.
            if self._trial_started is not None:
                if now - self._trial_started < self._reset_timeout:
                    return False
                log.warning("breaker trial never reported; allowing another", breaker=self.name)
            self._trial_started = now
            return True

    def record_success(self) -> None:
        with self._lock:
            if self.state == "open":
                return  # a late answer from before the trip: the timeout still decides
            self._trial_started = None
            self._cb.call(_succeed)

    def record_failure(self, err: BaseException) -> None:
        """Count `err` if it is a real upstream failure; otherwise it is no verdict."""
        if not counts_as_failure(err):
            self.release()
            log.debug("breaker ignores", breaker=self.name, error=type(err).__name__)
            return
        with self._lock:
            if self.state == "open":
                return  # already open; a late failure must not extend the wait
            self._trial_started = None
            # Counted either way; CircuitBreakerError just means this one tripped it.
            with contextlib.suppress(_Failure, pybreaker.CircuitBreakerError):
                self._cb.call(_fail)
        log.info(
            "breaker counted a failure",
            breaker=self.name,
            error=str(err),
            failures=self.failure_count,
        )

    def release(self) -> None:
        """A call ended without a verdict (cancelled, our own error): free the trial slot."""
        with self._lock:
            self._trial_started = None

    def _on_transition(self, old: str, new: str) -> None:
        # Called by pybreaker inside our lock (every transition starts from a method here).
        if new == pybreaker.STATE_OPEN:
            self._opened_at = self._clock()
            self._trial_started = None
            log.warning(
                "breaker open: upstream failing",
                breaker=self.name,
                previous=_STATES.get(old, old),
                retry_in_s=self._reset_timeout,
            )
        elif new == pybreaker.STATE_HALF_OPEN:
            log.info("breaker half-open: trying one call", breaker=self.name)
        elif new == pybreaker.STATE_CLOSED:
            self._opened_at = None
            if old:
                log.info("breaker closed: upstream recovered", breaker=self.name)
