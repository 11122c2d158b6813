"""Router.decide() and the parts of respond() that need no server: downgrades (no key,
disabled, budget, thrifty, breaker), skills, clipping, the worst case, empty queries,
and a client that fails in an unexpected way. The clients point at a closed port: a
test that reached them would fail."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from atlas.home.stage import HomeStage
from atlas.llm.anthropic import AnthropicClient
from atlas.llm.base import CLOUD_TIERS, ErrorKind, LLMClient, LLMError, Message, Price, Tier
from atlas.llm.breaker import CloudBreaker
from atlas.llm.budget import BudgetLedger, CallRecord
from atlas.llm.classifier import Classifier, Prototype
from atlas.llm.config import (
    AnthropicConfig,
    BreakerConfig,
    BudgetConfig,
    CloudTierConfig,
    LocalLLMConfig,
    MemoryConfig,
    RouterConfig,
)
from atlas.llm.local import OpenAICompatClient
from atlas.llm.memory import ConversationMemory
from atlas.llm.router import AnswerResult, Router
from atlas.persona import LINE_KINDS, Persona
from atlas.settings import Settings, load_settings
from atlas.skills import TimerService, build_skills
from tests.unit.routing_fakes import HashedBagOfWords

HAIKU = CloudTierConfig(model="claude-haiku-test", max_tokens=300)
AGENT = CloudTierConfig(
    model="claude-sonnet-test", input_usd_per_mtok=3.0, output_usd_per_mtok=15.0, max_tokens=700
)
RESET_S = 60.0


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class ExplodingTransport(httpx.AsyncBaseTransport):
    """A transport with a bug in it: raises something that is not an httpx error."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")


@dataclass
class Parts:
    router: Router
    budget: BudgetLedger
    breakers: dict[Tier, CloudBreaker]
    persona: Persona
    clock: list[float]


Build = Callable[..., Parts]


@pytest.fixture
async def build(tmp_path: Path, settings: Settings) -> AsyncIterator[Build]:
    opened: list[tuple[list[LLMClient], BudgetLedger, TimerService]] = []

    def make(
        *,
        with_key: bool = True,
        router_config: RouterConfig | None = None,
        embedder: HashedBagOfWords | None = None,
        prototypes: tuple[Prototype, ...] = (),
        max_query_chars: int = 2000,
        agent_steps: int = 1,
        local_transport: httpx.AsyncBaseTransport | None = None,
        home: HomeStage | None = None,
    ) -> Parts:
        timers = TimerService()
        persona = Persona(settings.persona)
        ledger = BudgetLedger(
            tmp_path / f"ledger{len(opened)}.sqlite3",
            BudgetConfig(daily_usd=1.0, monthly_usd=10.0, timezone="UTC"),
        )
        clock = [500.0]
        cfg = BreakerConfig(fail_max=3, reset_timeout_s=RESET_S)
        breakers: dict[Tier, CloudBreaker] = {
            t: CloudBreaker(t, cfg, clock=lambda: clock[0]) for t in CLOUD_TIERS
        }
        nowhere = closed_url()
        clients: dict[Tier, LLMClient] = {
            "local": OpenAICompatClient(
                LocalLLMConfig(timeout_s=1.0, connect_timeout_s=0.2),
                base_url=nowhere + "/v1",
                model="qwen2.5:3b-instruct",
                transport=local_transport,
            )
        }
        if with_key:
            anth = AnthropicConfig(base_url=nowhere, retries=0)
            clients["haiku"] = AnthropicClient(HAIKU, anth, "sk-ant-unit")
            clients["agent"] = AnthropicClient(AGENT, anth, "sk-ant-unit")
        router = Router(
            classifier=Classifier(router_config or settings.router, embedder, prototypes),
            skills=build_skills(UTC, timers),
            persona=persona,
            budget=ledger,
            breakers=breakers,
            clients=clients,
            tier_configs={"haiku": HAIKU, "agent": AGENT},
            memory=ConversationMemory(MemoryConfig()),
            now=lambda: datetime(2026, 3, 5, 15, 20, tzinfo=UTC),
            max_query_chars=max_query_chars,
            agent_steps=agent_steps,
            home=home,
        )
        opened.append((list(clients.values()), ledger, timers))
        return Parts(router, ledger, breakers, persona, clock)

    yield make
    for clients, ledger, timers in opened:
        for client in clients:
            await client.aclose()
        await timers.aclose()
        ledger.close()


def spend(ledger: BudgetLedger, usd: float) -> None:
    """Book a settled call of `usd` through the ledger's own API."""
    reservation = ledger.reserve("haiku", usd)
    assert reservation is not None
    ledger.settle(
        reservation, CallRecord(query_text="earlier", tier="haiku", model="m", cost_usd=usd)
    )


async def answer(router: Router, text: str) -> tuple[str, AnswerResult]:
    pieces: list[str] = []
    result: AnswerResult | None = None
    async for item in router.ask(text):
        if isinstance(item, AnswerResult):
            result = item
        else:
            pieces.append(item)
    assert result is not None
    return "".join(pieces), result


# --------------------------------------------------------------------------- decide


@pytest.mark.parametrize(
    ("query", "tier", "stage", "filler"),
    [
        ("how does a heat pump work", "haiku", "default", True),
        ("my chest hurts", "agent", "safety", True),
        ("I took too many pills", "agent", "safety", True),
        ("turn on the lights", "local", "local_pattern", False),
    ],
)
def test_decide_explains_the_cascade(
    build: Build, query: str, tier: str, stage: str, filler: bool
) -> None:
    d = build().router.decide(query)
    assert (d.tier, d.wanted, d.stage, d.wants_filler) == (tier, tier, stage, filler)
    assert d.downgrade is None and d.lead_line is None
    assert d.reason and d.budget_mode == "normal"
    assert d.classification is not None and d.classification.tier == tier


def test_skill_decision_names_the_skill(build: Build) -> None:
    d = build().router.decide("what time is it")
    assert (d.tier, d.stage) == ("local", "skill")
    assert d.skill is not None and d.skill.skill == "clock"
    assert not d.wants_filler


def test_no_key_means_local_without_a_line(build: Build) -> None:
    router = build(with_key=False).router
    for query in ("how does a heat pump work", "my chest hurts"):
        d = router.decide(query)
        assert (d.tier, d.downgrade, d.lead_line) == ("local", "no_key", None)
        assert d.wanted in CLOUD_TIERS


def test_disabled_tier_goes_local_with_one_warning(build: Build) -> None:
    router = build().router
    with capture_logs() as logs:
        router.disable("haiku")
        router.disable("haiku")
    assert [e["event"] for e in logs] == ["router.tier_disabled"]
    d = router.decide("how does a heat pump work")
    assert (d.tier, d.downgrade, d.lead_line) == ("local", "disabled", None)
    assert router.decide("my chest hurts").tier == "agent", "only the refused tier is off"


def test_exhausted_budget_goes_local_with_the_persona_line(
    build: Build, settings: Settings
) -> None:
    parts = build()
    spend(parts.budget, 1.0)
    d = parts.router.decide("how does a heat pump work")
    assert (d.tier, d.downgrade, d.budget_mode) == ("local", "budget", "local_only")
    assert d.lead_line in settings.persona.budget_exceeded
    # A safety worry is never left to the small model: it gets the safety line.
    d = parts.router.decide("my chest hurts")
    assert (d.tier, d.downgrade, d.stage) == ("local", "budget", "safety")
    assert d.skill is not None and d.skill.text in settings.persona.safety
    assert parts.router.decide("turn on the lights").downgrade is None


def test_thrifty_mode_only_moves_marginal_haiku_decisions(build: Build, settings: Settings) -> None:
    embedder = HashedBagOfWords()
    protos = (
        Prototype("heat pump on", "local"),
        Prototype("how does a fridge work", "haiku"),
        Prototype("plan my week", "agent"),
    )
    query = "how does a heat pump work"
    probe = Classifier(settings.router, embedder, protos)
    local_score = float(probe.tier_scores([query])[0][0][0])
    cfg = replace(settings.router, local_threshold=local_score + 0.01, margin=0.05)
    parts = build(router_config=cfg, embedder=embedder, prototypes=protos)
    assert parts.router.decide(query).tier == "haiku", "normal mode: marginal still goes"
    spend(parts.budget, 0.85)
    d = parts.router.decide(query)
    assert (d.budget_mode, d.tier, d.downgrade, d.lead_line) == (
        "thrifty",
        "local",
        "thrifty",
        None,
    )
    strict = build(router_config=replace(cfg, margin=0.0), embedder=embedder, prototypes=protos)
    spend(strict.budget, 0.85)
    assert strict.router.decide(query).tier == "haiku", "not marginal: thrifty keeps haiku"


def test_open_breaker_goes_local_until_its_trial_is_due(build: Build, settings: Settings) -> None:
    parts = build()
    breaker = parts.breakers["haiku"]
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure(LLMError(ErrorKind.SERVER, "500"))
    d = parts.router.decide("how does a heat pump work")
    assert (d.tier, d.downgrade) == ("local", "breaker_open")
    assert d.lead_line in settings.persona.api_error
    assert parts.router.decide("my chest hurts").tier == "agent", "breakers are per tier"
    parts.clock[0] += RESET_S + 1
    # Due: decide() lets the query through but leaves the one trial to the call itself,
    # however often it is asked (`atlas route` must not use the trial up).
    for _ in range(3):
        assert parts.router.decide("how does a heat pump work").tier == "haiku"
    assert breaker.allow(), "the trial slot is still free"
    assert not breaker.allow(), "and there is only one"


def test_long_query_is_clipped_with_a_log_line(build: Build) -> None:
    router = build(max_query_chars=60).router
    query = "please   tell me\n" + "about the history of the heat pump " * 10
    with capture_logs() as logs:
        d = router.decide(query)
    assert d.text == " ".join(query.split())[:60]
    assert [e["event"] for e in logs if e["event"] == "router.query_truncated"] == [
        "router.query_truncated"
    ]
    with capture_logs() as logs:
        assert router.decide("what is a heat pump").text == "what is a heat pump"
    assert not [e for e in logs if e["event"] == "router.query_truncated"]


def test_worst_case_covers_every_token(build: Build, settings: Settings) -> None:
    router = build(agent_steps=3).router
    base = router.worst_case_usd("haiku", [], "hi")
    now = datetime(2026, 3, 5, 15, 20, tzinfo=UTC)
    system = Persona(settings.persona).system_prompt("haiku", now)
    in_tokens = int((len(system) + 2) / 3.0) + 1
    assert base == pytest.approx(Price(1.0, 5.0).worst_case(in_tokens, HAIKU.max_tokens))
    history = [Message("user", "x" * 300), Message("assistant", "y" * 300)]
    assert router.worst_case_usd("haiku", history, "hi") > base
    one_step = build(agent_steps=1).router.worst_case_usd("agent", [], "hi")
    assert router.worst_case_usd("agent", [], "hi") > 3 * one_step, "each step re-sends"


def test_every_line_a_decision_can_carry_is_in_persona(build: Build, settings: Settings) -> None:
    persona = build().persona
    for kind in LINE_KINDS:
        for line in getattr(settings.persona, kind):
            assert persona.violations(line) == [], (kind, line)


# -------------------------------------------------------------------------- respond


@pytest.mark.parametrize("query", ["", "  ", "\t\n"])
async def test_empty_query_calls_nothing(build: Build, settings: Settings, query: str) -> None:
    text, result = await answer(build().router, query)
    assert text in settings.persona.misunderstanding
    assert (result.answered_by, result.decision.stage) == ("persona", "empty")


async def test_arithmetic_skill_answers_without_a_model(build: Build) -> None:
    parts = build()
    text, result = await answer(parts.router, "what is 12 times 12")
    assert result.answered_by == "skill"
    assert "144" in text or "hundred" in text
    assert result.cost_usd == 0.0 and result.response is None


async def test_a_client_bug_still_ends_in_persona(build: Build, settings: Settings) -> None:
    parts = build(local_transport=ExplodingTransport())
    with capture_logs() as logs:
        text, result = await answer(parts.router, "turn on the lights")
    assert text.strip() in settings.persona.cut_short
    assert result.answered_by == "local"
    assert parts.persona.violations(text) == []
    assert any(e["event"] == "router.local_failed" for e in logs)


async def test_unreachable_local_server_still_ends_in_persona(
    build: Build, settings: Settings
) -> None:
    text, result = await answer(build().router, "turn on the lights")
    assert text.strip() in settings.persona.cut_short
    assert result.answered_by == "local"
