"""A cloud tier with several providers: Anthropic and OpenAI-compatible endpoints in
order, each behind its own breaker, before the local model.

Real servers on 127.0.0.1 through the real SDKs: the fake Anthropic API (anthropic SDK)
and the fake OpenAI-compatible server (openai SDK). Every fault of the matrix is played
by the OpenAI-compatible provider; the checks are the fault matrix's own: an in-persona
answer, nothing raised, the ledger consistent with what was billed.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from atlas.llm.anthropic import AnthropicClient
from atlas.llm.base import CLOUD_TIERS, LLMClient, Price, Tier, Usage
from atlas.llm.breaker import CloudBreaker
from atlas.llm.budget import BudgetLedger
from atlas.llm.classifier import Classifier
from atlas.llm.config import (
    AnthropicConfig,
    BreakerConfig,
    BudgetConfig,
    CloudProviderConfig,
    CloudTierConfig,
    LocalLLMConfig,
    MemoryConfig,
)
from atlas.llm.local import OpenAICompatClient
from atlas.llm.memory import ConversationMemory
from atlas.llm.providers import ProviderChain, with_providers
from atlas.llm.router import AnswerResult, Router
from atlas.persona import Persona
from atlas.settings import Settings, SettingsError, load_secrets, load_settings
from atlas.skills import TimerService, build_skills
from atlas.testing.fake_anthropic import FakeAnthropic, FakeScript
from atlas.testing.fake_openai import FakeLLMScript, FakeLLMServer
from atlas.testing.serving import free_port as closed_port

ANTH_KEY = "sk-ant-test-PROVIDERS-0123456789"
GROQ_KEY = "gsk-test-PROVIDERS-9876543210"
HAIKU_Q = "how does a heat pump work"  # the default stage -> haiku
LOCAL_REPLY = "Very good, sir."
ANTH_REPLY = "It moves heat from the outside air into the house."
GROQ_REPLY = "A heat pump moves heat instead of making it."
HAIKU = CloudTierConfig(
    model="claude-haiku-test",
    input_usd_per_mtok=1.0,
    output_usd_per_mtok=5.0,
    max_tokens=300,
    first_token_deadline_s=0.8,
)
AGENT = CloudTierConfig(model="claude-sonnet-test", first_token_deadline_s=1.0)
GROQ_PRICE = Price(0.5, 0.8, 1.0, 0.5)
FAIL_MAX = 3


def groq(base_url: str, **over: object) -> CloudProviderConfig:
    values: dict[str, object] = {
        "name": "groq",
        "tier": "haiku",
        "base_url": base_url,
        "api_key_env": "GROQ_API_KEY",
        "model": "llama-test-70b",
        "input_usd_per_mtok": GROQ_PRICE.input_per_mtok,
        "output_usd_per_mtok": GROQ_PRICE.output_per_mtok,
        "max_tokens": 200,
        "first_token_deadline_s": 0.6,
        "connect_timeout_s": 0.5,
        "read_timeout_s": 1.0,
    }
    values.update(over)
    return CloudProviderConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def cloud() -> Iterator[FakeLLMServer]:
    """The OpenAI-compatible cloud provider."""
    with FakeLLMServer(default=FakeLLMScript(reply=GROQ_REPLY, prompt_tokens=40)) as server:
        yield server


@pytest.fixture
def local() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default=FakeLLMScript(reply=LOCAL_REPLY)) as server:
        yield server


@dataclass
class Rig:
    router: Router
    budget: BudgetLedger
    tier_breakers: dict[Tier, CloudBreaker]
    chain: ProviderChain
    persona: Persona
    settings: Settings

    async def ask(self, text: str = HAIKU_Q) -> tuple[str, AnswerResult]:
        pieces: list[str] = []
        result: AnswerResult | None = None
        async for item in self.router.ask(text):
            if isinstance(item, AnswerResult):
                result = item
            else:
                pieces.append(item)
        assert result is not None
        assert "".join(pieces).strip() == result.text.strip()
        assert result.text.strip() and self.persona.violations(result.text) == []
        return result.text, result

    def rows(self) -> list[tuple[str, str, str, Usage, float]]:
        return [r[:5] for r in self.rows_with_provider()]

    def rows_with_provider(self) -> list[tuple[str, str, str, Usage, float, str]]:
        with contextlib.closing(sqlite3.connect(self.budget.path)) as conn:
            rows = conn.execute(
                "SELECT tier, model, status, input_tokens, output_tokens, cache_read_tokens, "
                "cost_usd, provider FROM calls ORDER BY id"
            ).fetchall()
        return [(r[0], r[1], r[2], Usage(r[3], r[4], r[5]), r[6], r[7]) for r in rows]

    def is_line(self, text: str, kind: str) -> bool:
        lines: tuple[str, ...] = getattr(self.settings.persona, kind)
        return any(line in text for line in lines)


RigFactory = Callable[..., Rig]


@pytest.fixture
async def make_rig(
    tmp_path: Path,
    settings: Settings,
    anth: FakeAnthropic,
    cloud: FakeLLMServer,
    local: FakeLLMServer,
) -> AsyncIterator[RigFactory]:
    made: list[tuple[Rig, dict[Tier, LLMClient], TimerService]] = []

    def factory(
        *,
        anthropic: bool = True,
        providers: tuple[CloudProviderConfig, ...] | None = None,
    ) -> Rig:
        timers = TimerService()
        persona = Persona(settings.persona)
        ledger = BudgetLedger(
            tmp_path / f"ledger{len(made)}.sqlite3",
            BudgetConfig(daily_usd=1.0, monthly_usd=10.0, timezone="UTC"),
        )
        breaker_cfg = BreakerConfig(fail_max=FAIL_MAX, reset_timeout_s=60.0)
        clients: dict[Tier, LLMClient] = {
            "local": OpenAICompatClient(
                LocalLLMConfig(timeout_s=2.0, connect_timeout_s=0.5, max_tokens=60),
                base_url=local.openai_base_url,
                model="qwen2.5:3b-instruct",
            )
        }
        anth_cfg = AnthropicConfig(
            base_url=anth.base_url,
            connect_timeout_s=0.5,
            read_timeout_s=1.0,
            retries=0,
            stall_timeout_s=0.3,
            haiku=HAIKU,
            agent=AGENT,
        )
        if anthropic:
            clients["haiku"] = AnthropicClient(HAIKU, anth_cfg, ANTH_KEY)
        clients = with_providers(
            clients,
            {"haiku": HAIKU, "agent": AGENT},
            providers if providers is not None else (groq(cloud.openai_base_url),),
            {"GROQ_API_KEY": GROQ_KEY},
            breaker_cfg,
            {"haiku": Price(1.0, 5.0), "agent": Price(3.0, 15.0)},
        )
        chain = clients["haiku"]
        assert isinstance(chain, ProviderChain)
        tier_breakers = {t: CloudBreaker(t, breaker_cfg) for t in CLOUD_TIERS}
        router = Router(
            classifier=Classifier(settings.router, None, ()),
            skills=build_skills(UTC, timers),
            persona=persona,
            budget=ledger,
            breakers=tier_breakers,
            clients=clients,
            tier_configs={"haiku": HAIKU, "agent": AGENT},
            memory=ConversationMemory(MemoryConfig(max_turns=0)),
            now=lambda: datetime.now(UTC),
            local_max_tokens=60,
        )
        rig = Rig(router, ledger, tier_breakers, chain, persona, settings)
        made.append((rig, clients, timers))
        return rig

    yield factory
    for rig, clients, timers in made:
        for client in clients.values():
            await client.aclose()
        await timers.aclose()
        rig.budget.close()


def anth_calls(anth: FakeAnthropic) -> int:
    return len([r for r in anth.requests if r.path.startswith("/v1/messages")])


# ---------------------------------------------------------------- order and accounting


async def test_anthropic_answers_first_and_the_provider_is_not_called(
    make_rig: RigFactory, anth: FakeAnthropic, cloud: FakeLLMServer
) -> None:
    rig = make_rig()
    anth.enqueue(FakeScript(text=ANTH_REPLY))
    text, result = await rig.ask()
    assert text == ANTH_REPLY and result.answered_by == "haiku"
    assert cloud.chat_requests() == []
    assert [r[:3] + r[5:] for r in rig.rows_with_provider()] == [
        ("haiku", HAIKU.model, "ok", "anthropic")
    ]


async def test_anthropic_down_the_next_provider_answers_at_its_own_price(
    make_rig: RigFactory, anth: FakeAnthropic, cloud: FakeLLMServer, local: FakeLLMServer
) -> None:
    rig = make_rig()
    anth.enqueue(FakeScript(status=500))
    text, result = await rig.ask()
    assert text == GROQ_REPLY
    assert result.answered_by == "haiku" and result.fallback_reason is None
    assert local.chat_requests() == []
    (request,) = cloud.chat_requests()
    assert request.body is not None and request.body["model"] == "llama-test-70b"
    assert request.body["max_tokens"] == 200, "the provider's own answer length"
    ((tier, model, status, usage, cost),) = rig.rows()
    assert (tier, model, status) == ("haiku", "llama-test-70b", "ok")
    assert usage == Usage(40, len(GROQ_REPLY.split()))
    assert cost == pytest.approx(GROQ_PRICE.cost(usage), abs=1e-12)
    assert rig.rows_with_provider()[0][5] == "groq"
    assert rig.budget.status().reserved_usd == 0.0
    assert rig.tier_breakers["haiku"].failure_count == 0, "the tier itself did answer"


async def test_before_anthropic_puts_the_provider_first(
    make_rig: RigFactory, anth: FakeAnthropic, cloud: FakeLLMServer
) -> None:
    rig = make_rig(providers=(groq(cloud.openai_base_url, before_anthropic=True),))
    assert [link.name for link in rig.chain.links] == ["groq", "anthropic"]
    text, _ = await rig.ask()
    assert text == GROQ_REPLY and anth_calls(anth) == 0


async def test_a_provider_alone_serves_the_tier_without_an_anthropic_key(
    make_rig: RigFactory, cloud: FakeLLMServer
) -> None:
    rig = make_rig(anthropic=False)
    assert [link.name for link in rig.chain.links] == ["groq"]
    text, result = await rig.ask()
    assert text == GROQ_REPLY and result.answered_by == "haiku"


async def test_the_reservation_uses_the_dearest_provider(
    make_rig: RigFactory, cloud: FakeLLMServer
) -> None:
    dear = groq(cloud.openai_base_url, output_usd_per_mtok=50.0, max_tokens=600)
    cheap = make_rig().router.worst_case_usd("haiku", [], HAIKU_Q)
    assert make_rig(providers=(dear,)).router.worst_case_usd("haiku", [], HAIKU_Q) > cheap


# ------------------------------------------------------------- the provider's faults


FAULTS = {
    "429": FakeLLMScript(status=429),
    "500": FakeLLMScript(status=500),
    "503": FakeLLMScript(status=503),
    "error-payload-first": FakeLLMScript(reply=GROQ_REPLY, error_after_tokens=0),
    "dropped-before-text": FakeLLMScript(reply=GROQ_REPLY, drop_after_tokens=0),
    "slow-first-token": FakeLLMScript(reply=GROQ_REPLY, first_token_delay_s=2.0),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_provider_failing_before_its_first_word_hands_over_to_the_next(
    make_rig: RigFactory,
    anth: FakeAnthropic,
    cloud: FakeLLMServer,
    local: FakeLLMServer,
    fault: str,
) -> None:
    rig = make_rig(providers=(groq(cloud.openai_base_url, before_anthropic=True),))
    cloud.enqueue(FAULTS[fault])
    anth.enqueue(FakeScript(text=ANTH_REPLY))
    text, result = await rig.ask()
    assert text == ANTH_REPLY, "the next provider answered"
    assert result.answered_by == "haiku" and local.chat_requests() == []
    assert rig.chain.links[0].breaker.failure_count == 1
    assert [r[:3] for r in rig.rows()] == [("haiku", HAIKU.model, "ok")]


async def test_provider_refusing_connections_hands_over(
    make_rig: RigFactory, anth: FakeAnthropic
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    rig = make_rig(providers=(groq(url, before_anthropic=True),))
    anth.enqueue(FakeScript(text=ANTH_REPLY))
    text, _ = await rig.ask()
    assert text == ANTH_REPLY


@pytest.mark.parametrize(("status", "why"), [(401, "auth"), (404, "model_not_found")])
async def test_refused_key_or_unknown_model_drops_that_provider_not_the_tier(
    make_rig: RigFactory, anth: FakeAnthropic, cloud: FakeLLMServer, status: int, why: str
) -> None:
    rig = make_rig(providers=(groq(cloud.openai_base_url, before_anthropic=True),))
    cloud.enqueue(FakeLLMScript(status=status))
    anth.enqueue(FakeScript(text=ANTH_REPLY), FakeScript(text=ANTH_REPLY))
    assert (await rig.ask())[0] == ANTH_REPLY
    assert rig.chain.links[0].disabled == why
    assert (await rig.ask())[0] == ANTH_REPLY
    assert len(cloud.chat_requests()) == 1, "a dropped provider is not asked again"
    assert "haiku" not in rig.router.disabled


async def test_refused_key_of_the_only_provider_switches_the_tier_off(
    make_rig: RigFactory, cloud: FakeLLMServer, local: FakeLLMServer
) -> None:
    rig = make_rig(anthropic=False)
    cloud.enqueue(FakeLLMScript(status=401))
    text, result = await rig.ask()
    assert result.answered_by == "local" and LOCAL_REPLY in text
    assert "haiku" in rig.router.disabled
    assert GROQ_KEY not in str(rig.rows())


async def test_every_provider_failing_answers_locally(
    make_rig: RigFactory, anth: FakeAnthropic, cloud: FakeLLMServer, local: FakeLLMServer
) -> None:
    rig = make_rig()
    anth.enqueue(FakeScript(status=529))
    cloud.enqueue(FakeLLMScript(status=500))
    text, result = await rig.ask()
    assert result.answered_by == "local" and LOCAL_REPLY in text
    assert rig.is_line(text, "api_error")
    assert len(local.chat_requests()) == 1
    assert rig.budget.status().reserved_usd == 0.0


@pytest.mark.parametrize(
    "script",
    [
        FakeLLMScript(reply=GROQ_REPLY, error_after_tokens=3),
        FakeLLMScript(reply=GROQ_REPLY, drop_after_tokens=3),
        FakeLLMScript(reply=GROQ_REPLY, stall_after_tokens=3, stall_s=3.0),
    ],
    ids=["error", "drop", "stall"],
)
async def test_provider_failing_mid_answer_never_switches(
    make_rig: RigFactory,
    anth: FakeAnthropic,
    cloud: FakeLLMServer,
    local: FakeLLMServer,
    script: FakeLLMScript,
) -> None:
    rig = make_rig(providers=(groq(cloud.openai_base_url, before_anthropic=True),))
    cloud.enqueue(script)
    text, _ = await rig.ask()
    assert text.startswith(" ".join(GROQ_REPLY.split()[:3]))
    assert rig.is_line(text, "cut_short")
    assert anth_calls(anth) == 0 and local.chat_requests() == []
    assert rig.chain.links[0].breaker.failure_count == 1
    ((tier, _, status, _, cost, provider),) = rig.rows_with_provider()
    assert (tier, status, provider) == ("haiku", "failed", "groq") and cost > 0


async def test_a_failing_provider_has_its_own_breaker(
    make_rig: RigFactory, anth: FakeAnthropic, cloud: FakeLLMServer
) -> None:
    rig = make_rig(providers=(groq(cloud.openai_base_url, before_anthropic=True),))
    cloud.enqueue(*[FakeLLMScript(status=503)] * FAIL_MAX)
    anth.enqueue(*[FakeScript(text=ANTH_REPLY)] * (FAIL_MAX + 2))
    for _ in range(FAIL_MAX + 2):
        assert (await rig.ask())[0] == ANTH_REPLY
    assert rig.chain.links[0].breaker.state == "open"
    assert len(cloud.chat_requests()) == FAIL_MAX, "an open breaker skips the provider"
    assert rig.chain.links[1].breaker.state == "closed"
    assert rig.tier_breakers["haiku"].state == "closed"


# ------------------------------------------------------------------ settings, secrets


def write_config(tmp_path: Path, providers: str) -> Path:
    path = tmp_path / "atlas.yaml"
    path.write_text(f"llm:\n  cloud_providers:\n{providers}", encoding="utf-8")
    return path


GOOD = """\
    - name: groq
      tier: haiku
      base_url: https://api.groq.com/openai/v1
      api_key_env: GROQ_API_KEY
      model: llama-3.3-70b-versatile
      input_usd_per_mtok: 0.59
      output_usd_per_mtok: 0.79
"""


def test_providers_load_from_config(tmp_path: Path) -> None:
    s = load_settings(write_config(tmp_path, GOOD), env={})
    (p,) = s.llm.cloud_providers
    assert (p.name, p.tier, p.model, p.output_usd_per_mtok) == (
        "groq",
        "haiku",
        "llama-3.3-70b-versatile",
        0.79,
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("tier: haiku", "tier: local"), "cloud_providers[0].tier"),
        (("https://api.groq.com/openai/v1", "ftp://x"), "cloud_providers[0].base_url"),
        (("api_key_env: GROQ_API_KEY", "api_key_env: gsk-123"), "api_key_env"),
        (("name: groq", "name: anthropic"), "cloud_providers[0].name"),
        (("model: llama-3.3-70b-versatile", "model: ''"), "cloud_providers[0].model"),
        (("0.79", "-1"), "output_usd_per_mtok"),
        (("model: llama", "colour: blue\n      model: llama"), "unknown key"),
    ],
)
def test_bad_provider_config_is_one_line_naming_the_key(
    tmp_path: Path, change: tuple[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as e:
        load_settings(write_config(tmp_path, GOOD.replace(*change)), env={})
    assert named in str(e.value) and "\n" not in str(e.value)


def test_a_provider_named_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="used twice"):
        load_settings(write_config(tmp_path, GOOD + GOOD), env={})


def test_provider_keys_come_from_the_environment_and_are_never_shown(tmp_path: Path) -> None:
    (tmp_path / "openrouter_api_key").write_text("or-secret-1\n", encoding="utf-8")
    env = {
        "GROQ_API_KEY": "gsk-secret-2",
        "ANTHROPIC_API_KEY": "sk-ant-3",
        "CREDENTIALS_DIRECTORY": str(tmp_path),
        "PATH": "/usr/bin",
    }
    secrets = load_secrets(env)
    assert secrets.key("GROQ_API_KEY") == "gsk-secret-2"
    assert secrets.key("OPENROUTER_API_KEY") == "or-secret-1"
    assert secrets.key("PATH") is None and secrets.key("ANTHROPIC_API_KEY") is None
    shown = repr(secrets) + str(secrets)
    assert "secret" not in shown and "sk-ant" not in shown
    assert "GROQ_API_KEY" in shown
