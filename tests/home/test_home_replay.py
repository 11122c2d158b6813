"""Replayed voice fixtures against the real development Home Assistant.

Each home_* fixture goes through the real VAD, Whisper, router, home stage and Piper;
what it changed or read is checked through Home Assistant's REST API.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from unittest import mock

import pytest
import pytest_asyncio

from atlas.testing.fake_anthropic import FakeAnthropic
from atlas.turn import TurnRecord
from tests.home.conftest import LiveHome
from tests.replay.conftest import Parts, ReplaySession, anthropic, load_parts

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["anthropic"]  # the pytest fixture used here


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def parts(
    live_home: LiveHome, anthropic: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Parts]:
    # The same environment a user sets: HA_URL and HA_TOKEN (read while building); a
    # generous deadline, since these tests check behaviour, not speed, on a busy machine.
    tmp = tmp_path_factory.mktemp("home_replay")
    config = tmp / "atlas.yaml"
    config.write_text("home_assistant:\n  timeout_s: 10\n", encoding="utf-8")
    env = {"HA_URL": live_home.url, "HA_TOKEN": live_home.token, "ATLAS_CONFIG": str(config)}
    with mock.patch.dict(os.environ, env):
        loaded = await load_parts(tmp, anthropic)
    assert loaded.settings.home_assistant.timeout_s == 10
    yield loaded
    await loaded.aclose()


async def replay(parts: Parts, tmp_path: Path, name: str, realtime: bool = False) -> TurnRecord:
    session = ReplaySession(parts, tmp_path / "reply.wav", realtime=realtime)
    records = await session.run(session.file_source(name))
    assert len(records) == 1, [r.transcript for r in records]
    rec = records[0]
    assert rec.addressed and rec.tier == "home", rec
    assert "home" in rec.timestamps and rec.filler is None
    assert rec.timestamps["route"] <= rec.timestamps["home"] <= rec.timestamps["first_chunk"]
    assert rec.heard == rec.answer
    return rec


Check = Callable[[LiveHome, TurnRecord], None]


def kitchen_on(home: LiveHome, rec: TurnRecord) -> None:
    assert home.state("light.kitchen_lights")["state"] == "on"
    assert rec.answer.startswith("The kitchen lights are on")


def living_room_at_30(home: LiveHome, rec: TurnRecord) -> None:
    for entity in ("light.living_room_rgbww_lights", "light.ceiling_lights"):
        assert round(home.state(entity)["attributes"]["brightness"] / 255 * 100) == 30
    assert rec.answer == "The living room lights are on, at 30 percent, sir."


def front_door(home: LiveHome, rec: TurnRecord) -> None:
    state = home.state("lock.front_door")["state"]
    assert rec.answer == f"The front door is {state}, sir."


def living_room_temperature(home: LiveHome, rec: TurnRecord) -> None:
    reading = home.state("climate.hvac")["attributes"]["current_temperature"]
    assert rec.answer == f"It is {reading:g} degrees in the living room, sir."


def weather_tomorrow(home: LiveHome, rec: TurnRecord) -> None:
    assert rec.answer.startswith("Tomorrow looks ") and "degrees" in rec.answer


def _prepare(home: LiveHome) -> None:
    home.call("light", "turn_off", entity_id="light.kitchen_lights")
    home.call("light", "turn_on", entity_id="light.ceiling_lights", brightness_pct=100)
    home.call("light", "turn_on", entity_id="light.living_room_rgbww_lights", brightness_pct=100)


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("home_kitchen_lights_on.wav", kitchen_on),
        ("home_dim_living_room.wav", living_room_at_30),
        ("home_front_door_locked.wav", front_door),
        ("home_living_room_temperature.wav", living_room_temperature),
        ("home_weather_tomorrow.wav", weather_tomorrow),
    ],
)
async def test_home_fixture_changes_or_reads_the_right_entity(
    parts: Parts, live_home: LiveHome, tmp_path: Path, name: str, check: Check
) -> None:
    await asyncio.to_thread(_prepare, live_home)
    rec = await replay(parts, tmp_path, name)
    check(live_home, rec)


async def test_close_the_garage_door_after_the_spoken_yes(
    parts: Parts, live_home: LiveHome, tmp_path: Path
) -> None:
    await asyncio.to_thread(live_home.call, "cover", "open_cover", entity_id="cover.garage_door")
    assert await live_home.await_state("cover.garage_door", "open") == "open"
    # At real-time pace, as a person would: the question is spoken, then the yes (no
    # wake word) comes inside the follow-up window.
    session = ReplaySession(parts, tmp_path / "reply.wav", realtime=True)
    records = await session.run(session.file_source("home_close_garage_door.wav"))
    assert [r.tier for r in records] == ["home", "home"], records
    question, yes = records
    assert question.answer == "Shall I close the garage door, sir?"
    assert yes.addressed and yes.answer.startswith("The garage door is clos")
    assert await live_home.await_state("cover.garage_door", "closed") == "closed"
