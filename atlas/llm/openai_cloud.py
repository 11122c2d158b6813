"""A cloud tier's backend on any OpenAI-compatible chat-completions endpoint.

OpenAI, Groq, OpenRouter, Together, a vLLM server: one client, the official `openai`
SDK pointed at the provider's `base_url`, streaming with `stream_options.include_usage`
so the last chunk carries the real token counts the call is billed for. The agent
tier's tool loop runs through `stream_with_tools` (tool calling in the chat-completions
format, see `openai_tools`). The SDK's own
retries are off: a provider that fails before its first token is left for the next
provider of the tier's fallback list (`providers.ProviderChain`), which is faster than
retrying a struggling one while the person waits.

SDK facts this module relies on (openai 3.54.0, verified against the fake server):
* it talks through `httpx2`: transport errors raised while the body streams surface as
  raw `httpx2` exceptions, not `APIError`s;
* `APITimeoutError` subclasses `APIConnectionError`, so it is checked first;
* an `{"error": ...}` payload inside a 200 stream raises a plain `APIError`;
* the usage chunk has no choices; cached prompt tokens (where the provider reports
  them) are in `usage.prompt_tokens_details.cached_tokens`, a part of `prompt_tokens`.

Every failure becomes an `LLMError` whose text has been redacted (the key never reaches
a log line or a traceback).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx2
import openai
import structlog

from atlas.llm.base import (
    ErrorKind,
    LLMError,
    LLMResponse,
    Message,
    Price,
    StreamItem,
    Usage,
    collect,
)
from atlas.llm.config import CloudProviderConfig
from atlas.llm.openai_tools import (
    ToolCallDeltas,
    openai_tool_turn,
    stopped_for_tools,
    tool_params,
)
from atlas.llm.tools import ToolSpec
from atlas.llm.toolturn import ModelTurn, ToolResult, without_tools
from atlas.logs import redact_text

log = structlog.get_logger("atlas.llm.openai_cloud")


class OpenAICloudClient:
    """LLMClient over `openai.AsyncOpenAI` for one provider and model."""

    def __init__(self, config: CloudProviderConfig, api_key: str) -> None:
        self.backend = config.name
        self.model = config.model
        self._config = config
        self._key = api_key
        self._price = Price(
            input_per_mtok=config.input_usd_per_mtok,
            output_per_mtok=config.output_usd_per_mtok,
            cache_write_multiplier=1.0,
            cache_read_multiplier=config.cache_read_multiplier,
        )
        self._sdk = openai.AsyncOpenAI(
            api_key=api_key or "no-key-configured",
            base_url=config.base_url,
            max_retries=0,
            timeout=openai.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
        )

    @property
    def price(self) -> Price:
        return self._price

    async def is_available(self) -> bool:
        return bool(self._key)

    async def aclose(self) -> None:
        await self._sdk.close()

    async def generate(
        self, messages: Sequence[Message], system: str, temperature: float, max_tokens: int
    ) -> LLMResponse:
        return await collect(self.stream(messages, system, temperature, max_tokens))

    def stream(
        self, messages: Sequence[Message], system: str, temperature: float, max_tokens: int
    ) -> AsyncIterator[StreamItem]:
        return without_tools(self, messages, system, temperature, max_tokens)

    async def stream_with_tools(
        self,
        messages: Sequence[Mapping[str, Any]],
        system: str,
        tools: Sequence[ToolSpec],
        temperature: float,
        max_tokens: int,
        *,
        allow_tool_use: bool = True,
    ) -> AsyncIterator[str | ModelTurn]:
        """Text deltas as they come, then one ModelTurn (text, tool calls, response).

        `messages` are chat messages in the API's own shape (assistant `tool_calls`,
        `tool` results); the system prompt goes first. With `allow_tool_use=False` the
        tools are still sent, with `tool_choice` "none", so the model must answer.
        """
        if not self._key:
            raise LLMError(ErrorKind.AUTH, f"no API key for {self.backend}")
        started = time.perf_counter()
        first_ms: float | None = None
        parts: list[str] = []
        calls = ToolCallDeltas()
        usage: Any = None
        finish: str | None = None
        try:
            params: dict[str, Any] = {
                "model": self.model,
                "messages": [
                    *([{"role": "system", "content": system}] if system else []),
                    *(dict(m) for m in messages),
                ],
                "stream": True,
                "stream_options": {"include_usage": True},
                "max_tokens": max_tokens,
                "temperature": temperature,
                **tool_params(tools, allow_tool_use=allow_tool_use),
            }
            chunks: Any = await self._sdk.chat.completions.create(**params)
            try:
                async for chunk in chunks:
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices:
                        finish = choice.finish_reason or finish
                        delta = choice.delta
                        if delta is None:
                            continue
                        if delta.tool_calls:
                            calls.add(delta.tool_calls)
                        if delta.content:
                            if first_ms is None:
                                first_ms = (time.perf_counter() - started) * 1000
                            parts.append(delta.content)
                            yield delta.content
            finally:
                await chunks.close()
        except (openai.APIError, httpx2.HTTPError) as e:
            raise self._error(e, text_started=bool(parts)) from None
        got = self._usage(usage)
        tool_calls = calls.calls()
        response = LLMResponse(
            content="".join(parts),
            model=self.model,
            backend=self.backend,
            first_token_ms=first_ms,
            total_duration_ms=(time.perf_counter() - started) * 1000,
            usage=got,
            cost_usd=self._price.cost(got),
            stop_reason=finish,
        )
        yield ModelTurn(
            text=response.content,
            tool_calls=tool_calls,
            response=response,
            stopped_for_tools=stopped_for_tools(finish, tool_calls),
        )

    def tool_turn(self, turn: ModelTurn, results: Sequence[ToolResult]) -> list[dict[str, Any]]:
        """The assistant message with its `tool_calls`, then one `tool` message per result."""
        return openai_tool_turn(turn, results)

    @staticmethod
    def _usage(usage: Any) -> Usage:
        """The billed counts; cached prompt tokens are billed at the cache-read price."""
        if usage is None:
            return Usage()
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        prompt = int(usage.prompt_tokens or 0)
        return Usage(
            input_tokens=max(0, prompt - cached),
            output_tokens=int(usage.completion_tokens or 0),
            cache_read_tokens=cached,
        )

    def _error(self, err: openai.APIError | httpx2.HTTPError, *, text_started: bool) -> LLMError:
        kind = _kind_of(err, text_started=text_started)
        status = getattr(err, "status_code", None)
        detail = f"{self.backend} {type(err).__name__}" + (f" ({status})" if status else "")
        text = str(err) or detail
        if self._key:
            text = text.replace(self._key, "[REDACTED]")
        error = LLMError(kind, redact_text(f"{detail}: {text}"[:500]), text_started=text_started)
        log.warning(
            "openai_cloud_failed",
            provider=self.backend,
            model=self.model,
            kind=kind.value,
            text_started=text_started,
            error=str(error),
        )
        return error


def _kind_of(err: openai.APIError | httpx2.HTTPError, *, text_started: bool) -> ErrorKind:
    if text_started and not isinstance(err, openai.APIStatusError):
        if isinstance(err, openai.APITimeoutError | httpx2.TimeoutException):
            return ErrorKind.STALLED
        return ErrorKind.MID_STREAM
    if isinstance(err, openai.AuthenticationError | openai.PermissionDeniedError):
        return ErrorKind.AUTH
    if isinstance(err, openai.RateLimitError):
        return ErrorKind.RATE_LIMITED
    if isinstance(err, openai.NotFoundError):
        return ErrorKind.MODEL_NOT_FOUND
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        if status == 529 or status == 503:
            return ErrorKind.OVERLOADED
        if status >= 500 or status in (408, 409):
            return ErrorKind.SERVER
        return ErrorKind.BAD_REQUEST
    if isinstance(err, openai.APITimeoutError | httpx2.TimeoutException):
        return ErrorKind.TIMEOUT
    if isinstance(err, openai.APIConnectionError | httpx2.TransportError):
        return ErrorKind.CONNECTION
    return ErrorKind.SERVER  # an error payload in the stream before any text


async def probe_provider(config: CloudProviderConfig, api_key: str, timeout_s: float) -> str | None:
    """None when the provider answers with this key and lists (or does not list) models;
    else one phrase: "key refused", "model not listed", or what failed."""
    sdk = openai.AsyncOpenAI(
        api_key=api_key, base_url=config.base_url, max_retries=0, timeout=timeout_s
    )
    try:
        page = await sdk.models.list()
        ids = {m.id for m in page.data}
    except (openai.AuthenticationError, openai.PermissionDeniedError):
        return "key refused"
    except (openai.APIError, httpx2.HTTPError) as e:
        return type(e).__name__  # the name only: the message could quote the request
    finally:
        await sdk.close()
    if ids and config.model not in ids:
        return "model not listed"
    return None
