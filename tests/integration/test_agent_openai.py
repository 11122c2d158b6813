"""The agent tier on an OpenAI-compatible provider: the same tool loop and the same
ATLAS tools as the Anthropic agent, through the real openai SDK against the fake
OpenAI-compatible server (which refuses a malformed tool conversation with a 400)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest

from atlas.brain import _with_providers
from atlas.llm.agent import AgentRunner
from atlas.llm.anthropic import AnthropicClient
from atlas.llm.base import (
    CLOUD_TIERS,
    ErrorKind,
    LLMClient,
    LLMError,
    LLMResponse,
    Message,
    Price,
    Tier,
)
from atlas.llm.breaker import CloudBreaker
from atlas.llm.budget import BudgetLedger
from atlas.llm.classifier import Classifier
from atlas.llm.config import (
    AgentLoopConfig,
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
from atlas.llm.tools import Tool
from atlas.llm.toolturn import ToolModel
from atlas.persona import Persona
from atlas.settings import Secrets, Settings
from atlas.skills import TimerService, build_skills
from atlas.skills.tools import skill_tools
from atlas.testing.fake_anthropic import FakeAnthropic, FakeScript
from atlas.testing.fake_openai import FakeLLMScript, FakeLLMServer, FakeToolCall

KEY = "gsk-test-AGENTTOOLS-0123456789"
ANTH_KEY = "sk-ant-test-AGENTTOOLS-9876543210"
SYSTEM = "You are Atlas."
HAIKU = CloudTierConfig(model="claude-haiku-test", first_token_deadline_s=1.0)
AGENT = CloudTierConfig(
    model="claude-sonnet-test",
    input_usd_per_mtok=3.0,
    output_usd_per_mtok=15.0,
    first_token_deadline_s=5.0,
)
PRICE = Price(0.5, 0.8, 1.0, 0.5)
ANTH_REPLY = "Your tea timer is running, sir."


def provider(base_url: str, **over: object) -> CloudProviderConfig:
    values: dict[str, object] = {
        "name": "groq",
        "tier": "agent",
        "base_url": base_url,
        "api_key_env": "GROQ_API_KEY",
        "model": "llama-tools-70b",
        "input_usd_per_mtok": PRICE.input_per_mtok,
        "output_usd_per_mtok": PRICE.output_per_mtok,
        "max_tokens": 300,
        "first_token_deadline_s": 5.0,
        "connect_timeout_s": 0.5,
        "read_timeout_s": 2.0,
    }
    values.update(over)
    return CloudProviderConfig(**values)  # type: ignore[arg-type]


_OPEN: list[LLMClient] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    """Close every client in the test's own loop (else its HTTP pool dies in another's)."""
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


@pytest.fixture
def cloud() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default=FakeLLMScript(reply="Very good, sir.")) as server:
        yield server


@pytest.fixture
async def timers() -> AsyncIterator[TimerService]:
    service = TimerService()
    yield service
    await service.aclose()


def atlas_tools(timers: TimerService) -> list[Tool]:
    return skill_tools(build_skills(UTC, timers), timers, UTC)


def agent_chain(
    providers: Sequence[CloudProviderConfig],
    tools: Sequence[Tool],
    *,
    max_steps: int = 4,
    anthropic: LLMClient | None = None,
) -> ProviderChain:
    def agent_loop(model: ToolModel) -> LLMClient:
        return AgentRunner(model, tools, AgentLoopConfig(max_steps=max_steps, deadline_s=10.0))

    clients: dict[Tier, LLMClient] = {} if anthropic is None else {"agent": anthropic}
    out = with_providers(
        clients,
        {"haiku": HAIKU, "agent": AGENT},
        providers,
        {"GROQ_API_KEY": KEY},
        BreakerConfig(fail_max=3, reset_timeout_s=60.0),
        {"haiku": Price(1.0, 5.0), "agent": Price(3.0, 15.0)},
        agent_loop=agent_loop,
    )
    chain = out["agent"]
    assert isinstance(chain, ProviderChain)
    _OPEN.append(chain)
    return chain


def anthropic_agent(anth: FakeAnthropic, tools: Sequence[Tool]) -> AgentRunner:
    cfg = AnthropicConfig(
        base_url=anth.base_url,
        connect_timeout_s=0.5,
        read_timeout_s=2.0,
        retries=0,
        stall_timeout_s=1.0,
        haiku=HAIKU,
        agent=AGENT,
    )
    return AgentRunner(AnthropicClient(AGENT, cfg, ANTH_KEY), tools, AgentLoopConfig())


async def run(client: LLMClient, ask: str) -> tuple[list[str], LLMResponse]:
    deltas: list[str] = []
    final: LLMResponse | None = None
    async for item in client.stream([Message("user", ask)], SYSTEM, 0.4, 300):
        if isinstance(item, str):
            deltas.append(item)
        else:
            final = item
    assert final is not None
    return deltas, final


def bodies(cloud: FakeLLMServer) -> list[Mapping[str, Any]]:
    out = []
    for request in cloud.chat_requests():
        assert request.body is not None
        out.append(request.body)
    return out


def words(text: str) -> int:
    return len(text.split())


# ---------------------------------------------------------------- the tool loop


async def test_the_agent_on_a_provider_sets_a_real_timer_and_speaks_the_answer(
    cloud: FakeLLMServer, timers: TimerService
) -> None:
    tools = atlas_tools(timers)
    args = {"duration_seconds": 600, "label": "tea"}
    answer = "Your tea timer is set for ten minutes."
    cloud.enqueue(
        FakeLLMScript(
            reply="One moment.",
            tool_calls=(FakeToolCall("set_timer", args, id="call_tea"),),
            prompt_tokens=300,
        ),
        # The second call re-sends the first's prefix: the provider reports it cached.
        FakeLLMScript(reply=answer, prompt_tokens=380, cached_tokens=256),
    )
    chain = agent_chain([provider(cloud.openai_base_url)], tools)
    deltas, final = await run(chain, "set a timer for ten minutes for the tea")

    assert "".join(deltas) == answer, "only the answer is spoken, not the preamble"
    assert final.content == answer and final.backend == "groq"
    (status,) = timers.list()
    assert (status.timer.label, status.timer.duration_s) == ("tea", 600)
    assert cloud.conversation_errors == []
    first, second = bodies(cloud)
    set_timer = next(t for t in tools if t.spec.name == "set_timer")
    assert set_timer.spec.as_openai() in first["tools"]
    assert len(first["tools"]) == len(tools)
    assert "tool_choice" not in first
    assert first["messages"][0] == {"role": "system", "content": SYSTEM}
    assert second["messages"][-2] == {
        "role": "assistant",
        "content": "One moment.",
        "tool_calls": [
            {
                "id": "call_tea",
                "type": "function",
                "function": {"name": "set_timer", "arguments": json.dumps(args)},
            }
        ],
    }
    result = second["messages"][-1]
    assert (result["role"], result["tool_call_id"]) == ("tool", "call_tea")
    assert result["content"].startswith("Timer ") and "'tea'" in result["content"]
    # Both calls are billed, summed, at the provider's own prices.
    assert final.usage.input_tokens == 300 + 380 - 256
    assert final.usage.cache_read_tokens == 256
    assert final.usage.output_tokens == words("One moment.") + 10 + words(answer)
    assert final.cost_usd == pytest.approx(PRICE.cost(final.usage), abs=1e-12)


@pytest.mark.parametrize(
    ("arguments", "why"),
    [('{"duration_seconds": 600,', "not valid JSON"), ("[600]", "must be a JSON object")],
    ids=["broken-json", "not-an-object"],
)
async def test_bad_arguments_give_the_tool_an_error_result_not_a_crash(
    cloud: FakeLLMServer, timers: TimerService, arguments: str, why: str
) -> None:
    cloud.enqueue(
        FakeLLMScript(reply="", tool_calls=(FakeToolCall("set_timer", arguments),)),
        FakeLLMScript(reply="I could not set that timer, sir."),
    )
    chain = agent_chain([provider(cloud.openai_base_url)], atlas_tools(timers))
    deltas, _ = await run(chain, "set a tea timer")

    assert "".join(deltas) == "I could not set that timer, sir."
    assert timers.list() == (), "the tool never ran"
    assert cloud.conversation_errors == []
    _, second = bodies(cloud)
    call = second["messages"][-2]["tool_calls"][0]
    assert call["function"] == {"name": "set_timer", "arguments": "{}"}
    result = second["messages"][-1]
    assert result["tool_call_id"] == call["id"] == "call_fake_0001"
    assert result["content"].startswith("Error: invalid arguments:") and why in result["content"]


async def test_the_forced_last_step_sends_tool_choice_none(
    cloud: FakeLLMServer, timers: TimerService
) -> None:
    clock_call = (FakeToolCall("get_current_datetime"),)
    cloud.enqueue(
        FakeLLMScript(reply="", tool_calls=clock_call),
        # The model would call again; the fake, like the API, obeys tool_choice "none".
        FakeLLMScript(reply="It is late, sir.", tool_calls=clock_call),
    )
    chain = agent_chain([provider(cloud.openai_base_url)], atlas_tools(timers), max_steps=2)
    deltas, _ = await run(chain, "what time is it")

    assert "".join(deltas) == "It is late, sir."
    first, second = bodies(cloud)
    assert "tool_choice" not in first
    assert second["tool_choice"] == "none"
    assert [t["function"]["name"] for t in second["tools"]] == [
        t["function"]["name"] for t in first["tools"]
    ], "the tools are still defined: the conversation holds tool calls"
    assert cloud.conversation_errors == []


async def test_a_one_step_budget_sends_no_tools_at_all(
    cloud: FakeLLMServer, timers: TimerService
) -> None:
    chain = agent_chain([provider(cloud.openai_base_url)], atlas_tools(timers), max_steps=1)
    deltas, _ = await run(chain, "what time is it")
    assert "".join(deltas) == "Very good, sir."
    (body,) = bodies(cloud)
    assert "tools" not in body and "tool_choice" not in body


async def test_the_fake_refuses_a_conversation_without_the_tool_result(
    cloud: FakeLLMServer,
) -> None:
    """The check that makes a wrong conversation format fail the tests above."""
    cloud.enqueue(FakeLLMScript(reply="", tool_calls=(FakeToolCall("clock", id="call_1"),)))
    sdk = openai.AsyncOpenAI(api_key=KEY, base_url=cloud.openai_base_url, max_retries=0)
    tools: Any = [{"type": "function", "function": {"name": "clock", "parameters": {}}}]
    ask: Any = [{"role": "user", "content": "time?"}]
    try:
        stream = await sdk.chat.completions.create(
            model="m", messages=ask, tools=tools, stream=True
        )
        async for _ in stream:
            pass
        assistant = {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "call_1", "name": "clock", "input": {}}],
        }
        anthropic_style = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "9pm"}],
        }
        with pytest.raises(openai.BadRequestError):
            await sdk.chat.completions.create(
                model="m",
                messages=[*ask, assistant, anthropic_style],
                tools=tools,
            )
    finally:
        await sdk.close()
    (problem,) = cloud.conversation_errors
    assert "call_1" in problem


# ------------------------------------------------------------- the fallback chain


async def test_provider_failing_mid_step_falls_through_to_the_next_provider(
    cloud: FakeLLMServer, anth: FakeAnthropic, timers: TimerService
) -> None:
    tools = atlas_tools(timers)
    cloud.enqueue(
        # A million prompt tokens at the provider's $0.50 per million: not to be lost.
        FakeLLMScript(reply="", tool_calls=(FakeToolCall("list_timers"),), prompt_tokens=1_000_000),
        FakeLLMScript(reply="You have no timers running.", drop_after_tokens=2),
    )
    anth.enqueue(FakeScript(text=ANTH_REPLY))
    chain = agent_chain(
        [provider(cloud.openai_base_url, before_anthropic=True)],
        tools,
        anthropic=anthropic_agent(anth, tools),
    )
    assert [link.name for link in chain.links] == ["groq", "anthropic"]
    deltas, final = await run(chain, "which timers are running")

    assert "".join(deltas) == ANTH_REPLY, "nothing of the failed provider was said"
    assert final.backend == "anthropic"
    assert final.cost_usd >= PRICE.input_per_mtok, "the failed provider's step is charged"
    assert chain.links[0].breaker.failure_count == 1
    assert len(cloud.chat_requests()) == 2


async def test_a_provider_deadline_covers_its_tool_steps_not_only_the_first_one(
    cloud: FakeLLMServer, anth: FakeAnthropic, timers: TimerService
) -> None:
    """The running bill after step one does not count as the provider answering."""
    tools = atlas_tools(timers)
    cloud.enqueue(
        FakeLLMScript(reply="", tool_calls=(FakeToolCall("list_timers"),), prompt_tokens=1000),
        FakeLLMScript(reply="You have no timers running.", first_token_delay_s=3.0),
    )
    anth.enqueue(FakeScript(text=ANTH_REPLY))
    chain = agent_chain(
        [
            provider(
                cloud.openai_base_url,
                before_anthropic=True,
                first_token_deadline_s=1.0,
                read_timeout_s=5.0,
            )
        ],
        tools,
        anthropic=anthropic_agent(anth, tools),
    )
    items = [item async for item in chain.stream([Message("user", "timers?")], SYSTEM, 0.4, 300)]
    bills = [i for i in items if isinstance(i, LLMResponse) and i.interim]
    assert [b.backend for b in bills] == ["groq"], "step one's bill was passed on"
    assert "".join(i for i in items if isinstance(i, str)) == ANTH_REPLY
    final = items[-1]
    assert isinstance(final, LLMResponse) and final.backend == "anthropic"
    assert final.cost_usd >= bills[0].cost_usd > 0, "the slow provider's step is charged"
    assert chain.links[0].breaker.failure_count == 1


@pytest.mark.parametrize(
    ("second_step", "deadline_s", "kind"),
    [
        # the connection drops in the answer's step
        (FakeLLMScript(reply="Your timer is set.", drop_after_tokens=2), 5.0, None),
        # the provider's deadline passes before the answer's step starts
        (
            FakeLLMScript(reply="Your timer is set.", first_token_delay_s=3.0),
            1.0,
            ErrorKind.TIMEOUT,
        ),
    ],
    ids=["failing", "too-slow"],
)
async def test_a_provider_cut_short_after_a_tool_acted_is_not_started_over(
    cloud: FakeLLMServer,
    anth: FakeAnthropic,
    timers: TimerService,
    second_step: FakeLLMScript,
    deadline_s: float,
    kind: ErrorKind | None,
) -> None:
    """The timer is set once: the next provider would run the whole loop again."""
    tools = atlas_tools(timers)
    cloud.enqueue(
        FakeLLMScript(
            reply="",
            tool_calls=(FakeToolCall("set_timer", {"duration_seconds": 60}),),
            prompt_tokens=300,
        ),
        second_step,
    )
    anth.enqueue(FakeScript(text=ANTH_REPLY))
    groq = provider(
        cloud.openai_base_url,
        before_anthropic=True,
        first_token_deadline_s=deadline_s,
        read_timeout_s=5.0,
    )
    chain = agent_chain([groq], tools, anthropic=anthropic_agent(anth, tools))
    with pytest.raises(LLMError) as caught:
        await run(chain, "set a timer for a minute")

    assert caught.value.acted and not caught.value.text_started
    assert kind is None or caught.value.kind == kind
    assert caught.value.provider == "groq"
    billed = caught.value.billed  # the finished step was billed: the ledger needs it
    assert billed is not None and billed.usage.input_tokens == 300 and billed.cost_usd > 0
    assert len(timers.list()) == 1, "set once, not again by the next provider"
    assert [r for r in anth.requests if r.path.startswith("/v1/messages")] == []
    assert chain.links[0].breaker.failure_count == 1


async def test_provider_failing_mid_answer_never_switches(
    cloud: FakeLLMServer, anth: FakeAnthropic, timers: TimerService
) -> None:
    tools = atlas_tools(timers)
    cloud.enqueue(
        FakeLLMScript(reply="", tool_calls=(FakeToolCall("list_timers"),)),
        FakeLLMScript(reply="You have no timers running.", error_after_tokens=3),
    )
    chain = agent_chain(
        [provider(cloud.openai_base_url, before_anthropic=True)],
        tools,
        max_steps=2,  # the answer is the forced last step: it streams as it comes
        anthropic=anthropic_agent(anth, tools),
    )
    deltas: list[str] = []
    with pytest.raises(LLMError) as caught:
        async for item in chain.stream([Message("user", "timers?")], SYSTEM, 0.4, 300):
            if isinstance(item, str):
                deltas.append(item)
    assert "".join(deltas) == "You have no", "three words were said before the error"
    assert caught.value.text_started and caught.value.provider == "groq"
    assert KEY not in str(caught.value)
    assert [r for r in anth.requests if r.path.startswith("/v1/messages")] == []


# ------------------------------------------------------------------ the router


@dataclass
class RouterTurn:
    spoken: str
    result: AnswerResult | None
    calls: list[tuple[Any, ...]]
    """The ledger's rows: tier, model, status, provider."""
    local_requests: int
    cost_usd: float
    """What the ledger charged for the turn."""


async def router_turn(
    tmp_path: Path,
    settings: Settings,
    cloud: FakeLLMServer,
    timers: TimerService,
    ask: str,
    barge_in_after_s: float | None = None,
) -> RouterTurn:
    """One turn through the real router, no Anthropic key: the agent tier is the
    provider, with ATLAS's tools; a fake local model behind it. `barge_in_after_s`
    cancels the turn that long after it started."""
    with FakeLLMServer(default=FakeLLMScript(reply="Local.")) as local:
        clients: dict[Tier, LLMClient] = {
            "local": OpenAICompatClient(
                LocalLLMConfig(timeout_s=2.0, connect_timeout_s=0.5, max_tokens=60),
                base_url=local.openai_base_url,
                model="qwen2.5:3b-instruct",
            ),
            "agent": agent_chain([provider(cloud.openai_base_url)], atlas_tools(timers)),
        }
        ledger = BudgetLedger(
            tmp_path / "ledger.sqlite3",
            BudgetConfig(daily_usd=1.0, monthly_usd=10.0, timezone="UTC"),
        )
        breaker = BreakerConfig(fail_max=3, reset_timeout_s=60.0)
        router = Router(
            classifier=Classifier(settings.router, None, ()),
            skills=build_skills(UTC, timers),
            persona=Persona(settings.persona),
            budget=ledger,
            breakers={t: CloudBreaker(t, breaker) for t in CLOUD_TIERS},
            clients=clients,
            tier_configs={"haiku": HAIKU, "agent": AGENT},
            memory=ConversationMemory(MemoryConfig(max_turns=0)),
            now=lambda: datetime.now(UTC),
            local_max_tokens=60,
            agent_steps=4,
        )
        pieces: list[str] = []
        result: AnswerResult | None = None

        async def listen() -> None:
            nonlocal result
            async for item in router.ask(ask):
                if isinstance(item, AnswerResult):
                    result = item
                else:
                    pieces.append(item)

        try:
            turn = asyncio.create_task(listen())
            if barge_in_after_s is not None:
                await asyncio.sleep(barge_in_after_s)
                turn.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await turn
            with contextlib.closing(sqlite3.connect(ledger.path)) as conn:
                rows = conn.execute("SELECT tier, model, status, provider FROM calls").fetchall()
                cost = conn.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM calls").fetchone()
            spoken = "".join(pieces).strip()
            return RouterTurn(spoken, result, rows, len(local.chat_requests()), float(cost[0]))
        finally:
            await clients["local"].aclose()
            ledger.close()


async def test_the_router_agent_tier_uses_the_tools_on_a_provider_alone(
    tmp_path: Path,
    settings: Settings,
    cloud: FakeLLMServer,
    timers: TimerService,
) -> None:
    """No Anthropic key: the agent tier is the provider, with ATLAS's tools."""
    answer = "Sit down and call 112 now, sir; I have set a five minute timer."
    cloud.enqueue(
        FakeLLMScript(
            reply="",
            tool_calls=(FakeToolCall("set_timer", {"duration_seconds": 300}, id="call_t"),),
            prompt_tokens=200,
        ),
        FakeLLMScript(reply=answer, prompt_tokens=260),
    )
    turn = await router_turn(tmp_path, settings, cloud, timers, "my chest hurts")
    assert turn.local_requests == 0
    assert turn.result is not None and turn.result.answered_by == "agent"
    assert turn.result.text == answer and turn.spoken == answer
    (status,) = timers.list()
    assert status.timer.duration_s == 300, "the timer the answer speaks of exists"
    assert turn.calls == [("agent", "llama-tools-70b", "ok", "groq")]
    assert cloud.conversation_errors == []


async def test_an_answer_lost_after_a_tool_acted_says_so_and_asks_no_one_else(
    tmp_path: Path,
    settings: Settings,
    cloud: FakeLLMServer,
    timers: TimerService,
) -> None:
    """The timer was set, then the provider failed before a word: the local model must
    not answer as if nothing had happened, and nothing runs the tool again."""
    cloud.enqueue(
        FakeLLMScript(
            reply="",
            tool_calls=(FakeToolCall("set_timer", {"duration_seconds": 90}),),
            prompt_tokens=1_000_000,
        ),
        FakeLLMScript(reply="Your timer is set.", drop_after_tokens=1),
    )
    turn = await router_turn(tmp_path, settings, cloud, timers, "my chest hurts")
    assert turn.local_requests == 0
    assert any(turn.spoken.startswith(line) for line in settings.persona.part_done), turn.spoken
    assert any(turn.spoken.endswith(line) for line in settings.persona.safety), "still 112"
    assert len(timers.list()) == 1, "set once"
    assert turn.calls == [("agent", "llama-tools-70b", "failed", "groq")]
    assert turn.cost_usd >= PRICE.input_per_mtok, "the step that set the timer is charged"


async def test_a_barge_in_during_the_tool_steps_still_charges_the_finished_ones(
    tmp_path: Path,
    settings: Settings,
    cloud: FakeLLMServer,
    timers: TimerService,
) -> None:
    """The first step (list_timers) was billed; the person spoke over the second."""
    cloud.enqueue(
        FakeLLMScript(reply="", tool_calls=(FakeToolCall("list_timers"),), prompt_tokens=1000),
        FakeLLMScript(reply="You have no timers running.", first_token_delay_s=5.0),
    )
    turn = await router_turn(
        tmp_path, settings, cloud, timers, "my chest hurts", barge_in_after_s=1.0
    )
    assert turn.result is None, "the turn was cut off"
    assert len(cloud.chat_requests()) == 2, "cut off during the second call"
    assert turn.calls == [("agent", "llama-tools-70b", "cancelled", "groq")]
    assert turn.cost_usd == pytest.approx(1000 * PRICE.input_per_mtok / 1e6, rel=0.05)
    assert turn.local_requests == 0


async def test_the_brain_gives_an_agent_provider_the_tools(
    settings: Settings, cloud: FakeLLMServer
) -> None:
    llm = replace(
        settings.llm,
        cloud_providers=(
            provider(cloud.openai_base_url),
            provider(cloud.openai_base_url, name="groq-haiku", tier="haiku"),
        ),
    )
    secrets = Secrets(provider_keys={"GROQ_API_KEY": KEY})
    clients = _with_providers(replace(settings, llm=llm), secrets, {}, ())
    agent, haiku = clients["agent"], clients["haiku"]
    _OPEN.extend((agent, haiku))
    assert isinstance(agent, ProviderChain) and isinstance(haiku, ProviderChain)
    assert isinstance(agent.links[0].client, AgentRunner), "the agent tier keeps its tools"
    assert not isinstance(haiku.links[0].client, AgentRunner)
