"""A real HTTP server on 127.0.0.1 that speaks the Anthropic Messages API.

Tests and the latency benchmark point the real `anthropic` SDK at it through
`base_url`. Each request consumes one `FakeScript` from a bounded queue (or, when the
queue is empty, the server's `LatencyProfile`), so a test scripts latency and faults
per call: HTTP status errors, an `error` event mid-stream, a stall, a dropped
connection. The SSE body is written incrementally with real sleeps, using chunked
transfer encoding so that a dropped connection looks like one to the client.

Usage::

    with FakeAnthropic() as fake:
        fake.enqueue(FakeScript(text="Good evening."))
        client = AsyncAnthropic(api_key="sk-ant-test", base_url=fake.base_url)
        ...
        assert fake.requests[0].body["system"][0]["cache_control"] == {"type": "ephemeral"}
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import structlog

from atlas.testing.serving import ServingThread

log = structlog.get_logger("atlas.testing.fake_anthropic")

_MAX_QUEUED_SCRIPTS = 256
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class FakeToolUse:
    """A tool_use block the fake model emits (its input streamed as input_json_delta)."""

    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    """Empty: the server makes one up (toolu_fake_<n>)."""


@dataclass(frozen=True)
class FakeScript:
    """What the fake does for one request."""

    text: str = "Certainly."
    """Reply text; split into word-sized text deltas unless `deltas` is given."""
    deltas: tuple[str, ...] | None = None
    tool_uses: tuple[FakeToolUse, ...] = ()
    stop_reason: str | None = None
    """None: "tool_use" when tool_uses are given, else "end_turn"."""
    input_tokens: int = 12
    output_tokens: int | None = None
    """None: one per text delta (plus 10 per tool_use)."""
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    model: str | None = None
    """None: echo the requested model."""
    headers_delay_s: float = 0.0
    """Sleep before the status line (the SDK waits on the response headers)."""
    first_token_delay_s: float = 0.0
    """Sleep after the headers, before message_start and the first delta."""
    token_delay_s: float = 0.0
    """Sleep between deltas (tokens per second = 1 / token_delay_s)."""
    status: int = 200
    """Non-200: answer with an Anthropic error body instead of a stream."""
    error_type: str | None = None
    """None: the usual type for `status` (e.g. 529 -> overloaded_error)."""
    retry_after: float | None = None
    """Sent as the retry-after header on a status error."""
    error_after_deltas: int | None = None
    """Send an `error` event after this many text deltas (then end the stream)."""
    error_event_type: str = "overloaded_error"
    stall_after_deltas: int | None = None
    """Stop sending after this many text deltas for `stall_s` (then carry on)."""
    stall_s: float = 0.0
    drop_after_deltas: int | None = None
    """Close the connection abruptly after this many text deltas."""
    ping_every: int = 3
    """A `ping` event after every N deltas (0: only the one after content_block_start)."""
    unknown_event: bool = True
    """Send an event type the SDK does not know, to prove clients tolerate it."""

    @staticmethod
    def error(status: int, *, retry_after: float | None = None, message: str = "") -> FakeScript:
        """A plain HTTP status error (429, 529, 500, 401, 400...)."""
        return FakeScript(status=status, retry_after=retry_after, text=message or "fake error")


@dataclass(frozen=True)
class LatencyProfile:
    """The default behaviour when no script is queued (used by the benchmark)."""

    first_token_ms: float = 0.0
    tokens_per_s: float = 0.0
    """0: no delay between deltas."""
    answer: str = "Certainly. It is a pleasure to help with that this evening."
    input_tokens: int = 300

    def script(self) -> FakeScript:
        return FakeScript(
            text=self.answer,
            first_token_delay_s=self.first_token_ms / 1000.0,
            token_delay_s=1.0 / self.tokens_per_s if self.tokens_per_s > 0 else 0.0,
            input_tokens=self.input_tokens,
        )


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: Mapping[str, str]
    """All request headers except x-api-key and authorization (never stored)."""
    had_api_key: bool
    """A key was sent (its value is never stored)."""
    auth_scheme: str | None
    """"x-api-key", "bearer" (Authorization: Bearer, what SDK 2.x sends) or None."""
    body: Mapping[str, Any]
    client_port: int = 0
    """The client's TCP port: equal ports mean a reused keep-alive connection."""


def split_deltas(text: str) -> tuple[str, ...]:
    """Word-sized deltas that concatenate back to `text`."""
    return tuple(re.findall(r"\s*\S+\s*|\s+", text)) or ((text,) if text else ())


class _DropConnection(Exception):
    pass


class _State:
    """What the handler threads share with the test thread (guarded by a lock)."""

    def __init__(self, profile: LatencyProfile) -> None:
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.profile = profile
        self.model_profiles: dict[str, LatencyProfile] = {}
        self.scripts: deque[FakeScript] = deque(maxlen=_MAX_QUEUED_SCRIPTS)
        self.requests: list[RecordedRequest] = []
        self.tool_counter = 0
        self.retired: set[str] = set()
        """Model ids answered with 404 not_found_error (GET /v1/models/<id> and messages)."""

    def next_script(self, model: str | None = None) -> FakeScript:
        with self.lock:
            if self.scripts:
                return self.scripts.popleft()
            return self.model_profiles.get(model or "", self.profile).script()

    def record(self, req: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(req)

    def tool_id(self) -> str:
        with self.lock:
            self.tool_counter += 1
            return f"toolu_fake_{self.tool_counter:04d}"

    def sleep(self, seconds: float) -> None:
        """A delay that ends early when the server shuts down."""
        if seconds > 0:
            self.closing.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Events are many small writes: without NODELAY, Nagle plus the client's delayed
        # ACK add ~40 ms per event on a reused keep-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake_anthropic_http", line=format % args)

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: dict[str, Any] = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        hidden = {"x-api-key", "authorization"}
        # SDK 2.x sends the key as "Authorization: Bearer ..."; older clients use x-api-key.
        scheme = (
            "x-api-key"
            if self.headers.get("x-api-key")
            else "bearer"
            if (self.headers.get("authorization") or "").lower().startswith("bearer ")
            else None
        )
        state.record(
            RecordedRequest(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items() if k.lower() not in hidden},
                had_api_key=scheme is not None,
                auth_scheme=scheme,
                body=body,
                client_port=int(self.client_address[1]),
            )
        )
        if self.path.split("?")[0] != "/v1/messages":
            self._send_error_json(404, "not_found_error", f"no route {self.path}", None)
            return
        if scheme is None:
            self._send_error_json(401, "authentication_error", "missing API key", None)
            return
        model = str(body.get("model") or "")
        with state.lock:
            retired = model in state.retired
        if retired:
            self._send_error_json(404, "not_found_error", f"model: {model}", None)
            return
        script = state.next_script(str(body.get("model") or ""))
        state.sleep(script.headers_delay_s)
        try:
            if script.status != 200:
                etype = script.error_type or _ERROR_TYPES.get(script.status, "api_error")
                self._send_error_json(script.status, etype, script.text, script.retry_after)
            elif body.get("stream"):
                self._send_stream(script, body)
            else:
                self._send_message(script, body)
        except _DropConnection:
            # shutdown, not close: the rfile/wfile wrappers keep the socket open otherwise.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (cancelled, timed out): nothing to answer.
            self.close_connection = True

    def do_GET(self) -> None:
        """GET /v1/models/<id>: the model lookup `atlas doctor` makes (no tokens)."""
        state = self.server.state
        path = self.path.split("?")[0]
        if not path.startswith("/v1/models/"):
            self._send_error_json(404, "not_found_error", f"no route {self.path}", None)
            return
        if not (self.headers.get("x-api-key") or self.headers.get("authorization")):
            self._send_error_json(401, "authentication_error", "missing API key", None)
            return
        model = path[len("/v1/models/") :]
        with state.lock:
            retired = model in state.retired
        if retired:
            self._send_error_json(404, "not_found_error", f"model: {model}", None)
            return
        info = {"type": "model", "id": model, "display_name": model}
        self._send_json(200, info | {"created_at": "2026-01-01T00:00:00Z"}, {})

    # -- plain JSON answers -------------------------------------------------------

    def _send_json(
        self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str]
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_fake")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error_json(
        self, status: int, etype: str, message: str, retry_after: float | None
    ) -> None:
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        payload = {"type": "error", "error": {"type": etype, "message": message}}
        self._send_json(status, payload, headers)

    def _send_message(self, script: FakeScript, body: Mapping[str, Any]) -> None:
        self.server.state.sleep(script.first_token_delay_s)
        deltas = script.deltas if script.deltas is not None else split_deltas(script.text)
        content: list[dict[str, Any]] = []
        if deltas:
            content.append({"type": "text", "text": "".join(deltas)})
        for tool in script.tool_uses:
            tid = tool.id or self.server.state.tool_id()
            content.append({"type": "tool_use", "id": tid, "name": tool.name, "input": tool.input})
        message = _message_shell(script, body, len(deltas))
        message["content"] = content
        message["stop_reason"] = _stop_reason(script)
        self._send_json(200, message, {})

    # -- the SSE stream -----------------------------------------------------------

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, name: str, payload: Mapping[str, Any]) -> None:
        self._chunk(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())

    def _send_stream(self, script: FakeScript, body: Mapping[str, Any]) -> None:
        state = self.server.state
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", "req_fake")
        self.end_headers()
        self.wfile.flush()
        state.sleep(script.first_token_delay_s)

        deltas = script.deltas if script.deltas is not None else split_deltas(script.text)
        if self._fault_after(script, 0, len(deltas)):  # e.g. an error as the very first event
            return
        start = _message_shell(script, body, len(deltas))
        start["usage"]["output_tokens"] = 1
        self._event("message_start", {"type": "message_start", "message": start})
        if script.unknown_event:
            self._event("atlas_future_event", {"type": "atlas_future_event", "note": "ignore me"})

        index = 0
        sent = 0
        if deltas:
            self._event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            self._event("ping", {"type": "ping"})
            for delta in deltas:
                if sent:
                    state.sleep(script.token_delay_s)
                self._event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": delta},
                    },
                )
                sent += 1
                if self._fault_after(script, sent, len(deltas)):
                    return
                if script.ping_every and sent % script.ping_every == 0:
                    self._event("ping", {"type": "ping"})
            self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
            index = 1
        for tool in script.tool_uses:
            self._stream_tool(index, tool)
            index += 1
        self._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(script), "stop_sequence": None},
                "usage": {"output_tokens": _output_tokens(script, len(deltas))},
            },
        )
        self._event("message_stop", {"type": "message_stop"})
        self._chunk(b"")  # zero-length chunk: end of the chunked body

    def _fault_after(self, script: FakeScript, sent: int, total: int) -> bool:
        """Apply a scripted fault after `sent` of `total` deltas; True when the stream is over.

        A fault asked for after more deltas than the reply has fires after the last one.
        """

        def due(after: int | None) -> bool:
            return after is not None and min(after, total) == sent

        if due(script.stall_after_deltas):
            self.server.state.sleep(script.stall_s)
        if due(script.drop_after_deltas):
            raise _DropConnection
        if due(script.error_after_deltas):
            err = {"type": script.error_event_type, "message": "fake mid-stream error"}
            self._event("error", {"type": "error", "error": err})
            self._chunk(b"")
            return True
        return False

    def _stream_tool(self, index: int, tool: FakeToolUse) -> None:
        tid = tool.id or self.server.state.tool_id()
        block = {"type": "tool_use", "id": tid, "name": tool.name, "input": {}}
        self._event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
        for part in _json_parts(json.dumps(dict(tool.input))):
            self._event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": part},
                },
            )
        self._event("content_block_stop", {"type": "content_block_stop", "index": index})


def _json_parts(text: str) -> Iterator[str]:
    """The tool input JSON in three pieces, as the API streams it."""
    step = max(1, len(text) // 3)
    for i in range(0, len(text), step):
        yield text[i : i + step]


def _stop_reason(script: FakeScript) -> str:
    if script.stop_reason is not None:
        return script.stop_reason
    return "tool_use" if script.tool_uses else "end_turn"


def _output_tokens(script: FakeScript, n_deltas: int) -> int:
    if script.output_tokens is not None:
        return script.output_tokens
    return n_deltas + 10 * len(script.tool_uses)


def _message_shell(script: FakeScript, body: Mapping[str, Any], n_deltas: int) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": script.model or str(body.get("model", "claude-fake")),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": script.input_tokens,
            "output_tokens": _output_tokens(script, n_deltas),
            "cache_creation_input_tokens": script.cache_creation_input_tokens,
            "cache_read_input_tokens": script.cache_read_input_tokens,
        },
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; a client hanging up on an idle
        # keep-alive connection is normal here, anything else is worth a log line.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            log.debug("fake_anthropic_client_gone", error=type(exc).__name__)
        else:
            log.warning("fake_anthropic_handler_failed", error=repr(exc))


class FakeAnthropic:
    """Context manager running the fake on an ephemeral loopback port."""

    def __init__(self, profile: LatencyProfile | None = None) -> None:
        self._state = _State(profile or LatencyProfile())
        self._serving: ServingThread | None = None

    @property
    def base_url(self) -> str:
        if self._serving is None:
            raise RuntimeError("FakeAnthropic is not running")
        return self._serving.base_url

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def enqueue(self, *scripts: FakeScript) -> None:
        with self._state.lock:
            if len(self._state.scripts) + len(scripts) > _MAX_QUEUED_SCRIPTS:
                raise ValueError(f"at most {_MAX_QUEUED_SCRIPTS} scripts may be queued")
            self._state.scripts.extend(scripts)

    def forget(self) -> None:
        """Drop the queued scripts and the request log (a long run, between its turns)."""
        with self._state.lock:
            self._state.scripts.clear()
            self._state.requests.clear()

    def retire(self, model: str) -> None:
        """From now on `model` is unknown to the fake (404 not_found_error), as a model
        past its end of life is to the real API."""
        with self._state.lock:
            self._state.retired.add(model)

    def set_profile(self, profile: LatencyProfile) -> None:
        with self._state.lock:
            self._state.profile = profile

    def set_model_profile(self, model: str, profile: LatencyProfile) -> None:
        """Requests for `model` use `profile` when no script is queued (per-tier latency)."""
        with self._state.lock:
            self._state.model_profiles[model] = profile

    def start(self) -> FakeAnthropic:
        self._serving = ServingThread(_Server(self._state))
        return self

    def close(self) -> None:
        self._state.closing.set()  # wake handlers sleeping in a delay or stall
        if self._serving is not None:
            self._serving.stop()
        self._serving = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
