"""AgentRunner's tool-use loop through the real SDK against FakeAnthropic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import pytest

from atlas.llm.agent import AgentRunner
from atlas.llm.anthropic import AnthropicClient
from atlas.llm.base import ErrorKind, LLMClient, LLMError, LLMResponse, Message
from atlas.llm.config import AgentLoopConfig, AnthropicConfig, CloudTierConfig
from atlas.llm.tools import Tool, ToolSpec
from atlas.testing.fake_anthropic import FakeAnthropic, FakeScript, FakeToolUse

KEY = "sk-ant-test-SECRET123456789"
TIER = CloudTierConfig(model="claude-agent-test", input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)
ASK = [Message("user", "what time is it in Tokyo?")]
SYSTEM = "You are Atlas."


class ClockTool:
    spec = ToolSpec(
        "clock",
        "The current local time.",
        {"type": "object", "properties": {"tz": {"type": "string"}}},
    )

    def __init__(self) -> None:
        self.calls: list[Mapping[str, Any]] = []

    async def run(self, args: Mapping[str, Any]) -> str:
        self.calls.append(dict(args))
        return f"21:30 in {args.get('tz', 'local time')}"


class PickyTool:
    spec = ToolSpec("timer", "Set a timer.")

    async def run(self, args: Mapping[str, Any]) -> str:
        raise ValueError("minutes must be positive")


class BrokenTool:
    spec = ToolSpec("weather", "The weather.")

    async def run(self, args: Mapping[str, Any]) -> str:
        raise RuntimeError("sensor offline")


class SlowTool:
    spec = ToolSpec("research", "Look something up slowly.")

    async def run(self, args: Mapping[str, Any]) -> str:
        await asyncio.sleep(10)
        return "found it"


_OPEN: list[AgentRunner] = []


@pytest.fixture(autouse=True)
async def _close_runners() -> AsyncIterator[None]:
    """Close every runner in the test's own loop (else its HTTP pool dies in another's)."""
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def runner_for(
    fake: FakeAnthropic, tools: Sequence[Tool], *, max_steps: int = 4, deadline_s: float = 20.0
) -> AgentRunner:
    cfg = AnthropicConfig(
        base_url=fake.base_url,
        connect_timeout_s=0.5,
        read_timeout_s=2.0,
        retries=1,
        retry_initial_s=0.01,
        retry_max_s=0.05,
        stall_timeout_s=1.0,
    )
    client = AnthropicClient(TIER, cfg, KEY)
    runner = AgentRunner(client, tools, AgentLoopConfig(max_steps=max_steps, deadline_s=deadline_s))
    _OPEN.append(runner)
    return runner


async def run(runner: AgentRunner) -> tuple[list[str], LLMResponse]:
    deltas: list[str] = []
    final: LLMResponse | None = None
    async for item in runner.stream(ASK, SYSTEM, 0.4, 300):
        if isinstance(item, str):
            deltas.append(item)
        else:
            final = item
    assert final is not None
    return deltas, final


def tool_results(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    last = body["messages"][-1]
    assert last["role"] == "user"
    return [b for b in last["content"] if b["type"] == "tool_result"]


def tool_use(name: str, args: Mapping[str, Any] | None = None, tid: str = "") -> FakeToolUse:
    return FakeToolUse(name, args or {}, id=tid)


async def test_tool_called_then_answer(fake: FakeAnthropic) -> None:
    clock = ClockTool()
    fake.enqueue(
        FakeScript(
            text="Let me check the clock.",
            tool_uses=(tool_use("clock", {"tz": "Asia/Tokyo"}, "toolu_a"),),
            input_tokens=400,
            output_tokens=40,
        ),
        FakeScript(text="It is half past nine in Tokyo.", input_tokens=480, output_tokens=12),
    )
    runner = runner_for(fake, [clock])
    deltas, final = await run(runner)

    assert "".join(deltas) == "It is half past nine in Tokyo."  # the preamble is not spoken
    assert final.content == "It is half past nine in Tokyo."
    assert clock.calls == [{"tz": "Asia/Tokyo"}]
    assert len(fake.requests) == 2
    first, second = (r.body for r in fake.requests)
    assert [t["name"] for t in first["tools"]] == ["clock"]
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "tool_choice" not in first
    assistant = second["messages"][-2]
    assert assistant["role"] == "assistant"
    assert assistant["content"] == [
        {"type": "text", "text": "Let me check the clock."},
        {"type": "tool_use", "id": "toolu_a", "name": "clock", "input": {"tz": "Asia/Tokyo"}},
    ]
    (result,) = tool_results(second)
    assert result["tool_use_id"] == "toolu_a"
    assert result["content"] == "21:30 in Asia/Tokyo"
    assert "is_error" not in result
    assert final.usage.input_tokens == 880 and final.usage.output_tokens == 52
    assert final.cost_usd == pytest.approx((880 * 3 + 52 * 15) / 1e6)
    assert final.first_token_ms is not None and final.first_token_ms <= final.total_duration_ms
    assert final.stop_reason == "end_turn"


async def test_direct_answer_needs_one_call(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript(text="Good evening.", input_tokens=50, output_tokens=3))
    runner = runner_for(fake, [ClockTool()])
    assert isinstance(runner, LLMClient) and await runner.is_available()
    deltas, final = await run(runner)
    assert "".join(deltas) == "Good evening." and len(fake.requests) == 1
    assert final.usage.input_tokens == 50


async def test_max_steps_forces_a_final_call_without_tool_use(fake: FakeAnthropic) -> None:
    clock = ClockTool()
    fake.enqueue(
        FakeScript(text="Checking.", tool_uses=(tool_use("clock"),)),
        FakeScript(text="Checking again.", tool_uses=(tool_use("clock"),)),
        FakeScript(text="It is half past nine."),
    )
    runner = runner_for(fake, [clock], max_steps=3)
    deltas, final = await run(runner)
    assert "".join(deltas) == "It is half past nine." == final.content
    assert final.usage.input_tokens == 3 * 12  # every step's usage is counted
    assert len(fake.requests) == 3 and len(clock.calls) == 2
    bodies = [r.body for r in fake.requests]
    assert [b.get("tool_choice") for b in bodies] == [None, None, {"type": "none"}]
    # The tools stay defined (the conversation holds tool blocks), their use is forbidden.
    assert all(b["tools"][0]["name"] == "clock" for b in bodies)


async def test_each_finished_tool_step_is_a_running_bill_before_the_final_record(
    fake: FakeAnthropic,
) -> None:
    fake.enqueue(
        FakeScript(text="", tool_uses=(tool_use("clock"),), input_tokens=100),
        FakeScript(text="", tool_uses=(tool_use("clock"),), input_tokens=200),
        FakeScript(text="It is half past nine.", input_tokens=300),
    )
    runner = runner_for(fake, [ClockTool()], max_steps=3)
    items = [item async for item in runner.stream(ASK, SYSTEM, 0.4, 300)]
    records = [item for item in items if isinstance(item, LLMResponse)]
    assert [r.interim for r in records] == [True, True, False]
    assert [r.usage.input_tokens for r in records] == [100, 300, 600]  # what is billed so far
    assert records[0].cost_usd < records[1].cost_usd < records[2].cost_usd
    assert records[0].content == "" and records[-1].content == "It is half past nine."
    assert items[-1] is records[-1], "the final record still ends the stream"
    fake.enqueue(FakeScript(text="Checking.", tool_uses=(tool_use("clock"),)), FakeScript())
    final = await runner_for(fake, [ClockTool()]).generate(ASK, SYSTEM, 0.4, 300)
    assert not final.interim, "generate() returns the final record, never a running bill"


async def test_a_model_that_never_stops_asking_is_cut_off(fake: FakeAnthropic) -> None:
    asking = FakeScript(text="More.", tool_uses=(tool_use("clock"),))
    fake.enqueue(asking, asking, asking)
    runner = runner_for(fake, [ClockTool()], max_steps=2)
    deltas, final = await run(runner)
    assert len(fake.requests) == 2  # never more model calls than max_steps
    assert "".join(deltas) == "More." and final.content == "More."


async def test_single_step_sends_no_tools(fake: FakeAnthropic) -> None:
    runner = runner_for(fake, [ClockTool()], max_steps=1)
    await run(runner)
    (req,) = fake.requests
    assert "tools" not in req.body and "tool_choice" not in req.body


async def test_failing_and_unknown_tools_become_error_results(fake: FakeAnthropic) -> None:
    fake.enqueue(
        FakeScript(
            text="",
            tool_uses=(
                tool_use("timer", {"minutes": -1}, "t1"),
                tool_use("weather", {}, "t2"),
                tool_use("teleport", {}, "t3"),
                tool_use("clock", {}, "t4"),
            ),
        ),
        FakeScript(text="Most of that failed, I'm afraid."),
    )
    runner = runner_for(fake, [PickyTool(), BrokenTool(), ClockTool()])
    deltas, _ = await run(runner)
    assert "".join(deltas) == "Most of that failed, I'm afraid."
    second = fake.requests[1].body
    assert second["messages"][-2]["content"][0]["type"] == "tool_use"  # no empty text block
    results = {r["tool_use_id"]: r for r in tool_results(second)}
    assert list(results) == ["t1", "t2", "t3", "t4"]
    assert (
        results["t1"]["is_error"] is True and "minutes must be positive" in results["t1"]["content"]
    )
    assert results["t2"]["is_error"] is True and "RuntimeError" in results["t2"]["content"]
    assert results["t3"]["is_error"] is True and "unknown tool" in results["t3"]["content"]
    assert "is_error" not in results["t4"] and results["t4"]["content"].startswith("21:30")


async def test_deadline_limits_tools_and_forces_the_answer(fake: FakeAnthropic) -> None:
    fake.enqueue(
        FakeScript(text="Researching.", tool_uses=(tool_use("research", {}, "r1"),)),
        FakeScript(text="I could not finish looking that up."),
    )
    runner = runner_for(fake, [SlowTool()], max_steps=5, deadline_s=0.3)
    deltas, _ = await run(runner)
    assert "".join(deltas) == "I could not finish looking that up."
    assert len(fake.requests) == 2
    second = fake.requests[1].body
    assert second["tool_choice"] == {"type": "none"}
    (result,) = tool_results(second)
    assert result["is_error"] is True and "too long" in result["content"]


async def test_failure_in_a_tool_step_reports_no_text_started(fake: FakeAnthropic) -> None:
    fake.enqueue(
        FakeScript(
            text="Let me see what I can do.",
            tool_uses=(tool_use("clock"),),
            error_after_deltas=2,
        )
    )
    runner = runner_for(fake, [ClockTool()])
    with pytest.raises(LLMError) as info:
        await run(runner)
    assert info.value.kind is ErrorKind.MID_STREAM
    assert not info.value.text_started  # nothing had reached the caller
    assert len(fake.requests) == 1


async def test_failure_in_the_final_answer_reports_text_started(fake: FakeAnthropic) -> None:
    fake.enqueue(
        FakeScript(text="", tool_uses=(tool_use("clock"),)),
        FakeScript(text="It is half past nine.", error_after_deltas=2),
    )
    runner = runner_for(fake, [ClockTool()], max_steps=2)
    deltas: list[str] = []
    with pytest.raises(LLMError) as info:
        async for item in runner.stream(ASK, SYSTEM, 0.4, 300):
            if isinstance(item, str):
                deltas.append(item)
    assert deltas == ["It ", "is "]
    assert info.value.kind is ErrorKind.MID_STREAM and info.value.text_started
