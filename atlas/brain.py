"""Builds the brain from settings: classifier, skills, persona, budget, breakers, clients.

Kept apart from app.py so that `atlas transcribe` does not import the LLM stack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path

import structlog

from atlas.home.config import HomeConnection, connect
from atlas.home.stage import HomeStage
from atlas.home.tools import home_tools
from atlas.honesty import CapabilityGate, RequestStage
from atlas.llm.adapter import Adapter
from atlas.llm.agent import AgentRunner
from atlas.llm.anthropic import AnthropicClient
from atlas.llm.base import CLOUD_TIERS, LLMClient, Price, Tier
from atlas.llm.breaker import CloudBreaker
from atlas.llm.budget import BudgetLedger, resolve_timezone
from atlas.llm.classifier import Classifier, load_prototypes
from atlas.llm.config import CloudTierConfig
from atlas.llm.embedded import EmbeddedLlamaClient
from atlas.llm.embedder import Embedder, MiniLMEmbedder
from atlas.llm.embedder_onnx import OnnxMiniLMEmbedder
from atlas.llm.learned import RouterModel, RouterModelError, load_model
from atlas.llm.local_select import select_local_backend
from atlas.llm.memory import ConversationMemory
from atlas.llm.model_check import check_cloud_models, disable_unknown_models
from atlas.llm.providers import with_providers
from atlas.llm.router import Router
from atlas.llm.tools import Tool
from atlas.llm.toolturn import ToolModel
from atlas.modelstore import ModelStore
from atlas.persona import Persona
from atlas.settings import Secrets, Settings
from atlas.skills import SkillSet, TimerService, build_skills
from atlas.skills.tools import skill_tools

log = structlog.get_logger("atlas.brain")


@dataclass
class Brain:
    """The router and what it owns; closed once at shutdown."""

    router: Router
    budget: BudgetLedger
    timers: TimerService
    local_backend: str
    """Which local backend answers, and why (one line)."""
    clients: dict[Tier, LLMClient]
    checks: list[asyncio.Task[None]] = field(default_factory=list)
    """Start-up checks still running in the background (the cloud model lookup)."""
    home: HomeStage | None = field(default=None)

    async def aclose(self) -> None:
        for task in self.checks:
            task.cancel()
        await asyncio.gather(*self.checks, return_exceptions=True)
        await self.timers.aclose()
        if self.home is not None:
            await self.home.aclose()
        for client in self.clients.values():
            await client.aclose()
        self.budget.close()


def build_classifier(settings: Settings, store: ModelStore) -> Classifier:
    """The routing cascade with its embedder and model or prototypes (no LLM needed)."""
    learned = read_router_model(settings)
    adapter = learned.adapter if learned else None
    try:
        embedder = build_embedder(settings, store, adapter)
    except ValueError as e:  # an adapter that does not fit this encoder
        log.warning("brain.router_model_unusable", problem=f"its adapter: {e}"[:300])
        learned, adapter = None, None
        embedder = build_embedder(settings, store)
    if learned is not None and not _fits(learned, embedder):
        learned = None
        if adapter is not None:  # the cascade's prototypes want the plain vectors
            embedder = build_embedder(settings, store)
    prototypes = (
        [] if learned else load_prototypes(settings.project_path(settings.router.prototypes))
    )
    return Classifier(
        settings.router,
        embedder,
        prototypes,
        cache_dir=settings.project_path(settings.models.cache_dir) / "router",
        model=learned,
    )


def build_embedder(
    settings: Settings, store: ModelStore, adapter: Adapter | None = None
) -> Embedder:
    """MiniLM (with the router model's adapter merged, if any) on onnxruntime, exported
    once into the model cache, else through torch."""
    folder = embedder_folder(settings, store)
    runtime = settings.router.embedder_runtime
    if runtime in ("onnx", "onnx-int8"):
        cache = settings.project_path(settings.models.cache_dir) / "router"
        try:
            return OnnxMiniLMEmbedder(
                folder, cache, quantized=runtime == "onnx-int8", adapter=adapter
            )
        except Exception as e:  # only speed is lost: the torch encoder gives the same vectors
            log.warning("brain.onnx_embedder_unavailable", error=f"{type(e).__name__}: {e}"[:300])
    return MiniLMEmbedder(folder, adapter=adapter)


def embedder_folder(settings: Settings, store: ModelStore) -> Path:
    """The router embedder's verified model folder (what an adapter is fit on)."""
    model = store.resolve(
        settings.router.embedder_model, "sentence-transformer", "router.embedder_model"
    )
    return model.path


def read_router_model(settings: Settings) -> RouterModel | None:
    """The configured learned router, verified; None (with a warning) when it cannot be
    used, so the daemon routes with the pattern and prototype cascade instead."""
    cfg = settings.router
    if not cfg.model:
        return None
    try:
        return load_model(settings.project_path(cfg.model), cfg.model_sha256)
    except RouterModelError as e:
        log.warning("brain.router_model_unusable", problem=str(e))
        return None


def _fits(learned: RouterModel, embedder: Embedder) -> bool:
    """A model's weights mean something only for the vectors it was trained on."""
    if learned.embedder == embedder.name and learned.dim == embedder.dim:
        return True
    log.warning(
        "brain.router_model_unusable",
        problem=f"trained with {learned.embedder}, not {embedder.name}",
    )
    return False


def open_budget(settings: Settings) -> BudgetLedger:
    return BudgetLedger(settings.project_path(settings.budget.db_path), settings.budget)


def _tz_now(settings: Settings) -> tuple[tzinfo, Callable[[], datetime]]:
    tz = resolve_timezone(settings.budget.timezone)

    def now() -> datetime:
        return datetime.now(tz)

    return tz, now


def _cloud_clients(settings: Settings, secrets: Secrets) -> dict[Tier, AnthropicClient]:
    anth = settings.llm.anthropic
    if not secrets.anthropic_api_key:
        return {}
    key = secrets.anthropic_api_key
    return {
        "haiku": AnthropicClient(anth.haiku, anth, key),
        "agent": AnthropicClient(anth.agent, anth, key),
    }


def _with_providers(
    settings: Settings,
    secrets: Secrets,
    clients: dict[Tier, LLMClient],
    agent_tools: Sequence[Tool] = (),
) -> dict[Tier, LLMClient]:
    """The cloud tiers with their OpenAI-compatible providers (llm.cloud_providers); an
    agent-tier provider runs the same tool loop over `agent_tools` as Anthropic does."""
    anth = settings.llm.anthropic
    tiers: dict[Tier, CloudTierConfig] = {"haiku": anth.haiku, "agent": anth.agent}
    prices: dict[Tier, Price] = {
        tier: Price(
            cfg.input_usd_per_mtok,
            cfg.output_usd_per_mtok,
            anth.cache_write_multiplier,
            anth.cache_read_multiplier,
        )
        for tier, cfg in tiers.items()
    }
    providers = settings.llm.cloud_providers
    keys = {p.api_key_env: k for p in providers if (k := secrets.key(p.api_key_env))}
    loop = settings.llm.agent_loop

    def agent_loop(model: ToolModel) -> LLMClient:
        return AgentRunner(model, agent_tools, loop)

    return with_providers(
        clients, tiers, providers, keys, settings.breaker, prices, agent_loop=agent_loop
    )


def _disable_gone_models(settings: Settings, router: Router) -> None:
    """One warning per configured model id the SDK's table says is past end of life;
    that tier is switched off (the local tier answers in persona instead)."""
    for problem in check_cloud_models(settings.llm.anthropic, datetime.now().date()):
        if problem.fatal:
            router.disable(problem.tier, problem.warning)
        else:
            log.warning("brain.cloud_model", problem=problem.warning)


def _router(
    settings: Settings,
    classifier: Classifier,
    skills: SkillSet,
    budget: BudgetLedger,
    clients: dict[Tier, LLMClient],
    now: Callable[[], datetime],
    home: HomeStage | None = None,
) -> Router:
    anth, local_cfg = settings.llm.anthropic, settings.llm.local
    return Router(
        classifier=classifier,
        skills=skills,
        persona=_persona(settings),
        budget=budget,
        breakers={t: CloudBreaker(t, settings.breaker) for t in CLOUD_TIERS},
        clients=clients,
        tier_configs={"haiku": anth.haiku, "agent": anth.agent},
        memory=ConversationMemory(settings.memory),
        now=now,
        local_max_tokens=local_cfg.max_tokens,
        local_temperature=local_cfg.temperature,
        max_query_chars=settings.llm.max_query_chars,
        agent_steps=settings.llm.agent_loop.max_steps,
        stages=request_stages(),
        home=home,
        local_declines=local_declines(settings, clients.get("local")),
    )


def local_declines(settings: Settings, local: LLMClient | None) -> bool:
    """Whether cloud-meant questions get an honest line instead of the local model."""
    choice = settings.llm.local.decline_questions
    if choice == "auto":
        return isinstance(local, EmbeddedLlamaClient)
    return choice == "yes"


def request_stages() -> list[RequestStage]:
    """Stages consulted after the skills and before any model, in order. A stage that
    can act (Home Assistant) goes before the capability gate's honest lines."""
    return [CapabilityGate()]


def _persona(settings: Settings) -> Persona:
    persona = Persona(settings.persona)
    persona.validate()
    return persona


def build_explainer(settings: Settings, store: ModelStore, secrets: Secrets) -> Router:
    """A router that can decide() but not answer: for `atlas route` (calls no model)."""
    tz, now = _tz_now(settings)
    clients: dict[Tier, LLMClient] = dict(_cloud_clients(settings, secrets))
    skills = build_skills(tz, TimerService())
    return _router(
        settings, build_classifier(settings, store), skills, open_budget(settings), clients, now,
        HomeStage(settings.home_assistant, HomeConnection(None)),  # detection only, no calls
    )  # fmt: skip


def build_home(settings: Settings) -> HomeStage:
    """The device-request stage (honest lines only, when Home Assistant is not set up)."""
    cfg = settings.home_assistant
    return HomeStage(cfg, connect(cfg))


async def build_brain(
    settings: Settings,
    store: ModelStore,
    secrets: Secrets,
    *,
    classifier: Classifier | None = None,
    budget: BudgetLedger | None = None,
    timers: TimerService | None = None,
    standalone: bool = False,
) -> Brain:
    """`standalone`: a one-shot process (`atlas ask`) that exits after the answer, so
    it must not promise a timer it would never ring."""
    t0 = time.perf_counter()
    persona = _persona(settings)
    tz, now = _tz_now(settings)
    timers = timers or TimerService(standalone=standalone)
    skills = build_skills(tz, timers)
    classifier = classifier or build_classifier(settings, store)
    budget = budget or open_budget(settings)
    local_cfg = settings.llm.local
    local, why = await select_local_backend(
        local_cfg,
        lambda: store.resolve(local_cfg.embedded_model, "gguf", "llm.local.embedded_model").path,
    )
    if isinstance(local, EmbeddedLlamaClient):  # prime llama.cpp's prefix cache
        await local.warm(persona.system_prompt("local", now()))
    clients: dict[Tier, LLMClient] = {"local": local}
    home = build_home(settings)
    if home.connection.problem:
        log.warning("brain.home_off", why=home.connection.problem)
    cloud = _cloud_clients(settings, secrets)
    # One set of tools for the agent tier, whichever provider answers it.
    tools = [*skill_tools(skills, timers, tz), *home_tools(home)]
    if cloud:
        clients["haiku"] = cloud["haiku"]
        clients["agent"] = AgentRunner(cloud["agent"], tools, settings.llm.agent_loop)
    clients = _with_providers(settings, secrets, clients, tools)
    if set(clients) == {"local"}:
        log.warning("brain.cloud_off", why="ANTHROPIC_API_KEY is not set: all answers are local")
    router = _router(settings, classifier, skills, budget, clients, now, home)
    checks: list[asyncio.Task[None]] = []
    if cloud:
        _disable_gone_models(settings, router)
        if not standalone:  # a model id the API no longer knows: off before anyone asks
            lookup = disable_unknown_models(
                settings.llm.anthropic, secrets.anthropic_api_key, router.disable
            )
            checks.append(asyncio.create_task(lookup, name="cloud-model-lookup"))
    log.info("brain.ready", local_backend=why, cloud=sorted(set(clients) - {"local"}), ms=_ms(t0))
    return Brain(router, budget, timers, why, clients, checks, home)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)
