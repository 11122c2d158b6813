"""HTTP clients for the `local` tier: any OpenAI-compatible server, and Ollama.

`OpenAICompatClient` speaks chat completions over SSE (llama.cpp's server, vLLM,
LM Studio, Ollama's /v1). `OllamaClient` speaks Ollama's native /api/chat, which
reports token counts on every answer (its /v1 only does so when asked, and only in
newer versions) and takes `keep_alive` per request, so the pinned model stays loaded.

Both share one streaming loop: the request is timed from just before it is sent, text
deltas are yielded as they arrive, and every failure becomes an `LLMError` whose kind
says whether text had started (the router never re-asks a question once the user has
heard part of an answer). Cancelling the consumer closes the HTTP response on the way
out; the CancelledError is never swallowed.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from atlas.llm.base import (
    ErrorKind,
    LLMError,
    LLMResponse,
    Message,
    StreamItem,
    Usage,
    chat_messages,
    collect,
)
from atlas.llm.config import LocalLLMConfig
from atlas.logs import redact_text

log = structlog.get_logger("atlas.llm.local")

_DETAIL_CHARS = 200


@dataclass(frozen=True)
class _Event:
    """One parsed line of a streamed answer."""

    text: str = ""
    finish: str | None = None
    usage: Usage | None = None
    end: bool = False
    error: str | None = None


def parse_keep_alive(value: str) -> int | str:
    """Ollama wants a number of seconds as a number ("-1" pins) and durations as text."""
    try:
        return int(value.strip())
    except ValueError:
        return value.strip()


def same_model(requested: str, installed: str) -> bool:
    """Ollama treats `name` and `name:latest` as the same model."""

    def norm(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    return norm(requested) == norm(installed)


def _elapsed_ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def _detail(body: bytes) -> str:
    """The server's error message, short and with anything key-shaped removed."""
    text = body.decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and "error" in obj:
        err = obj["error"]
        text = str(err.get("message", err)) if isinstance(err, dict) else str(err)
    return redact_text(text[:_DETAIL_CHARS]) or "no details"


def status_error(status: int, body: bytes, backend: str) -> LLMError:
    if status == 429:
        kind = ErrorKind.RATE_LIMITED
    elif status == 529:
        kind = ErrorKind.OVERLOADED
    elif status >= 500:
        kind = ErrorKind.SERVER
    else:
        kind = ErrorKind.BAD_REQUEST
    return LLMError(kind, f"{backend} answered HTTP {status}: {_detail(body)}")


def transport_error(exc: httpx.HTTPError, *, text_started: bool, where: str) -> LLMError:
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return LLMError(ErrorKind.TIMEOUT, f"connecting to {where} timed out")
    if isinstance(exc, httpx.TimeoutException):
        if text_started:
            return LLMError(
                ErrorKind.STALLED, f"{where} stopped sending mid-answer", text_started=True
            )
        return LLMError(ErrorKind.TIMEOUT, f"{where} did not answer in time ({name})")
    if isinstance(exc, httpx.ConnectError):
        return LLMError(ErrorKind.CONNECTION, f"cannot connect to {where} ({name})")
    if text_started:
        return LLMError(
            ErrorKind.MID_STREAM, f"{where} broke off mid-answer ({name})", text_started=True
        )
    return LLMError(ErrorKind.CONNECTION, f"connection to {where} failed ({name})")


def _usage(prompt: Any, completion: Any) -> Usage:
    return Usage(
        input_tokens=prompt if isinstance(prompt, int) else 0,
        output_tokens=completion if isinstance(completion, int) else 0,
    )


class _StreamingChatClient:
    """The request/parse/error-mapping loop both protocols share."""

    def __init__(
        self,
        config: LocalLLMConfig,
        *,
        base_url: str,
        model: str,
        backend: str,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.backend = backend
        self.model = model
        self._config = config
        self._base_url = base_url.rstrip("/")
        # The read timeout is the longest silence we accept between bytes: before the
        # first token it means "no answer" (TIMEOUT), after it "stalled" (STALLED).
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            transport=transport,
            timeout=httpx.Timeout(
                config.timeout_s,
                connect=config.connect_timeout_s,
                pool=config.connect_timeout_s,
            ),
        )

    def _request(
        self, messages: Sequence[Message], system: str, temperature: float, max_tokens: int
    ) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _parse(self, line: str) -> _Event | None:
        raise NotImplementedError

    async def stream(
        self,
        messages: Sequence[Message],
        system: str,
        temperature: float,
        max_tokens: int,
    ) -> AsyncIterator[StreamItem]:
        path, payload = self._request(messages, system, temperature, max_tokens)
        where = f"{self.backend} at {self._base_url}"
        started = time.perf_counter()
        parts: list[str] = []
        first_ms: float | None = None
        finish: str | None = None
        usage: Usage | None = None
        ended = False
        try:
            async with self._http.stream("POST", path, json=payload) as resp:
                if resp.status_code >= 400:
                    raise status_error(resp.status_code, await resp.aread(), self.backend)
                async for line in resp.aiter_lines():
                    event = self._parse(line)
                    if event is None:
                        continue
                    if event.error is not None:
                        raise self._error_payload(event.error, text_started=bool(parts))
                    if event.text:
                        if first_ms is None:
                            first_ms = _elapsed_ms(started)
                        parts.append(event.text)
                        yield event.text
                    finish = event.finish or finish
                    usage = event.usage or usage
                    if event.end:
                        ended = True
                        break
        except httpx.HTTPError as e:
            raise transport_error(e, text_started=bool(parts), where=where) from None
        if not ended and finish is None:
            # A clean EOF without the closing record: the server gave up half way.
            if parts:
                raise LLMError(
                    ErrorKind.MID_STREAM, f"{where} ended the answer early", text_started=True
                )
            raise LLMError(ErrorKind.SERVER, f"{where} ended the stream without an answer")
        total_ms = _elapsed_ms(started)
        log.debug(
            "llm.local_stream_done",
            backend=self.backend,
            model=self.model,
            first_token_ms=None if first_ms is None else round(first_ms, 1),
            total_ms=round(total_ms, 1),
        )
        yield LLMResponse(
            content="".join(parts),
            model=self.model,
            backend=self.backend,
            first_token_ms=first_ms,
            total_duration_ms=total_ms,
            usage=usage or Usage(),
            cost_usd=0.0,
            stop_reason=finish,
        )

    def _error_payload(self, message: str, *, text_started: bool) -> LLMError:
        text = f"{self.backend} reported an error: {redact_text(message[:_DETAIL_CHARS])}"
        if text_started:
            return LLMError(ErrorKind.MID_STREAM, text, text_started=True)
        return LLMError(ErrorKind.SERVER, text)

    async def generate(
        self,
        messages: Sequence[Message],
        system: str,
        temperature: float,
        max_tokens: int,
    ) -> LLMResponse:
        return await collect(self.stream(messages, system, temperature, max_tokens))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get_json(self, path: str) -> Any:
        """GET within the connect timeout; None when the server does not answer well."""
        try:
            resp = await self._http.get(path, timeout=self._config.connect_timeout_s)
            if resp.status_code != 200:
                return None
            return resp.json()
        except (httpx.HTTPError, ValueError):
            return None


class OpenAICompatClient(_StreamingChatClient):
    """Chat completions over SSE; `base_url` is the server's /v1 URL."""

    def __init__(
        self,
        config: LocalLLMConfig,
        *,
        base_url: str,
        model: str,
        backend_label: str = "openai",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            config, base_url=base_url, model=model, backend=backend_label, transport=transport
        )

    def _request(
        self, messages: Sequence[Message], system: str, temperature: float, max_tokens: int
    ) -> tuple[str, dict[str, Any]]:
        return "/chat/completions", {
            "model": self.model,
            "messages": chat_messages(messages, system),
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": temperature,
            "max_tokens": max_tokens,
        }

    def _parse(self, line: str) -> _Event | None:
        if not line.startswith("data:"):
            return None  # blank separators, comments (": ping"), `event:` lines
        data = line[5:].strip()
        if data == "[DONE]":
            return _Event(end=True)
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            return _Event(error="unparseable stream chunk")
        if not isinstance(obj, dict):
            return _Event(error="unexpected stream chunk")
        if obj.get("error") is not None:
            err = obj["error"]
            return _Event(error=str(err.get("message", err)) if isinstance(err, dict) else str(err))
        usage = None
        if isinstance(obj.get("usage"), dict):
            usage = _usage(obj["usage"].get("prompt_tokens"), obj["usage"].get("completion_tokens"))
        choices = obj.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return _Event(usage=usage)
        delta = choices[0].get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        return _Event(
            text=content if isinstance(content, str) else "",
            finish=choices[0].get("finish_reason"),
            usage=usage,
        )

    async def is_available(self) -> bool:
        return await self._get_json("/models") is not None


class OllamaClient(_StreamingChatClient):
    """Ollama's native /api/chat (NDJSON), plus the availability check and warm-up."""

    def __init__(
        self,
        config: LocalLLMConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            config,
            base_url=config.base_url,
            model=config.model,
            backend="ollama",
            transport=transport,
        )
        self._keep_alive = parse_keep_alive(config.keep_alive)

    def _request(
        self, messages: Sequence[Message], system: str, temperature: float, max_tokens: int
    ) -> tuple[str, dict[str, Any]]:
        return "/api/chat", {
            "model": self.model,
            "messages": chat_messages(messages, system),
            "stream": True,
            # Sent every time: a request without it resets the model's keep_alive to 5m.
            "keep_alive": self._keep_alive,
            "options": {"temperature": temperature, "num_predict": max_tokens},
        }

    def _parse(self, line: str) -> _Event | None:
        if not line.strip():
            return None
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return _Event(error="unparseable stream line")
        if not isinstance(obj, dict):
            return _Event(error="unexpected stream line")
        if obj.get("error") is not None:
            return _Event(error=str(obj["error"]))
        message = obj.get("message")
        content = message.get("content") if isinstance(message, Mapping) else None
        text = content if isinstance(content, str) else ""
        if not obj.get("done"):
            return _Event(text=text)
        return _Event(
            text=text,
            finish=str(obj.get("done_reason") or "stop"),
            usage=_usage(obj.get("prompt_eval_count"), obj.get("eval_count")),
            end=True,
        )

    async def installed_models(self) -> tuple[str, ...] | None:
        """The models Ollama lists, or None when it does not answer in time."""
        obj = await self._get_json("/api/tags")
        if not isinstance(obj, dict) or not isinstance(obj.get("models"), list):
            return None
        names = (m.get("name") or m.get("model") for m in obj["models"] if isinstance(m, dict))
        return tuple(str(n) for n in names if n)

    async def is_available(self) -> bool:
        models = await self.installed_models()
        return models is not None and any(same_model(self.model, m) for m in models)

    async def warm(self) -> None:
        """Load the model now and pin it (keep_alive), so the first question is fast.

        An unloaded model costs tens of seconds on the next call; an empty prompt makes
        Ollama load it without generating anything.
        """
        started = time.perf_counter()
        where = f"ollama at {self._base_url}"
        payload = {"model": self.model, "prompt": "", "keep_alive": self._keep_alive}
        try:
            resp = await self._http.post("/api/generate", json={**payload, "stream": False})
        except httpx.HTTPError as e:
            raise transport_error(e, text_started=False, where=where) from None
        if resp.status_code >= 400:
            raise status_error(resp.status_code, resp.content, self.backend)
        log.info(
            "llm.ollama_warmed",
            model=self.model,
            keep_alive=self._keep_alive,
            ms=round(_elapsed_ms(started), 1),
        )
