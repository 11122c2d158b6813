"""PNG plots of a pipeline run: a waterfall of one representative turn per tier and the
CDF of voice-to-voice latency per tier. matplotlib with the Agg backend (no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: a headless box has no display

import matplotlib.pyplot as plt
import numpy as np

from atlas.bench.pipeline import Slowest
from atlas.bench.report import TurnSample, tier_summary
from voice.types import SAMPLE_RATE

_BARS: tuple[tuple[str, str, str, str], ...] = (
    ("speech", "speech_start", "speech_end", "#9e9e9e"),
    ("hangover (end-of-turn)", "speech_end", "end_of_turn", "#bdbdbd"),
    ("STT after end-of-turn", "end_of_turn", "transcript", "#5c6bc0"),
    ("routing", "transcript", "route", "#26a69a"),
    ("LLM to first token", "route", "first_token", "#ffa726"),
    ("chunker", "first_token", "first_chunk", "#8d6e63"),
    ("TTS to first answer sample", "first_chunk", "first_answer_sample", "#ab47bc"),
)


def representative(samples: Sequence[TurnSample], tier: str) -> TurnSample | None:
    """The turn of `tier` whose voice-to-voice latency is closest to the tier's median."""
    summary = tier_summary(samples).get(tier)
    if summary is None:
        return None
    key = "heard_first_sound" if summary["heard_first_sound"].n else "first_sound"
    median = summary[key].p50
    candidates = [s for s in samples if s.tier == tier and key in s.metrics]
    if not candidates:
        return None
    return min(candidates, key=lambda s: abs(s.metrics[key] - median))


def plot_waterfall(sample: TurnSample, path: Path) -> Path:
    """Each stage a bar on a ms-after-end-of-speech axis; filler and answer audio too."""
    ts = sample.record.timestamps
    end = ts["speech_end"]
    rows: list[tuple[str, float, float, str]] = []
    heard = sample.heard
    if heard is not None and sample.zero_at is not None:
        # The axis counts from the end of speech in the audio; the VAD's own end of
        # speech (the clocks' zero) is drawn against it.
        audio_end = sample.zero_at + heard.speech_end_s
        rows.append(("VAD end of speech vs audio", 0.0, (end - audio_end) * 1000, "#e0e0e0"))
        if heard.first_sound_ms is not None:
            at = heard.first_sound_ms
            rows.append(("first audible sample (audio)", at, at + 1.0, "#000000"))
        end = audio_end
    for label, first, last, color in _BARS:
        if first in ts and last in ts:
            rows.append((label, (ts[first] - end) * 1000, (ts[last] - end) * 1000, color))
    for kind, start, stop in sample.audio:
        color = "#ef5350" if kind == "filler" else "#42a5f5"
        rows.append((f"{kind} audio", (start - end) * 1000, (stop - end) * 1000, color))
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.6))
    for i, (_, a, b, color) in enumerate(rows):
        ax.barh(i, max(b - a, 1.0), left=a, color=color, edgecolor="black", linewidth=0.4)
        ax.text(b, i, f" {b:.0f}", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xlabel("ms after the end of speech")
    title = sample.record.transcript[:60]
    ax.set_title(f'{sample.tier}: {sample.file} - "{title}"', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_cdf(samples: Sequence[TurnSample], path: Path) -> Path:
    """Empirical CDF of end of speech -> first audible sample (from the audio), per tier."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for tier in tier_summary(samples):
        picked = [s.metrics.get("heard_first_sound") for s in samples if s.tier == tier]
        values = np.sort(np.asarray([v for v in picked if v is not None], dtype=np.float64))
        if values.size == 0:
            continue
        y = np.arange(1, values.size + 1) / values.size
        ax.step(values, y, where="post", label=f"{tier} (n={values.size})")
    ax.axvline(0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xlabel("voice-to-voice, from the audio: end of speech -> first audible sample (ms)")
    ax.set_ylabel("fraction of turns")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_waveforms(slowest: Slowest, path: Path) -> Path:
    """Input and reply of the slowest turn on one time axis: where the silence was."""
    sample = slowest.sample
    heard = sample.heard
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4.8), sharex=True)
    t_in = np.arange(slowest.input.size) / SAMPLE_RATE
    t_out = np.arange(slowest.reply.size) / slowest.reply_rate
    top.plot(t_in, slowest.input, linewidth=0.4, color="#616161")
    bottom.plot(t_out, slowest.reply, linewidth=0.4, color="#1e88e5")
    for span in slowest.speech.spans:
        top.axvspan(span.start_s, span.end_s, color="#ffe082", alpha=0.4)
    if heard is not None:
        for ax in (top, bottom):
            ax.axvline(heard.speech_end_s, color="black", linestyle="--", linewidth=0.8)
            if heard.first_sound_s is not None:
                ax.axvline(heard.first_sound_s, color="#d81b60", linewidth=0.8)
        gap = heard.first_sound_ms
        shown = "no reply" if gap is None else f"{gap:.0f} ms"
        top.set_title(
            f'slowest turn: {sample.file} [{sample.tier}] "{sample.record.transcript[:50]}"'
            f" - end of speech (dashed) to first audible reply (red): {shown}",
            fontsize=8,
        )
    top.set_ylabel("input")
    bottom.set_ylabel("reply")
    bottom.set_xlabel("seconds into the input file (the reply recording is time-aligned)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(
    samples: Sequence[TurnSample], folder: Path, slowest: Slowest | None = None
) -> list[Path]:
    """waterfall_<tier>.png for each tier answered, cdf_voice_to_voice.png, and
    waveforms_slowest.png (input and reply of the slowest turn)."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for tier in tier_summary(samples):
        rep = representative(samples, tier)
        if rep is not None:
            out.append(plot_waterfall(rep, folder / f"waterfall_{tier}.png"))
    out.append(plot_cdf(samples, folder / "cdf_voice_to_voice.png"))
    if slowest is not None:
        out.append(plot_waveforms(slowest, folder / "waveforms_slowest.png"))
    return out
