"""A satellite's room passes its area to Home Assistant: "turn off the lights" said in
the bedroom turns off the bedroom's lights, not the kitchen's (the real development
Home Assistant; its bootstrap puts light.bed_light in Bedroom, kitchen_lights in Kitchen)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from atlas.home.config import HomeAssistantConfig, HomeConnection
from atlas.home.stage import HomeReply, HomeStage, room_area
from tests.home.conftest import LiveHome


@pytest_asyncio.fixture
async def stage(live_home: LiveHome) -> AsyncIterator[HomeStage]:
    s = HomeStage(
        HomeAssistantConfig(url=live_home.url), HomeConnection(live_home.url, live_home.token)
    )
    yield s
    await s.aclose()


async def _said_in(area: str | None, stage: HomeStage, text: str) -> HomeReply | None:
    """What a room's turn does: its task context carries the room's area."""
    room_area.set(area)
    kind = stage.wants(text)
    assert kind == "control", text
    return await stage.handle(text, kind)


async def test_the_lights_are_the_rooms_lights(stage: HomeStage, live_home: LiveHome) -> None:
    for entity in ("light.bed_light", "light.kitchen_lights"):
        await asyncio.to_thread(live_home.call, "light", "turn_on", entity_id=entity)
        assert await live_home.await_state(entity, "on") == "on"
    reply = await asyncio.create_task(_said_in("Bedroom", stage, "Atlas, turn off the lights."))
    assert reply is not None and reply.outcome == "done", reply
    assert await live_home.await_state("light.bed_light", "off") == "off"
    assert live_home.state("light.kitchen_lights")["state"] == "on"
    assert room_area.get() is None  # the room's context stayed in its own task


async def test_a_named_area_wins_over_the_room(stage: HomeStage, live_home: LiveHome) -> None:
    for entity in ("light.bed_light", "light.kitchen_lights"):
        await asyncio.to_thread(live_home.call, "light", "turn_off", entity_id=entity)
        assert await live_home.await_state(entity, "off") == "off"
    text = "Atlas, turn on the lights in the kitchen."
    reply = await asyncio.create_task(_said_in("Bedroom", stage, text))
    assert reply is not None and reply.outcome == "done", reply
    assert await live_home.await_state("light.kitchen_lights", "on") == "on"
    assert live_home.state("light.bed_light")["state"] == "off"
