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
    p.add_argument("mode", nargs="?", default="ears", choices=["ears"], help="what to measure")
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
        from atlas.app import build_ears, build_store
        from atlas.bench.ears import format_ears, run_ears_bench

        ears = build_ears(settings, build_store(settings))
        try:
            report = run_ears_bench(ears, args.repeats, args.idle_seconds, not args.no_rss)
        finally:
            ears.close()
    except (SettingsError, ModelError) as e:
        print(f"atlas bench: {e}", file=sys.stderr)
        return 2
    facts = machine_facts()
    print(f"machine: {facts}")
    stt = settings.stt
    print(f"stt model: {stt.model} ({stt.compute_type}, {stt.cpu_threads} threads)")
    print(format_ears(report))
    if args.json:
        args.json.write_text(
            json.dumps({"machine": facts, "ears": report.as_dict()}, indent=2), encoding="utf-8"
        )
    return 0
