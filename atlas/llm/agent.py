"""The `agent` tier: a tool-use loop over ATLAS's own tools that streams its final answer.

Each step calls the model with the tools; when it stops asking for tools (or the step
budget or the deadline runs out, in which case the last call forbids tool use) its
words are the answer. Only that answer reaches the caller, so the "let me check..."
preambles of tool-calling steps are never spoken. Text of a step that may still call a
tool is held back until the step ends; the final forced step streams as it comes.

The loop is provider-neutral: it talks to a `ToolModel` (Anthropic, or an
OpenAI-compatible endpoint), which also says how a tool step is written back into the
conversation in its own wire format.

After each tool step the stream carries a running bill (an `interim` LLMResponse with
what the finished steps cost), so a caller cut off by a barge-in still charges them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog

from atlas.llm.base import (
    ErrorKind,
    LLMError,
    LLMResponse,
    Message,
    StreamItem,
    Usage,
    collect,
)
from atlas.llm.config import AgentLoopConfig
from atlas.llm.tools import Tool
from atlas.llm.toolturn import ModelTurn, ToolCall, ToolModel, ToolResult

log = structlog.get_logger("atlas.llm.agent")

_MAX_RESULT_CHARS = 4000  # a tool result is context for the model, not a document
_MIN_TOOL_TIME_S = 0.05


class AgentRunner:
    """LLMClient that answers through a bounded tool-use loop."""

    def __init__(self, client: ToolModel, tools: Sequence[Tool], config: AgentLoopConfig) -> None:
        self.backend = client.backend
        self.model = client.model
        self._client = client
        self._tools = {t.spec.name: t for t in tools}
        self._specs = tuple(t.spec for t in tools)
        self._config = config

    async def is_available(self) -> bool:
        return await self._client.is_available()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def generate(
        self, messages: Sequence[Message], system: str, temperature: float, max_tokens: int
    ) -> LLMResponse:
        return await collect(self.stream(messages, system, temperature, max_tokens))

    async def stream(
        self, messages: Sequence[Message], system: str, temperature: float, max_tokens: int
    ) -> AsyncIterator[StreamItem]:
        t0 = time.perf_counter()
        deadline = t0 + self._config.deadline_s
        convo: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages]
        usage = Usage()
        cost = 0.0
        first_token_ms: float | None = None
        answer_started = False
        acted = False  # a tool that changes something has run: no provider may redo it
        step = 0
        while True:
            step += 1
            last = step >= self._config.max_steps or time.perf_counter() >= deadline
            # Once the conversation holds tool blocks the API wants the tools defined,
            # so a forced last step keeps them but forbids their use.
            send_tools = self._specs if (not last or step > 1) else ()
            held: list[str] = []
            turn: ModelTurn | None = None
            try:
                async for item in self._client.stream_with_tools(
                    convo, system, send_tools, temperature, max_tokens, allow_tool_use=not last
                ):
                    if isinstance(item, ModelTurn):
                        turn = item
                    elif last:
                        if first_token_ms is None:
                            first_token_ms = (time.perf_counter() - t0) * 1000.0
                        answer_started = True
                        yield item
                    else:
                        held.append(item)
            except LLMError as err:
                # Text of earlier steps was never delivered: report what the caller saw.
                raise self._billed(_restamp(err, answer_started, acted), usage, cost, t0) from None
            if turn is None:
                ended = LLMError(
                    ErrorKind.MID_STREAM, "model call ended without a result", acted=acted
                )
                raise self._billed(ended, usage, cost, t0)
            usage = _add(usage, turn.response.usage)
            cost += turn.response.cost_usd
            wants_tools = bool(turn.tool_calls) and turn.stopped_for_tools
            if last or not wants_tools:
                if held:
                    first_token_ms = (time.perf_counter() - t0) * 1000.0
                    for text in held:
                        yield text
                break
            log.info(
                "agent_step",
                step=step,
                tools=[c.name for c in turn.tool_calls],
                ms=round((time.perf_counter() - t0) * 1000.0, 1),
            )
            acted = acted or any(self._acts(call) for call in turn.tool_calls)
            # The step's call is billed: a barge-in from here on still pays for it.
            yield self._bill(usage, cost, t0, interim=True, acted=acted)
            results = await self._run_tools(turn.tool_calls, deadline)
            convo.extend(self._client.tool_turn(turn, results))

        final = turn.response
        yield LLMResponse(
            content=final.content,
            model=final.model,
            backend=self.backend,
            first_token_ms=first_token_ms,
            total_duration_ms=(time.perf_counter() - t0) * 1000.0,
            usage=usage,
            cost_usd=cost,
            stop_reason=final.stop_reason,
            cache_note=final.cache_note,
        )
        log.info("agent_done", steps=step, cost_usd=cost, tools=len(self._specs))

    def _billed(self, err: LLMError, usage: Usage, cost: float, t0: float) -> LLMError:
        """The error, carrying what the finished steps cost (their calls were billed)."""
        if cost > 0 or usage != Usage():
            err.billed = self._bill(usage, cost, t0)
        return err

    def _bill(
        self, usage: Usage, cost: float, t0: float, *, interim: bool = False, acted: bool = False
    ) -> LLMResponse:
        """What the finished steps cost, as a record with no answer: a running bill
        (`interim`) while the loop goes on, else the record of a failed request."""
        elapsed = (time.perf_counter() - t0) * 1000.0
        stop = "tool_use" if interim else "error"
        return LLMResponse(
            "",
            self.model,
            self.backend,
            None,
            elapsed,
            usage,
            cost,
            stop,
            interim=interim,
            acted=acted,
        )

    def _acts(self, call: ToolCall) -> bool:
        """Whether running this call changes something (an unknown tool or unreadable
        arguments are not run at all)."""
        tool = self._tools.get(call.name)
        return tool is not None and tool.spec.acts and call.input_error is None

    async def _run_tools(self, calls: Sequence[ToolCall], deadline: float) -> list[ToolResult]:
        # Tools of one step run concurrently; none may outlive the loop's deadline.
        budget = max(_MIN_TOOL_TIME_S, deadline - time.perf_counter())
        outcomes = await asyncio.gather(*(self._run_tool(c, budget) for c in calls))
        return [
            ToolResult(c.id, text, is_error)
            for c, (text, is_error) in zip(calls, outcomes, strict=True)
        ]

    async def _run_tool(self, call: ToolCall, budget_s: float) -> tuple[str, bool]:
        tool = self._tools.get(call.name)
        if tool is None:
            log.warning("agent_unknown_tool", tool=call.name)
            return f"unknown tool {call.name!r}", True
        if call.input_error is not None:  # the model's arguments were not readable
            log.info("agent_tool_bad_args", tool=call.name, error=call.input_error)
            return f"invalid arguments: {call.input_error}", True
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(budget_s):
                text = await tool.run(call.input)
        except TimeoutError:
            log.warning("agent_tool_timeout", tool=call.name, budget_s=round(budget_s, 3))
            return f"{call.name} took too long", True
        except ValueError as err:
            log.info("agent_tool_bad_args", tool=call.name, error=str(err))
            return f"invalid arguments: {err}", True
        except Exception as err:  # a broken tool must not end the answer
            log.warning("agent_tool_failed", tool=call.name, error=f"{type(err).__name__}: {err}")
            return f"{call.name} failed: {type(err).__name__}", True
        log.info("agent_tool", tool=call.name, ms=round((time.perf_counter() - t0) * 1000.0, 1))
        return text[:_MAX_RESULT_CHARS], False


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
    )


def _restamp(err: LLMError, text_started: bool, acted: bool) -> LLMError:
    if err.text_started == text_started and err.acted == acted:
        return err
    message = str(err).removeprefix(f"{err.kind.value}: ")
    return LLMError(err.kind, message, text_started=text_started, acted=acted)
