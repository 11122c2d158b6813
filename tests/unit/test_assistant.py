"""Assistant (one turn) with fakes: a tone synthesizer, a clock-driven sink, a real Router
whose cloud and local clients talk to the fake Anthropic / OpenAI-compatible servers on
127.0.0.1. Covers: filler only on cloud decisions, what was heard when a turn is cut,
the acknowledgement when only the wake word is said, and the failure line in persona."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from atlas.assistant import Assistant
from atlas.deadlines import DeadlineConfig
from atlas.filler import FillerCache
from atlas.llm.anthropic import AnthropicClient
from atlas.llm.base import CLOUD_TIERS, LLMClient, Tier
from atlas.llm.breaker import CloudBreaker
from atlas.llm.budget import BudgetLedger
from atlas.llm.classifier import Classifier
from atlas.llm.config import (
    AnthropicConfig,
    BreakerConfig,
    BudgetConfig,
    CloudTierConfig,
    LocalLLMConfig,
    MemoryConfig,
)
from atlas.llm.local import OpenAICompatClient
from atlas.llm.memory import ConversationMemory
from atlas.llm.router import Router
from atlas.persona import Persona
from atlas.settings import Settings, load_settings
from atlas.skills import TimerService, build_skills
from atlas.testing.fake_anthropic import FakeAnthropic, FakeScript
from atlas.testing.fake_openai import FakeLLMScript, FakeOpenAI
from atlas.turn import TurnRecord
from atlas.wake import WakeConfig, WakeGate
from tests.unit.routing_fakes import HashedBagOfWords
from voice.listener import Heard
from voice.sinks import NullSink
from voice.tts import SpeechChunk
from voice.types import Samples, Transcript, Utterance

RATE = 16_000
HAIKU = CloudTierConfig(model="claude-haiku-test", max_tokens=300)
AGENT = CloudTierConfig(model="claude-sonnet-test", max_tokens=700)


class ToneSynthesizer:
    """A Synthesizer that says each word as 0.1 s of a 300 Hz tone."""

    sample_rate = RATE

    def __init__(self) -> None:
        self.said: list[str] = []

    def synthesize(self, text: str) -> Samples:
        n = max(1, len(text.split())) * RATE // 10
        t = np.arange(n, dtype=np.float32) / RATE
        return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)

    async def stream(self, chunks: AsyncIterator[str]) -> AsyncGenerator[SpeechChunk, None]:
        index = 0
        async for text in chunks:
            self.said.append(text)
            yield SpeechChunk(text, self.synthesize(text), RATE, 0.1, index)
            index += 1

    def warm(self) -> None:
        return None

    def close(self) -> None:
        return None


class Clock:
    """A clock the test sets by hand; `real`: the monotonic clock (deadline tests)."""

    def __init__(self, t: float = 1000.0, real: bool = False) -> None:
        self.t = t
        self.real = real

    def __call__(self) -> float:
        return time.monotonic() if self.real else self.t


@dataclass
class Rig:
    assistant: Assistant
    sink: NullSink
    clock: Clock
    tts: ToneSynthesizer
    anthropic: FakeAnthropic
    local: FakeOpenAI
    settings: Settings
    breakers: dict[Tier, CloudBreaker]

    def heard(self, text: str) -> Heard:
        now = self.clock()
        u = Utterance(
            audio=np.zeros(RATE, np.float32),
            start_s=0.0,
            speech_start_s=0.2,
            last_voiced_s=1.0,
            end_of_turn_s=1.5,
            decided_at=now,
        )
        return Heard(u, Transcript(text, (), 5.0), now)

    async def turn(self, text: str) -> TurnRecord:
        return await asyncio.wait_for(self.assistant.handle(self.heard(text)), 10)

    def labels(self) -> list[str | None]:
        return [s.label for s in self.sink.segments]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def servers() -> Iterator[tuple[FakeAnthropic, FakeOpenAI]]:
    with FakeAnthropic() as anthropic, FakeOpenAI() as local:
        yield anthropic, local


@pytest.fixture
async def rig(
    tmp_path: Path, settings: Settings, servers: tuple[FakeAnthropic, FakeOpenAI]
) -> AsyncIterator[Rig]:
    async with build_rig(tmp_path, settings, servers) as built:
        yield built


@asynccontextmanager
async def build_rig(
    tmp_path: Path,
    settings: Settings,
    servers: tuple[FakeAnthropic, FakeOpenAI],
    *,
    clock: Clock | None = None,
    deadlines: DeadlineConfig | None = None,
    local_client: LLMClient | None = None,
    wait_line_s: float = 0.0,
) -> AsyncIterator[Rig]:
    """The assistant over fakes; `local_client` replaces the fake local server's client."""
    anthropic, local = servers
    clock = clock or Clock()
    timers = TimerService()
    persona = Persona(settings.persona)
    ledger = BudgetLedger(
        tmp_path / "ledger.sqlite3", BudgetConfig(daily_usd=1.0, monthly_usd=10.0, timezone="UTC")
    )
    breakers: dict[Tier, CloudBreaker] = {
        t: CloudBreaker(t, BreakerConfig(fail_max=1, reset_timeout_s=60.0)) for t in CLOUD_TIERS
    }
    anth = AnthropicConfig(base_url=anthropic.base_url, retries=0)
    clients: dict[Tier, LLMClient] = {
        "local": local_client
        or OpenAICompatClient(
            LocalLLMConfig(timeout_s=5.0, connect_timeout_s=1.0),
            base_url=local.openai_base_url,
            model="qwen2.5:3b-instruct",
        ),
        "haiku": AnthropicClient(HAIKU, anth, "sk-ant-unit"),
        "agent": AnthropicClient(AGENT, anth, "sk-ant-unit"),
    }
    router = Router(
        classifier=Classifier(settings.router, HashedBagOfWords(), ()),
        skills=build_skills(UTC, timers),
        persona=persona,
        budget=ledger,
        breakers=breakers,
        clients=clients,
        tier_configs={"haiku": HAIKU, "agent": AGENT},
        memory=ConversationMemory(MemoryConfig()),
        now=lambda: datetime(2026, 3, 5, 15, 20, tzinfo=UTC),
    )
    tts = ToneSynthesizer()
    sink = NullSink(RATE, clock=clock, start_at=clock(), realtime=False)
    assistant = Assistant(
        router=router,
        tts=tts,
        sink=sink,
        fillers=FillerCache(persona, tts, settings.persona.fillers),
        wake=WakeGate(WakeConfig(), clock),
        persona=persona,
        chunker=settings.chunker,
        clock=clock,
        deadlines=deadlines,
        wait_line_s=wait_line_s,
    )
    yield Rig(assistant, sink, clock, tts, anthropic, local, settings, breakers)
    for client in clients.values():
        await client.aclose()
    await timers.aclose()
    ledger.close()


def assert_in_order(rig: Rig) -> None:
    segs = rig.sink.segments
    for a, b in itertools.pairwise(segs):
        assert b.start_s >= a.end_s - 1e-9, segs


async def test_cloud_turn_plays_a_filler_before_the_answer(rig: Rig) -> None:
    rig.anthropic.enqueue(FakeScript(text="Heat pumps move heat rather than make it."))
    rec = await rig.turn("Atlas, how does a heat pump work?")
    assert rec.addressed and rec.tier == "haiku" and rec.wanted == "haiku"
    assert rec.filler in rig.settings.persona.fillers
    assert rec.answer == "Heat pumps move heat rather than make it."
    assert rec.heard == rec.answer and rec.interrupted is None
    labels = rig.labels()
    assert labels[0] == "filler" and labels.count("filler") == 1
    assert labels[1:] and set(labels[1:]) == {"answer"}
    assert_in_order(rig)
    # The filler is the first sound of the turn, stamped before the first answer sample.
    ts = rec.timestamps
    assert ts["route"] <= ts["filler_first_sample"] <= ts["first_answer_sample"]
    # The request went to the fake with the question, without the wake word.
    assert (
        rig.anthropic.requests[-1].body["messages"][-1]["content"] == "how does a heat pump work?"
    )


@pytest.mark.parametrize(
    ("question", "tier"),
    [("Atlas, turn on the lights.", "local"), ("Atlas, what time is it?", "skill")],
)
async def test_local_turns_have_no_filler(rig: Rig, question: str, tier: str) -> None:
    rig.local.enqueue(FakeLLMScript(reply="The lights are on."))
    rec = await rig.turn(question)
    assert rec.addressed and rec.tier == tier
    assert rec.filler is None and "filler_first_sample" not in rec.timestamps
    assert rec.answer and rig.labels() and set(rig.labels()) == {"answer"}
    assert not rig.anthropic.requests  # the cloud was never asked


async def test_a_local_answer_silent_too_long_is_preceded_by_a_filler(
    tmp_path: Path, settings: Settings, servers: tuple[FakeAnthropic, FakeOpenAI]
) -> None:
    """A busy box (or rooms served in turn): nothing audible `wait_line_s` after the end
    of speech, so a filler holds the floor and the answer follows it, whole."""
    clock = Clock(real=True)
    async with build_rig(tmp_path, settings, servers, clock=clock, wait_line_s=0.8) as rig:
        # The utterance ended 0.5 s before the turn starts: the filler is due 0.3 s in.
        rig.local.enqueue(FakeLLMScript(reply="Very good, sir.", first_token_delay_s=1.5))
        rec = await rig.turn("Atlas, turn on the lights.")
    assert rec.tier == "local" and rec.interrupted is None
    assert rec.filler in settings.persona.fillers
    assert rec.answer == "Very good, sir."
    labels = rig.labels()
    assert labels[0] == "filler" and labels.count("filler") == 1
    assert set(labels[1:]) == {"answer"}
    assert_in_order(rig)
    assert rec.timestamps["filler_first_sample"] <= rec.timestamps["first_answer_sample"]


async def test_fillers_do_not_repeat_back_to_back(rig: Rig) -> None:
    fillers: list[str | None] = []
    for _ in range(4):
        rig.anthropic.enqueue(FakeScript(text="Certainly."))
        fillers.append((await rig.turn("Atlas, how does a heat pump work?")).filler)
    assert all(fillers)
    assert all(a != b for a, b in itertools.pairwise(fillers))


async def test_only_the_wake_word_gets_an_acknowledgement(rig: Rig) -> None:
    rec = await rig.turn("Atlas?")
    assert rec.addressed
    assert rec.answer in rig.settings.persona.acknowledge
    assert rec.heard == rec.answer
    assert rec.tier is None and rec.filler is None
    assert rig.labels() == ["answer"]
    assert not rig.anthropic.requests and not rig.local.chat_requests()
    # The acknowledgement opens the follow-up window: the request needs no wake word now.
    rig.local.enqueue(FakeLLMScript(reply="Of course."))
    follow = await rig.turn("turn on the lights")
    assert follow.addressed and follow.tier == "local"


async def test_without_wake_word_nothing_is_said(rig: Rig) -> None:
    rec = await rig.turn("what about tomorrow?")
    assert not rec.addressed and rec.ignored_reason == "no wake phrase"
    assert rec.answer == "" and rec.tier is None
    assert rig.sink.segments == ()


async def test_interrupt_records_what_was_heard(rig: Rig) -> None:
    reply = (
        "One two three four five six seven eight nine ten. "
        "Eleven twelve thirteen fourteen fifteen. Sixteen seventeen eighteen nineteen twenty."
    )
    # Slow tokens keep the turn running while the first chunk plays.
    rig.local.enqueue(FakeLLMScript(reply=reply, tokens_per_s=10))
    task = asyncio.create_task(rig.turn("Atlas, turn on the lights and count to twenty."))
    for _ in range(500):
        if rig.sink.segments:
            break
        await asyncio.sleep(0.01)
    first = rig.sink.segments[0]
    assert first.label == "answer"
    # Half of the first chunk has played when the person talks over it.
    rig.clock.t = rig.sink.start_at + (first.start_s + first.end_s) / 2
    assert rig.assistant.busy
    rig.assistant.interrupt("barge_in")
    rec = await asyncio.wait_for(task, 5)
    assert rec.interrupted == "barge_in"
    spoken_first = rig.tts.said[0].split()
    heard = rec.heard.split()
    assert 0 < len(heard) < len(spoken_first)
    assert heard == spoken_first[: len(heard)]
    assert rec.answer.startswith(" ".join(spoken_first).rstrip(".,"))
    assert len(rec.answer) > len(rec.heard)
    # The playback was cut at the interruption, and nothing plays any more.
    last = rig.sink.segments[-1]
    assert last.cut and last.end_s == pytest.approx(rig.clock.t - rig.sink.start_at, abs=1e-3)
    assert not rig.assistant.busy
    # A cut turn is no upstream failure.
    assert all(b.state == "closed" and b.failure_count == 0 for b in rig.breakers.values())


async def test_cloud_failure_is_answered_locally_in_persona_after_the_filler(rig: Rig) -> None:
    rig.anthropic.enqueue(FakeScript.error(529))
    rig.local.enqueue(FakeLLMScript(reply="It moves heat from outside to inside."))
    rec = await rig.turn("Atlas, how does a heat pump work?")
    assert rec.addressed and rec.tier == "local" and rec.wanted == "haiku"
    assert rec.fallback_reason is not None
    assert rec.filler in rig.settings.persona.fillers
    assert any(rec.answer.startswith(line) for line in rig.settings.persona.api_error)
    assert rec.answer.endswith("It moves heat from outside to inside.")
    assert rig.labels()[0] == "filler" and set(rig.labels()[1:]) == {"answer"}
    persona = Persona(rig.settings.persona)
    assert persona.never_said(rec.answer) == []
