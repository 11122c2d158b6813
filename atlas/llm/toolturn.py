"""What the agent's tool loop exchanges with a model, whichever provider serves it.

A model call with tools ends in one `ModelTurn` (its words, the tool calls it asked
for, its billed response). Each provider writes a step back into the conversation in
its own wire shape (Anthropic: tool_use / tool_result content blocks; OpenAI-compatible:
an assistant message with `tool_calls`, then one `tool` message per result), so that
shape lives with the provider, behind `ToolModel.tool_turn`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from atlas.llm.base import LLMResponse, Message, StreamItem
from atlas.llm.tools import ToolSpec


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asked for, with its input parsed."""

    id: str
    name: str
    input: Mapping[str, Any]
    input_error: str | None = None
    """Why the model's arguments could not be read (then `input` is empty and the
    tool is not run: the model gets this as an error result instead)."""


@dataclass(frozen=True)
class ToolResult:
    """What one tool call gave back, as text for the model."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class ModelTurn:
    """The end of one model call with tools: what was said and what was asked for."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    response: LLMResponse
    stopped_for_tools: bool = False
    """The model ended its turn to have the tools run (Anthropic "tool_use",
    OpenAI "tool_calls"), rather than because it finished or ran out of tokens."""

    def assistant_content(self) -> list[dict[str, Any]]:
        """Anthropic content blocks to send back as the assistant message of the next call."""
        blocks: list[dict[str, Any]] = []
        if self.text:  # the API rejects empty text blocks
            blocks.append({"type": "text", "text": self.text})
        blocks.extend(
            {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.input)}
            for c in self.tool_calls
        )
        return blocks


class ToolModel(Protocol):
    """What the agent loop needs from a model: calls with tools, and the provider's way
    of recording a tool step in the conversation it is sent next."""

    backend: str
    model: str

    async def is_available(self) -> bool: ...

    async def aclose(self) -> None: ...

    def stream_with_tools(
        self,
        messages: Sequence[Mapping[str, Any]],
        system: str,
        tools: Sequence[ToolSpec],
        temperature: float,
        max_tokens: int,
        *,
        allow_tool_use: bool = True,
    ) -> AsyncIterator[str | ModelTurn]:
        """Text deltas as they come, then one ModelTurn. `allow_tool_use=False` still
        sends the tools (the conversation may hold tool calls) but forbids their use."""
        ...

    def tool_turn(self, turn: ModelTurn, results: Sequence[ToolResult]) -> list[dict[str, Any]]:
        """The messages to append after a step: the assistant's calls, then the results."""
        ...


async def without_tools(
    model: ToolModel,
    messages: Sequence[Message],
    system: str,
    temperature: float,
    max_tokens: int,
) -> AsyncIterator[StreamItem]:
    """A plain answer through a tool-capable client: `LLMClient.stream` for both clouds."""
    chat = [{"role": m.role, "content": m.content} for m in messages]
    async for item in model.stream_with_tools(chat, system, (), temperature, max_tokens):
        yield item.response if isinstance(item, ModelTurn) else item
