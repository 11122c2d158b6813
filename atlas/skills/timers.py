"""Kitchen timers that outlive the turn that set them.

One `TimerService` lives as long as the daemon (built in app.py, passed to the timer
skill and the agent's tools). When a timer ends, a `TimerFired` goes on the bounded
`events` queue for the daemon to announce; if nobody drains it, further events are
dropped with a warning rather than growing memory.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

import structlog

from atlas.skills.durations import duration_adjective

log = structlog.get_logger("atlas.skills.timers")

timer_room: ContextVar[str | None] = ContextVar("atlas_timer_room", default=None)
"""The room whose turn is running (set by a satellite room for its tasks); a timer set
in that turn remembers it, so it is announced where it was set."""


@dataclass(frozen=True)
class Timer:
    id: int
    label: str | None
    duration_s: float
    ends_at: float
    """On the service's clock (monotonic by default)."""
    room: str | None = None
    """Where it was set (None: the local microphone)."""

    @property
    def name(self) -> str:
        """How to refer to it aloud: 'tea', or 'ten minute' when it has no label."""
        return self.label or duration_adjective(self.duration_s)

    def done_line(self) -> str:
        """'Your tea timer is done.' / 'Your ten minute timer is done.'"""
        if not self.label and round(self.duration_s) == 0:
            return "Your timer is done."
        return f"Your {self.name} timer is done."


@dataclass(frozen=True)
class TimerStatus:
    timer: Timer
    remaining_s: float


@dataclass(frozen=True)
class TimerFired:
    timer: Timer
    at: float
    """When it fired, on the service's clock."""


class TimerEvents(Protocol):
    """Where finished timers wait to be announced (the service, or one room's share)."""

    @property
    def events(self) -> asyncio.Queue[TimerFired]: ...


class TimerLimitError(ValueError):
    """Too many timers, or a duration out of range; the text is fit to show a caller."""


class TimersUnavailable(TimerLimitError):
    """This process ends after one answer (`atlas ask`): a timer set here could never ring."""


class TimerService:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_timers: int = 20,
        max_duration_s: float = 7 * 86400.0,
        queue_size: int = 16,
        standalone: bool = False,
    ) -> None:
        if max_timers < 1 or queue_size < 1:
            raise ValueError("max_timers and queue_size must be at least 1")
        self._clock = clock
        self._standalone = standalone
        self._max_timers = max_timers
        self._max_duration_s = max_duration_s
        self._next_id = 1
        self._timers: dict[int, Timer] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.events: asyncio.Queue[TimerFired] = asyncio.Queue(maxsize=queue_size)

    @property
    def max_timers(self) -> int:
        return self._max_timers

    def set(self, duration_s: float, label: str | None = None) -> Timer:
        """Start a timer; needs a running event loop. Raises TimerLimitError."""
        if self._standalone:
            raise TimersUnavailable(
                "timers ring only while ATLAS runs as a service (start it with `atlas run`)"
            )
        if not math.isfinite(duration_s) or duration_s <= 0:
            raise TimerLimitError("a timer needs a duration of more than zero seconds")
        if duration_s > self._max_duration_s:
            raise TimerLimitError(
                f"a timer can run for at most {self._max_duration_s / 3600:g} hours"
            )
        if len(self._timers) >= self._max_timers:
            raise TimerLimitError(f"the limit of {self._max_timers} running timers is reached")
        label = label.strip().lower() if label and label.strip() else None
        end = self._clock() + duration_s
        timer = Timer(self._next_id, label, duration_s, end, timer_room.get())
        self._next_id += 1
        self._timers[timer.id] = timer
        self._tasks[timer.id] = asyncio.get_running_loop().create_task(
            self._run(timer), name=f"timer-{timer.id}"
        )
        log.info("timer.set", id=timer.id, label=label, duration_s=duration_s, room=timer.room)
        return timer

    def list(self) -> tuple[TimerStatus, ...]:
        """Running timers, soonest first."""
        now = self._clock()
        running = sorted(self._timers.values(), key=lambda t: t.ends_at)
        return tuple(TimerStatus(t, max(0.0, t.ends_at - now)) for t in running)

    def find(self, key: int | str) -> tuple[Timer, ...]:
        """Timers matching an id (int or digits), a label, or "all"."""
        if isinstance(key, str):
            key = key.strip().lower()
            if key.isdigit():
                key = int(key)
        if key == "all":
            return tuple(self._timers.values())
        if isinstance(key, int):
            return (self._timers[key],) if key in self._timers else ()
        return tuple(t for t in self._timers.values() if t.label == key)

    def cancel(self, key: int | str) -> tuple[Timer, ...]:
        """Cancel by id, label or "all"; returns what was cancelled (maybe nothing)."""
        found = self.find(key)
        for timer in found:
            self._timers.pop(timer.id, None)
            task = self._tasks.pop(timer.id, None)
            if task is not None:
                task.cancel()
            log.info("timer.cancelled", id=timer.id, label=timer.label)
        return found

    async def aclose(self) -> None:
        """Cancel every timer and wait for their tasks (at daemon shutdown)."""
        tasks = list(self._tasks.values())
        self.cancel("all")
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, timer: Timer) -> None:
        # Re-read the clock after every sleep: the loop's timer and the service's clock
        # may disagree slightly, and a timer must never fire early.
        while (left := timer.ends_at - self._clock()) > 0:
            await asyncio.sleep(left)
        self._timers.pop(timer.id, None)
        self._tasks.pop(timer.id, None)
        event = TimerFired(timer, self._clock())
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("timer.event_dropped", id=timer.id, reason="events queue full")
            return
        log.info("timer.fired", id=timer.id, label=timer.label)
