"""In-process llama.cpp for the embedded local tier (SmolLM2-135M-Instruct by default).

llama.cpp is not re-entrant, and a generation blocks for as long as it runs, so every
call into it happens on ONE worker thread the client owns: concurrent streams queue up
behind each other instead of corrupting the context. Deltas cross from that thread to
the event loop through a bounded asyncio.Queue; a semaphore with the same capacity
makes the worker wait (never the loop) when the consumer is slow. When the consumer
stops early or its task is cancelled, a threading.Event tells the worker, which checks
it after every token and closes llama.cpp's generator, so the thread is free again
within one token.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

log = structlog.get_logger("atlas.llm.embedded")

_GGUF_MAGIC = b"GGUF"
_QUEUE_SIZE = 64
_POLL_S = 0.05
_WARM_PROMPT = "Hello."

# Guards the brief swap of llama_cpp's default-params function (see plain_cpu_buffers):
# two models loading at once must not restore each other's swap.
_PARAMS_SWAP_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Finished:
    usage: Usage
    stop_reason: str | None


@dataclass(frozen=True)
class _Failed:
    error: LLMError


_Item = str | _Finished | _Failed


class _Channel:
    """Worker thread -> event loop, bounded in both directions."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=size)
        self._slots = threading.Semaphore(size)
        self.cancel = threading.Event()

    def put(self, item: _Item) -> bool:
        """Called on the worker; False once the consumer has gone (stop generating)."""
        while not self._slots.acquire(timeout=_POLL_S):
            if self.cancel.is_set():
                return False
        if self.cancel.is_set():
            return False
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop has closed under us
            return False
        return True

    async def get(self) -> _Item:
        item = await self._queue.get()
        self._slots.release()
        return item


class _PromptCounter:
    """Counts the prompt tokens llama.cpp will evaluate for a chat.

    `create_chat_completion` reports no usage when streaming, so the chat is rendered
    with the model's own template (as llama-cpp-python does) and tokenized. Built once
    per loaded model, used on the worker thread only.
    """

    def __init__(self, llama: Any) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llama = llama
        self._formatter: Any = None
        template = llama.metadata.get("tokenizer.chat_template")
        if template:
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=self._token_text(llama.token_eos()),
                bos_token=self._token_text(llama.token_bos()),
            )

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        text: bytes = self._llama.detokenize([token], special=True)
        return text.decode("utf-8", "replace")

    def count(self, chat: list[dict[str, str]]) -> int:
        if self._formatter is None:  # no template in the GGUF: count the words we sent
            text = "\n".join(m["content"] for m in chat)
            return len(self._llama.tokenize(text.encode(), add_bos=False))
        rendered = self._formatter(messages=chat)
        ids = self._llama.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )
        return len(ids)


def check_gguf(path: Path) -> None:
    """Fail with one clear line for a missing or obviously corrupt model file."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise LLMError(ErrorKind.UNAVAILABLE, f"embedded model {path} does not exist") from None
    except OSError as e:
        raise LLMError(
            ErrorKind.UNAVAILABLE, f"embedded model {path} cannot be read ({e.strerror})"
        ) from None
    if magic != _GGUF_MAGIC:
        raise LLMError(
            ErrorKind.UNAVAILABLE, f"embedded model {path} is not a GGUF file (corrupt download?)"
        )


@contextmanager
def plain_cpu_buffers() -> Iterator[None]:
    """Load weights into plain CPU buffers, not llama.cpp's repacked "extra" buffers.

    Some VMs advertise AMX in CPUID without the hypervisor enabling its tile state
    (measured on the build machines, Firecracker): ggml then repacks the weights for AMX
    and the process dies with SIGILL at the first matmul. `Llama()` has no argument for
    `use_extra_bufts`, so its default-params function is swapped while the model loads.
    For a 135M model the repacking gains next to nothing. (Also used to start
    llama.cpp's own server in the integration test, around the whole server run.)
    """
    # llama_cpp.llama calls it through this module, so swapping the attribute is enough.
    lowlevel: Any = importlib.import_module("llama_cpp.llama_cpp")
    original = lowlevel.llama_model_default_params

    def params() -> Any:
        p = original()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    with _PARAMS_SWAP_LOCK:
        lowlevel.llama_model_default_params = params
        try:
            yield
        finally:
            lowlevel.llama_model_default_params = original


def _open_llama(path: Path, config: LocalLLMConfig) -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise LLMError(
            ErrorKind.UNAVAILABLE,
            "llama-cpp-python is not installed (run scripts/setup.sh)",
        ) from None
    cpus = os.cpu_count() or 1
    if config.threads >= cpus:  # see LocalLLMConfig.threads: spin barriers starve
        log.warning("llm.embedded_threads", threads=config.threads, cpus=cpus,
                    why="every core taken: any other load makes llama.cpp crawl")  # fmt: skip
    with plain_cpu_buffers():
        try:
            return llama_cpp.Llama(
                model_path=str(path),
                n_ctx=config.n_ctx,
                n_threads=config.threads,
                n_threads_batch=config.threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as e:
            raise LLMError(
                ErrorKind.UNAVAILABLE,
                f"llama.cpp cannot load {path.name} ({type(e).__name__}): corrupt or unsupported",
            ) from None


class EmbeddedLlamaClient:
    """LLMClient over an in-process llama.cpp model, serialised on one worker thread."""

    def __init__(
        self, model_path: Path, config: LocalLLMConfig, *, queue_size: int = _QUEUE_SIZE
    ) -> None:
        check_gguf(model_path)
        self.backend = "embedded"
        ref = config.embedded_model
        self.model = model_path.name if ref.endswith(".gguf") or "/" in ref else ref
        self._path = model_path
        self._config = config
        self._queue_size = queue_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atlas-llama")
        self._llama: Any = None  # touched only on the worker thread
        self._counter: _PromptCounter | None = None
        self._closed = False

    # -- worker-thread side ---------------------------------------------------------

    def _loaded(self) -> Any:
        if self._llama is None:
            started = time.perf_counter()
            self._llama = _open_llama(self._path, self._config)
            self._counter = _PromptCounter(self._llama)
            log.info(
                "llm.embedded_loaded",
                model=self.model,
                path=str(self._path),
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
        return self._llama

    def _warm(self, system: str) -> None:
        # One token with the real system prompt: llama.cpp keeps the evaluated prefix,
        # so the next turn only evaluates the user's words.
        self._loaded().create_chat_completion(
            chat_messages([Message("user", _WARM_PROMPT)], system), max_tokens=1, temperature=0.0
        )

    def _generate(
        self,
        chat: list[dict[str, str]],
        temperature: float,
        max_tokens: int,
        channel: _Channel,
    ) -> None:
        if channel.cancel.is_set():
            return  # the consumer left while this call waited for the thread
        sent = False
        try:
            llama = self._loaded()
            assert self._counter is not None  # set together with the model
            prompt_tokens = self._counter.count(chat)
            chunks = llama.create_chat_completion(
                chat, stream=True, temperature=temperature, max_tokens=max_tokens
            )
            parts: list[str] = []
            finish: str | None = None
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    text = choice.get("delta", {}).get("content")
                    if text:
                        if not channel.put(text):
                            return
                        sent = True
                        parts.append(text)
                    finish = choice.get("finish_reason") or finish
                    if channel.cancel.is_set():
                        return  # checked after every token: closing `chunks` stops llama
            finally:
                chunks.close()
            completion = len(llama.tokenize("".join(parts).encode(), add_bos=False))
            channel.put(_Finished(Usage(prompt_tokens, completion), finish))
        except LLMError as e:
            channel.put(_Failed(e))
        except Exception as e:  # llama.cpp errors come as ValueError/RuntimeError
            kind = ErrorKind.BAD_REQUEST if "context window" in str(e) else ErrorKind.UNAVAILABLE
            message = f"llama.cpp failed ({type(e).__name__}: {str(e)[:160]})"
            channel.put(_Failed(LLMError(kind, message, text_started=sent)))

    def _unload(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None
            self._counter = None

    # -- event-loop side ------------------------------------------------------------

    async def _on_worker(self, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise LLMError(ErrorKind.UNAVAILABLE, "the embedded model has been closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def load(self) -> None:
        """Load the model now (on the worker thread) instead of on the first call."""
        await self._on_worker(self._loaded)

    async def warm(self, system: str = "") -> None:
        """Load the model and evaluate the system prompt once, priming the prefix cache."""
        started = time.perf_counter()
        try:
            await self._on_worker(self._warm, system)
        except (ValueError, RuntimeError) as e:
            raise LLMError(ErrorKind.UNAVAILABLE, f"warming failed ({type(e).__name__})") from None
        log.info("llm.embedded_warmed", ms=round((time.perf_counter() - started) * 1000, 1))

    async def prime(self, messages: Sequence[Message], system: str) -> None:
        """Evaluate a likely prompt now, so the real call finds it in llama.cpp's cache.

        Used while the end-of-turn hangover runs: the transcript is (probably) known, so
        the prompt can be processed before the turn is confirmed. Costs nothing if wrong
        but CPU; the real call reuses the longest matching prefix either way.
        """
        if self._closed:
            return
        chat = chat_messages(messages, system)
        try:
            await self._on_worker(self._prime, chat)
        except Exception as e:  # a failed prime must never hurt the turn
            log.debug("llm.prime_failed", error=type(e).__name__)

    def _prime(self, chat: list[dict[str, str]]) -> None:
        self._loaded().create_chat_completion(chat, max_tokens=1, temperature=0.0)

    async def stream(
        self,
        messages: Sequence[Message],
        system: str,
        temperature: float,
        max_tokens: int,
    ) -> AsyncIterator[StreamItem]:
        if self._closed:
            raise LLMError(ErrorKind.UNAVAILABLE, "the embedded model has been closed")
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        channel = _Channel(loop, self._queue_size)
        job = loop.run_in_executor(
            self._executor,
            self._generate,
            chat_messages(messages, system),
            temperature,
            max_tokens,
            channel,
        )
        parts: list[str] = []
        first_ms: float | None = None
        try:
            while True:
                item = await channel.get()
                if isinstance(item, _Failed):
                    raise item.error
                if isinstance(item, _Finished):
                    final = item
                    break
                if first_ms is None:
                    first_ms = (time.perf_counter() - started) * 1000
                parts.append(item)
                yield item
        finally:
            channel.cancel.set()
            if not job.done():
                # The worker stops within a token; waiting here means that when the
                # caller regains control the thread is already free for the next turn.
                await asyncio.wait({job})
        yield LLMResponse(
            content="".join(parts),
            model=self.model,
            backend=self.backend,
            first_token_ms=first_ms,
            total_duration_ms=(time.perf_counter() - started) * 1000,
            usage=final.usage,
            cost_usd=0.0,
            stop_reason=final.stop_reason,
        )

    async def generate(
        self,
        messages: Sequence[Message],
        system: str,
        temperature: float,
        max_tokens: int,
    ) -> LLMResponse:
        return await collect(self.stream(messages, system, temperature, max_tokens))

    async def is_available(self) -> bool:
        return not self._closed and self._path.is_file()

    async def aclose(self) -> None:
        if self._closed:
            return
        await self._on_worker(self._unload)
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
