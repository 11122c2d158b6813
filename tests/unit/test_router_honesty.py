"""The router's honesty seams: request stages before any model, the safety line when
no careful tier can answer, the answer guard on local and cloud streams, and a cloud
model id that is gone (404) switching its tier off with one warning."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from atlas.honesty import CapabilityGate
from atlas.llm.anthropic import AnthropicClient
from atlas.llm.base import CLOUD_TIERS, LLMClient, LLMResponse, Message, StreamItem, Tier
from atlas.llm.breaker import CloudBreaker
from atlas.llm.budget import BudgetLedger
from atlas.llm.classifier import Classifier
from atlas.llm.config import (
    AnthropicConfig,
    BreakerConfig,
    BudgetConfig,
    CloudTierConfig,
    MemoryConfig,
)
from atlas.llm.memory import ConversationMemory
from atlas.llm.model_check import (
    check_cloud_models,
    check_model,
    disable_unknown_models,
    probe_model,
)
from atlas.llm.router import Router
from atlas.persona import Persona
from atlas.settings import Settings, load_settings
from atlas.skills import TimerService, build_skills
from atlas.testing.fake_anthropic import FakeAnthropic, FakeScript
from tests.unit.test_router import answer

HAIKU = CloudTierConfig(model="claude-haiku-test", max_tokens=300)
AGENT = CloudTierConfig(model="claude-agent-test", max_tokens=700)


class ScriptedLocal:
    """A local LLMClient that streams a fixed reply word by word, and records calls."""

    backend = "scripted"
    model = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls = 0
        self.delivered = 0

    async def stream(
        self, messages: Sequence[Message], system: str, temperature: float, max_tokens: int
    ) -> AsyncIterator[StreamItem]:
        self.calls += 1
        words = self.reply.split(" ")
        for i, w in enumerate(words):
            self.delivered += 1
            yield w if i == 0 else " " + w
        yield LLMResponse(self.reply, self.model, self.backend, 1.0, 2.0)

    async def generate(
        self, messages: Sequence[Message], system: str, temperature: float, max_tokens: int
    ) -> LLMResponse:
        raise NotImplementedError

    async def is_available(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def make_router(
    tmp_path: Path,
    settings: Settings,
    local: LLMClient,
    cloud: dict[Tier, LLMClient] | None = None,
    local_declines: bool = False,
    home: Any = None,
) -> tuple[Router, BudgetLedger, TimerService]:
    timers = TimerService()
    ledger = BudgetLedger(
        tmp_path / "ledger.sqlite3", BudgetConfig(daily_usd=1.0, monthly_usd=10.0, timezone="UTC")
    )
    router = Router(
        classifier=Classifier(settings.router, None, ()),
        skills=build_skills(UTC, timers),
        persona=Persona(settings.persona),
        budget=ledger,
        breakers={t: CloudBreaker(t, BreakerConfig()) for t in CLOUD_TIERS},
        clients={"local": local, **(cloud or {})},
        tier_configs={"haiku": HAIKU, "agent": AGENT},
        memory=ConversationMemory(MemoryConfig()),
        now=lambda: datetime(2026, 12, 2, 15, 20, tzinfo=UTC),
        stages=[CapabilityGate()],
        local_declines=local_declines,
        home=home,
    )
    return router, ledger, timers


Build = Callable[..., Router]


@pytest.fixture
async def build(tmp_path: Path, settings: Settings) -> AsyncIterator[Build]:
    """make_router with everything it opened closed after the test."""
    opened: list[tuple[BudgetLedger, TimerService]] = []

    def make(local: LLMClient, cloud: dict[Tier, LLMClient] | None = None) -> Router:
        router, ledger, timers = make_router(tmp_path, settings, local, cloud)
        opened.append((ledger, timers))
        return router

    yield make
    for ledger, timers in opened:
        ledger.close()
        await timers.aclose()


async def test_a_device_request_gets_an_honest_line_and_no_model(build: Build) -> None:
    local = ScriptedLocal("I'll turn on the living room lights, I'll turn them on.")
    text, result = await answer(build(local), "Atlas turn on the living room lights.")
    assert local.calls == 0
    assert result.answered_by == "persona" and result.decision.stage == "capability"
    assert "can't" in text and "turn them on" not in text


async def test_a_false_claim_from_the_local_model_is_never_said(
    build: Build, settings: Settings
) -> None:
    local = ScriptedLocal("Of course. I've switched off the porch light for you.")
    text, result = await answer(build(local), "goodnight then, see to things")
    assert "switched" not in text
    assert text.strip().endswith(tuple(settings.persona.not_done))
    assert result.text == text.strip()


async def test_a_looping_local_model_is_stopped(build: Build, settings: Settings) -> None:
    local = ScriptedLocal("no, " * 96)
    text, _ = await answer(build(local), "hmm what do you reckon about that")
    assert "no, no" not in text and text.strip() in settings.persona.no_answer
    assert local.delivered < 10  # the model was stopped, not read to the end


async def test_a_safety_worry_without_a_careful_tier_gets_the_safety_line(
    build: Build, settings: Settings
) -> None:
    local = ScriptedLocal("Have a lie down, it is probably nothing.")
    router = build(local)
    text, result = await answer(router, "my chest hurts and my left arm is numb")
    assert local.calls == 0 and result.answered_by == "persona"
    assert text in settings.persona.safety and "911" in text
    text, _ = await answer(router, "the police want to interview me tomorrow")
    assert text in settings.persona.legal


QUERY = "please explain in some detail why the sky looks blue to us"


async def test_guard_works_on_the_cloud_stream_too(build: Build) -> None:
    with FakeAnthropic() as fake:
        fake.enqueue(FakeScript(text="As an AI, I have no feelings. Blue light scatters most."))
        haiku = AnthropicClient(HAIKU, AnthropicConfig(base_url=fake.base_url, retries=0), "k")
        try:
            router = build(ScriptedLocal("unused"), {"haiku": haiku})
            d = router.decide(QUERY)
            assert d.tier == "haiku"
            pieces = [i async for i in router.respond(d) if isinstance(i, str)]
            assert "".join(pieces).strip() == "Blue light scatters most."
        finally:
            await haiku.aclose()


async def test_a_model_id_that_is_gone_switches_its_tier_off_with_one_warning(
    build: Build,
) -> None:
    with FakeAnthropic() as fake:
        fake.retire(HAIKU.model)
        haiku = AnthropicClient(HAIKU, AnthropicConfig(base_url=fake.base_url, retries=0), "k")
        try:
            router = build(ScriptedLocal("Blue light scatters most."), {"haiku": haiku})
            with capture_logs() as logs:
                text, result = await answer(router, QUERY)
                text2, result2 = await answer(router, QUERY)
        finally:
            await haiku.aclose()
        assert result.answered_by == "local" and result.fallback_reason == "model_not_found"
        assert "Blue light scatters most." in text and "Blue light" in text2
        warnings = [e for e in logs if e["event"] == "router.tier_disabled"]
        assert len(warnings) == 1
        assert "llm.anthropic.haiku.model" in warnings[0]["why"]
        assert result2.decision.downgrade == "disabled"
        assert len(fake.requests) == 1  # the second question never tried the cloud


def test_the_deprecation_table_decides_which_ids_are_gone() -> None:
    table = {"claude-old": "2026-11-30", "claude-soon": "2027-06-01"}
    gone = check_model("agent", "claude-old", date(2026, 12, 2), table)
    assert gone is not None and gone.fatal and "llm.anthropic.agent.model" in gone.warning
    soon = check_model("agent", "claude-soon", date(2026, 12, 2), table)
    assert soon is not None and not soon.fatal
    assert check_model("haiku", "claude-new", date(2026, 12, 2), table) is None


def test_the_shipped_model_ids_are_current(settings: Settings) -> None:
    problems = check_cloud_models(settings.llm.anthropic, date(2026, 12, 2))
    assert not [p for p in problems if p.fatal], [p.warning for p in problems]


async def test_the_start_up_lookup_switches_off_an_unknown_model(settings: Settings) -> None:
    disabled: list[tuple[Tier, str]] = []
    with FakeAnthropic() as fake:
        fake.retire(AGENT.model)
        anth = AnthropicConfig(base_url=fake.base_url, haiku=HAIKU, agent=AGENT)
        await disable_unknown_models(anth, "sk-ant-unit", lambda t, w: disabled.append((t, w)))
        assert await probe_model(anth, "sk-ant-unit", HAIKU.model, 5.0) is None
    assert [t for t, _ in disabled] == ["agent"]
    assert "llm.anthropic.agent.model" in disabled[0][1]
    nowhere = AnthropicConfig(base_url="http://127.0.0.1:9", haiku=HAIKU, agent=AGENT)
    assert await probe_model(nowhere, "k", HAIKU.model, 2.0) is not None  # unreachable


async def test_a_small_local_model_declines_questions_meant_for_the_cloud(
    tmp_path: Path, settings: Settings
) -> None:
    local = ScriptedLocal("The author is Elizabeth Bennet.")
    router, ledger, timers = make_router(tmp_path, settings, local, local_declines=True)
    try:
        text, result = await answer(router, "who wrote the novel Pride and Prejudice then")
        assert local.calls == 0 and result.answered_by == "persona"
        assert text in settings.persona.unsure
        text, _ = await answer(router, "hmm")  # short: meant for the local tier anyway
        assert local.calls == 1
    finally:
        ledger.close()
        await timers.aclose()


class UnrecognisingHome:
    """A home stage that takes device requests but whose Home Assistant knows none."""

    def wants(self, text: str) -> str | None:
        return "control" if "lights" in text else None

    async def handle(self, text: str, kind: str) -> None:
        return None


async def test_a_request_home_assistant_does_not_know_still_gets_an_honest_line(
    tmp_path: Path, settings: Settings
) -> None:
    local = ScriptedLocal("I've turned the garden lights on.")
    router, ledger, timers = make_router(tmp_path, settings, local, home=UnrecognisingHome())
    try:
        text, result = await answer(router, "switch on the garden lights")
        assert local.calls == 0 and result.answered_by == "persona"
        assert "can't" in text
    finally:
        ledger.close()
        await timers.aclose()
