"""AnthropicClient through the real SDK against FakeAnthropic (a real loopback server)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import anthropic
import pytest
from structlog.testing import capture_logs

from atlas.llm.anthropic import AnthropicClient, ModelTurn
from atlas.llm.base import ErrorKind, LLMClient, LLMError, LLMResponse, Message
from atlas.llm.config import AnthropicConfig, CloudTierConfig
from atlas.llm.tools import ToolSpec
from atlas.testing.fake_anthropic import FakeAnthropic, FakeScript, FakeToolUse, LatencyProfile

KEY = "sk-ant-test-SECRET123456789"
HAIKU = CloudTierConfig()  # $1 / $5 per MTok, 4096-token cache minimum
ASK = [Message("user", "what should I cook tonight?")]
SYSTEM = "You are Atlas, a calm and courteous butler. " * 10  # ~110 tokens


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def fast_config(base_url: str, **overrides: float | int) -> AnthropicConfig:
    cfg = AnthropicConfig(
        base_url=base_url,
        connect_timeout_s=0.5,
        read_timeout_s=1.0,
        retries=2,
        retry_initial_s=0.01,
        retry_max_s=0.05,
        stall_timeout_s=0.3,
    )
    return replace(cfg, **overrides)


_OPEN: list[AnthropicClient] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    """Close every client in the test's own loop (else its HTTP pool dies in another's)."""
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


def client_for(fake: FakeAnthropic, **overrides: float | int) -> AnthropicClient:
    client = AnthropicClient(HAIKU, fast_config(fake.base_url, **overrides), KEY)
    _OPEN.append(client)
    return client


async def run(client: AnthropicClient) -> tuple[list[str], LLMResponse]:
    deltas: list[str] = []
    final: LLMResponse | None = None
    async for item in client.stream(ASK, SYSTEM, 0.5, 200):
        if isinstance(item, str):
            deltas.append(item)
        else:
            final = item
    assert final is not None
    return deltas, final


async def failure(client: AnthropicClient) -> tuple[LLMError, list[str]]:
    deltas: list[str] = []
    with pytest.raises(LLMError) as info:
        async for item in client.stream(ASK, SYSTEM, 0.5, 200):
            if isinstance(item, str):
                deltas.append(item)
    return info.value, deltas


# -- the happy path ---------------------------------------------------------------------


async def test_streams_deltas_in_order_with_exact_usage_and_cost(fake: FakeAnthropic) -> None:
    fake.enqueue(
        FakeScript(text="Good evening, sir. Risotto.", input_tokens=300, output_tokens=100)
    )
    client = client_for(fake)
    deltas, final = await run(client)
    assert deltas == ["Good ", "evening, ", "sir. ", "Risotto."]
    assert final.content == "Good evening, sir. Risotto."
    assert final.usage.input_tokens == 300 and final.usage.output_tokens == 100
    assert final.cost_usd == pytest.approx(0.0008)
    assert final.model == HAIKU.model and final.backend == "anthropic"
    assert final.stop_reason == "end_turn"
    assert final.first_token_ms is not None and final.first_token_ms <= final.total_duration_ms
    await client.aclose()


async def test_request_carries_cache_control_and_key_presence(fake: FakeAnthropic) -> None:
    client = client_for(fake)
    await run(client)
    (req,) = fake.requests
    assert req.had_api_key and req.auth_scheme == "bearer"
    assert "x-api-key" not in req.headers and "authorization" not in req.headers
    assert KEY not in repr(req)
    assert req.body["stream"] is True
    assert req.body["model"] == HAIKU.model and req.body["max_tokens"] == 200
    assert req.body["system"] == [
        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}
    ]
    assert req.body["messages"] == [{"role": "user", "content": ASK[0].content}]
    assert "tools" not in req.body


async def test_consecutive_calls_reuse_one_connection(fake: FakeAnthropic) -> None:
    client = client_for(fake)
    for _ in range(3):
        await run(client)
    assert len({r.client_port for r in fake.requests}) == 1  # no new handshake per call
    await client.aclose()


async def test_cache_tokens_are_reported_and_priced(fake: FakeAnthropic) -> None:
    fake.enqueue(
        FakeScript(
            text="Indeed.",
            input_tokens=20,
            output_tokens=4,
            cache_read_input_tokens=5000,
            cache_creation_input_tokens=100,
        )
    )
    _, final = await run(client_for(fake))
    assert final.usage.cache_read_tokens == 5000 and final.usage.cache_write_tokens == 100
    # 20 in + 4 out + 5000 read at 0.1x + 100 written at 1.25x, Haiku prices
    assert final.cost_usd == pytest.approx((20 + 4 * 5 + 5000 * 0.1 + 100 * 1.25) / 1e6)
    assert final.cache_note == ""


async def test_cache_note_is_honest_below_the_minimum(fake: FakeAnthropic) -> None:
    _, final = await run(client_for(fake))
    assert final.usage.cache_read_tokens == 0 and final.usage.cache_write_tokens == 0
    assert f"~{len(SYSTEM) // 4} tokens < 4096 minimum: not cached" in final.cache_note


async def test_pings_and_unknown_events_are_tolerated(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript(text="a b c d e", ping_every=1, unknown_event=True))
    deltas, final = await run(client_for(fake))
    assert "".join(deltas) == "a b c d e" and final.content == "a b c d e"


async def test_generate_and_protocol(fake: FakeAnthropic) -> None:
    client = client_for(fake)
    assert isinstance(client, LLMClient)
    assert await client.is_available()
    fake.enqueue(FakeScript(text="Certainly, sir."))
    final = await client.generate(ASK, SYSTEM, 0.5, 50)
    assert final.content == "Certainly, sir."


async def test_no_key_is_unavailable_and_refuses_without_calling(fake: FakeAnthropic) -> None:
    client = AnthropicClient(HAIKU, fast_config(fake.base_url), "")
    _OPEN.append(client)
    assert not await client.is_available()
    err, _ = await failure(client)
    assert err.kind is ErrorKind.AUTH
    assert fake.requests == []


async def test_stream_with_tools_returns_parsed_tool_calls(fake: FakeAnthropic) -> None:
    fake.enqueue(
        FakeScript(
            text="Let me look.",
            tool_uses=(FakeToolUse("timer", {"minutes": 5, "label": "eggs"}, id="toolu_1"),),
        )
    )
    client = client_for(fake)
    spec_a = ToolSpec("clock", "current time")
    spec_b = ToolSpec("timer", "set a timer")
    items = [
        i
        async for i in client.stream_with_tools(
            [{"role": "user", "content": "eggs"}], SYSTEM, [spec_a, spec_b], 0.2, 100
        )
    ]
    turn = items[-1]
    assert isinstance(turn, ModelTurn)
    assert "".join(i for i in items if isinstance(i, str)) == "Let me look."
    assert [(c.id, c.name, dict(c.input)) for c in turn.tool_calls] == [
        ("toolu_1", "timer", {"minutes": 5, "label": "eggs"})
    ]
    assert turn.response.stop_reason == "tool_use"
    tools = fake.requests[0].body["tools"]
    assert [t["name"] for t in tools] == ["clock", "timer"]
    assert "cache_control" not in tools[0]
    assert tools[1]["cache_control"] == {"type": "ephemeral"}
    assert turn.assistant_content()[1]["type"] == "tool_use"


def test_fake_answers_non_streaming_requests(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript(text="Plain answer.", input_tokens=7, output_tokens=3))
    sdk = anthropic.Anthropic(api_key=KEY, base_url=fake.base_url, max_retries=0)
    msg = sdk.messages.create(
        model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "Plain answer."
    assert msg.usage.input_tokens == 7 and msg.usage.output_tokens == 3
    assert fake.requests[0].body.get("stream") in (None, False)


async def test_latency_profile_is_the_default_script() -> None:
    profile = LatencyProfile(first_token_ms=50, tokens_per_s=200, answer="Quite so.")
    with FakeAnthropic(profile) as server:
        deltas, final = await run(client_for(server))
    assert final.content == "Quite so." and deltas == ["Quite ", "so."]
    assert final.first_token_ms is not None and final.first_token_ms >= 50


# -- retries before the first token ---------------------------------------------------


async def test_429_then_success_is_retried_once(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript.error(429, retry_after=0), FakeScript(text="At once."))
    deltas, final = await run(client_for(fake))
    assert "".join(deltas) == "At once." and final.content == "At once."
    assert len(fake.requests) == 2


async def test_429_with_a_long_retry_after_gives_up_at_once(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript.error(429, retry_after=30), FakeScript(text="never"))
    err, _ = await failure(client_for(fake))
    assert err.kind is ErrorKind.RATE_LIMITED and not err.text_started
    assert len(fake.requests) == 1


async def test_529_then_success(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript.error(529), FakeScript(text="Here."))
    _, final = await run(client_for(fake))
    assert final.content == "Here." and len(fake.requests) == 2


async def test_529_exhausted_is_overloaded(fake: FakeAnthropic) -> None:
    fake.enqueue(*[FakeScript.error(529)] * 3)
    err, _ = await failure(client_for(fake))
    assert err.kind is ErrorKind.OVERLOADED and err.counts_for_breaker


async def test_500_three_times_is_server_after_retries(fake: FakeAnthropic) -> None:
    fake.enqueue(*[FakeScript.error(500)] * 3, FakeScript(text="too late"))
    err, deltas = await failure(client_for(fake, retries=2))
    assert err.kind is ErrorKind.SERVER and not err.text_started and deltas == []
    assert len(fake.requests) == 3


async def test_error_event_as_first_event_is_retried(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript(text="x y", error_after_deltas=0), FakeScript(text="Fine."))
    _, final = await run(client_for(fake))
    assert final.content == "Fine." and len(fake.requests) == 2


async def test_connection_refused_is_connection() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = AnthropicClient(HAIKU, fast_config(f"http://127.0.0.1:{port}", retries=1), KEY)
    _OPEN.append(client)
    err, _ = await failure(client)
    assert err.kind is ErrorKind.CONNECTION and not err.text_started


async def test_read_timeout_before_first_token_is_timeout(fake: FakeAnthropic) -> None:
    fake.enqueue(*[FakeScript(first_token_delay_s=3.0)] * 2)
    err, deltas = await failure(client_for(fake, read_timeout_s=0.3, retries=1))
    assert err.kind is ErrorKind.TIMEOUT and not err.text_started and deltas == []
    assert len(fake.requests) == 2  # timeouts before the first token are retried


async def test_slow_headers_timeout_is_timeout(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript(headers_delay_s=3.0))
    err, _ = await failure(client_for(fake, read_timeout_s=0.3, retries=0))
    assert err.kind is ErrorKind.TIMEOUT


# -- failures once the answer has begun -----------------------------------------------


async def test_error_event_mid_stream_is_not_retried(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript(text="one two three four", error_after_deltas=2), FakeScript())
    err, deltas = await failure(client_for(fake))
    assert deltas == ["one ", "two "]
    assert err.kind is ErrorKind.MID_STREAM and err.text_started and not err.retryable
    assert "overloaded_error" in str(err)
    assert len(fake.requests) == 1


async def test_stall_mid_stream_is_stalled(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript(text="one two three four", stall_after_deltas=2, stall_s=5.0))
    err, deltas = await failure(client_for(fake, stall_timeout_s=0.3))
    assert deltas == ["one ", "two "]
    assert err.kind is ErrorKind.STALLED and err.text_started
    assert len(fake.requests) == 1


async def test_dropped_connection_mid_stream(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript(text="one two three", drop_after_deltas=1), FakeScript())
    err, deltas = await failure(client_for(fake))
    assert deltas == ["one "]
    assert err.kind is ErrorKind.CONNECTION and err.text_started and not err.retryable
    assert len(fake.requests) == 1


# -- our own faults and secrets -------------------------------------------------------


async def test_401_is_auth_not_retried_and_never_shows_the_key(
    fake: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.enqueue(FakeScript.error(401, message="invalid x-api-key"), FakeScript())
    with capture_logs() as logs:
        err, _ = await failure(client_for(fake))
    assert err.kind is ErrorKind.AUTH and not err.counts_for_breaker
    assert len(fake.requests) == 1
    assert KEY not in str(err) and KEY not in repr(err.args)
    chained: BaseException | None = err
    while chained is not None:  # nor anywhere in a traceback's chain
        assert KEY not in str(chained)
        chained = chained.__cause__ or chained.__context__
    assert logs, "the failure should be logged"
    assert KEY not in repr(logs)
    assert KEY not in caplog.text


async def test_400_is_bad_request_without_retry(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript.error(400, message="messages: field required"), FakeScript())
    err, _ = await failure(client_for(fake))
    assert err.kind is ErrorKind.BAD_REQUEST and not err.counts_for_breaker
    assert len(fake.requests) == 1


async def test_key_echoed_by_the_server_is_redacted(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript.error(403, message=f"key {KEY} may not use this"))
    with capture_logs() as logs:
        err, _ = await failure(client_for(fake))
    assert err.kind is ErrorKind.AUTH
    assert KEY not in str(err) and "[REDACTED]" in str(err)
    assert KEY not in repr(logs)


# -- cancellation ---------------------------------------------------------------------


async def test_cancelling_the_consumer_raises_cancelled_not_llm_error(
    fake: FakeAnthropic,
) -> None:
    fake.enqueue(FakeScript(text="one two three four five six", token_delay_s=0.2))
    client = client_for(fake, stall_timeout_s=5.0)
    got_first = asyncio.Event()
    seen: list[BaseException] = []

    async def consume() -> None:
        try:
            async for item in client.stream(ASK, SYSTEM, 0.5, 200):
                if isinstance(item, str):
                    got_first.set()
        except BaseException as exc:
            seen.append(exc)
            raise

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(seen) == 1 and isinstance(seen[0], asyncio.CancelledError)
    # The client is still usable afterwards (the connection was released).
    fake.enqueue(FakeScript(text="Again."))
    _, final = await run(client)
    assert final.content == "Again."


async def test_aclose_mid_stream_is_clean(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript(text="one two three four", token_delay_s=0.1))
    client = client_for(fake, stall_timeout_s=5.0)
    agen = client.stream(ASK, SYSTEM, 0.5, 200)
    first = await agen.__anext__()
    assert first == "one "
    await agen.aclose()  # must not raise (no LLMError for a consumer that stops)


async def test_cancelling_while_waiting_for_the_first_token(fake: FakeAnthropic) -> None:
    fake.enqueue(FakeScript(first_token_delay_s=5.0))
    client = client_for(fake, read_timeout_s=10.0)
    task = asyncio.create_task(run(client))
    while not fake.requests:  # the request has reached the server
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(fake.requests) == 1  # cancellation is not retried
