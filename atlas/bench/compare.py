"""Side-by-side comparisons made in the same run as the pipeline benchmark.

Each returns a dict for `PipelineReport.comparisons`: `ratio` (or None), a one-line
`note`, `lines` of detail for the table, and the raw figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import structlog

from atlas.app import Ears
from atlas.bench.pipeline import Fixture
from atlas.bench.report import TurnSample
from atlas.bench.stats import Dist, ratio
from atlas.llm.config import LocalLLMConfig
from atlas.settings import Settings
from voice.audio import decode_audio
from voice.types import FRAME_SAMPLES, SAMPLE_RATE, AudioFrame, Utterance
from voice.vad import Endpointer

log = structlog.get_logger("atlas.bench.compare")


def run_ratio(
    base: Sequence[TurnSample], other: Sequence[TurnSample], metric: str, note: str
) -> dict[str, Any]:
    """`other` run / main run, p50 of `metric`, over the files both runs measured."""
    files = {t.file for t in other}
    a = Dist.of([m[metric] for t in base if t.file in files and metric in (m := t.metrics)])
    b = Dist.of([m[metric] for t in other if metric in (m := t.metrics)])
    if not a.n or not b.n:
        return {"ratio": None, "note": f"skipped: no turns to compare ({note})", "skipped": True}
    return {
        "ratio": _round(ratio(b.p50, a.p50)),
        "note": note,
        "lines": [
            f"main run p50 {a.p50:.0f} ms (p95 {a.p95:.0f}, n={a.n}); this run p50 "
            f"{b.p50:.0f} ms (p95 {b.p95:.0f}, n={b.n}); files: {', '.join(sorted(files))}"
        ],
        "main_ms": a.as_dict(),
        "other_ms": b.as_dict(),
        "files": sorted(files),
    }


def hangover_sweep(
    ears: Ears, settings: Settings, fixtures: Sequence[Fixture], hangovers: Sequence[int]
) -> dict[str, Any]:
    """Utterances per fixture at each hangover vs the manifest's count (VAD + endpointer).

    Silero runs once per file; only the endpointer is re-run per hangover. Also yields
    the VAD + endpointer CPU per 32 ms frame."""
    per: dict[int, dict[str, int]] = {h: {} for h in hangovers}
    cpu_s, frames_done = 0.0, 0
    vad_cpu_s, vad_frames = 0.0, 0
    speech = [f for f in fixtures if f.expected_turns > 0 and f.path.is_file()]
    for fx in speech:
        audio = decode_audio(fx.path)
        # thread_time: this thread's CPU only; the process also hosts idle model threads.
        c0 = time.thread_time()
        frames, probs = _frames_and_probs(ears, audio.samples, settings)
        vad_cpu_s += time.thread_time() - c0
        vad_frames += len(frames)
        for h in hangovers:
            ep = Endpointer(replace(settings.endpointer, hangover_ms=h), settings.vad)
            c0 = time.thread_time()
            events = [e for fr, p in zip(frames, probs, strict=True) for e in ep.process(fr, p)]
            events += ep.flush()
            cpu_s += time.thread_time() - c0
            frames_done += len(frames)
            per[h][fx.path.name] = sum(1 for e in events if isinstance(e, Utterance))
    expected = {f.path.name: f.expected_turns for f in speech}
    table: dict[str, Any] = {}
    lines = []
    for h in hangovers:
        cut = sorted(n for n, c in per[h].items() if c > expected[n])
        merged = sorted(n for n, c in per[h].items() if c < expected[n])
        table[str(h)] = {"cut_too_early": cut, "merged_or_missed": merged, "counts": per[h]}
        lines.append(
            f"hangover {h} ms: {len(cut)}/{len(speech)} files cut too early "
            f"{cut or ''}; {len(merged)} merged/missed {merged or ''}"
        )
    return {
        "ratio": None,
        "note": "utterances per fixture vs the manifest (fast, VAD + endpointer only)",
        "lines": lines,
        "hangovers": table,
        "vad_endpointer_cpu_ms_per_frame": _round(
            1000 * cpu_s / max(frames_done, 1) + 1000 * vad_cpu_s / max(vad_frames, 1), 4
        ),
    }


def _frames_and_probs(
    ears: Ears, samples: Any, settings: Settings
) -> tuple[list[AudioFrame], list[float]]:
    import numpy as np

    fi = settings.file_input
    lead = np.zeros(round(fi.lead_silence_ms * SAMPLE_RATE / 1000), np.float32)
    tail = np.zeros(round(fi.tail_silence_ms * SAMPLE_RATE / 1000), np.float32)
    padded = np.concatenate([lead, np.asarray(samples, np.float32), tail])
    n = len(padded) // FRAME_SAMPLES
    ears.vad.reset()
    frames, probs = [], []
    for i in range(n):
        chunk = padded[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
        frames.append(AudioFrame(chunk, i * FRAME_SAMPLES / SAMPLE_RATE, 0.0))
        probs.append(ears.vad.prob(chunk))
    return frames, probs


# ---------------------------------------------------------------- llama.cpp server


def server_config(local: LocalLLMConfig, base_url: str, model: str) -> LocalLLMConfig:
    return replace(local, backend="openai", base_url=base_url, model=model)


def _round(v: float, digits: int = 2) -> float | None:
    return None if math.isnan(v) else round(v, digits)
