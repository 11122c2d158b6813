"""The direct Anthropic API client for the `haiku` and `agent` tiers.

One retry policy (tenacity) wraps only the opening of a stream, up to and including
its first event: once an answer has begun, a failure ends it (the SDK's own retries
are off, `max_retries=0`). Every SDK failure becomes an `LLMError` whose text has been
run through `redact_text`, so the key never reaches a log line or a traceback.

SDK facts this module relies on (anthropic 2.12.0, verified against the fake):
* it talks through `httpx2`, not `httpx`: the timeout must be an `anthropic.Timeout`,
  and transport errors raised while the body streams (read timeout after the headers,
  a dropped connection) surface as raw `httpx2` exceptions, not `APIError`s;
* `OverloadedError` subclasses `InternalServerError` here, so it is checked first;
* `APITimeoutError` subclasses `APIConnectionError`, so it is checked first too;
* an `error` event mid-stream raises a plain `APIStatusError` with status 200 whose
  `.type` carries the error type (e.g. "overloaded_error");
* unknown event types are passed through with their `.type`; `ping` never shows;
* `messages.stream()` takes no `temperature` (nor top_p/top_k): it is not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anthropic
import httpx2
import structlog
from anthropic.lib.streaming import AsyncMessageStream
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

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
from atlas.llm.config import AnthropicConfig, CloudTierConfig
from atlas.llm.tools import ToolSpec
from atlas.llm.toolturn import ModelTurn, ToolCall, ToolResult, without_tools
from atlas.logs import redact_text

log = structlog.get_logger("atlas.llm.anthropic")

_CHARS_PER_TOKEN = 4  # rough estimate, only used to explain why nothing was cached
_EPHEMERAL = {"type": "ephemeral"}
_DRAIN_S = 0.5  # how long to wait for the end of the body after message_stop


class _OpenFailure(Exception):
    """An attempt to open a stream failed; carries the mapped error and retry-after."""

    def __init__(self, error: LLMError, retry_after_s: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after_s = retry_after_s


_Stream = AsyncMessageStream[Any]
_Event = Any  # the SDK's ParsedMessageStreamEvent union; we read it by `.type`


class AnthropicClient:
    """LLMClient over `anthropic.AsyncAnthropic`, streaming, with prompt caching."""

    def __init__(
        self,
        tier_config: CloudTierConfig,
        config: AnthropicConfig,
        api_key: str,
        *,
        backend_label: str = "anthropic",
    ) -> None:
        self.backend = backend_label
        self.model = tier_config.model
        self._tier = tier_config
        self._config = config
        self._key = api_key
        self._price = Price(
            input_per_mtok=tier_config.input_usd_per_mtok,
            output_per_mtok=tier_config.output_usd_per_mtok,
            cache_write_multiplier=config.cache_write_multiplier,
            cache_read_multiplier=config.cache_read_multiplier,
        )
        self._sdk = anthropic.AsyncAnthropic(
            # A placeholder keeps construction from failing; stream() refuses without a key.
            api_key=api_key or "no-key-configured",
            base_url=config.base_url,
            max_retries=0,
            timeout=anthropic.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
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

        `messages` are in the API's own shape (content may be a list of blocks) so that
        tool_use / tool_result blocks can be sent back. `allow_tool_use=False` still
        sends the tools (the API insists on them once the conversation holds tool
        blocks) but with tool_choice "none", so the model must answer in words.
        """
        if not self._key:
            raise LLMError(ErrorKind.AUTH, "no Anthropic API key configured")
        params = self._params(messages, system, tools, temperature, max_tokens, allow_tool_use)
        t0 = time.perf_counter()
        first_token_ms: float | None = None
        parts: list[str] = []
        stream: _Stream | None = None
        try:
            stream, event = await self._open(params)
            while event is not None:
                text = _text_of(event)
                if text:
                    if first_token_ms is None:
                        first_token_ms = (time.perf_counter() - t0) * 1000.0
                    parts.append(text)
                    yield text
                if event.type == "message_stop":
                    await _drain(stream)
                    break
                event = await self._next_event(stream, text_started=bool(parts))
            else:
                raise LLMError(
                    ErrorKind.MID_STREAM,
                    "stream ended before message_stop",
                    text_started=bool(parts),
                )
            message = stream.current_message_snapshot
        except (anthropic.APIError, httpx2.HTTPError) as err:
            error = self._map_error(err, text_started=bool(parts), opening=False)
            self._log_failure(error)
            raise error from None
        except LLMError as error:
            self._log_failure(error)
            raise
        finally:
            if stream is not None:
                # Also on cancellation / aclose(): release the HTTP connection at once.
                await stream.close()
        yield self._turn(message, "".join(parts), first_token_ms, t0, system, tools)

    def tool_turn(self, turn: ModelTurn, results: Sequence[ToolResult]) -> list[dict[str, Any]]:
        """The assistant's content blocks, then one user message of tool_result blocks."""
        return [
            {"role": "assistant", "content": turn.assistant_content()},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": r.call_id, "content": r.content}
                    | ({"is_error": True} if r.is_error else {})
                    for r in results
                ],
            },
        ]

    # -- request -------------------------------------------------------------------

    def _params(
        self,
        messages: Sequence[Mapping[str, Any]],
        system: str,
        tools: Sequence[ToolSpec],
        temperature: float,
        max_tokens: int,
        allow_tool_use: bool,
    ) -> dict[str, Any]:
        # `temperature` is accepted for the protocol's sake but not sent: SDK 2.12's
        # messages API has no sampling parameters any more (an unknown field would be a
        # 400), so the models' own defaults apply.
        del temperature
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": [dict(m) for m in messages],
        }
        if system:
            # The system prompt (and the tools after it) is the stable prefix worth caching.
            params["system"] = [{"type": "text", "text": system, "cache_control": _EPHEMERAL}]
        if tools:
            specs = [t.as_anthropic() for t in tools]
            specs[-1]["cache_control"] = _EPHEMERAL
            params["tools"] = specs
            if not allow_tool_use:
                params["tool_choice"] = {"type": "none"}
        return params

    # -- opening, with the one retry policy ------------------------------------------

    async def _open(self, params: Mapping[str, Any]) -> tuple[_Stream, _Event | None]:
        cfg = self._config
        retrying = AsyncRetrying(
            stop=stop_after_attempt(cfg.retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_should_retry_for(cfg.retry_max_s)),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._open_once(params)
        except _OpenFailure as failure:
            raise failure.error from None
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def _open_once(self, params: Mapping[str, Any]) -> tuple[_Stream, _Event | None]:
        """Send the request and read the first event (the SDK sends on __aenter__)."""
        stream: _Stream | None = None
        cfg = self._config
        try:
            # httpx2's read timeout restarts on every byte; pings alone could keep a
            # stream open forever, so the whole opening step also has a ceiling.
            async with asyncio.timeout(cfg.connect_timeout_s + cfg.read_timeout_s):
                stream = await self._sdk.messages.stream(**params).__aenter__()
                first = await anext(stream, None)
            return stream, first
        except BaseException as exc:
            if stream is not None:
                await stream.close()
            if isinstance(exc, TimeoutError):
                error = LLMError(ErrorKind.TIMEOUT, "no first event in time")
                raise _OpenFailure(error, None) from None
            if isinstance(exc, anthropic.APIError | httpx2.HTTPError):
                error = self._map_error(exc, text_started=False, opening=True)
                raise _OpenFailure(error, _retry_after(exc)) from None
            raise

    def _wait(self, state: RetryCallState) -> float:
        cfg = self._config
        backoff = min(cfg.retry_max_s, cfg.retry_initial_s * 2 ** (state.attempt_number - 1))
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _OpenFailure) and exc.retry_after_s is not None:
            return exc.retry_after_s  # the predicate only retries when it is small
        return float(backoff)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "anthropic_retry",
            model=self.model,
            attempt=state.attempt_number,
            wait_s=round(sleep, 3),
            error=redact_text(str(exc)),
        )

    async def _next_event(self, stream: _Stream, *, text_started: bool) -> _Event | None:
        try:
            async with asyncio.timeout(self._config.stall_timeout_s):
                return await anext(stream, None)
        except TimeoutError:
            raise LLMError(
                ErrorKind.STALLED,
                f"no event for {self._config.stall_timeout_s:g}s",
                text_started=text_started,
            ) from None

    # -- results ------------------------------------------------------------------

    def _turn(
        self,
        message: Any,
        text: str,
        first_token_ms: float | None,
        t0: float,
        system: str,
        tools: Sequence[ToolSpec],
    ) -> ModelTurn:
        u = message.usage
        usage = Usage(
            input_tokens=u.input_tokens or 0,
            output_tokens=u.output_tokens or 0,
            cache_read_tokens=u.cache_read_input_tokens or 0,
            cache_write_tokens=u.cache_creation_input_tokens or 0,
        )
        calls = tuple(
            ToolCall(id=b.id, name=b.name, input=dict(b.input) if isinstance(b.input, dict) else {})
            for b in message.content
            if b.type == "tool_use"
        )
        response = LLMResponse(
            content=text,
            model=str(message.model or self.model),
            backend=self.backend,
            first_token_ms=first_token_ms,
            total_duration_ms=(time.perf_counter() - t0) * 1000.0,
            usage=usage,
            cost_usd=self._price.cost(usage),
            stop_reason=message.stop_reason,
            cache_note=self._cache_note(usage, system, tools),
        )
        log.info(
            "anthropic_done",
            model=response.model,
            first_token_ms=None if first_token_ms is None else round(first_token_ms, 1),
            total_ms=round(response.total_duration_ms, 1),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read=usage.cache_read_tokens,
            cache_write=usage.cache_write_tokens,
            cost_usd=response.cost_usd,
            stop_reason=response.stop_reason,
        )
        return ModelTurn(
            text=text,
            tool_calls=calls,
            response=response,
            stopped_for_tools=message.stop_reason == "tool_use",
        )

    def _cache_note(self, usage: Usage, system: str, tools: Sequence[ToolSpec]) -> str:
        if usage.cache_read_tokens or usage.cache_write_tokens:
            return ""
        chars = len(system) + sum(len(json.dumps(t.as_anthropic())) for t in tools)
        estimate = chars // _CHARS_PER_TOKEN
        minimum = self._tier.min_cache_tokens
        what = "system prompt and tools" if tools else "system prompt"
        if estimate < minimum:
            return f"{what} ~{estimate} tokens < {minimum} minimum: not cached"
        return f"{what} ~{estimate} tokens but no cache tokens reported: not cached"

    def _map_error(
        self, err: anthropic.APIError | httpx2.HTTPError, *, text_started: bool, opening: bool
    ) -> LLMError:
        kind = _kind_of(err, opening=opening)
        status = getattr(err, "status_code", None)
        detail = f"{type(err).__name__}" + (f" ({status})" if status else "")
        text = str(err) or detail
        if self._key:
            text = text.replace(self._key, "[REDACTED]")
        message = redact_text(f"{detail}: {text}"[:500])
        return LLMError(kind, message, text_started=text_started)

    def _log_failure(self, error: LLMError) -> None:
        log.warning(
            "anthropic_failed",
            model=self.model,
            kind=error.kind.value,
            text_started=error.text_started,
            error=redact_text(str(error)),
        )


async def _drain(stream: _Stream) -> None:
    """Read past message_stop to the end of the body so httpx2 can reuse the connection
    (closing a partly read response drops it, and a new TLS handshake costs ~100 ms)."""
    with contextlib.suppress(TimeoutError, anthropic.APIError, httpx2.HTTPError):
        async with asyncio.timeout(_DRAIN_S):
            while await anext(stream, None) is not None:
                pass


def _text_of(event: _Event) -> str:
    if event.type == "content_block_delta" and event.delta.type == "text_delta":
        return str(event.delta.text)
    return ""


_STREAM_ERROR_KINDS = {
    "overloaded_error": ErrorKind.OVERLOADED,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "api_error": ErrorKind.SERVER,
}


def _kind_of(err: anthropic.APIError | httpx2.HTTPError, *, opening: bool) -> ErrorKind:
    # Order matters: OverloadedError subclasses InternalServerError in SDK 2.x, and
    # APITimeoutError subclasses APIConnectionError.
    if isinstance(err, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
        return ErrorKind.AUTH
    if isinstance(err, anthropic.RateLimitError):
        return ErrorKind.RATE_LIMITED
    if isinstance(err, anthropic.OverloadedError):
        return ErrorKind.OVERLOADED
    if isinstance(err, anthropic.APIStatusError):
        return _status_kind(err, opening=opening)
    if isinstance(err, anthropic.APITimeoutError | httpx2.TimeoutException):
        # A read timeout once the stream is under way is a stall, not a slow start.
        return ErrorKind.TIMEOUT if opening else ErrorKind.STALLED
    if isinstance(err, anthropic.APIConnectionError | httpx2.TransportError):
        return ErrorKind.CONNECTION
    return ErrorKind.MID_STREAM if not opening else ErrorKind.SERVER


def _status_kind(err: anthropic.APIStatusError, *, opening: bool) -> ErrorKind:
    status = err.status_code
    if status == 200:
        # An `error` event inside a 200 stream. As the very first event nothing has
        # started, so it is as good as the matching HTTP status (and retryable).
        if opening:
            return _STREAM_ERROR_KINDS.get(str(err.type), ErrorKind.SERVER)
        return ErrorKind.MID_STREAM
    if status == 529:
        return ErrorKind.OVERLOADED
    if status >= 500:
        return ErrorKind.SERVER
    if status in (408, 409):
        return ErrorKind.SERVER  # transient per Anthropic's docs
    if status == 404:
        return ErrorKind.MODEL_NOT_FOUND  # the Messages API's only 404: an unknown model id
    return ErrorKind.BAD_REQUEST


def _retry_after(err: BaseException) -> float | None:
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000.0)
        if (s := headers.get("retry-after")) is not None:
            return max(0.0, float(s))
    except ValueError:
        return None  # an HTTP date: ignore it and back off as usual
    return None


def _should_retry_for(retry_max_s: float) -> Any:
    def should_retry(exc: BaseException) -> bool:
        if not isinstance(exc, _OpenFailure) or not exc.error.retryable:
            return False
        # The server asked us to wait longer than we ever would: give up now instead.
        return exc.retry_after_s is None or exc.retry_after_s <= retry_max_s

    return should_retry
