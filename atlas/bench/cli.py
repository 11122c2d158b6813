"""`atlas bench` / scripts/voice_latency_benchmark.py: parse, run, print, optionally save."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from atlas.logs import configure_logging
from atlas.modelstore import ModelError
from atlas.settings import SettingsError, load_settings


def machine_facts() -> dict[str, Any]:
    """Where the numbers were taken: they mean little without it."""
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "loadavg_1_5_15": [round(x, 2) for x in load],
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="atlas bench", description="Measure ATLAS's latency (never asserts)."
    )
    p.add_argument(
        "mode", nargs="?", default="ears", choices=["ears", "router", "llm"], help="what to measure"
    )
    p.add_argument("--tsv", type=Path, help="router: labelled TSV (default: the held-out set)")
    p.add_argument("--config", type=Path, help="config file")
    p.add_argument("--repeats", type=int, default=5, help="STT repetitions (default 5)")
    p.add_argument("--idle-seconds", type=float, default=10.0, help="silence fed in real time")
    p.add_argument("--no-rss", action="store_true", help="skip the `atlas transcribe` RSS run")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        configure_logging("warning", settings.logging.format)
        text, data = _run_mode(args, settings)
    except (SettingsError, ModelError) as e:
        print(f"atlas bench: {e}", file=sys.stderr)
        return 2
    facts = machine_facts()
    print(f"machine: {facts}")
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps({"machine": facts, args.mode: data}, indent=2), encoding="utf-8"
        )
    return 0


def _run_mode(args: argparse.Namespace, settings: Any) -> tuple[str, Any]:
    from atlas.app import build_ears, build_store

    store = build_store(settings)
    if args.mode == "router":
        from atlas.bench.brain import HELDOUT, format_router, run_router_bench
        from atlas.brain import build_classifier

        report = run_router_bench(settings, build_classifier(settings, store), args.tsv or HELDOUT)
        return format_router(report), report.as_dict()
    if args.mode == "llm":
        from atlas.bench.brain import format_llm, run_llm
        from atlas.settings import load_secrets

        runs = run_llm(settings, store, load_secrets())
        return format_llm(runs), [r.as_dict() for r in runs]
    from atlas.bench.ears import format_ears, run_ears_bench

    ears = build_ears(settings, store)
    try:
        ears_report = run_ears_bench(ears, args.repeats, args.idle_seconds, not args.no_rss)
    finally:
        ears.close()
    stt = settings.stt
    head = f"stt model: {stt.model} ({stt.compute_type}, {stt.cpu_threads} threads)\n"
    return head + format_ears(ears_report), ears_report.as_dict()
