"""The router consults the home stage first; the agent's home tools; `atlas doctor`'s lines.

The router's own clients point at a closed port (tests/unit/test_router.py's `build`):
an answer that fell through to them would be the local failure line, never "home".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import pytest_asyncio

from atlas.home.config import HomeAssistantConfig, HomeConnection
from atlas.home.doctor import home_doctor_lines
from atlas.home.stage import HomeStage
from atlas.home.tools import home_tools
from atlas.llm.tools import Tool
from tests.home.conftest import LiveHome
from tests.unit.test_router import Build, answer, build, settings

__all__ = ["build", "settings"]  # pytest fixtures used here


@pytest_asyncio.fixture
async def home(live_home: LiveHome) -> AsyncIterator[HomeStage]:
    cfg = HomeAssistantConfig(url=live_home.url, timeout_s=5.0)
    stage = HomeStage(cfg, HomeConnection(live_home.url, live_home.token))
    yield stage
    await stage.aclose()


async def test_a_device_command_is_answered_by_the_house(
    build: Build, home: HomeStage, live_home: LiveHome
) -> None:
    await asyncio.to_thread(live_home.call, "light", "turn_on", entity_id="light.bed_light")
    router = build(home=home).router
    d = router.decide("turn off the bed light")
    assert d.home == "control" and not d.wants_filler
    text, result = await answer(router, "turn off the bed light")
    assert result.answered_by == "home" and result.home_at is not None
    assert text == result.text == "The bed light is off, sir."
    assert live_home.state("light.bed_light")["state"] == "off"


async def test_weather_never_waits_behind_a_filler(build: Build, home: HomeStage) -> None:
    d = build(home=home).router.decide("what's the weather like tomorrow")
    assert d.home == "weather" and not d.wants_filler


async def test_what_the_house_does_not_recognise_goes_on_as_before(
    build: Build, home: HomeStage, live_home: LiveHome
) -> None:
    before = live_home.state("light.kitchen_lights")["state"]
    router = build(home=home).router
    assert router.decide("put the kettle on").home == "control"
    _, result = await answer(router, "put the kettle on")
    assert result.answered_by == "local"  # the (unreachable) local model had its turn
    assert live_home.state("light.kitchen_lights")["state"] == before


async def test_without_home_assistant_a_device_request_gets_one_honest_line(
    build: Build,
) -> None:
    stage = HomeStage(HomeAssistantConfig(), HomeConnection(None))
    router = build(home=stage).router
    text, result = await answer(router, "unlock the front door")
    assert result.answered_by == "home"
    assert text == "I have no hand on the house's doors and locks yet, sir."


async def test_a_pending_question_owns_the_no_even_cancel(
    build: Build, home: HomeStage, live_home: LiveHome
) -> None:
    await asyncio.to_thread(live_home.call, "lock", "lock", entity_id="lock.front_door")
    assert await live_home.await_state("lock.front_door", "locked") == "locked"
    router = build(home=home).router
    text, _ = await answer(router, "unlock the front door")
    assert text == "Shall I unlock the front door, sir?"
    d = router.decide("cancel")
    assert d.home == "confirm" and d.skill is None
    text, result = await answer(router, "cancel")
    assert result.answered_by == "home" and "leave the front door" in text
    assert live_home.state("lock.front_door")["state"] == "locked"


# ----------------------------------------------------------------- agent tools


def tools_of(stage: HomeStage) -> dict[str, Tool]:
    return {t.spec.name: t for t in home_tools(stage)}


async def run(tool: Tool, **args: Any) -> str:
    return await tool.run(args)


async def test_agent_tools_read_and_act(home: HomeStage, live_home: LiveHome) -> None:
    tools = tools_of(home)
    assert "Living Room" in await run(tools["home_list_areas"])
    listed = await run(tools["home_list_entities"], domain="light", area="Living Room")
    assert "light.ceiling_lights" in listed and "light.kitchen_lights" not in listed
    got = await run(tools["home_get_state"], entity_id="lock.front_door")
    assert got.startswith("The front door is ") and "state=" in got
    await asyncio.to_thread(live_home.call, "light", "turn_on", entity_id="light.bed_light")
    done = await run(
        tools["home_call_service"], domain="light", service="turn_off", entity_id="light.bed_light"
    )
    assert done == "Done. Now: The bed light is off."
    assert live_home.state("light.bed_light")["state"] == "off"


async def test_agent_unlocking_waits_for_the_spoken_yes(
    home: HomeStage, live_home: LiveHome
) -> None:
    await asyncio.to_thread(live_home.call, "lock", "lock", entity_id="lock.front_door")
    assert await live_home.await_state("lock.front_door", "locked") == "locked"
    held = await run(
        tools_of(home)["home_call_service"],
        domain="lock",
        service="unlock",
        entity_id="lock.front_door",
    )
    assert held.startswith("NOT DONE YET") and "Shall I unlock the front door, sir?" in held
    await asyncio.sleep(0.3)
    assert live_home.state("lock.front_door")["state"] == "locked"
    assert home.wants("yes") == "confirm"
    reply = await home.handle("yes", "confirm")
    assert reply is not None and reply.outcome == "done"
    assert await live_home.await_state("lock.front_door", "unlocked") == "unlocked"
    assert reply.text.startswith("The front door is unlock")
    await asyncio.to_thread(live_home.call, "lock", "lock", entity_id="lock.front_door")


@pytest.mark.parametrize(
    "args",
    [
        {"domain": "siren", "service": "turn_on", "entity_id": "siren.siren"},
        {"domain": "light", "service": "turn_on", "entity_id": "siren.siren"},
        {"domain": "light", "service": "turn_on; rm", "entity_id": "light.bed_light"},
        {"domain": "light", "service": "turn_on", "entity_id": "bed light"},
        {"domain": "lock", "service": "unlock", "entity_id": "light.bed_light"},
        {"domain": "light", "service": "turn_on", "entity_id": "light.bed_light", "data": 3},
    ],
)
async def test_agent_tools_refuse_what_is_not_allowed(
    home: HomeStage, args: Mapping[str, Any]
) -> None:
    with pytest.raises(ValueError):
        await tools_of(home)["home_call_service"].run(args)


async def test_agent_gets_no_home_tools_without_home_assistant() -> None:
    assert home_tools(HomeStage(HomeAssistantConfig(), HomeConnection(None))) == []


# ---------------------------------------------------------------------- doctor


async def test_doctor_lines(live_home: LiveHome) -> None:
    cfg = HomeAssistantConfig(url=live_home.url)
    ok = await home_doctor_lines(cfg, HomeConnection(live_home.url, live_home.token))
    assert ok[0] == f"ok       home assistant: reachable at {live_home.url}, token accepted"
    assert ok[1].startswith("ok       home assistant: 10") and "5 areas" in ok[1]
    bad = await home_doctor_lines(cfg, HomeConnection(live_home.url, "x" * 30))
    assert bad[0].startswith("PROBLEM") and "HA_TOKEN" in bad[0] and "x" * 30 not in bad[0]
    off = await home_doctor_lines(HomeAssistantConfig(), HomeConnection(None))
    assert off[0].startswith("off") and "home_assistant.url" in off[0]
