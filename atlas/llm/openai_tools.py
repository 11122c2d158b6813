"""Tool calling in the OpenAI chat-completions wire format, for the agent loop.

A streamed tool call arrives in fragments: the first delta of each call carries its
`index`, `id` and `function.name`, later ones append pieces of `function.arguments`
(a JSON text that is only whole at the end). `ToolCallDeltas` gathers them;
`openai_tool_turn` writes a finished step back the way the API wants it: the assistant
message with its `tool_calls`, then one `{"role": "tool", "tool_call_id": ...}` message
per result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from atlas.llm.tools import ToolSpec
from atlas.llm.toolturn import ModelTurn, ToolCall, ToolResult

# Servers differ in how they end a tool step: OpenAI, Groq and vLLM say "tool_calls",
# some OpenAI-compatible servers say "stop" with the calls attached. "length" means the
# arguments were cut off: that is not a request to run anything.
_TOOL_STOPS = ("tool_calls", "stop")


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallDeltas:
    """The `delta.tool_calls` fragments of one streamed answer, gathered per index."""

    def __init__(self) -> None:
        self._calls: dict[int, _PendingCall] = {}

    def add(self, fragments: Iterable[Any]) -> None:
        for fragment in fragments:
            index = fragment.index if fragment.index is not None else len(self._calls)
            call = self._calls.setdefault(index, _PendingCall())
            if fragment.id and not call.id:
                call.id = fragment.id
            function = fragment.function
            if function is None:
                continue
            if function.name and not call.name:  # the name comes whole, in the first one
                call.name = function.name
            if function.arguments:
                call.arguments.append(function.arguments)

    def calls(self) -> tuple[ToolCall, ...]:
        out: list[ToolCall] = []
        for index in sorted(self._calls):
            pending = self._calls[index]
            args, error = _parse_arguments("".join(pending.arguments))
            out.append(
                ToolCall(
                    id=pending.id or f"call_atlas_{index}",
                    name=pending.name,
                    input=args,
                    input_error=error,
                )
            )
        return tuple(out)


def _parse_arguments(text: str) -> tuple[dict[str, Any], str | None]:
    if not text.strip():
        return {}, None  # a call without arguments
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return {}, f"the arguments are not valid JSON ({err.msg} at char {err.pos})"
    if not isinstance(value, dict):
        return {}, f"the arguments must be a JSON object, not {type(value).__name__}"
    return value, None


def stopped_for_tools(finish_reason: str | None, calls: Sequence[ToolCall]) -> bool:
    return bool(calls) and finish_reason in _TOOL_STOPS


def tool_params(tools: Sequence[ToolSpec], *, allow_tool_use: bool) -> dict[str, Any]:
    """`tools` (and `tool_choice` "none" when the model must answer in words); nothing
    without tools, since a `tool_choice` without `tools` is a bad request."""
    if not tools:
        return {}
    params: dict[str, Any] = {"tools": [t.as_openai() for t in tools]}
    if not allow_tool_use:
        params["tool_choice"] = "none"
    return params


def openai_tool_turn(turn: ModelTurn, results: Sequence[ToolResult]) -> list[dict[str, Any]]:
    assistant: dict[str, Any] = {
        "role": "assistant",
        "content": turn.text or None,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                # Unreadable arguments go back as {}: some servers refuse a conversation
                # holding invalid JSON, and the error result already tells the model.
                "function": {"name": c.name, "arguments": json.dumps(dict(c.input))},
            }
            for c in turn.tool_calls
        ],
    }
    return [
        assistant,
        *({"role": "tool", "tool_call_id": r.call_id, "content": _result_text(r)} for r in results),
    ]


def _result_text(result: ToolResult) -> str:
    # The format has no error flag: say so in the text.
    return f"Error: {result.content}" if result.is_error else result.content
