"""EmbeddedLlamaClient with the real SmolLM2-135M (llama.cpp in-process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas.llm.base import ErrorKind, LLMClient, LLMError, LLMResponse, Message
from atlas.llm.config import LocalLLMConfig
from atlas.llm.embedded import EmbeddedLlamaClient
from atlas.modelstore import ModelStore, load_manifest
from atlas.settings import PROJECT_ROOT

SYSTEM = "You are Atlas, a calm and courteous butler. Answer in one short sentence."
ASK = [Message("user", "What is the capital of France?")]
MAX_TOKENS = 24
CONFIG = LocalLLMConfig(n_ctx=1024, threads=1)


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = ModelStore(
        load_manifest(PROJECT_ROOT / "models" / "manifest.yaml"),
        cache_dir=tmp_path_factory.mktemp("models"),
    )
    return store.resolve("smollm2-135m-instruct", "gguf", "llm.local.embedded_model").path


@pytest.fixture(scope="module")
def client(gguf: Path) -> Iterator[EmbeddedLlamaClient]:
    c = EmbeddedLlamaClient(gguf, CONFIG)
    yield c
    asyncio.run(c.aclose())


async def stamped(
    client: LLMClient, max_tokens: int = MAX_TOKENS
) -> tuple[list[tuple[float, str]], LLMResponse]:
    deltas: list[tuple[float, str]] = []
    final: LLMResponse | None = None
    async for item in client.stream(ASK, SYSTEM, 0.0, max_tokens):
        if isinstance(item, LLMResponse):
            final = item
        else:
            deltas.append((time.monotonic(), item))
    assert final is not None
    return deltas, final


async def test_streams_text_and_reports_real_token_counts(client: EmbeddedLlamaClient) -> None:
    assert isinstance(client, LLMClient)
    await client.warm(SYSTEM)
    deltas, final = await stamped(client)
    text = "".join(d for _, d in deltas)
    assert len(deltas) > 1 and text.strip()
    assert final.content == text
    assert final.backend == "embedded" and final.model == "smollm2-135m-instruct"
    assert final.usage.input_tokens > len(SYSTEM.split())  # template + system + question
    assert 0 < final.usage.output_tokens <= MAX_TOKENS + 1
    assert final.cost_usd == 0.0 and final.stop_reason in ("stop", "length")
    assert final.first_token_ms is not None
    assert final.first_token_ms <= final.total_duration_ms


async def test_same_prompt_gives_same_prompt_count(client: EmbeddedLlamaClient) -> None:
    _, a = await stamped(client, max_tokens=4)
    _, b = await stamped(client, max_tokens=4)
    assert a.usage.input_tokens == b.usage.input_tokens > 0
    assert a.stop_reason == "length" and a.usage.output_tokens >= 3


async def test_cancelling_after_the_first_delta_frees_the_thread(
    client: EmbeddedLlamaClient,
) -> None:
    first = asyncio.Event()
    seen: list[str] = []

    async def consume() -> None:
        async for item in client.stream(ASK, SYSTEM, 0.8, 400):
            if isinstance(item, str):
                seen.append(item)
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 1 <= len(seen) < 400
    # The next turn runs at once on the same (now free) worker thread.
    deltas, final = await asyncio.wait_for(stamped(client), 30)
    assert deltas and final.content


async def test_a_consumer_that_stops_early_leaves_the_client_usable(
    client: EmbeddedLlamaClient,
) -> None:
    stream = client.stream(ASK, SYSTEM, 0.8, 400)
    first = await anext(stream)
    assert isinstance(first, str)
    await stream.aclose()  # type: ignore[attr-defined]
    _, final = await asyncio.wait_for(stamped(client), 30)
    assert final.content


async def test_concurrent_streams_are_serialised(client: EmbeddedLlamaClient) -> None:
    (a, fa), (b, fb) = await asyncio.gather(stamped(client), stamped(client))
    assert a and b and fa.content and fb.content
    # llama.cpp is not re-entrant: one answer is generated entirely before the other.
    first, second = sorted((a, b), key=lambda d: d[0][0])
    assert first[-1][0] <= second[0][0]


async def test_closed_client_refuses(gguf: Path) -> None:
    c = EmbeddedLlamaClient(gguf, CONFIG)
    assert await c.is_available()
    await c.aclose()
    assert not await c.is_available()
    with pytest.raises(LLMError) as info:
        await c.generate(ASK, SYSTEM, 0.0, 4)
    assert info.value.kind is ErrorKind.UNAVAILABLE


def test_missing_model_fails_with_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(LLMError) as info:
        EmbeddedLlamaClient(tmp_path / "nope.gguf", CONFIG)
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert "does not exist" in str(info.value) and "\n" not in str(info.value)


def test_non_gguf_file_is_rejected_before_loading(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(LLMError) as info:
        EmbeddedLlamaClient(bad, CONFIG)
    assert "not a GGUF file" in str(info.value)


async def test_corrupt_gguf_fails_at_load_with_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 256)
    c = EmbeddedLlamaClient(bad, CONFIG)
    with pytest.raises(LLMError) as info:
        await c.load()
    await c.aclose()
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert "broken.gguf" in str(info.value) and "\n" not in str(info.value)


async def test_prompt_beyond_the_context_is_a_bad_request(client: EmbeddedLlamaClient) -> None:
    with pytest.raises(LLMError) as info:
        await client.generate([Message("user", "word " * 3000)], SYSTEM, 0.0, 8)
    assert info.value.kind is ErrorKind.BAD_REQUEST and not info.value.text_started
    # ...and the model is still fine afterwards.
    _, final = await stamped(client, max_tokens=4)
    assert final.content
