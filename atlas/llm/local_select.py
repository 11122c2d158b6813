"""Pick the `local` tier's backend at start: Ollama when it is there, else embedded.

`auto` uses Ollama only when it answers on its URL within the connect timeout AND
lists the configured model (a server without the model would fail every turn); the
model is then pinned and warmed so the first question does not wait for it to load.
Otherwise the embedded SmolLM2 answers. A forced `ollama`/`openai` backend is
returned even when it does not answer (with a warning): the local tier has no
breaker, so its errors must surface rather than silently change backend.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from atlas.llm.base import LLMClient, LLMError
from atlas.llm.config import LocalLLMConfig
from atlas.llm.embedded import EmbeddedLlamaClient
from atlas.llm.local import OllamaClient, OpenAICompatClient, same_model

log = structlog.get_logger("atlas.llm.local_select")


async def _embedded(
    config: LocalLLMConfig, resolve_embedded: Callable[[], Path]
) -> EmbeddedLlamaClient:
    client = EmbeddedLlamaClient(resolve_embedded(), config)
    await client.load()
    return client


async def _ollama_state(client: OllamaClient, config: LocalLLMConfig) -> tuple[bool, str]:
    """Whether Ollama can serve the configured model, and why (one phrase)."""
    models = await client.installed_models()
    if models is None:
        return False, f"ollama not answering at {config.base_url}"
    if not any(same_model(config.model, m) for m in models):
        return False, f"ollama at {config.base_url} does not have {config.model} installed"
    return True, f"ollama at {config.base_url} has {config.model}"


async def _warm(client: OllamaClient) -> str | None:
    try:
        await client.warm()
    except LLMError as e:
        return str(e)
    return None


async def select_local_backend(
    config: LocalLLMConfig, resolve_embedded: Callable[[], Path]
) -> tuple[LLMClient, str]:
    """The local tier's client and a one-line reason for the choice (logged at info)."""
    client: LLMClient
    if config.backend == "embedded":
        client = await _embedded(config, resolve_embedded)
        reason = f"embedded {client.model} (forced by config)"
    elif config.backend == "openai":
        client = OpenAICompatClient(config, base_url=config.base_url, model=config.model)
        if await client.is_available():
            reason = f"openai-compatible server at {config.base_url} (forced by config)"
        else:
            reason = f"openai-compatible server at {config.base_url} not answering (forced)"
            log.warning("llm.local_backend_unreachable", backend="openai", url=config.base_url)
    elif config.backend == "ollama":
        ollama = OllamaClient(config)
        ok, why = await _ollama_state(ollama, config)
        failed = await _warm(ollama) if ok else why
        if failed:
            log.warning("llm.local_backend_unreachable", backend="ollama", problem=failed)
            reason = f"{why} (forced by config); warm-up failed" if ok else f"{why} (forced)"
        else:
            reason = f"{why}, pinned and warmed (forced by config)"
        client = ollama
    else:
        ollama = OllamaClient(config)
        ok, why = await _ollama_state(ollama, config)
        failed = await _warm(ollama) if ok else None
        if ok and failed is None:
            client, reason = ollama, f"{why}, pinned and warmed"
        else:
            await ollama.aclose()
            if failed is not None:
                log.warning("llm.ollama_warm_failed", problem=failed)
                why = f"{why} but warming it failed"
            client = await _embedded(config, resolve_embedded)
            reason = f"{why}; using embedded {client.model}"
    log.info("llm.local_backend", backend=client.backend, model=client.model, reason=reason)
    return client, reason
