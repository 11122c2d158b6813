"""Settings of the brain: backends, tiers, router, budget, breaker, memory.

Filled from config/atlas.yaml (`llm`, `budget`, `breaker`, `memory`) and
config/routing.yaml (`router`, `persona`) by `atlas.settings`, validated against the
`min`/`max`/`choices` metadata here. Model ids and prices live in config, never code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voice.config import bounded, choice


@dataclass(frozen=True)
class LocalLLMConfig:
    backend: str = choice("auto", "auto", "ollama", "openai", "embedded")
    """auto: Ollama when it answers at base_url with `model` installed, else embedded."""
    base_url: str = "http://127.0.0.1:11434"
    """Ollama's root URL; for `openai`, the server's /v1 URL (llama.cpp, vLLM, LM Studio)."""
    model: str = "qwen2.5:3b-instruct"
    keep_alive: str = "-1"
    """Ollama keep_alive for the pinned model (negative: keep it loaded)."""
    embedded_model: str = "smollm2-135m-instruct"
    """A name from models/manifest.yaml (or a local .gguf path)."""
    n_ctx: int = bounded(2048, 256, 32768)
    threads: int = bounded(1, 1, 64)
    """llama.cpp threads of the embedded model (generation and prompt). ggml's threads
    meet at a spin barrier after every operation: when another process (or Whisper, or
    the embedder) takes a core, the spinning thread burns its time slice waiting for a
    descheduled partner. Measured on the 2-core box with two busy loops running: 64
    tokens took 52-58 s with 2 threads, 1.8 s with 1. One thread is ~100 tok/s for
    SmolLM2-135M. Raise it only on a box with cores to spare."""
    temperature: float = bounded(0.2, 0.0, 2.0)
    max_tokens: int = bounded(96, 8, 4096)
    decline_questions: str = choice("auto", "auto", "yes", "no")
    """Questions of fact, and questions meant for a cloud tier, answered locally (no
    key, budget spent, breaker open): yes = an honest "I'd rather not guess" line
    instead of the local model's answer; auto = yes for the embedded model (too small
    to be right about facts), no for an Ollama/OpenAI-compatible server."""
    connect_timeout_s: float = bounded(2.0, 0.1, 60.0)
    timeout_s: float = bounded(60.0, 1.0, 600.0)


@dataclass(frozen=True)
class CloudTierConfig:
    model: str = "claude-haiku-4-5-20251001"
    input_usd_per_mtok: float = bounded(1.0, 0.0, 1000.0)
    output_usd_per_mtok: float = bounded(5.0, 0.0, 1000.0)
    max_tokens: int = bounded(300, 16, 8192)
    temperature: float = bounded(0.7, 0.0, 1.0)
    first_token_deadline_s: float = bounded(2.5, 0.2, 120.0)
    min_cache_tokens: int = bounded(4096, 0, 100000)
    """Prefixes shorter than this are never cached by the API (Haiku 4.5: 4096)."""


def _haiku() -> CloudTierConfig:
    return CloudTierConfig()


def _agent() -> CloudTierConfig:
    return CloudTierConfig(
        model="claude-sonnet-4-6",
        input_usd_per_mtok=3.0,
        output_usd_per_mtok=15.0,
        max_tokens=700,
        temperature=0.4,
        first_token_deadline_s=8.0,
        min_cache_tokens=1024,
    )


@dataclass(frozen=True)
class AnthropicConfig:
    base_url: str | None = None
    """None: the real API. A loopback URL points the SDK at a local fake."""
    connect_timeout_s: float = bounded(3.0, 0.1, 60.0)
    read_timeout_s: float = bounded(30.0, 1.0, 600.0)
    retries: int = bounded(2, 0, 10)
    """Retries before the first token only (SDK max_retries is 0)."""
    retry_initial_s: float = bounded(0.2, 0.0, 30.0)
    retry_max_s: float = bounded(2.0, 0.0, 60.0)
    stall_timeout_s: float = bounded(8.0, 0.5, 120.0)
    """A stream that delivers nothing for this long, mid-answer, has stalled."""
    cache_write_multiplier: float = bounded(1.25, 0.0, 10.0)
    cache_read_multiplier: float = bounded(0.1, 0.0, 10.0)
    haiku: CloudTierConfig = field(default_factory=_haiku)
    agent: CloudTierConfig = field(default_factory=_agent)


@dataclass(frozen=True)
class CloudProviderConfig:
    """An OpenAI-compatible cloud endpoint serving one cloud tier (OpenAI, Groq,
    OpenRouter, a vLLM server...). A tier's providers are tried in order before the
    local model: Anthropic first (when its key is set), then these as listed, unless
    `before_anthropic`. Each has its own circuit breaker."""

    name: str = ""
    """Shown in logs, the ledger's `provider` column and `atlas doctor`."""
    tier: str = choice("haiku", "haiku", "agent")
    base_url: str = ""
    """The provider's /v1 URL, e.g. https://api.groq.com/openai/v1."""
    api_key_env: str = ""
    """The environment variable holding its key (never the key itself)."""
    model: str = ""
    input_usd_per_mtok: float = bounded(0.0, 0.0, 1000.0)
    output_usd_per_mtok: float = bounded(0.0, 0.0, 1000.0)
    cache_read_multiplier: float = bounded(0.5, 0.0, 10.0)
    """Price of a cached prompt token relative to an input token (OpenAI: 0.5)."""
    max_tokens: int = bounded(300, 16, 8192)
    temperature: float = bounded(0.7, 0.0, 2.0)
    first_token_deadline_s: float = bounded(2.5, 0.2, 120.0)
    """A provider silent for this long is left for the next one."""
    connect_timeout_s: float = bounded(3.0, 0.1, 60.0)
    read_timeout_s: float = bounded(30.0, 1.0, 600.0)
    before_anthropic: bool = False
    """Try this provider before Anthropic for its tier."""


@dataclass(frozen=True)
class AgentLoopConfig:
    max_steps: int = bounded(4, 1, 20)
    """Model calls in one tool-use loop (the last one must answer)."""
    deadline_s: float = bounded(20.0, 1.0, 300.0)


@dataclass(frozen=True)
class LLMConfig:
    local: LocalLLMConfig = field(default_factory=LocalLLMConfig)
    anthropic: AnthropicConfig = field(default_factory=AnthropicConfig)
    agent_loop: AgentLoopConfig = field(default_factory=AgentLoopConfig)
    max_query_chars: int = bounded(2000, 50, 100000)
    """Longer queries are truncated (with a log line) before routing."""
    cloud_providers: tuple[CloudProviderConfig, ...] = ()
    """OpenAI-compatible providers per cloud tier, in fallback order."""


@dataclass(frozen=True)
class BudgetConfig:
    daily_usd: float = bounded(0.33, 0.0, 10000.0)
    monthly_usd: float = bounded(10.0, 0.0, 100000.0)
    soft_fraction: float = bounded(0.8, 0.1, 1.0)
    """Above this share of a limit: thrifty mode (marginal cloud decisions go local)."""
    timezone: str = "local"
    """Day and month boundaries: an IANA zone name, or `local` for the system zone."""
    db_path: str = "~/.local/share/atlas/ledger.sqlite3"
    store_query_text: bool = False
    """Store the spoken text in the ledger (otherwise only its salted hash)."""
    busy_timeout_ms: int = bounded(2000, 0, 60000)


@dataclass(frozen=True)
class BreakerConfig:
    fail_max: int = bounded(3, 1, 100)
    reset_timeout_s: float = bounded(60.0, 1.0, 3600.0)


@dataclass(frozen=True)
class MemoryConfig:
    max_turns: int = bounded(6, 0, 50)
    """User+assistant exchanges kept for follow-ups."""
    max_age_s: float = bounded(300.0, 0.0, 86400.0)
    """Older exchanges are forgotten."""
    local_max_turns: int = bounded(2, 0, 50)
    """Exchanges sent to the local model: a small model on 2 cores pays for every token
    of history before its first word."""
    max_answer_chars: int = bounded(400, 50, 10000)
    """A remembered answer is cut to this length (a follow-up needs the gist)."""


@dataclass(frozen=True)
class RouterConfig:
    """The classification cascade; patterns are Python regexes matched case-insensitively."""

    safety_patterns: tuple[str, ...] = ()
    """-> agent, checked first: reflexes for emergencies and self-harm."""
    local_patterns: tuple[str, ...] = ()
    """-> local: commands, timers, time/date, greetings, small talk."""
    agent_patterns: tuple[str, ...] = ()
    """-> agent: multi-step planning, research, analysis."""
    short_words: int = bounded(3, 0, 50)
    """Queries of at most this many words go local."""
    long_words: int = bounded(45, 5, 1000)
    """Queries of at least this many words go to the agent."""
    prototypes: str = "config/prototypes.tsv"
    """Labelled utterances (TSV: utterance, tier) the embedding stage compares with."""
    embedder_model: str = "minilm-l6-v2"
    embedder_runtime: str = choice("onnx-int8", "onnx-int8", "onnx", "torch")
    """onnx: onnxruntime on a graph exported once into the model cache (no torch at run
    time once exported); torch: sentence-transformers. Both give the same vectors.
    onnx-int8: that graph quantised to 8 bits once (about 3x faster; vectors of its own,
    so a router model is trained for it)."""
    neighbours: int = bounded(5, 1, 50)
    local_threshold: float = bounded(0.62, -1.0, 1.0)
    """Similarity to local prototypes needed to answer locally (fit by `router fit`)."""
    agent_threshold: float = bounded(0.62, -1.0, 1.0)
    margin: float = bounded(0.05, 0.0, 1.0)
    """A haiku decision this close to the local threshold (or probability) is marginal
    (thrifty mode answers it locally)."""
    model: str = ""
    """The learned router model (.npz, written by `atlas router train`); empty: the
    pattern and prototype cascade. A model that fails its checks falls back to it."""
    model_sha256: str = ""
    """The model file's sha256, checked at load (written by `atlas router train`)."""
    agent_probability: float = bounded(0.35, 0.0, 1.0)
    """Learned model: agent when its probability reaches this."""
    local_probability: float = bounded(0.6, 0.0, 1.0)
    """Learned model: local when its probability reaches this (and agent's did not)."""
    min_probability: float = bounded(0.5, 0.0, 1.0)
    """Learned model: haiku when it is the likeliest with at least this probability."""
    uncertain_tier: str = choice("haiku", "haiku", "local")
    """Learned model: who answers when no tier is sure enough."""


@dataclass(frozen=True)
class PersonaConfig:
    """The Lethal Gentleman: what ATLAS says in its own voice. Lines are picked at random."""

    name: str = "Atlas"
    system_prompt: str = ""
    """{name}, {now} and {tier_hint} are filled in per turn."""
    local_system_prompt: str = ""
    """The local tier's own (shorter) prompt; empty: `system_prompt` with its tier hint.
    A small model follows a few plain instructions better than a page of them."""
    tier_hints: tuple[str, ...] = ()
    """Per-tier style hints, in the order local, haiku, agent."""
    fillers: tuple[str, ...] = ()
    budget_warning: tuple[str, ...] = ()
    budget_exceeded: tuple[str, ...] = ()
    timeout: tuple[str, ...] = ()
    api_error: tuple[str, ...] = ()
    cut_short: tuple[str, ...] = ()
    """Said when an answer already under way fails (it is never re-asked elsewhere)."""
    part_done: tuple[str, ...] = ()
    """Said when an answer fails after a tool already changed something (a timer, a
    device): not asked elsewhere, since that could do it twice."""
    misunderstanding: tuple[str, ...] = ()
    acknowledge: tuple[str, ...] = ()
    """Said when only the wake phrase was heard ("Atlas?" -> "Yes?")."""
    not_done: tuple[str, ...] = ()
    """Said instead of an answer that claimed something was done when nothing was."""
    no_answer: tuple[str, ...] = ()
    """Said when nothing of an answer was fit to speak (a loop, a never-say sentence)."""
    safety: tuple[str, ...] = ()
    """Said for a health or danger worry when no careful answer is available."""
    legal: tuple[str, ...] = ()
    """Said for legal trouble when no careful answer is available."""
    unsure: tuple[str, ...] = ()
    """Said instead of a small local model's guess at a question of substance."""
    too_slow: tuple[str, ...] = ()
    """Said when a stage of a turn passed its deadline and the turn was stopped."""
    never_say: tuple[str, ...] = ()
    """Phrases ATLAS must never say (checked on its own lines and on answers)."""
    forbidden_words: tuple[str, ...] = ("model", "cloud", "tier", "API", "budget")
