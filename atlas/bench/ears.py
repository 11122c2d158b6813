"""Benchmark of the ears: VAD CPU per frame, STT time, idle CPU, peak RSS, WER.

Measures only. Absolute numbers on shared machines are noisy; the report carries the
machine facts next to them.
"""

from __future__ import annotations

import asyncio
import csv
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atlas.app import Ears
from atlas.bench.stats import percentile
from atlas.settings import PROJECT_ROOT
from voice.audio import DecodedAudio, FileSource, decode_audio
from voice.textnorm import word_error_rate
from voice.types import FRAME_SAMPLES, SAMPLE_RATE, AudioFrame
from voice.vad import endpoint_stream

SHARED_AUDIO = PROJECT_ROOT.parent / "shared" / "audio"
FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "audio"


@dataclass
class EarsReport:
    vad_cpu_ms_per_frame: float = 0.0
    vad_frames: int = 0
    stt_command_file: str = ""
    stt_command_audio_s: float = 0.0
    stt_ms: list[float] = field(default_factory=list)
    idle_cpu_pct_of_core: float = 0.0
    idle_seconds: float = 0.0
    transcribe_peak_rss_mb: float = 0.0
    wer: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.stt_ms:
            d["stt_ms_p50"] = statistics.median(self.stt_ms)
            d["stt_ms_max"] = max(self.stt_ms)
        return d


def measure_vad(ears: Ears, audio: DecodedAudio, repeats: int = 3) -> tuple[float, int]:
    """CPU ms per 32 ms frame of Silero VAD + endpointer (process time, not wall).

    The clip is repeated to about 2000 frames (64 s) so the figure is not noise.
    """
    reps = max(1, -(-2000 * FRAME_SAMPLES // max(len(audio.samples), 1)))
    samples = np.tile(audio.samples, reps)
    n = len(samples) // FRAME_SAMPLES
    frames = [samples[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(n)]
    best = float("inf")
    for _ in range(repeats):
        endpointer = ears.endpointer()
        t0 = time.process_time()
        for i, s in enumerate(frames):
            frame = AudioFrame(s, i * FRAME_SAMPLES / SAMPLE_RATE, 0.0)
            endpointer.process(frame, ears.vad.prob(s))
        best = min(best, (time.process_time() - t0) * 1000 / max(n, 1))
    return best, n


def measure_stt(ears: Ears, audio: DecodedAudio, repeats: int) -> list[float]:
    """STT ms for a whole short command (after the transcriber's warm-up)."""
    return [ears.transcriber.transcribe_sync(audio.samples).stt_ms for _ in range(repeats)]


def measure_idle(ears: Ears, seconds: float) -> float:
    """% of one core used while listening to silence fed at real-time pace."""
    rng = np.random.default_rng(0)
    silence = (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 1e-4).astype(np.float32)
    audio = DecodedAudio(silence, SAMPLE_RATE, 1, seconds, ())

    async def run() -> None:
        source = FileSource(audio, realtime=True)
        async for _ in endpoint_stream(source.frames(), ears.vad, ears.endpointer()):
            pass

    c0, w0 = time.process_time(), time.perf_counter()
    asyncio.run(run())
    return 100 * (time.process_time() - c0) / (time.perf_counter() - w0)


def measure_transcribe_rss(files: list[Path]) -> float:
    """Peak RSS (MB) of a real `atlas transcribe` process on the given files."""
    cmd = [sys.executable, "-m", "atlas.cli", "transcribe", *map(str, files)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024  # Linux reports kB


def stated_clips() -> list[tuple[Path, str]]:
    """(file, transcript) for the shared recordings whose transcript is stated."""
    manifest = SHARED_AUDIO / "manifest.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        (SHARED_AUDIO / r["file"], r["transcript"])
        for r in rows
        if r.get("transcript_basis") == "stated"
    ]


def measure_wer(ears: Ears) -> dict[str, Any]:
    """Word error rate of the whole pipeline (VAD + STT) over the stated clips."""
    from atlas.hearing import transcribe_file

    async def text_of(path: Path) -> str:
        return " ".join([t.text async for t in transcribe_file(ears, path)])

    per_file: dict[str, dict[str, Any]] = {}
    errors = words = 0.0
    for path, ref in stated_clips():
        hyp = asyncio.run(text_of(path))
        wer = word_error_rate(ref, hyp, numbers_to_words=True)
        n = len(ref.split())
        errors += wer * n
        words += n
        per_file[path.name] = {"ref": ref, "hyp": hyp, "wer": round(wer, 3)}
    overall = errors / words if words else float("nan")
    return {"overall": round(overall, 4), "words": int(words), "files": per_file}


def command_clip() -> Path:
    """A ~2 s spoken command: the real recording if present, else our own fixture."""
    real = SHARED_AUDIO / "ps_goforward.wav"
    return real if real.is_file() else FIXTURES / "local_what_time.wav"


def run_ears_bench(ears: Ears, repeats: int, idle_s: float, rss: bool) -> EarsReport:
    report = EarsReport()
    clip = command_clip()
    audio = decode_audio(clip)
    report.vad_cpu_ms_per_frame, report.vad_frames = measure_vad(ears, audio)
    report.stt_command_file = clip.name
    report.stt_command_audio_s = round(audio.duration_s, 2)
    report.stt_ms = [round(x, 1) for x in measure_stt(ears, audio, repeats)]
    report.idle_seconds = idle_s
    report.idle_cpu_pct_of_core = round(measure_idle(ears, idle_s), 2)
    if rss:
        report.transcribe_peak_rss_mb = round(measure_transcribe_rss([clip]), 1)
    report.wer = measure_wer(ears)
    return report


def format_ears(report: EarsReport) -> str:
    d = report.as_dict()
    lines = [
        "ears (VAD + endpointer + STT)",
        f"  VAD + endpointer CPU per 32 ms frame : {report.vad_cpu_ms_per_frame:.3f} ms"
        f"  ({report.vad_frames} frames, best of 3)",
        f"  STT on {report.stt_command_file} ({report.stt_command_audio_s:.1f} s): "
        f"p50 {d.get('stt_ms_p50', float('nan')):.0f} ms, "
        f"p95 {percentile(report.stt_ms, 95):.0f} ms, "
        f"max {d.get('stt_ms_max', float('nan')):.0f} ms"
        f"  (n={len(report.stt_ms)})",
        f"  listening to silence ({report.idle_seconds:.0f} s real time): "
        f"{report.idle_cpu_pct_of_core:.2f}% of one core",
    ]
    if report.transcribe_peak_rss_mb:
        lines.append(
            f"  peak RSS of `atlas transcribe`       : {report.transcribe_peak_rss_mb:.0f} MB"
        )
    wer = report.wer
    if wer.get("words"):
        lines.append(
            f"  WER over {len(wer['files'])} stated clips ({wer['words']} words): "
            f"{100 * wer['overall']:.1f}%"
        )
        for name, r in wer["files"].items():
            lines.append(f"    {name:34s} wer {r['wer']:.2f}  heard: {r['hyp']}")
    else:
        lines.append("  WER: skipped (../shared/audio not present)")
    return "\n".join(lines)
