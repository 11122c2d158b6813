"""Finished timers are announced in the room where they were set.

A timer remembers the room whose turn set it (`atlas.skills.timers.timer_room`). One
`TimerRouter` drains the timer service and hands each finished timer to that room's
bounded queue; a timer set at the local microphone (or in a room ATLAS no longer
serves) goes to the default room. A room that is offline when its timer ends gets the
announcement when its satellite is back (its queue is bounded: overflow is dropped
with a warning, never grown)."""

from __future__ import annotations

import asyncio

import structlog

from atlas.skills.timers import TimerEvents, TimerFired

log = structlog.get_logger("atlas.wyoming.announce")

_ROOM_QUEUE = 8


class RoomTimers:
    """One room's share of the finished timers (what its conversation announces)."""

    def __init__(self) -> None:
        self._events: asyncio.Queue[TimerFired] = asyncio.Queue(maxsize=_ROOM_QUEUE)

    @property
    def events(self) -> asyncio.Queue[TimerFired]:
        return self._events


class TimerRouter:
    def __init__(self, default_room: str | None = None) -> None:
        """`default_room`: where timers of no known room go; None: `default` (the local
        microphone's conversation)."""
        self._rooms: dict[str, RoomTimers] = {}
        self.default = self.room(default_room) if default_room else RoomTimers()

    def room(self, key: str) -> RoomTimers:
        return self._rooms.setdefault(key, RoomTimers())

    async def run(self, source: TimerEvents) -> None:
        """For the daemon's life: the single consumer of the timer service's events."""
        while True:
            fired = await source.events.get()
            target = self._rooms.get(fired.timer.room or "", self.default)
            try:
                target.events.put_nowait(fired)
            except asyncio.QueueFull:
                log.warning("timer.announcement_dropped", id=fired.timer.id, room=fired.timer.room)
