"""OpenAICompatClient and OllamaClient against the fake server (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest

from atlas.llm.base import ErrorKind, LLMClient, LLMError, LLMResponse, Message, StreamItem
from atlas.llm.config import LocalLLMConfig
from atlas.llm.local import OllamaClient, OpenAICompatClient, parse_keep_alive
from atlas.testing.fake_openai import FakeLLMScript, FakeLLMServer, FakeOllama, FakeOpenAI
from atlas.testing.serving import free_port as closed_port

ASK = [Message("user", "What time is it in Lisbon?")]
SYSTEM = "You are Atlas."
REPLY = "It is a quarter past nine, sir."


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeOpenAI(models=("qwen2.5:3b-instruct", "llama3.2:latest")) as server:
        yield server


def config(fake: FakeLLMServer | None = None, **over: object) -> LocalLLMConfig:
    base = LocalLLMConfig(
        base_url=fake.base_url if fake else "http://127.0.0.1:9",
        timeout_s=1.0,
        # Loopback connects at once; a loaded CI box can still take a moment to accept.
        connect_timeout_s=2.0,
    )
    return replace(base, **over)  # type: ignore[arg-type]


def openai_client(fake: FakeLLMServer, **over: object) -> OpenAICompatClient:
    return OpenAICompatClient(
        config(fake, **over), base_url=fake.openai_base_url, model="smollm2", backend_label="openai"
    )


async def drain(client: LLMClient) -> tuple[list[str], LLMResponse]:
    deltas: list[str] = []
    final: LLMResponse | None = None
    async for item in client.stream(ASK, SYSTEM, 0.2, 64):
        if isinstance(item, LLMResponse):
            final = item
        else:
            deltas.append(item)
    assert final is not None
    return deltas, final


async def error_of(client: LLMClient) -> tuple[LLMError, list[str]]:
    deltas: list[str] = []
    with pytest.raises(LLMError) as info:
        async for item in client.stream(ASK, SYSTEM, 0.2, 64):
            if isinstance(item, str):
                deltas.append(item)
    return info.value, deltas


# -- OpenAI-compatible ---------------------------------------------------------------


async def test_openai_streams_deltas_then_a_response_with_usage(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY, prompt_tokens=42, tokens_per_s=200))
    client = openai_client(fake)
    deltas, final = await drain(client)
    await client.aclose()

    assert len(deltas) == len(REPLY.split())
    assert "".join(deltas) == REPLY == final.content
    assert final.usage.input_tokens == 42
    assert final.usage.output_tokens == len(deltas)
    assert final.backend == "openai" and final.model == "smollm2"
    assert final.cost_usd == 0.0 and final.stop_reason == "stop"
    assert final.first_token_ms is not None
    assert 0 < final.first_token_ms <= final.total_duration_ms

    body = fake.chat_requests()[0].body
    assert body is not None
    assert fake.chat_requests()[0].path == "/v1/chat/completions"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"][0] == {"role": "system", "content": SYSTEM}
    assert body["messages"][1] == {"role": "user", "content": ASK[0].content}
    assert body["max_tokens"] == 64 and body["temperature"] == 0.2


async def test_openai_first_token_time_counts_from_the_request(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY, first_token_delay_s=0.3))
    client = openai_client(fake)
    _, final = await drain(client)
    await client.aclose()
    assert final.first_token_ms is not None and final.first_token_ms >= 300


async def test_openai_without_usage_reports_zero_tokens(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY, report_usage=False, finish_reason="length"))
    client = openai_client(fake)
    _, final = await drain(client)
    await client.aclose()
    assert final.usage.input_tokens == 0 and final.usage.output_tokens == 0
    assert final.stop_reason == "length"


async def test_generate_returns_the_whole_answer(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY))
    client = openai_client(fake)
    final = await client.generate(ASK, SYSTEM, 0.2, 64)
    await client.aclose()
    assert final.content == REPLY


async def test_client_satisfies_the_protocol(fake: FakeLLMServer) -> None:
    client = openai_client(fake)
    assert isinstance(client, LLMClient)
    assert isinstance(OllamaClient(config(fake)), LLMClient)
    await client.aclose()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, ErrorKind.RATE_LIMITED),
        (500, ErrorKind.SERVER),
        (503, ErrorKind.SERVER),
        (400, ErrorKind.BAD_REQUEST),
        (404, ErrorKind.BAD_REQUEST),
    ],
)
async def test_openai_status_errors_map_to_kinds(
    fake: FakeLLMServer, status: int, kind: ErrorKind
) -> None:
    fake.enqueue(FakeLLMScript(status=status, error_message="the server says no"))
    client = openai_client(fake)
    err, deltas = await error_of(client)
    await client.aclose()
    assert err.kind is kind
    assert not err.text_started and deltas == []
    assert str(status) in str(err) and "the server says no" in str(err)


async def test_connection_refused_is_a_connection_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    client = OpenAICompatClient(config(), base_url=url + "/v1", model="m")
    err, _ = await error_of(client)
    assert err.kind is ErrorKind.CONNECTION and err.retryable
    assert await client.is_available() is False
    await client.aclose()


@pytest.mark.parametrize(
    "script",
    [FakeLLMScript(headers_delay_s=3.0), FakeLLMScript(first_token_delay_s=3.0)],
    ids=["before-headers", "after-headers"],
)
async def test_no_first_token_in_time_is_a_timeout(
    fake: FakeLLMServer, script: FakeLLMScript
) -> None:
    fake.enqueue(script)
    client = openai_client(fake)
    err, deltas = await error_of(client)
    await client.aclose()
    assert err.kind is ErrorKind.TIMEOUT
    assert deltas == [] and err.retryable


async def test_error_payload_mid_answer_is_mid_stream(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY, error_after_tokens=2, error_message="oom"))
    client = openai_client(fake)
    err, deltas = await error_of(client)
    await client.aclose()
    assert err.kind is ErrorKind.MID_STREAM
    assert err.text_started and not err.retryable
    assert len(deltas) == 2 and "oom" in str(err)


async def test_error_payload_before_any_text_is_a_server_error(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY, error_after_tokens=0))
    client = openai_client(fake)
    err, _ = await error_of(client)
    await client.aclose()
    assert err.kind is ErrorKind.SERVER and not err.text_started


async def test_dropped_connection_mid_answer_is_mid_stream(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY, drop_after_tokens=3))
    client = openai_client(fake)
    err, deltas = await error_of(client)
    await client.aclose()
    assert err.kind is ErrorKind.MID_STREAM and err.text_started
    assert len(deltas) == 3


async def test_silence_mid_answer_is_a_stall(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY, stall_after_tokens=2, stall_s=30))
    client = openai_client(fake)
    err, deltas = await error_of(client)
    await client.aclose()
    assert err.kind is ErrorKind.STALLED and err.text_started
    assert len(deltas) == 2


async def _wait_for(predicate: object, seconds: float = 3.0) -> bool:
    assert callable(predicate)
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


async def test_cancelling_the_consumer_closes_the_response(fake: FakeLLMServer) -> None:
    long_reply = " ".join(["word"] * 200)
    fake.enqueue(FakeLLMScript(reply=long_reply, tokens_per_s=50))
    client = openai_client(fake)
    first = asyncio.Event()
    seen: list[str] = []

    async def consume() -> None:
        async for item in client.stream(ASK, SYSTEM, 0.2, 500):
            if isinstance(item, str):
                seen.append(item)
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(seen) < 200
    # The server notices the hang-up: the response was closed, not left streaming.
    assert await _wait_for(lambda: fake.disconnects == 1)

    # The client still works for the next turn.
    fake.enqueue(FakeLLMScript(reply=REPLY))
    _, final = await drain(client)
    assert final.content == REPLY
    await client.aclose()


async def test_a_consumer_that_stops_early_closes_the_response(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=" ".join(["word"] * 200), tokens_per_s=50))
    client = openai_client(fake)
    stream = client.stream(ASK, SYSTEM, 0.2, 500)
    first: StreamItem = await anext(stream)
    assert first == "word"
    await stream.aclose()  # type: ignore[attr-defined]
    assert await _wait_for(lambda: fake.disconnects == 1)
    await client.aclose()


async def test_openai_is_available_when_models_answers(fake: FakeLLMServer) -> None:
    client = openai_client(fake)
    assert await client.is_available() is True
    await client.aclose()


# -- Ollama --------------------------------------------------------------------------


def ollama(fake: FakeLLMServer, **over: object) -> OllamaClient:
    return OllamaClient(config(fake, **over))


async def test_ollama_streams_with_usage_from_eval_counts(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY, prompt_tokens=31, tokens_per_s=200))
    client = ollama(fake)
    deltas, final = await drain(client)
    await client.aclose()
    assert "".join(deltas) == REPLY == final.content
    assert final.usage.input_tokens == 31 and final.usage.output_tokens == len(deltas)
    assert final.backend == "ollama" and final.model == "qwen2.5:3b-instruct"
    assert final.stop_reason == "stop" and final.first_token_ms is not None

    req = fake.chat_requests()[0]
    assert req.path == "/api/chat" and req.body is not None
    assert req.body["keep_alive"] == -1
    assert req.body["options"] == {"temperature": 0.2, "num_predict": 64}
    assert req.body["messages"][0]["role"] == "system"


async def test_ollama_duration_keep_alive_stays_text(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY))
    client = ollama(fake, keep_alive="5m")
    await drain(client)
    await client.aclose()
    body = fake.chat_requests()[0].body
    assert body is not None and body["keep_alive"] == "5m"


@pytest.mark.parametrize(("raw", "parsed"), [("-1", -1), ("0", 0), ("300", 300), ("5m", "5m")])
def test_parse_keep_alive(raw: str, parsed: int | str) -> None:
    assert parse_keep_alive(raw) == parsed


async def test_ollama_error_line_mid_answer(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY, error_after_tokens=1, error_message="runner died"))
    client = ollama(fake)
    err, deltas = await error_of(client)
    await client.aclose()
    assert err.kind is ErrorKind.MID_STREAM and err.text_started
    assert deltas == ["It"] and "runner died" in str(err)


async def test_ollama_missing_model_is_a_bad_request(fake: FakeLLMServer) -> None:
    client = ollama(fake, model="mistral:7b")
    err, _ = await error_of(client)
    await client.aclose()
    assert err.kind is ErrorKind.BAD_REQUEST and "not found" in str(err)


async def test_ollama_stall_and_refused(fake: FakeLLMServer) -> None:
    fake.enqueue(FakeLLMScript(reply=REPLY, stall_after_tokens=1, stall_s=30))
    client = ollama(fake)
    err, _ = await error_of(client)
    await client.aclose()
    assert err.kind is ErrorKind.STALLED

    refused = OllamaClient(config(base_url=f"http://127.0.0.1:{closed_port()}"))
    err, _ = await error_of(refused)
    assert err.kind is ErrorKind.CONNECTION
    await refused.aclose()


@pytest.mark.parametrize(
    ("model", "available"),
    [
        ("qwen2.5:3b-instruct", True),
        ("llama3.2", True),  # installed as llama3.2:latest
        ("llama3.2:latest", True),
        ("qwen2.5:7b-instruct", False),
    ],
)
async def test_ollama_availability_needs_the_model(
    fake: FakeLLMServer, model: str, available: bool
) -> None:
    client = ollama(fake, model=model)
    assert await client.is_available() is available
    await client.aclose()


async def test_ollama_unavailable_when_tags_are_slow_or_nobody_listens() -> None:
    with FakeOllama() as slow:
        slow.tags_delay_s = 2.0
        client = ollama(slow, connect_timeout_s=0.5)  # the probe waits this long
        assert await client.is_available() is False
        await client.aclose()
    nobody = OllamaClient(config(base_url=f"http://127.0.0.1:{closed_port()}"))
    assert await nobody.is_available() is False
    assert await nobody.installed_models() is None
    await nobody.aclose()


async def test_ollama_warm_pins_the_model(fake: FakeLLMServer) -> None:
    client = ollama(fake)
    await client.warm()
    await client.aclose()
    req = fake.requests[-1]
    assert req.path == "/api/generate"
    assert req.body == {
        "model": "qwen2.5:3b-instruct",
        "prompt": "",
        "keep_alive": -1,
        "stream": False,
    }


async def test_ollama_warm_failure_is_an_llm_error(fake: FakeLLMServer) -> None:
    client = ollama(fake, model="absent:1b")
    with pytest.raises(LLMError) as info:
        await client.warm()
    await client.aclose()
    assert info.value.kind is ErrorKind.BAD_REQUEST
