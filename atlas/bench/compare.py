"""Side-by-side comparisons made in the same run as the pipeline benchmark.

Each returns a dict for `PipelineReport.comparisons`: `ratio` (or None), a one-line
`note`, `lines` of detail for the table, and the raw figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import structlog

from atlas.app import Ears
from atlas.bench.brain import bench_client
from atlas.bench.pipeline import Fixture
from atlas.bench.report import TurnSample
from atlas.bench.stats import Dist, percentile, ratio, rtf
from atlas.llm.base import LLMClient
from atlas.llm.config import LocalLLMConfig
from atlas.settings import Settings
from voice.audio import decode_audio
from voice.chunker import SentenceChunker, chunks
from voice.config import ChunkerConfig
from voice.tts import PiperSynthesizer
from voice.types import FRAME_SAMPLES, SAMPLE_RATE, AudioFrame, Utterance
from voice.vad import Endpointer

log = structlog.get_logger("atlas.bench.compare")

MULTI_SENTENCE_ANSWERS = (
    "A heat pump moves warmth instead of making it. In winter it pulls heat from the "
    "outside air and carries it indoors. That is why it uses far less power than a heater.",
    "The sky looks blue because air scatters short blue wavelengths more than red ones. "
    "Sunlight is a mix of every colour. At sunset the light travels through more air, "
    "so the reds win.",
    "For dinner, try a lemon and herb roast chicken. Serve it with crisp potatoes and a "
    "green salad. It takes about an hour, most of it in the oven.",
    "Lisbon rewards walking. Spend the first day in Alfama and the castle. On the second, "
    "take the tram to Belem. Keep the third for Sintra and its palaces.",
)
"""Fixed answers of 3+ sentences, synthesized both ways."""


async def _one(text: str) -> AsyncIterator[str]:
    yield text


async def streaming_vs_whole(
    tts: PiperSynthesizer, chunker: ChunkerConfig, repeats: int
) -> dict[str, Any]:
    """Time to first audio: sentence-chunked streaming vs synthesizing the whole answer.

    Both start with the complete text in hand, so the difference is Piper's work before
    the first sound; a real LLM stream only widens the gap."""
    stream_ms: list[float] = []
    whole_ms: list[float] = []
    synth_s: list[float] = []
    audio_s: list[float] = []
    for _ in range(max(1, repeats)):
        for text in MULTI_SENTENCE_ANSWERS:
            t0 = time.perf_counter()
            first: float | None = None
            async for _piece in tts.stream(chunks(_one(text), SentenceChunker(chunker))):
                if first is None:
                    first = (time.perf_counter() - t0) * 1000
            stream_ms.append(first if first is not None else float("nan"))
            t0 = time.perf_counter()
            whole = await tts.synthesize_async(text)
            elapsed = time.perf_counter() - t0
            whole_ms.append(elapsed * 1000)
            synth_s.append(elapsed)
            audio_s.append(whole.duration_s)
    s, w = Dist.of(stream_ms), Dist.of(whole_ms)
    return {
        "ratio": _round(ratio(w.p50, s.p50)),
        "note": "whole-answer / streamed time to first audio, p50 (target >= 2x)",
        "lines": [
            f"streamed first audio p50 {s.p50:.0f} ms (p95 {s.p95:.0f}); whole answer "
            f"p50 {w.p50:.0f} ms (p95 {w.p95:.0f}); {len(MULTI_SENTENCE_ANSWERS)} answers "
            f"x {max(1, repeats)}"
        ],
        "streamed_ms": s.as_dict(),
        "whole_ms": w.as_dict(),
        "tts_rtf": _round(rtf(synth_s, audio_s), 4),
    }


def filler_on_off(samples: Sequence[TurnSample]) -> dict[str, Any]:
    """Cloud turns: first sound with the filler vs the first answer sample (= no filler)."""
    cloud = [s.metrics for s in samples if s.tier in ("haiku", "agent") and s.record.addressed]
    on = [m["first_sound"] for m in cloud if "first_sound" in m]
    off = [m["first_answer_sample"] for m in cloud if "first_answer_sample" in m]
    if not on or not off:
        return {"ratio": None, "note": "skipped: no cloud turns in this run", "skipped": True}
    don, doff = Dist.of(on), Dist.of(off)
    return {
        "ratio": _round(ratio(doff.p50, don.p50)),
        "note": "cloud turns: time to first sound without / with filler, p50",
        "lines": [
            f"filler on p50 {don.p50:.0f} ms (p95 {don.p95:.0f}); filler off (first answer "
            f"sample) p50 {doff.p50:.0f} ms (p95 {doff.p95:.0f}); n={don.n}"
        ],
        "filler_on_ms": don.as_dict(),
        "filler_off_ms": doff.as_dict(),
    }


async def embedded_vs_server(
    embedded: LLMClient | None, server: LLMClient | None, system: str, why_not: str
) -> dict[str, Any]:
    """First token of the in-process model vs an OpenAI-compatible local server."""
    if embedded is None:
        return {"ratio": None, "note": "skipped: the local tier is not embedded", "skipped": True}
    emb = await bench_client("embedded", embedded, system, 64)
    emb_p50 = percentile(emb.first_token_ms, 50)
    result: dict[str, Any] = {"embedded": emb.as_dict(), "embedded_first_token_p50": emb_p50}
    if server is None:
        result.update(ratio=None, note=f"skipped: {why_not}", skipped=True)
        result["lines"] = [f"embedded first token p50 {emb_p50:.0f} ms"]
        return result
    srv = await bench_client("server", server, system, 64)
    srv_p50 = percentile(srv.first_token_ms, 50)
    result.update(
        server=srv.as_dict(),
        ratio=_round(ratio(srv_p50, emb_p50)),
        note="local server / embedded first token, p50",
        lines=[
            f"embedded first token p50 {emb_p50:.0f} ms, {emb.as_dict()['tokens_per_s_p50']} "
            f"tok/s; server p50 {srv_p50:.0f} ms, {srv.as_dict()['tokens_per_s_p50']} tok/s"
        ],
    )
    return result


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
