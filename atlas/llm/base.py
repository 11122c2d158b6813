"""The one protocol every LLM backend speaks, and the records that flow out of it.

`stream()` yields text deltas (`str`) and ends with exactly one `LLMResponse`.
Backends raise only `LLMError`, whose text never carries a secret.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

Tier = Literal["local", "haiku", "agent"]
TIERS: tuple[Tier, ...] = ("local", "haiku", "agent")
CLOUD_TIERS: tuple[Tier, ...] = ("haiku", "agent")


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class Usage:
    """Token counts as the backend reported them (never estimated)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class Price:
    """USD per million tokens; cache multipliers relative to the input price."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cache_write_multiplier: float = 1.25
    cache_read_multiplier: float = 0.1

    def cost(self, usage: Usage) -> float:
        per_in = self.input_per_mtok / 1e6
        return (
            usage.input_tokens * per_in
            + usage.output_tokens * self.output_per_mtok / 1e6
            + usage.cache_write_tokens * per_in * self.cache_write_multiplier
            + usage.cache_read_tokens * per_in * self.cache_read_multiplier
        )

    def worst_case(self, input_tokens: int, max_tokens: int) -> float:
        """Most a call can cost: every input token written to cache, max_tokens out."""
        per_in = self.input_per_mtok / 1e6
        return input_tokens * per_in * max(1.0, self.cache_write_multiplier) + (
            max_tokens * self.output_per_mtok / 1e6
        )


@dataclass(frozen=True)
class LLMResponse:
    """The record that ends every stream."""

    content: str
    model: str
    backend: str
    """'anthropic', 'ollama', 'openai' (any OpenAI-compatible server), 'embedded'."""
    first_token_ms: float | None
    """From the request being sent to the first text delta; None if no text came."""
    total_duration_ms: float
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    stop_reason: str | None = None
    cache_note: str = ""
    """Why nothing was cached, when that is the case (e.g. prefix below the minimum)."""
    interim: bool = False
    """A running bill, not the end: what the finished steps of a tool loop cost so far
    (their calls are billed). The final record follows unless the call fails or is
    cancelled, so a barge-in during tool steps is still charged for them."""
    acted: bool = False
    """(A running bill) a finished step changed something: see LLMError.acted."""


StreamItem = str | LLMResponse


class ErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"  # 429
    OVERLOADED = "overloaded"  # 529 / overloaded_error
    SERVER = "server"  # 5xx
    CONNECTION = "connection"  # refused, reset, DNS
    TIMEOUT = "timeout"  # no answer in time (before the first token)
    STALLED = "stalled"  # the stream stopped delivering mid-answer
    MID_STREAM = "mid_stream"  # an error event after the stream had started
    AUTH = "auth"  # missing/invalid key: disables the tier, never trips a breaker
    BAD_REQUEST = "bad_request"  # 400/413: our fault, not the upstream's
    MODEL_NOT_FOUND = "model_not_found"  # 404: the configured model id is gone (disables the tier)
    UNAVAILABLE = "unavailable"  # backend not configured/installed/reachable


# Upstream failures count toward a circuit breaker; our own mistakes and auth do not.
BREAKER_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER,
        ErrorKind.CONNECTION,
        ErrorKind.TIMEOUT,
        ErrorKind.STALLED,
        ErrorKind.MID_STREAM,
    }
)
RETRYABLE_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER,
        ErrorKind.CONNECTION,
        ErrorKind.TIMEOUT,
    }
)


class LLMError(Exception):
    """A backend failure. `text_started` says whether any answer text was delivered;
    `acted` whether a tool that changes something (a timer, a device) already ran, so
    the request must not be started over by another provider (it would act twice)."""

    def __init__(
        self, kind: ErrorKind, message: str, *, text_started: bool = False, acted: bool = False
    ) -> None:
        super().__init__(f"{kind.value}: {message}")
        self.kind = kind
        self.text_started = text_started
        self.acted = acted
        self.billed: LLMResponse | None = None
        """What finished calls of the failed request cost (an agent's tool steps before
        the failing one): still charged to the budget though no final record came."""
        self.provider: str | None = None
        """Which of a tier's providers failed, when a provider chain knows it."""

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS and not self.text_started

    @property
    def counts_for_breaker(self) -> bool:
        return self.kind in BREAKER_KINDS


@runtime_checkable
class LLMClient(Protocol):
    backend: str
    model: str

    def stream(
        self,
        messages: Sequence[Message],
        system: str,
        temperature: float,
        max_tokens: int,
    ) -> AsyncIterator[StreamItem]:
        """Text deltas, then one LLMResponse. Raises LLMError."""
        ...

    async def generate(
        self,
        messages: Sequence[Message],
        system: str,
        temperature: float,
        max_tokens: int,
    ) -> LLMResponse: ...

    async def is_available(self) -> bool: ...

    async def aclose(self) -> None: ...


def chat_messages(messages: Sequence[Message], system: str) -> list[dict[str, str]]:
    """OpenAI-style chat messages (system first), as llama.cpp and /v1 servers take them."""
    out = [{"role": "system", "content": system}] if system else []
    out.extend({"role": m.role, "content": m.content} for m in messages)
    return out


async def collect(stream: AsyncIterator[StreamItem]) -> LLMResponse:
    """Drain a stream and return its final record (the shared `generate` helper)."""
    final: LLMResponse | None = None
    async for item in stream:
        if isinstance(item, LLMResponse) and not item.interim:
            final = item
    if final is None:
        raise LLMError(ErrorKind.MID_STREAM, "stream ended without a final record")
    return final
