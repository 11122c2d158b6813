"""The router end to end: real classifier, skills, persona, ledger, breakers and clients,
talking to the fake Anthropic and OpenAI-compatible servers on 127.0.0.1.

Every fault of the matrix goes through `Router.ask()` and checks the same three things:
the user got an in-persona answer, nothing raised, and the ledger is consistent (one row
per cloud call actually attempted, costs = the fake's reported usage x prices, the spent
totals equal the rows, no reservation left behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from atlas.llm.agent import AgentRunner
from atlas.llm.anthropic import AnthropicClient
from atlas.llm.base import CLOUD_TIERS, LLMClient, Price, Tier, Usage
from atlas.llm.breaker import CloudBreaker
from atlas.llm.budget import BudgetLedger
from atlas.llm.classifier import Classifier, Prototype
from atlas.llm.config import (
    AgentLoopConfig,
    AnthropicConfig,
    BreakerConfig,
    BudgetConfig,
    CloudTierConfig,
    LocalLLMConfig,
    MemoryConfig,
    PersonaConfig,
    RouterConfig,
)
from atlas.llm.local import OpenAICompatClient
from atlas.llm.memory import ConversationMemory
from atlas.llm.router import AnswerItem, AnswerResult, Router
from atlas.persona import Persona
from atlas.settings import Settings
from atlas.skills import ClockSkill, TimerService, build_skills
from atlas.skills.tools import skill_tools
from atlas.testing.fake_anthropic import FakeAnthropic, FakeScript, FakeToolUse, split_deltas
from atlas.testing.fake_openai import FakeLLMScript, FakeLLMServer
from atlas.testing.serving import free_port as closed_port
from tests.unit.routing_fakes import HashedBagOfWords

KEY = "sk-ant-test-ROUTER-0123456789"
HAIKU_Q = "how does a heat pump work"  # no pattern: the default stage -> haiku
AGENT_Q = "my chest hurts"  # safety pattern -> agent
LOCAL_Q = "turn on the lights"  # local pattern
LOCAL_REPLY = "Very good, sir."
CLOUD_REPLY = "It moves heat from outside air into the house, much as a fridge works in reverse."
RESET_S = 30.0
HAIKU = CloudTierConfig(
    model="claude-haiku-test",
    input_usd_per_mtok=1.0,
    output_usd_per_mtok=5.0,
    max_tokens=300,
    first_token_deadline_s=0.5,
)
AGENT = CloudTierConfig(
    model="claude-sonnet-test",
    input_usd_per_mtok=3.0,
    output_usd_per_mtok=15.0,
    max_tokens=400,
    first_token_deadline_s=1.0,
)
PRICES = {"haiku": Price(1.0, 5.0), "agent": Price(3.0, 15.0)}


@pytest.fixture
def local() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default=FakeLLMScript(reply=LOCAL_REPLY)) as server:
        yield server


@dataclass
class Rig:
    router: Router
    budget: BudgetLedger
    breakers: dict[Tier, CloudBreaker]
    persona: Persona
    anth: FakeAnthropic
    local: FakeLLMServer
    clock: list[float]
    timers: TimerService
    persona_config: PersonaConfig
    clients: dict[Tier, LLMClient] = field(default_factory=dict)

    def advance(self, seconds: float) -> None:
        self.clock[0] += seconds

    async def ask(self, text: str) -> tuple[list[str], AnswerResult]:
        pieces: list[str] = []
        result: AnswerResult | None = None
        async for item in self.router.ask(text):
            if isinstance(item, AnswerResult):
                assert result is None, "exactly one AnswerResult ends the stream"
                result = item
            else:
                assert result is None, "no text after the AnswerResult"
                pieces.append(item)
        assert result is not None
        return pieces, result

    def lines(self, kind: str) -> tuple[str, ...]:
        lines: tuple[str, ...] = getattr(self.persona_config, kind)
        return lines


def fast_anthropic(base_url: str) -> AnthropicConfig:
    return AnthropicConfig(
        base_url=base_url,
        connect_timeout_s=0.5,
        read_timeout_s=1.0,
        retries=1,
        retry_initial_s=0.01,
        retry_max_s=0.05,
        stall_timeout_s=0.3,
        haiku=HAIKU,
        agent=AGENT,
    )


RigFactory = Callable[..., Rig]


@pytest.fixture
async def make_rig(
    tmp_path: Path, settings: Settings, anth: FakeAnthropic, local: FakeLLMServer
) -> AsyncIterator[RigFactory]:
    built: list[Rig] = []

    def factory(
        *,
        with_key: bool = True,
        haiku_url: str | None = None,
        router_config: RouterConfig | None = None,
        embedder: HashedBagOfWords | None = None,
        prototypes: Sequence[Prototype] = (),
        budget: BudgetConfig | None = None,
        max_query_chars: int = 2000,
        agent_steps: int = 2,
    ) -> Rig:
        tz = UTC
        timers = TimerService()
        skills = build_skills(tz, timers)
        persona = Persona(settings.persona)
        clock = [1000.0]
        ledger = BudgetLedger(
            tmp_path / f"ledger{len(built)}.sqlite3",
            budget or BudgetConfig(daily_usd=1.0, monthly_usd=10.0, timezone="UTC"),
        )
        breaker_cfg = BreakerConfig(fail_max=3, reset_timeout_s=RESET_S)
        breakers: dict[Tier, CloudBreaker] = {
            t: CloudBreaker(t, breaker_cfg, clock=lambda: clock[0]) for t in CLOUD_TIERS
        }
        local_cfg = LocalLLMConfig(timeout_s=2.0, connect_timeout_s=0.5, max_tokens=80)
        clients: dict[Tier, LLMClient] = {
            "local": OpenAICompatClient(
                local_cfg, base_url=local.openai_base_url, model="qwen2.5:3b-instruct"
            )
        }
        if with_key:
            cfg = fast_anthropic(anth.base_url)
            haiku_cfg = fast_anthropic(haiku_url) if haiku_url else cfg
            clients["haiku"] = AnthropicClient(HAIKU, haiku_cfg, KEY)
            tools = skill_tools(skills, timers, tz)
            clients["agent"] = AgentRunner(
                AnthropicClient(AGENT, cfg, KEY),
                tools,
                AgentLoopConfig(max_steps=agent_steps, deadline_s=5.0),
            )
        classifier = Classifier(router_config or settings.router, embedder, prototypes)
        router = Router(
            classifier=classifier,
            skills=skills,
            persona=persona,
            budget=ledger,
            breakers=breakers,
            clients=clients,
            tier_configs={"haiku": HAIKU, "agent": AGENT},
            memory=ConversationMemory(MemoryConfig(max_turns=4, max_age_s=300.0)),
            now=lambda: datetime.now(tz),
            local_max_tokens=80,
            max_query_chars=max_query_chars,
            agent_steps=agent_steps,
        )
        rig = Rig(
            router, ledger, breakers, persona, anth, local, clock, timers, settings.persona, clients
        )
        built.append(rig)
        return rig

    yield factory
    for rig in built:
        for client in rig.clients.values():
            await client.aclose()
        await rig.timers.aclose()
        rig.budget.close()


# ----------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Row:
    tier: str
    model: str
    usage: Usage
    cost_usd: float
    status: str
    fallback_reason: str


def ledger_rows(budget: BudgetLedger) -> list[Row]:
    assert budget.flush(), "every settled row is written"
    with contextlib.closing(sqlite3.connect(budget.path)) as conn:
        rows = conn.execute(
            "SELECT tier, model, input_tokens, output_tokens, cache_read_tokens, "
            "cache_write_tokens, cost_usd, status, fallback_reason FROM calls ORDER BY id"
        ).fetchall()
    return [Row(r[0], r[1], Usage(r[2], r[3], r[4], r[5]), r[6], r[7], r[8]) for r in rows]


def check_ledger(rig: Rig, expected: Sequence[tuple[str, str]]) -> list[Row]:
    """Rows are exactly `expected` (tier, status); ok rows cost usage x prices; totals match."""
    rows = ledger_rows(rig.budget)
    assert [(r.tier, r.status) for r in rows] == list(expected)
    for r in rows:
        if r.status == "ok":
            assert r.cost_usd == pytest.approx(PRICES[r.tier].cost(r.usage), abs=1e-12)
            assert r.usage.input_tokens > 0
        else:
            assert r.cost_usd >= 0.0
    status = rig.budget.status()
    assert status.reserved_usd == 0.0, "no reservation is left behind"
    assert status.spent_today == pytest.approx(sum(r.cost_usd for r in rows), abs=1e-12)
    assert status.spent_month == pytest.approx(sum(r.cost_usd for r in rows), abs=1e-12)
    return rows


def check_in_persona(rig: Rig, result: AnswerResult, pieces: list[str]) -> None:
    assert result.text.strip(), "the user always gets an answer"
    assert "".join(pieces).strip() == result.text.strip()
    assert rig.persona.violations(result.text) == []


def state_of(breaker: CloudBreaker) -> str:
    """The state as a plain string (mypy would narrow the property across awaits)."""
    return str(breaker.state)


def starts_with_line(rig: Rig, text: str, kind: str) -> bool:
    return any(text.startswith(line) for line in rig.lines(kind))


def ends_with_line(rig: Rig, text: str, kind: str) -> bool:
    return any(text.rstrip().endswith(line) for line in rig.lines(kind))


def cloud_requests(anth: FakeAnthropic) -> int:
    return len([r for r in anth.requests if r.path.startswith("/v1/messages")])


def expected_usage(script: FakeScript) -> Usage:
    deltas = script.deltas if script.deltas is not None else split_deltas(script.text)
    out = script.output_tokens
    if out is None:  # the fake's own rule: one per delta, ten per tool_use
        out = len(deltas) + 10 * len(script.tool_uses)
    return Usage(
        script.input_tokens,
        out,
        script.cache_read_input_tokens,
        script.cache_creation_input_tokens,
    )


# ------------------------------------------------------------------- the happy paths


async def test_haiku_answer_usage_and_cost_match_the_fake(make_rig: RigFactory) -> None:
    rig = make_rig()
    script = FakeScript(
        text=CLOUD_REPLY,
        input_tokens=420,
        cache_read_input_tokens=64,
        cache_creation_input_tokens=8,
    )
    rig.anth.enqueue(script)
    d = rig.router.decide(HAIKU_Q)
    assert (d.tier, d.stage, d.downgrade, d.wants_filler) == ("haiku", "default", None, True)
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "haiku"
    assert result.text == CLOUD_REPLY
    assert result.fallback_reason is None
    assert result.response is not None
    usage = expected_usage(script)
    assert result.response.usage == usage
    assert result.cost_usd == pytest.approx(PRICES["haiku"].cost(usage), abs=1e-12)
    assert result.response.cost_usd == pytest.approx(result.cost_usd, abs=1e-12)
    assert rig.local.chat_requests() == []
    body = rig.anth.requests[0].body
    assert body["model"] == HAIKU.model
    assert body["messages"] == [{"role": "user", "content": HAIKU_Q}]
    rows = check_ledger(rig, [("haiku", "ok")])
    assert rows[0].usage == usage
    assert rows[0].model == HAIKU.model


async def test_agent_tool_loop_usage_is_summed(make_rig: RigFactory) -> None:
    rig = make_rig()
    first = FakeScript(text="", tool_uses=(FakeToolUse("get_current_datetime"),), input_tokens=500)
    final = FakeScript(text="Sit down and call 112 now.", input_tokens=650)
    rig.anth.enqueue(first, final)
    pieces, result = await rig.ask(AGENT_Q)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "agent"
    assert result.decision.stage == "safety"
    assert result.text == "Sit down and call 112 now."
    assert cloud_requests(rig.anth) == 2
    assert "tools" in rig.anth.requests[0].body
    a, b = expected_usage(first), expected_usage(final)
    total = Usage(a.input_tokens + b.input_tokens, a.output_tokens + b.output_tokens)
    assert result.response is not None and result.response.usage == total
    assert result.cost_usd == pytest.approx(PRICES["agent"].cost(total), abs=1e-12)
    rows = check_ledger(rig, [("agent", "ok")])
    assert rows[0].usage == total


async def test_local_pattern_goes_to_the_local_server_only(make_rig: RigFactory) -> None:
    rig = make_rig()
    pieces, result = await rig.ask(LOCAL_Q)
    check_in_persona(rig, result, pieces)
    assert (result.answered_by, result.text, result.cost_usd) == ("local", LOCAL_REPLY, 0.0)
    assert cloud_requests(rig.anth) == 0
    assert len(rig.local.chat_requests()) == 1
    check_ledger(rig, [])


async def test_skill_answers_the_time_without_any_llm(make_rig: RigFactory) -> None:
    rig = make_rig()
    before = datetime.now(UTC)
    pieces, result = await rig.ask("what time is it")
    after = datetime.now(UTC)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "skill"
    assert result.decision.skill is not None
    # The clock's own wording is tested with the skills; here: it is today's time, now.
    clock = ClockSkill(UTC)
    said = {a.text for t in (before, after) if (a := clock.handle("what time is it", t))}
    assert result.text in said
    assert cloud_requests(rig.anth) == 0
    assert rig.local.chat_requests() == []
    check_ledger(rig, [])


# ----------------------------------------------------- 429 / 529 / 500 before the answer


@pytest.mark.parametrize("status", [429, 529, 500])
async def test_status_error_is_retried_then_succeeds(make_rig: RigFactory, status: int) -> None:
    rig = make_rig()
    rig.anth.enqueue(FakeScript.error(status), FakeScript(text=CLOUD_REPLY))
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "haiku"
    assert result.text == CLOUD_REPLY
    assert cloud_requests(rig.anth) == 2, "one retry before the first token"
    assert rig.local.chat_requests() == []
    assert rig.breakers["haiku"].failure_count == 0
    check_ledger(rig, [("haiku", "ok")])


@pytest.mark.parametrize("status", [429, 529, 500])
async def test_status_error_twice_falls_back_locally(make_rig: RigFactory, status: int) -> None:
    rig = make_rig()
    rig.anth.enqueue(FakeScript.error(status), FakeScript.error(status))
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "local"
    assert result.fallback_reason in ("rate_limited", "overloaded", "server")
    assert starts_with_line(rig, result.text, "api_error")
    assert result.text.endswith(LOCAL_REPLY)
    assert cloud_requests(rig.anth) == 2
    assert len(rig.local.chat_requests()) == 1
    assert rig.breakers["haiku"].failure_count == 1
    assert rig.breakers["haiku"].state == "closed"
    rows = check_ledger(rig, [("haiku", "failed")])
    assert rows[0].cost_usd == 0.0


async def test_connection_refused_falls_back_locally(make_rig: RigFactory) -> None:
    rig = make_rig(haiku_url=f"http://127.0.0.1:{closed_port()}")
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "local"
    assert result.fallback_reason == "connection"
    assert starts_with_line(rig, result.text, "api_error")
    assert rig.breakers["haiku"].failure_count == 1
    check_ledger(rig, [("haiku", "failed")])


async def test_first_token_deadline_missed_answers_locally(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.anth.enqueue(FakeScript(text=CLOUD_REPLY, first_token_delay_s=3.0))
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "local"
    assert result.fallback_reason == "timeout"
    assert starts_with_line(rig, result.text, "timeout")
    assert result.text.endswith(LOCAL_REPLY)
    assert CLOUD_REPLY not in result.text
    assert rig.breakers["haiku"].failure_count == 1
    check_ledger(rig, [("haiku", "failed")])


# -------------------------------------------------------- failures once the answer began


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (FakeScript(text=CLOUD_REPLY, error_after_deltas=3), "mid_stream"),
        (FakeScript(text=CLOUD_REPLY, stall_after_deltas=3, stall_s=3.0), "stalled"),
    ],
    ids=["error", "stall"],
)
async def test_mid_stream_failure_never_switches_provider(
    make_rig: RigFactory, script: FakeScript, reason: str
) -> None:
    rig = make_rig()
    rig.anth.enqueue(script)
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    started = "".join(split_deltas(CLOUD_REPLY)[:3])
    assert result.text.startswith(started.strip())
    assert ends_with_line(rig, result.text, "cut_short")
    assert result.answered_by == "haiku"
    assert result.fallback_reason == reason
    assert rig.local.chat_requests() == [], "no provider switch once text was produced"
    assert cloud_requests(rig.anth) == 1, "a mid-stream failure is never retried"
    assert rig.breakers["haiku"].failure_count == 1
    rows = check_ledger(rig, [("haiku", "failed")])
    assert rows[0].cost_usd > 0, "the text already streamed was billed"
    assert rows[0].fallback_reason == reason


# ------------------------------------------------------------------------ invalid key


async def test_invalid_key_disables_the_tier_once(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.anth.enqueue(FakeScript.error(401))
    with capture_logs() as logs:
        pieces, result = await rig.ask(HAIKU_Q)
        check_in_persona(rig, result, pieces)
        assert result.answered_by == "local"
        assert result.fallback_reason == "auth"
        assert starts_with_line(rig, result.text, "api_error")
        assert cloud_requests(rig.anth) == 1, "a refused key is not retried"
        for _ in range(2):
            d = rig.router.decide(HAIKU_Q)
            assert (d.tier, d.downgrade, d.lead_line) == ("local", "disabled", None)
            pieces, result = await rig.ask(HAIKU_Q)
            check_in_persona(rig, result, pieces)
            assert (result.answered_by, result.text) == ("local", LOCAL_REPLY)
    assert cloud_requests(rig.anth) == 1, "later queries never reach the refused tier"
    disabled = [e for e in logs if e["event"] == "router.tier_disabled"]
    assert len(disabled) == 1 and disabled[0]["log_level"] == "warning"
    assert all(KEY not in str(e) for e in logs)
    assert rig.breakers["haiku"].state == "closed"
    assert rig.breakers["haiku"].failure_count == 0
    check_ledger(rig, [("haiku", "failed")])


# ----------------------------------------------------------------------------- budget


async def test_daily_limit_reached_answers_locally_without_calling(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.anth.enqueue(FakeScript(text=CLOUD_REPLY, input_tokens=3000, output_tokens=200))
    _, first = await rig.ask(HAIKU_Q)
    assert first.answered_by == "haiku"
    rig.budget.set_limits(daily=first.cost_usd, monthly=None)
    d = rig.router.decide(HAIKU_Q)
    assert (d.tier, d.downgrade, d.budget_mode) == ("local", "budget", "local_only")
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "local"
    assert starts_with_line(rig, result.text, "budget_exceeded")
    assert cloud_requests(rig.anth) == 1, "the fake is never called"
    check_ledger(rig, [("haiku", "ok")])


async def test_call_whose_worst_case_would_cross_the_limit_is_not_sent(
    make_rig: RigFactory,
) -> None:
    rig = make_rig()
    worst = rig.router.worst_case_usd("haiku", [], HAIKU_Q)
    rig.budget.set_limits(daily=worst * 0.9, monthly=None)
    d = rig.router.decide(HAIKU_Q)
    assert (d.tier, d.budget_mode) == ("haiku", "normal"), "nothing spent yet"
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "local"
    assert result.fallback_reason == "budget"
    assert starts_with_line(rig, result.text, "budget_exceeded")
    assert cloud_requests(rig.anth) == 0
    check_ledger(rig, [])


async def test_thrifty_mode_sends_a_marginal_haiku_decision_local(
    make_rig: RigFactory, settings: Settings
) -> None:
    embedder = HashedBagOfWords()
    protos = [
        Prototype("heat pump on", "local"),
        Prototype("turn the heat pump off", "local"),
        Prototype("how does a fridge work", "haiku"),
        Prototype("explain how a heat pump works", "haiku"),
        Prototype("plan a week of meals", "agent"),
    ]
    probe = Classifier(settings.router, embedder, protos)
    scores, _ = probe.tier_scores([HAIKU_Q])
    local_score = float(scores[0][0])
    cfg = replace(
        settings.router, local_threshold=local_score + 0.02, margin=0.05, agent_threshold=1.0
    )
    rig = make_rig(router_config=cfg, embedder=embedder, prototypes=protos)
    c = rig.router.decide(HAIKU_Q).classification
    assert c is not None and (c.tier, c.marginal) == ("haiku", True)
    # Spend 85% of the day's limit with one real call: thrifty, but not exhausted.
    rig.anth.enqueue(FakeScript(text=CLOUD_REPLY, input_tokens=30000, output_tokens=2000))
    _, first = await rig.ask("tell me how a modern fridge keeps food cold")
    assert first.answered_by == "haiku"
    rig.budget.set_limits(daily=first.cost_usd / 0.85, monthly=None)
    d = rig.router.decide(HAIKU_Q)
    assert (d.budget_mode, d.tier, d.downgrade, d.lead_line) == (
        "thrifty",
        "local",
        "thrifty",
        None,
    )
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert (result.answered_by, result.text) == ("local", LOCAL_REPLY)
    assert cloud_requests(rig.anth) == 1
    # A decision that is not marginal still goes to haiku in thrifty mode.
    rig.anth.enqueue(FakeScript(text="Gladly."))
    _, other = await rig.ask("tell me how a modern fridge keeps food cold")
    assert other.answered_by == "haiku"
    check_ledger(rig, [("haiku", "ok"), ("haiku", "ok")])


# --------------------------------------------------------------------------- breaker


async def test_breaker_opens_then_recovers_after_one_trial(make_rig: RigFactory) -> None:
    rig = make_rig()
    breaker = rig.breakers["haiku"]
    for i in range(3):
        rig.anth.enqueue(FakeScript.error(500), FakeScript.error(500))
        pieces, result = await rig.ask(HAIKU_Q)
        check_in_persona(rig, result, pieces)
        assert result.answered_by == "local"
        assert breaker.failure_count == i + 1 or state_of(breaker) == "open"
    assert state_of(breaker) == "open"
    sent = cloud_requests(rig.anth)
    assert sent == 6

    d = rig.router.decide(HAIKU_Q)
    assert (d.tier, d.downgrade, d.wants_filler) == ("local", "breaker_open", False)
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "local"
    assert starts_with_line(rig, result.text, "api_error")
    assert cloud_requests(rig.anth) == sent, "an open breaker sends nothing"

    rig.advance(RESET_S + 1)
    rig.anth.enqueue(FakeScript(text=CLOUD_REPLY))
    d = rig.router.decide(HAIKU_Q)
    assert (d.tier, d.downgrade) == ("haiku", None), "due for a trial after the reset timeout"
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert (result.answered_by, result.text) == ("haiku", CLOUD_REPLY)
    assert cloud_requests(rig.anth) == sent + 1, "exactly one trial call"
    assert state_of(breaker) == "closed"
    assert breaker.failure_count == 0
    check_ledger(rig, [("haiku", "failed")] * 3 + [("haiku", "ok")])


async def test_failed_trial_reopens_the_breaker(make_rig: RigFactory) -> None:
    rig = make_rig()
    breaker = rig.breakers["haiku"]
    for _ in range(3):
        rig.anth.enqueue(FakeScript.error(529), FakeScript.error(529))
        await rig.ask(HAIKU_Q)
    assert state_of(breaker) == "open"
    rig.advance(RESET_S + 1)
    rig.anth.enqueue(FakeScript.error(529), FakeScript.error(529))
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "local"
    assert state_of(breaker) == "open"
    sent = cloud_requests(rig.anth)
    _, result = await rig.ask(HAIKU_Q)
    assert result.decision.downgrade == "breaker_open"
    assert cloud_requests(rig.anth) == sent
    check_ledger(rig, [("haiku", "failed")] * 4)


# ------------------------------------------------------------------------- barge-in


async def consume_until_cancelled(router: Router, heard: asyncio.Event) -> None:
    async for item in router.ask(HAIKU_Q):
        if isinstance(item, str):
            heard.set()


async def test_cancelled_turns_never_trip_the_breaker(make_rig: RigFactory) -> None:
    rig = make_rig()
    for _ in range(5):
        rig.anth.enqueue(FakeScript(text=CLOUD_REPLY, token_delay_s=0.1))
        heard = asyncio.Event()
        task = asyncio.create_task(consume_until_cancelled(rig.router, heard))
        await asyncio.wait_for(heard.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert rig.budget.status().reserved_usd == 0.0
    assert rig.breakers["haiku"].state == "closed"
    assert rig.breakers["haiku"].failure_count == 0
    assert rig.local.chat_requests() == []
    rows = check_ledger(rig, [("haiku", "cancelled")] * 5)
    assert all(r.cost_usd > 0 for r in rows), "text already streamed was billed"


async def test_closing_the_answer_stream_is_a_barge_in(make_rig: RigFactory) -> None:
    rig = make_rig()
    for _ in range(5):
        rig.anth.enqueue(FakeScript(text=CLOUD_REPLY, token_delay_s=0.1))
        stream = rig.router.ask(HAIKU_Q)
        first: AnswerItem = await anext(stream)
        assert isinstance(first, str) and first
        await stream.aclose()
        # The cloud call is settled by the time aclose() returns: nothing dangles.
        assert rig.budget.status().reserved_usd == 0.0
    assert rig.breakers["haiku"].state == "closed"
    assert rig.breakers["haiku"].failure_count == 0
    check_ledger(rig, [("haiku", "cancelled")] * 5)
    # The tier still works afterwards.
    rig.anth.enqueue(FakeScript(text=CLOUD_REPLY))
    _, result = await rig.ask(HAIKU_Q)
    assert (result.answered_by, result.text) == ("haiku", CLOUD_REPLY)


async def test_cancel_before_the_first_token_is_not_a_failure(make_rig: RigFactory) -> None:
    rig = make_rig()
    for _ in range(4):
        rig.anth.enqueue(FakeScript(text=CLOUD_REPLY, first_token_delay_s=0.3))
        task = asyncio.create_task(rig.ask(HAIKU_Q))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert rig.breakers["haiku"].state == "closed"
    assert rig.breakers["haiku"].failure_count == 0
    rows = check_ledger(rig, [("haiku", "cancelled")] * 4)
    assert all(r.cost_usd == 0.0 for r in rows)


async def test_a_barge_in_during_agent_tool_steps_charges_the_finished_steps(
    make_rig: RigFactory,
) -> None:
    rig = make_rig()
    first = FakeScript(text="", tool_uses=(FakeToolUse("get_current_datetime"),), input_tokens=500)
    rig.anth.enqueue(first, FakeScript(text="Sit down.", first_token_delay_s=3.0))
    task = asyncio.create_task(rig.ask(AGENT_Q))
    for _ in range(100):  # until the second step's request is on its way
        if cloud_requests(rig.anth) == 2:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (row,) = check_ledger(rig, [("agent", "cancelled")])
    assert row.usage == expected_usage(first), "the first step's tokens are on record"
    assert row.cost_usd == pytest.approx(PRICES["agent"].cost(row.usage), abs=1e-12)
    assert rig.breakers["agent"].failure_count == 0
    assert rig.local.chat_requests() == []


async def test_an_agent_too_slow_after_a_tool_acted_says_so_and_asks_no_one_else(
    make_rig: RigFactory,
) -> None:
    """The deadline passes after set_timer ran: the local model must not answer as if
    nothing had happened, and the step that set the timer is charged."""
    rig = make_rig()
    first = FakeScript(
        text="", tool_uses=(FakeToolUse("set_timer", {"duration_seconds": 60}),), input_tokens=500
    )
    rig.anth.enqueue(first, FakeScript(text="Your timer is set.", first_token_delay_s=3.0))
    pieces, result = await rig.ask(AGENT_Q)
    check_in_persona(rig, result, pieces)
    assert any(result.text.startswith(line) for line in rig.persona_config.part_done)
    assert any(result.text.endswith(line) for line in rig.persona_config.safety), "still 112"
    assert len(rig.timers.list()) == 1, "set once"
    assert rig.local.chat_requests() == []
    (row,) = check_ledger(rig, [("agent", "failed")])
    assert row.usage == expected_usage(first)


# ------------------------------------------------------------------------ no API key


async def test_no_key_answers_everything_locally_without_a_failure_line(
    make_rig: RigFactory,
) -> None:
    rig = make_rig(with_key=False)
    for q in (HAIKU_Q, AGENT_Q, LOCAL_Q):
        d = rig.router.decide(q)
        assert d.tier == "local" and d.lead_line is None and not d.wants_filler
        pieces, result = await rig.ask(q)
        check_in_persona(rig, result, pieces)
        if d.stage == "safety":  # no careful tier: the safety line, never the small model
            assert result.answered_by == "persona" and "911" in result.text
            continue
        assert (result.answered_by, result.text) == ("local", LOCAL_REPLY)
        if d.wanted != "local":
            assert result.decision.downgrade == "no_key"
            assert result.fallback_reason == "no_key"
    assert cloud_requests(rig.anth) == 0
    check_ledger(rig, [])


# ------------------------------------------------------------------ memory and input


async def test_follow_up_sends_the_previous_exchange_to_local(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.anth.enqueue(FakeScript(text="Sunny in Lisbon today."))
    _, first = await rig.ask("what is the weather like in lisbon today")
    assert first.answered_by == "haiku"
    _, follow = await rig.ask("and tomorrow?")
    assert follow.answered_by == "local"
    body = rig.local.chat_requests()[-1].body
    assert body is not None
    chat = [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]
    assert chat == [
        ("user", "what is the weather like in lisbon today"),
        ("assistant", "Sunny in Lisbon today."),
        ("user", "and tomorrow?"),
    ]


async def test_follow_up_sends_the_previous_exchange_to_haiku(make_rig: RigFactory) -> None:
    rig = make_rig()
    _, first = await rig.ask(LOCAL_Q)
    assert first.answered_by == "local"
    rig.anth.enqueue(FakeScript(text="Warm white suits the evening."))
    _, follow = await rig.ask("and which colour would suit a dinner party best")
    assert follow.answered_by == "haiku"
    assert rig.anth.requests[-1].body["messages"] == [
        {"role": "user", "content": LOCAL_Q},
        {"role": "assistant", "content": LOCAL_REPLY},
        {"role": "user", "content": "and which colour would suit a dinner party best"},
    ]


@pytest.mark.parametrize("query", ["", "   ", "\n\t "])
async def test_empty_query_gets_the_misunderstanding_line(make_rig: RigFactory, query: str) -> None:
    rig = make_rig()
    pieces, result = await rig.ask(query)
    check_in_persona(rig, result, pieces)
    assert result.text in rig.lines("misunderstanding")
    assert result.answered_by == "persona"
    assert cloud_requests(rig.anth) == 0
    assert rig.local.chat_requests() == []
    check_ledger(rig, [])


async def test_very_long_query_is_truncated_before_sending(make_rig: RigFactory) -> None:
    rig = make_rig(max_query_chars=300)
    query = " ".join(["please explain how the heat pump in the garden works"] * 40)
    rig.anth.enqueue(FakeScript(text="In short, it moves heat."))
    with capture_logs() as logs:
        pieces, result = await rig.ask(query)
    check_in_persona(rig, result, pieces)
    assert result.answered_by == "agent", "still routed as a long request"
    sent = rig.anth.requests[-1].body["messages"][-1]["content"]
    assert sent == query[:300]
    truncated = [e for e in logs if e["event"] == "router.query_truncated"]
    assert len(truncated) == 1 and truncated[0]["chars"] == len(query)


async def test_local_failure_after_a_cloud_failure_still_answers(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.anth.enqueue(FakeScript.error(500), FakeScript.error(500))
    rig.local.enqueue(FakeLLMScript(status=500))
    pieces, result = await rig.ask(HAIKU_Q)
    check_in_persona(rig, result, pieces)
    assert starts_with_line(rig, result.text, "api_error")
    assert ends_with_line(rig, result.text, "cut_short")
    check_ledger(rig, [("haiku", "failed")])
