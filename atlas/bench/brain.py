"""Benchmarks of the brain: classification latency/accuracy, router overhead, LLM tiers."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from atlas.bench.stats import percentile
from atlas.llm.base import CLOUD_TIERS, LLMClient, Message, Price
from atlas.llm.breaker import CloudBreaker
from atlas.llm.budget import BudgetLedger
from atlas.llm.classifier import Classifier, load_prototypes
from atlas.llm.router_eval import evaluate
from atlas.settings import PROJECT_ROOT, Settings

HELDOUT = PROJECT_ROOT / "tests" / "data" / "router_heldout.tsv"

PROMPTS = (
    "Tell me something interesting about octopuses.",
    "How do I keep basil alive indoors?",
    "What's a good name for a grey cat?",
    "Give me a tip for sleeping better.",
    "Why do onions make you cry?",
)


@dataclass
class RouterReport:
    file: str = ""
    accuracy: float = 0.0
    safety_recall: float = 0.0
    classify_ms: list[float] = field(default_factory=list)
    embedding_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)
    """classify + budget status/reserve + breaker check, as the router does before a call."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "accuracy": round(self.accuracy, 4),
            "safety_recall": round(self.safety_recall, 4),
            "classify_ms_p50": round(percentile(self.classify_ms, 50), 3),
            "classify_ms_p99": round(percentile(self.classify_ms, 99), 3),
            "embedding_stage_ms_p50": round(percentile(self.embedding_ms, 50), 3),
            "embedding_stage_ms_p99": round(percentile(self.embedding_ms, 99), 3),
            "router_overhead_ms_p50": round(percentile(self.overhead_ms, 50), 3),
            "router_overhead_ms_p99": round(percentile(self.overhead_ms, 99), 3),
            "n": len(self.classify_ms),
        }


def run_router_bench(settings: Settings, classifier: Classifier, tsv: Path) -> RouterReport:
    rows = load_prototypes(tsv)
    report = RouterReport(file=str(tsv))
    ev = evaluate(classifier, rows)
    d = ev.as_dict()
    report.accuracy = float(d["accuracy"])
    report.safety_recall = float(d["safety_recall"])
    with tempfile.TemporaryDirectory() as tmp:
        ledger = BudgetLedger(Path(tmp) / "bench.sqlite3", settings.budget)
        breaker = CloudBreaker("haiku", settings.breaker)
        price = Price(1.0, 5.0)
        for _ in range(3):
            for row in rows:
                t0 = time.perf_counter()
                c = classifier.classify(row.text)
                t1 = time.perf_counter()
                ledger.status()
                res = ledger.reserve("haiku", price.worst_case(400, 300))
                breaker.allow()
                t2 = time.perf_counter()
                if res is not None:
                    ledger.release(res, "bench")
                report.classify_ms.append((t1 - t0) * 1000)
                report.overhead_ms.append((t2 - t0) * 1000)
                if c.stage == "embedding" or c.stage == "default":
                    report.embedding_ms.append((t1 - t0) * 1000)
        ledger.close()
    return report


def format_router(r: RouterReport) -> str:
    d = r.as_dict()
    return "\n".join(
        [
            f"router ({Path(r.file).name}, {d['n']} classifications)",
            f"  accuracy {d['accuracy']:.3f}   safety recall {d['safety_recall']:.3f}",
            f"  classify          p50 {d['classify_ms_p50']:.2f} ms   "
            f"p99 {d['classify_ms_p99']:.2f} ms",
            f"  embedding stage   p50 {d['embedding_stage_ms_p50']:.2f} ms   "
            f"p99 {d['embedding_stage_ms_p99']:.2f} ms",
            f"  router overhead   p50 {d['router_overhead_ms_p50']:.2f} ms   "
            f"p99 {d['router_overhead_ms_p99']:.2f} ms  (classify + budget + breaker)",
        ]
    )


@dataclass
class TierRun:
    name: str
    first_token_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    cost_usd: float = 0.0
    skipped: str = ""

    def as_dict(self) -> dict[str, Any]:
        if self.skipped:
            return {"name": self.name, "skipped": self.skipped}
        return {
            "name": self.name,
            "first_token_ms_p50": round(statistics.median(self.first_token_ms), 1),
            "first_token_ms_max": round(max(self.first_token_ms), 1),
            "total_ms_p50": round(statistics.median(self.total_ms), 1),
            "tokens_per_s_p50": round(statistics.median(self.tokens_per_s), 1),
            "cost_usd": round(self.cost_usd, 6),
            "n": len(self.total_ms),
        }


async def bench_client(name: str, client: LLMClient, system: str, max_tokens: int) -> TierRun:
    run = TierRun(name)
    await client.generate([Message("user", "Hello.")], system, 0.6, 8)  # warm
    for prompt in PROMPTS:
        t0 = time.perf_counter()
        resp = await client.generate([Message("user", prompt)], system, 0.6, max_tokens)
        run.total_ms.append((time.perf_counter() - t0) * 1000)
        run.first_token_ms.append(resp.first_token_ms or float("nan"))
        gen_s = max((resp.total_duration_ms - (resp.first_token_ms or 0)) / 1000, 1e-6)
        run.tokens_per_s.append(resp.usage.output_tokens / gen_s)
        run.cost_usd += resp.cost_usd
    return run


async def run_llm_bench(settings: Settings, store: Any, secrets: Any) -> list[TierRun]:
    """Each configured tier directly: embedded always; a local server and the real API if set."""
    from atlas.llm.anthropic import AnthropicClient
    from atlas.llm.embedded import EmbeddedLlamaClient
    from atlas.llm.local import OllamaClient, OpenAICompatClient
    from atlas.persona import Persona

    persona = Persona(settings.persona)
    now = datetime.now()
    local_cfg = settings.llm.local
    runs: list[TierRun] = []
    path = store.resolve(local_cfg.embedded_model, "gguf", "llm.local.embedded_model").path
    embedded = EmbeddedLlamaClient(path, local_cfg)
    system = persona.system_prompt("local", now)
    await embedded.warm(system)
    runs.append(await bench_client("local (embedded SmolLM2)", embedded, system, 64))
    await embedded.aclose()

    server: LLMClient
    if local_cfg.backend == "openai":
        server = OpenAICompatClient(local_cfg, base_url=local_cfg.base_url, model=local_cfg.model)
    else:
        server = OllamaClient(local_cfg)
    label = f"local server ({server.backend} {local_cfg.model})"
    if await server.is_available():
        runs.append(await bench_client(label, server, system, 64))
    else:
        runs.append(TierRun(label, skipped=f"nothing answering at {local_cfg.base_url}"))
    await server.aclose()

    anth = settings.llm.anthropic
    for tier in CLOUD_TIERS:
        cfg = anth.haiku if tier == "haiku" else anth.agent
        if not secrets.anthropic_api_key:
            runs.append(TierRun(f"{tier} ({cfg.model})", skipped="ANTHROPIC_API_KEY not set"))
            continue
        client = AnthropicClient(cfg, anth, secrets.anthropic_api_key)
        tier_system = persona.system_prompt(tier, now)
        runs.append(await bench_client(f"{tier} ({cfg.model})", client, tier_system, 120))
        await client.aclose()
    return runs


def format_llm(runs: list[TierRun]) -> str:
    lines = ["llm tiers (first token from request; 5 prompts after a warm-up)"]
    for r in runs:
        d = r.as_dict()
        if r.skipped:
            lines.append(f"  {r.name:40s} skipped: {r.skipped}")
            continue
        lines.append(
            f"  {r.name:40s} first token p50 {d['first_token_ms_p50']:7.1f} ms "
            f"(max {d['first_token_ms_max']:.0f})  total p50 {d['total_ms_p50']:7.1f} ms  "
            f"{d['tokens_per_s_p50']:5.1f} tok/s  ${d['cost_usd']:.5f}"
        )
    return "\n".join(lines)


def run_llm(settings: Settings, store: Any, secrets: Any) -> list[TierRun]:
    return asyncio.run(run_llm_bench(settings, store, secrets))
