"""The REAL llama.cpp OpenAI-compatible server as a subprocess on a loopback port.

Shared by the integration test and `atlas bench --with-llama-server`. It is
`python -m llama_cpp.server` run inside `plain_cpu_buffers()`, the guard the embedded
client loads with: on VMs that advertise AMX without enabling it, llama.cpp's repacked
weights die with SIGILL at the first request.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from atlas.settings import PROJECT_ROOT
from atlas.testing.serving import free_port

SERVER_EXTRAS = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")

_BOOT = (
    "import runpy\n"
    "from atlas.llm.embedded import plain_cpu_buffers\n"
    "with plain_cpu_buffers():\n"
    "    runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)\n"
)


class LlamaServerError(RuntimeError):
    """The server could not be started; `log_tail` holds the end of its output."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


def missing_extras() -> list[str]:
    """Modules of llama-cpp-python[server] that are not installed."""
    return [m for m in (*SERVER_EXTRAS, "llama_cpp") if importlib.util.find_spec(m) is None]


@contextlib.contextmanager
def llama_server(
    gguf: Path,
    log_path: Path,
    *,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    timeout_s: float = 60.0,
) -> Iterator[str]:
    """Start the server, wait until /v1/models answers, yield its /v1 base URL, stop it."""
    missing = missing_extras()
    if missing:
        raise LlamaServerError(f"llama-cpp-python[server] is not installed (missing: {missing})")
    port = free_port()
    cmd = [sys.executable, "-c", _BOOT, "--model", str(gguf), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", str(n_ctx)]
    if n_threads is not None:
        cmd += ["--n_threads", str(n_threads)]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
        try:
            base = f"http://127.0.0.1:{port}/v1"
            _wait_until_up(proc, base, log_path, timeout_s)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_until_up(
    proc: subprocess.Popen[bytes], base: str, log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-800:]
            raise LlamaServerError(f"llama.cpp server exited with {proc.returncode}", tail)
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/models", timeout=1.0).status_code == 200:
                return
        time.sleep(0.25)
    raise LlamaServerError(f"llama.cpp server did not answer on {base}/models in {timeout_s}s")
