"""A timer rings in the room where it was set: the room's context travels with the
timer, and the router hands it to that room's bounded queue (else the default)."""

from __future__ import annotations

import asyncio

from atlas.skills.timers import TimerService, timer_room
from atlas.wyoming.announce import TimerRouter

TIMEOUT_S = 30.0


async def _set_in(room: str | None, timers: TimerService, label: str) -> None:
    """What a room's turn does: its task context names the room."""
    timer_room.set(room)
    timers.set(0.01, label)


async def test_each_timer_goes_to_the_room_that_set_it() -> None:
    timers = TimerService()
    router = TimerRouter()
    kitchen, study = router.room("tcp://kitchen:10700"), router.room("tcp://study:10700")
    routing = asyncio.create_task(router.run(timers))
    try:
        await asyncio.create_task(_set_in("tcp://kitchen:10700", timers, "tea"))
        await asyncio.create_task(_set_in("tcp://study:10700", timers, "eggs"))
        await asyncio.create_task(_set_in(None, timers, "bread"))  # the local microphone
        await asyncio.create_task(_set_in("tcp://gone:1", timers, "pasta"))  # no such room
        async with asyncio.timeout(TIMEOUT_S):
            assert (await kitchen.events.get()).timer.label == "tea"
            assert (await study.events.get()).timer.label == "eggs"
            local = {(await router.default.events.get()).timer.label for _ in range(2)}
        assert local == {"bread", "pasta"}
        assert kitchen.events.empty() and study.events.empty()
        assert timer_room.get() is None  # the rooms' context never leaked out here
    finally:
        routing.cancel()
        await asyncio.gather(routing, return_exceptions=True)
        await timers.aclose()


async def test_without_local_audio_the_first_room_is_the_default() -> None:
    timers = TimerService()
    router = TimerRouter(default_room="tcp://kitchen:10700")
    assert router.default is router.room("tcp://kitchen:10700")
    routing = asyncio.create_task(router.run(timers))
    try:
        timers.set(0.01, "tea")  # set outside any room
        async with asyncio.timeout(TIMEOUT_S):
            fired = await router.room("tcp://kitchen:10700").events.get()
        assert fired.timer.label == "tea" and fired.timer.room is None
    finally:
        routing.cancel()
        await asyncio.gather(routing, return_exceptions=True)
        await timers.aclose()


async def test_a_full_room_queue_drops_with_a_warning_not_memory() -> None:
    timers = TimerService(max_timers=20)
    router = TimerRouter()
    room = router.room("tcp://kitchen:10700")
    routing = asyncio.create_task(router.run(timers))
    try:
        for i in range(12):
            await asyncio.create_task(_set_in("tcp://kitchen:10700", timers, f"t{i}"))
        async with asyncio.timeout(TIMEOUT_S):
            while timers.list() or not timers.events.empty():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
        assert room.events.qsize() == room.events.maxsize < 12
    finally:
        routing.cancel()
        await asyncio.gather(routing, return_exceptions=True)
        await timers.aclose()
