"""`atlas bench` / scripts/voice_latency_benchmark.py: parse, run, print, optionally save.

Modes: `pipeline` (default; fixtures or the given files through the daemon's pipeline),
`ears`, `router`, `llm`, `soak` (many turns with every fault in one process; exits 1
when a turn went unanswered or memory, file descriptors or threads grew). The benchmark
measures and never asserts; `--check` compares what it measured with
`bench.latency_targets_ms` and exits 1 naming each target missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from atlas.bench.report import SCHEMA, check_targets, format_check, missed
from atlas.logs import configure_logging
from atlas.modelstore import ModelError
from atlas.settings import Settings, SettingsError, load_settings

MODES = ("pipeline", "ears", "router", "llm", "soak")
EXIT_MISSED = 1
EXIT_USAGE = 2


def machine_facts(settings: Settings | None = None) -> dict[str, Any]:
    """Where the numbers were taken: they mean little without it."""
    load = os.getloadavg()
    facts: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "loadavg_1_5_15": [round(x, 2) for x in load],
    }
    if settings is not None:
        local = settings.llm.local
        facts["models"] = {
            "stt": f"{settings.stt.model} ({settings.stt.compute_type}, "
            f"{settings.stt.cpu_threads} threads)",
            "tts": settings.tts.voice,
            "local_llm": f"{local.backend}: embedded {local.embedded_model} / server {local.model}",
            "haiku": settings.llm.anthropic.haiku.model,
            "agent": settings.llm.anthropic.agent.model,
        }
    return facts


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="atlas bench",
        description="Measure ATLAS's latency (never asserts). "
        "MODE is pipeline (default), ears, router, llm or soak; "
        "pipeline takes audio files/folders.",
    )
    p.add_argument("args", nargs="*", metavar="[MODE] [FILE|DIR ...]", help="mode, then inputs")
    p.add_argument("--config", type=Path, help="config file")
    p.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the report as JSON (schema atlas-bench/1: see atlas/bench/report.py)",
    )
    p.add_argument("--check", action="store_true", help="exit 1 if a latency target is missed")
    p.add_argument("--repeats", type=int, help="repetitions (pipeline 2, --quick 1, ears 5)")
    g = p.add_argument_group("pipeline")
    g.add_argument("--plot", type=Path, metavar="DIR", help="write waterfall and CDF PNGs")
    g.add_argument("--out-dir", type=Path, help="write each file's reply WAV (last repeat)")
    g.add_argument("--live", action="store_true", help="real Anthropic API (ANTHROPIC_API_KEY)")
    g.add_argument("--no-wake", action="store_true", help="treat every utterance as for ATLAS")
    g.add_argument("--no-warmup", action="store_true", help="skip the warm-up pass")
    g.add_argument("--no-compare", action="store_true", help="skip the comparison runs")
    g.add_argument(
        "--quick",
        action="store_true",
        help="one fixture per kind and two real recordings, once, no comparisons (< 2 min)",
    )
    g.add_argument(
        "--level-dbfs",
        type=float,
        default=-40.0,
        help="a reply sample at or above this level counts as audible (default -40)",
    )
    g.add_argument("--haiku-first-token-ms", type=float, default=500.0, help="fake haiku latency")
    g.add_argument("--agent-first-token-ms", type=float, default=6000.0, help="fake agent latency")
    g.add_argument("--tokens-per-s", type=float, default=50.0, help="fake cloud token rate")
    g.add_argument(
        "--no-llama-server",
        dest="with_llama_server",
        action="store_false",
        help="skip the run with the real llama.cpp server as the local tier",
    )
    g.add_argument("--with-llama-server", action="store_true", help=argparse.SUPPRESS)
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("soak")
    g.add_argument("--turns", type=int, default=1000, help="soak: turns to run (default 1000)")
    g.add_argument("--window", type=int, default=50, help="soak: vitals every N turns (50)")
    g = p.add_argument_group("router / ears")
    g.add_argument("--tsv", type=Path, help="router: labelled TSV (default: the held-out set)")
    g.add_argument("--idle-seconds", type=float, default=10.0, help="ears: silence in real time")
    g.add_argument("--no-rss", action="store_true", help="ears: skip the RSS run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rest = list(args.args)
    args.mode = rest.pop(0) if rest and rest[0] in MODES else "pipeline"
    args.inputs = [Path(x) for x in rest]
    if args.inputs and args.mode != "pipeline":
        print(f"atlas bench: {args.mode} takes no files: {rest[0]}", file=sys.stderr)
        return EXIT_USAGE
    if args.mode == "soak" and not (1 <= args.window <= args.turns <= 1_000_000):
        print("atlas bench: soak needs 1 <= --window <= --turns <= 1000000", file=sys.stderr)
        return EXIT_USAGE
    if args.repeats is not None and args.repeats < 1:
        print("atlas bench: --repeats must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if not (math.isfinite(args.level_dbfs) and -120 <= args.level_dbfs <= 0):
        print("atlas bench: --level-dbfs must be between -120 and 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = load_settings(args.config)
        configure_logging("error", settings.logging.format)  # the table is the output
        text, data, measured = _run_mode(args, settings)
    except (SettingsError, ModelError, ValueError, RuntimeError) as e:
        print(f"atlas bench: {e}", file=sys.stderr)
        return EXIT_USAGE
    code = finish(args.mode, text, data, measured, settings, json_path=args.json, check=args.check)
    if args.mode == "soak" and data["problems"]:
        return EXIT_MISSED
    return code


def finish(
    mode: str,
    text: str,
    data: Any,
    measured: Mapping[str, float],
    settings: Settings,
    *,
    json_path: Path | None,
    check: bool,
) -> int:
    """Print the report, write the JSON, run the check. Returns the exit code."""
    facts = machine_facts(settings)
    results = check_targets(
        settings.bench.latency_targets_ms, measured, settings.endpointer.hangover_ms
    )
    print(f"machine: {facts}")
    print(text)
    if check:
        print(format_check(results))
    if json_path:
        doc: dict[str, Any]
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            doc = {**data, "machine": facts, "check": [r.as_dict() for r in results]}
        else:
            doc = {
                "schema": SCHEMA,
                "mode": mode,
                "machine": facts,
                mode: data,
                "measured": {k: round(v, 3) for k, v in measured.items()},
                "check": [r.as_dict() for r in results],
            }
        json_path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    bad = missed(results) if check else []
    if bad:
        names = ", ".join(f"{r.target} ({r.measured:.1f} > {r.limit_ms:.1f})" for r in bad)
        print(f"atlas bench: missed targets: {names}", file=sys.stderr)
        return EXIT_MISSED
    return 0


def _run_mode(args: argparse.Namespace, settings: Settings) -> tuple[str, Any, dict[str, float]]:
    if args.mode == "pipeline":
        from atlas.bench.run import run_pipeline_mode

        return run_pipeline_mode(args, settings, machine_facts(settings))

    if args.mode == "soak":
        from atlas.bench.soak import run_soak

        def progress(done: int, v: Any) -> None:
            print(f"soak: {done}/{args.turns} turns, RSS {v.rss_mb:.0f} MB, {v.fds} fds, "
                  f"{v.threads} threads", file=sys.stderr, flush=True)  # fmt: skip

        soak = asyncio.run(run_soak(settings, args.turns, window=args.window, progress=progress))
        return soak.format(), soak.as_dict(), {}

    from atlas.app import build_ears, build_store

    store = build_store(settings)
    if args.mode == "router":
        from atlas.bench.brain import HELDOUT, format_router, run_router_bench
        from atlas.brain import build_classifier

        report = run_router_bench(settings, build_classifier(settings, store), args.tsv or HELDOUT)
        d = report.as_dict()
        measured = {
            "classify_p50": d["classify_ms_p50"],
            "classify_p99": d["classify_ms_p99"],
            "router_overhead_p50": d["router_overhead_ms_p50"],
        }
        return format_router(report), d, measured
    if args.mode == "llm":
        from atlas.bench.brain import format_llm, run_llm
        from atlas.settings import load_secrets

        runs = run_llm(settings, store, load_secrets())
        out = [r.as_dict() for r in runs]
        emb = [r for r in out if r["name"].startswith("local (embedded") and "skipped" not in r]
        llm_measured = {"embedded_first_token_p50": emb[0]["first_token_ms_p50"]} if emb else {}
        return format_llm(runs), out, llm_measured
    from atlas.bench.ears import format_ears, run_ears_bench

    ears = build_ears(settings, store)
    try:
        ears_report = run_ears_bench(ears, args.repeats or 5, args.idle_seconds, not args.no_rss)
    finally:
        ears.close()
    stt = settings.stt
    head = f"stt model: {stt.model} ({stt.compute_type}, {stt.cpu_threads} threads)\n"
    d = ears_report.as_dict()
    ears_measured = {"vad_frame_cpu": ears_report.vad_cpu_ms_per_frame}
    if "stt_ms_p50" in d:
        ears_measured["stt_2s_command"] = d["stt_ms_p50"]
    return head + format_ears(ears_report), d, ears_measured
