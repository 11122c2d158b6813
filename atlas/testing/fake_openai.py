"""A real HTTP server on 127.0.0.1 that speaks the OpenAI-compatible and Ollama APIs.

Both wire protocols a local LLM server offers are served by one class:

* OpenAI-compatible (llama.cpp server, vLLM, LM Studio, Ollama's /v1):
  `POST /v1/chat/completions` (SSE `data: {chunk}` lines, a chunk with `finish_reason`,
  a usage chunk when `stream_options.include_usage`, then `data: [DONE]`; or one JSON
  object when `stream` is false) and `GET /v1/models`.
* Ollama's native API: `GET /api/tags` (installed models), `POST /api/chat` (NDJSON
  lines, the last one with `done: true` and the eval counts) and `POST /api/generate`
  (the empty-prompt request that loads and pins a model with `keep_alive`).

Each chat/generate request consumes one `FakeLLMScript` from a bounded queue (the
default script when the queue is empty), so a test scripts latency and faults per call:
HTTP status errors, an error payload mid-stream, a stall, a dropped connection. Bodies
are written incrementally with real sleeps in chunked transfer encoding, so a dropped
connection looks like one to the client.

Tool calls (OpenAI-compatible, streamed): a script with `tool_calls` answers a request
that offers `tools` (and does not say `tool_choice: "none"`) with streamed `tool_calls`
deltas (id and name first, the arguments JSON in pieces) and finish_reason
"tool_calls". The conversation of every chat request is checked the way the real API
checks it: each `tool` message must answer a `tool_call_id` of the assistant message
before it, and each assistant `tool_calls` entry must be answered. On top of that the
request after a tool-call answer must carry the results of exactly the calls this
server issued. A request that breaks a rule gets a 400 (and the reason is kept in
`conversation_errors`), so a wrong conversation format fails a test.

Usage::

    with FakeOllama(models=("qwen2.5:3b-instruct",)) as fake:
        fake.enqueue(FakeLLMScript(reply="Good evening."))
        ... point a client at fake.base_url ...
        assert fake.requests[-1].path == "/api/chat"
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import structlog

from atlas.testing.serving import ServingThread

log = structlog.get_logger("atlas.testing.fake_openai")

_MAX_QUEUED_SCRIPTS = 256
_MAX_RECORDED_REQUESTS = 512
_WORD = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class FakeToolCall:
    """A tool call the fake model makes (OpenAI-compatible streaming only)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    """A mapping is sent as its JSON; a string is sent as it is (bad JSON on purpose)."""
    id: str = ""
    """Empty: the server makes one up (call_fake_<n>)."""


@dataclass(frozen=True)
class FakeLLMScript:
    """What the fake does for one chat (or generate) request."""

    reply: str = "Very good, sir."
    """Reply text, streamed one word (with its leading space) per delta."""
    headers_delay_s: float = 0.0
    """Sleep before the status line (a server still loading the model)."""
    first_token_delay_s: float = 0.0
    """Sleep after the headers, before the first delta."""
    tokens_per_s: float = 0.0
    """Pace of the deltas after the first; 0 sends them back to back."""
    status: int = 200
    """Non-200: answer with an error body of this status instead of a stream."""
    error_message: str = "fake failure"
    error_after_tokens: int | None = None
    """Send an error payload after this many deltas, then end the stream."""
    stall_after_tokens: int | None = None
    """Send nothing after this many deltas for `stall_s` (then carry on)."""
    stall_s: float = 30.0
    drop_after_tokens: int | None = None
    """Close the connection abruptly (no terminating chunk) after this many deltas."""
    prompt_tokens: int | None = None
    """Reported prompt tokens; None: one per word of the request's messages."""
    cached_tokens: int = 0
    """Reported as usage.prompt_tokens_details.cached_tokens (a part of prompt_tokens)."""
    finish_reason: str | None = None
    """None: "tool_calls" when tool calls are sent, else "stop"."""
    tool_calls: tuple[FakeToolCall, ...] = ()
    """Sent after the reply text when the request offers tools and allows their use."""
    report_usage: bool = True
    """False: behave like a server that never reports usage."""
    model: str | None = None
    """Model name in the answer; None: echo the requested one."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: Mapping[str, Any] | None


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text)


def _same_model(requested: str, installed: str) -> bool:
    """Ollama treats `name` and `name:latest` as the same model."""

    def norm(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    return norm(requested) == norm(installed)


class FakeLLMServer:
    """The server; a context manager that runs it on an ephemeral loopback port."""

    def __init__(
        self,
        models: Iterable[str] = ("qwen2.5:3b-instruct",),
        default: FakeLLMScript | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._scripts: deque[FakeLLMScript] = deque()
        self._requests: deque[RecordedRequest] = deque(maxlen=_MAX_RECORDED_REQUESTS)
        self._models: tuple[str, ...] = tuple(models)
        self._default = default or FakeLLMScript()
        self._closing = threading.Event()
        self._disconnects = 0
        self._tool_ids = 0
        self._pending_tool_ids: tuple[str, ...] = ()
        self._conversation_errors: list[str] = []
        self._serving: ServingThread | None = None
        self.tags_delay_s = 0.0
        """Sleep before answering /api/tags and /v1/models (a busy or hung server)."""

    # -- control -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The server root (Ollama's base URL); OpenAI clients use `openai_base_url`."""
        if self._serving is None:
            raise RuntimeError("the fake server is not running")
        return self._serving.base_url

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path in ("/v1/chat/completions", "/api/chat")]

    def enqueue(self, *scripts: FakeLLMScript) -> None:
        with self._lock:
            if len(self._scripts) + len(scripts) > _MAX_QUEUED_SCRIPTS:
                raise RuntimeError(f"at most {_MAX_QUEUED_SCRIPTS} scripts may be queued")
            self._scripts.extend(scripts)

    def set_models(self, models: Iterable[str]) -> None:
        with self._lock:
            self._models = tuple(models)

    @property
    def models(self) -> tuple[str, ...]:
        with self._lock:
            return self._models

    @property
    def disconnects(self) -> int:
        """Streams the client hung up on before they were finished."""
        with self._lock:
            return self._disconnects

    @property
    def conversation_errors(self) -> list[str]:
        """Why requests were refused for a malformed tool conversation."""
        with self._lock:
            return list(self._conversation_errors)

    def _new_tool_id(self) -> str:
        with self._lock:
            self._tool_ids += 1
            return f"call_fake_{self._tool_ids:04d}"

    def _issued_tool_calls(self, ids: tuple[str, ...]) -> None:
        with self._lock:
            self._pending_tool_ids = ids

    def _check_conversation(self, messages: Any) -> str | None:
        """The real API's rules for tool messages, plus: the calls this server issued
        last are answered. None when the conversation is well formed."""
        problem = _conversation_problem(messages if isinstance(messages, list) else [])
        with self._lock:
            if problem is None and self._pending_tool_ids:
                answered = {
                    m.get("tool_call_id")
                    for m in messages
                    if isinstance(m, dict) and m.get("role") == "tool"
                }
                missing = [i for i in self._pending_tool_ids if i not in answered]
                if missing:
                    problem = f"no tool message answers the tool calls {', '.join(missing)}"
            if problem is None:
                self._pending_tool_ids = ()
            else:
                self._conversation_errors.append(problem)
            return problem

    def _client_left(self) -> None:
        with self._lock:
            self._disconnects += 1

    def _next_script(self) -> FakeLLMScript:
        with self._lock:
            return self._scripts.popleft() if self._scripts else self._default

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)

    def wait(self, seconds: float) -> bool:
        """Sleep that ends early when the server shuts down; True if shutting down."""
        return self._closing.wait(seconds) if seconds > 0 else self._closing.is_set()

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        self._closing.clear()
        self._serving = ServingThread(httpd)
        log.debug("fake_llm.started", base_url=self.base_url)
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._serving is not None:
            self._serving.stop()
        self._serving = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# One server speaks both protocols; the two names say which one a test is about.
FakeOpenAI = FakeLLMServer
FakeOllama = FakeLLMServer


class _Dropped(Exception):
    """The script asked for the connection to be cut."""


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLLMServer
    protocol_version = "HTTP/1.1"

    def handle(self) -> None:
        # A client hanging up on an idle keep-alive connection is not an error.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake_llm.http", line=format % args)

    # -- routing -------------------------------------------------------------------

    def do_GET(self) -> None:
        self.fake._record(RecordedRequest("GET", self.path, None))
        if self.path in ("/api/tags", "/v1/models"):
            if self.fake.wait(self.fake.tags_delay_s):
                return
            models = self.fake.models
            if self.path == "/api/tags":
                self._json(200, {"models": [_tag(m) for m in models]})
            else:
                data = [{"id": m, "object": "model", "owned_by": "fake"} for m in models]
                self._json(200, {"object": "list", "data": data})
        else:
            self._json(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self.fake._record(RecordedRequest("POST", self.path, None))
            self._json(400, {"error": "invalid JSON"})
            return
        self.fake._record(RecordedRequest("POST", self.path, body))
        if self.path == "/v1/chat/completions":
            problem = self.fake._check_conversation(body.get("messages"))
            if problem is not None:
                self._json(400, {"error": {"message": problem, "type": "invalid_request_error"}})
                return
        routes = {
            "/v1/chat/completions": self._openai_chat,
            "/api/chat": self._ollama_chat,
            "/api/generate": self._ollama_generate,
        }
        route = routes.get(self.path)
        if route is None:
            self._json(404, {"error": f"no route {self.path}"})
            return
        try:
            route(body, self.fake._next_script())
        except _Dropped:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            self.fake._client_left()

    # -- OpenAI-compatible -----------------------------------------------------------

    def _openai_chat(self, body: Mapping[str, Any], script: FakeLLMScript) -> None:
        if self._scripted_status(script, openai=True):
            return
        model = script.model or str(body.get("model", "fake"))
        created = int(time.time())
        base = {"id": "chatcmpl-fake", "created": created, "model": model}
        tokens = _tokens(script.reply)
        offered = bool(body.get("tools")) and body.get("tool_choice") != "none"
        calls = script.tool_calls if offered and body.get("stream") else ()
        finish = script.finish_reason or ("tool_calls" if calls else "stop")
        completion = len(tokens) + 10 * len(calls)
        usage: dict[str, Any] = {
            "prompt_tokens": _prompt_tokens(body, script),
            "completion_tokens": completion,
            "total_tokens": _prompt_tokens(body, script) + completion,
        }
        if script.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": script.cached_tokens}
        if not body.get("stream"):
            if self.fake.wait(script.first_token_delay_s):
                return
            answer: dict[str, Any] = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": script.reply},
                        "finish_reason": finish,
                    }
                ],
            }
            if script.report_usage:
                answer["usage"] = usage
            self._json(200, answer)
            return

        self._start_stream("text/event-stream")

        def chunk(delta: Mapping[str, Any], finish: str | None = None) -> bytes:
            obj = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish}],
            }
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        self._write_chunk(chunk({"role": "assistant", "content": ""}))
        error = {"error": {"message": script.error_message, "type": "server_error", "code": 500}}
        done = self._stream_tokens(
            script,
            tokens,
            lambda t: chunk({"content": t}),
            b"data: " + json.dumps(error).encode() + b"\n\n",
        )
        if not done:
            return
        ids = tuple(c.id or self.fake._new_tool_id() for c in calls)
        for index, (call, tid) in enumerate(zip(calls, ids, strict=True)):
            self._stream_tool_call(chunk, index, tid, call)
        if ids:  # before the end: the client may ask again as soon as it reads it
            self.fake._issued_tool_calls(ids)
        self._write_chunk(chunk({}, finish))
        options = body.get("stream_options") or {}
        if script.report_usage and options.get("include_usage"):
            obj = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            self._write_chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")
        self._write_chunk(b"data: [DONE]\n\n")
        self._end_stream()

    def _stream_tool_call(
        self,
        chunk: Callable[[Mapping[str, Any]], bytes],
        index: int,
        tid: str,
        call: FakeToolCall,
    ) -> None:
        """The id and name first, then the arguments JSON in three pieces."""
        head = {"index": index, "id": tid, "type": "function"}
        self._write_chunk(
            chunk({"tool_calls": [head | {"function": {"name": call.name, "arguments": ""}}]})
        )
        text = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        for part in _thirds(text):
            self._write_chunk(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            )

    # -- Ollama native ---------------------------------------------------------------

    def _ollama_chat(self, body: Mapping[str, Any], script: FakeLLMScript) -> None:
        if self._model_missing(body) or self._scripted_status(script, openai=False):
            return
        model = script.model or str(body.get("model", ""))
        tokens = _tokens(script.reply)
        started = time.monotonic_ns()

        def line(obj: Mapping[str, Any]) -> bytes:
            return json.dumps(obj).encode() + b"\n"

        def msg(text: str, done: bool) -> dict[str, Any]:
            return {
                "model": model,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "message": {"role": "assistant", "content": text},
                "done": done,
            }

        def final() -> dict[str, Any]:
            end: dict[str, Any] = {**msg("", True), "done_reason": script.finish_reason or "stop"}
            elapsed = time.monotonic_ns() - started
            end["total_duration"] = elapsed
            end["load_duration"] = 1_000_000
            if script.report_usage:
                end["prompt_eval_count"] = _prompt_tokens(body, script)
                end["prompt_eval_duration"] = 2_000_000
                end["eval_count"] = len(tokens)
                end["eval_duration"] = max(1, elapsed - 3_000_000)
            return end

        if body.get("stream") is False:
            if self.fake.wait(script.first_token_delay_s):
                return
            whole = final()
            whole["message"] = {"role": "assistant", "content": script.reply}
            self._json(200, whole)
            return
        self._start_stream("application/x-ndjson")
        done = self._stream_tokens(
            script,
            tokens,
            lambda t: line(msg(t, False)),
            line({"error": script.error_message}),
        )
        if done:
            self._write_chunk(line(final()))
            self._end_stream()

    def _ollama_generate(self, body: Mapping[str, Any], script: FakeLLMScript) -> None:
        """Only the warm/pin request (empty prompt): load the model, answer at once."""
        if self._model_missing(body) or self._scripted_status(script, openai=False):
            return
        if self.fake.wait(script.first_token_delay_s):
            return
        self._json(
            200,
            {
                "model": str(body.get("model", "")),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "response": "",
                "done": True,
                "done_reason": "load",
            },
        )

    def _model_missing(self, body: Mapping[str, Any]) -> bool:
        requested = str(body.get("model", ""))
        if any(_same_model(requested, m) for m in self.fake.models):
            return False
        self._json(404, {"error": f'model "{requested}" not found, try pulling it first'})
        return True

    # -- shared writing ---------------------------------------------------------------

    def _scripted_status(self, script: FakeLLMScript, *, openai: bool) -> bool:
        """Apply the header delay and a scripted HTTP error; True if the answer is done."""
        if self.fake.wait(script.headers_delay_s):
            self.close_connection = True
            return True
        if script.status == 200:
            return False
        if openai:
            payload: dict[str, Any] = {
                "error": {"message": script.error_message, "type": "fake_error"}
            }
        else:
            payload = {"error": script.error_message}
        self._json(script.status, payload)
        return True

    def _stream_tokens(
        self,
        script: FakeLLMScript,
        tokens: list[str],
        render: Callable[[str], bytes],
        error_payload: bytes,
    ) -> bool:
        """Write the deltas with the scripted pacing and faults; False if cut short."""
        if self.fake.wait(script.first_token_delay_s):
            return False
        gap = 1.0 / script.tokens_per_s if script.tokens_per_s > 0 else 0.0
        for i, token in enumerate(tokens):
            if self._fault_at(script, i, error_payload):
                return False
            if i and self.fake.wait(gap):
                return False
            self._write_chunk(render(token))
        return not self._fault_at(script, len(tokens), error_payload)

    def _fault_at(self, script: FakeLLMScript, sent: int, error_payload: bytes) -> bool:
        if script.stall_after_tokens == sent and self.fake.wait(script.stall_s):
            return True
        if script.drop_after_tokens == sent:
            self.wfile.flush()
            # Half-close with no terminating chunk: the client sees a broken body.
            self.connection.shutdown(socket.SHUT_RDWR)
            raise _Dropped
        if script.error_after_tokens == sent:
            self._write_chunk(error_payload)
            self._end_stream()
            return True
        return False

    def _json(self, status: int, obj: Mapping[str, Any]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _tag(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2026-01-01T00:00:00Z",
        "size": 1_900_000_000,
        "digest": "0" * 64,
        "details": {"format": "gguf", "family": "fake", "parameter_size": "3B"},
    }


def _prompt_tokens(body: Mapping[str, Any], script: FakeLLMScript) -> int:
    if script.prompt_tokens is not None:
        return script.prompt_tokens
    messages = body.get("messages") or []
    return sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))


def _thirds(text: str) -> list[str]:
    """A JSON text in (up to) three pieces, as tool arguments are streamed."""
    step = max(1, -(-len(text) // 3))
    return [text[i : i + step] for i in range(0, len(text), step)]


def _conversation_problem(messages: list[Any]) -> str | None:
    """The chat-completions rules for tool messages (what the real API answers 400 to)."""
    open_ids: set[str] | None = None  # ids of the last assistant tool_calls not yet answered
    for m in messages:
        if not isinstance(m, dict):
            return "each message must be an object"
        role = m.get("role")
        if role == "tool":
            tid = m.get("tool_call_id")
            if open_ids is None or tid not in open_ids:
                return (
                    "messages with role 'tool' must be a response to a preceding message "
                    f"with 'tool_calls' (tool_call_id {tid!r})"
                )
            if not isinstance(m.get("content"), str):
                return "a tool message needs text content"
            open_ids.discard(tid)
            continue
        if open_ids:
            return (
                "an assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'; missing: {', '.join(sorted(open_ids))}"
            )
        open_ids = None
        if role == "assistant" and m.get("tool_calls"):
            calls = m["tool_calls"]
            for call in calls:
                function = call.get("function") or {}
                if call.get("type") != "function" or not call.get("id") or not function.get("name"):
                    return "each tool call needs an id, type 'function' and a function name"
                if not isinstance(function.get("arguments"), str):
                    return "a tool call's arguments must be a JSON string"
            open_ids = {c["id"] for c in calls}
    if open_ids:
        return f"tool calls without results at the end: {', '.join(sorted(open_ids))}"
    return None
