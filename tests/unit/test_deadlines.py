"""Every turn ends in bounded time: the deadlines of atlas.deadlines, and the assistant
cancelling a turn through its handle with a line in persona when one passes.

The fakes are made slower than a deadline; the checks are on behaviour (which line,
which stage, the turn cancelled, the next turn answered), with generous bounds for
"it finished" only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atlas.deadlines import DeadlineConfig, next_deadline
from atlas.settings import Settings, load_settings
from atlas.testing.fake_anthropic import FakeAnthropic, FakeScript
from atlas.testing.fake_openai import FakeLLMScript, FakeOpenAI
from tests.unit.test_assistant import Clock, Rig, build_rig

CFG = DeadlineConfig(local_first_token_s=2.0, local_answer_s=5.0, first_token_s=8.0, tts_s=3.0)


def test_first_words_then_the_whole_answer_are_bounded_from_the_decision() -> None:
    stamps = {"route": 100.0}
    d = next_deadline(CFG, stamps, local=True, home=False, answered=False, speaking_s=0.0)
    assert d is not None and (d.stage, d.at) == ("first_token", 102.0)
    stamps["first_token"] = 101.0
    d = next_deadline(CFG, stamps, local=True, home=False, answered=False, speaking_s=0.0)
    assert d is not None and (d.stage, d.at) == ("answer", 105.0)


def test_cloud_and_home_have_their_own_first_word_deadlines() -> None:
    stamps = {"route": 0.0}
    cloud = next_deadline(CFG, stamps, local=False, home=False, answered=False, speaking_s=0.0)
    home = next_deadline(CFG, stamps, local=True, home=True, answered=False, speaking_s=0.0)
    assert cloud is not None and (cloud.stage, cloud.at) == ("first_token", 8.0)
    assert home is not None and (home.stage, home.at) == ("home", CFG.home_s)


def test_waiting_for_the_speaker_is_not_counted_against_the_answer() -> None:
    stamps = {"route": 0.0, "first_token": 0.5}
    d = next_deadline(CFG, stamps, local=True, home=False, answered=False, speaking_s=7.0)
    assert d is not None and (d.stage, d.at) == ("answer", 12.0)


def test_synthesis_is_bounded_and_nothing_is_left_once_it_is_heard() -> None:
    stamps = {"route": 0.0, "first_token": 0.2, "first_chunk": 0.4}
    d = next_deadline(CFG, stamps, local=True, home=False, answered=True, speaking_s=0.0)
    assert d is not None and (d.stage, d.at) == ("tts", 3.4)
    stamps["first_answer_sample"] = 0.6
    assert next_deadline(CFG, stamps, local=True, home=False, answered=True, speaking_s=0) is None
    assert next_deadline(CFG, {}, local=True, home=False, answered=False, speaking_s=0) is None


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def servers() -> AsyncIterator[tuple[FakeAnthropic, FakeOpenAI]]:
    with FakeAnthropic() as anthropic, FakeOpenAI() as local:
        yield anthropic, local


@pytest.fixture
async def rig(
    tmp_path: Path, settings: Settings, servers: tuple[FakeAnthropic, FakeOpenAI]
) -> AsyncIterator[Rig]:
    deadlines = DeadlineConfig(
        local_first_token_s=1.0, local_answer_s=3.0, first_token_s=2.0, cancel_grace_s=0.5
    )
    async with build_rig(
        tmp_path, settings, servers, clock=Clock(real=True), deadlines=deadlines
    ) as built:
        yield built


def too_slow_lines(rig: Rig) -> tuple[str, ...]:
    return rig.settings.persona.too_slow


async def test_a_local_server_that_never_starts_gets_the_line_and_the_turn_is_cut(
    rig: Rig,
) -> None:
    rig.local.enqueue(FakeLLMScript(reply="Very good.", first_token_delay_s=20.0))
    started = time.monotonic()
    rec = await rig.turn("Atlas, turn on the lights")
    took = time.monotonic() - started
    assert (rec.interrupted, rec.deadline_missed) == ("deadline", "first_token")
    assert rec.answer == ""
    assert any(rec.heard.endswith(line) for line in too_slow_lines(rig)), rec.heard
    assert took < 10.0  # bounded (the fake would have taken 20 s), not "fast"
    rig.local.enqueue(FakeLLMScript(reply="Of course, sir."))
    nxt = await rig.turn("Atlas, turn on the lights")  # ATLAS listens and answers again
    assert (nxt.deadline_missed, nxt.answer) == (None, "Of course, sir.")


async def test_an_answer_that_stalls_midway_is_cut_after_what_was_heard(rig: Rig) -> None:
    reply = "Certainly, sir, I shall see to it at once. And then a great deal more."
    rig.local.enqueue(FakeLLMScript(reply=reply, stall_after_tokens=10))
    rec = await rig.turn("Atlas, turn on the lights")
    assert (rec.interrupted, rec.deadline_missed) == ("deadline", "answer")
    assert rec.answer.startswith("Certainly") and "more" not in rec.answer
    assert any(rec.heard.endswith(line) for line in too_slow_lines(rig)), rec.heard
    assert "more." not in rec.heard.split()


async def test_a_slow_cloud_answer_after_the_filler_is_cut_too(rig: Rig) -> None:
    rig.anthropic.enqueue(FakeScript(text="Slowly.", first_token_delay_s=15.0))
    rig.local.enqueue(FakeLLMScript(reply="Local answer.", first_token_delay_s=15.0))
    heard = rig.heard("Atlas, how does a heat pump work")
    rec = await asyncio.wait_for(rig.assistant.handle(heard), 30)
    assert rec.filler is not None
    assert (rec.interrupted, rec.deadline_missed) == ("deadline", "first_token")
    assert any(rec.heard.endswith(line) for line in too_slow_lines(rig)), rec.heard
