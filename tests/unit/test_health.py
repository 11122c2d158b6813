"""The watchdog's health: frames arriving, core tasks alive, the microphone's retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import numpy as np

from atlas.health import DaemonHealth, MonitoredSource
from atlas.sdnotify import Notifier, WatchdogPinger
from voice.types import FRAME_SAMPLES, AudioFrame


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class CountingNotifier:
    def __init__(self) -> None:
        self.pings = 0

    def watchdog(self) -> bool:
        self.pings += 1
        return True


class StallingSource:
    """Delivers `n` frames, then hangs without an error (a wedged driver)."""

    def __init__(self, n: int) -> None:
        self.n = n

    async def frames(self) -> AsyncIterator[AudioFrame]:
        for i in range(self.n):
            yield AudioFrame(np.zeros(FRAME_SAMPLES, np.float32), i * 0.032, 0.0)
            await asyncio.sleep(0.005)
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        return None


async def _forever() -> None:
    await asyncio.Event().wait()


def test_frames_keep_it_healthy_and_a_stall_does_not() -> None:
    clock = Clock()
    h = DaemonHealth(stall_s=5.0, clock=clock)
    assert h()
    clock.t += 4.0
    h.frame()
    clock.t += 4.0
    assert h()
    clock.t += 2.0
    assert not h() and "no audio frames" in (h.problem() or "")


def test_the_microphone_retry_is_healthy_until_it_ends() -> None:
    clock = Clock()
    h = DaemonHealth(stall_s=5.0, clock=clock)
    h.retrying(True)
    clock.t += 60.0
    assert h()
    h.retrying(False)  # the mic is back: frames are due again from now
    clock.t += 6.0
    assert not h()


async def test_a_crashed_or_ended_core_task_is_unhealthy() -> None:
    h = DaemonHealth(stall_s=5.0)

    async def crash() -> None:
        raise RuntimeError("boom")

    alive = asyncio.create_task(_forever())
    dead = asyncio.create_task(crash())
    h.watch("timers", alive)
    assert h()
    h.watch("listen", dead)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not h() and "listen" in (h.problem() or "") and "crashed" in (h.problem() or "")
    alive.cancel()


async def test_a_stalled_source_stops_the_watchdog_pings() -> None:
    h = DaemonHealth(stall_s=0.15)
    notifier = CountingNotifier()
    pinger = WatchdogPinger(cast(Notifier, notifier), h, interval_s=0.05, max_lateness_s=1.0)
    source = MonitoredSource(StallingSource(10), h)

    async def consume() -> None:
        async for _ in source.frames():
            pass

    consumer = asyncio.create_task(consume())
    pings = asyncio.create_task(pinger.run())
    await asyncio.sleep(0.1)
    while_flowing = notifier.pings
    assert while_flowing >= 2
    await asyncio.sleep(0.5)  # frames stopped ~0.05 s in; stall after 0.15 s
    settled = notifier.pings
    await asyncio.sleep(0.3)
    assert notifier.pings == settled  # no more pings: systemd will restart ATLAS
    assert pinger.skipped > 0
    for task in (consumer, pings):
        task.cancel()
    await asyncio.gather(consumer, pings, return_exceptions=True)
