"""Tools the `agent` tier may call: a name, a JSON schema, and an async run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    acts: bool = True
    """Whether a call changes something (False: it only reads, so repeating it is safe)."""

    def as_anthropic(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": dict(self.input_schema),
        }

    def as_openai(self) -> dict[str, Any]:
        """The chat-completions `tools` entry (a function with JSON-schema parameters)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.input_schema),
            },
        }


class Tool(Protocol):
    spec: ToolSpec

    async def run(self, args: Mapping[str, Any]) -> str:
        """The result as text for the model; raise ValueError for bad arguments."""
        ...
