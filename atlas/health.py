"""Is the daemon doing its job? What the systemd watchdog pings on.

Healthy means: audio frames keep arriving (or the microphone is in its documented
retry after it vanished), and every core task (listening, timer announcements) is
still running. The watchdog pinger adds the third condition itself: the event loop
answers on time. When any of these fails the pings stop, WatchdogSec runs out, and
systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog

from voice.audio import AudioSource
from voice.types import AudioFrame

log = structlog.get_logger("atlas.health")


@dataclass
class _State:
    last_frame_at: float
    retrying: bool = False


class DaemonHealth:
    """Heartbeats from the audio path and the core tasks, read by the watchdog."""

    def __init__(self, stall_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if stall_s <= 0:
            raise ValueError("stall_s must be positive")
        self._stall_s = stall_s
        self._clock = clock
        self._state = _State(last_frame_at=clock())
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._last_problem: str | None = None

    def watch(self, name: str, task: asyncio.Task[None]) -> None:
        """A core task: if it ends (crash or not), the daemon is unhealthy."""
        self._tasks[name] = task

    def frame(self) -> None:
        self._state.last_frame_at = self._clock()
        self._state.retrying = False

    def retrying(self, on: bool) -> None:
        """The microphone is gone and being retried with backoff (a documented state)."""
        self._state.retrying = on
        if not on:
            self._state.last_frame_at = self._clock()

    def problem(self) -> str | None:
        """What is wrong, in one line; None when healthy."""
        for name, task in self._tasks.items():
            if task.done():
                why = "crashed" if not task.cancelled() and task.exception() else "ended"
                return f"core task {name!r} {why}"
        if self._state.retrying:
            return None
        silent = self._clock() - self._state.last_frame_at
        if silent > self._stall_s:
            return f"no audio frames for {silent:.1f} s (the audio source has stalled)"
        return None

    def __call__(self) -> bool:
        problem = self.problem()
        if problem != self._last_problem:
            if problem is not None:
                log.error("daemon.unhealthy", problem=problem)
            elif self._last_problem is not None:
                log.info("daemon.healthy_again")
            self._last_problem = problem
        return problem is None


class MonitoredSource:
    """An audio source whose every frame is a heartbeat."""

    def __init__(self, inner: AudioSource, health: DaemonHealth) -> None:
        self._inner = inner
        self._health = health

    async def frames(self) -> AsyncIterator[AudioFrame]:
        async for frame in self._inner.frames():
            self._health.frame()
            yield frame

    async def aclose(self) -> None:
        await self._inner.aclose()
