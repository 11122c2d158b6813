"""The pipeline benchmark's report: per-turn samples, the per-tier summary, the table, the
JSON document, and the `--check` against `bench.latency_targets_ms`.

JSON schema (``atlas bench --json FILE``), version ``atlas-bench/2``::

    {
      "schema": "atlas-bench/2",
      "mode": "pipeline",                       # or "router", "llm", "ears"
      "machine": {"cpus": int, "machine": str, "python": str,
                  "loadavg_1_5_15": [float, float, float], "models": {str: str}},
      "setup": {"repeats": int, "files": [str], "cloud": "fake" | "live" | "off",
                "hangover_ms": int, "profile": {...},
                "level_dbfs": float},                         # how the run was made
      "turns": [                                # one record per measured turn
        {"file": str, "repeat": int, "turn": int, "tier": str | null,
         "transcript": str, "addressed": bool, "filler": str | null, "answer": str,
         "interrupted": str | null, "cost_usd": float,
         "stt_ms": float | null,                # STT engine wall time for this turn
         "stt_audio_s": float | null,           # seconds of audio it transcribed
         "timestamps": {stage: float},          # monotonic seconds, atlas.turn.STAGES
         "since_speech_end_ms": {stage: float}, # the same, ms after the end of speech
         "metrics": {metric: float},            # stats.METRICS, ms; absent = did not happen
                                                # (heard_*: from the audio, the rest: clocks)
         "heard": {"utterance": int, "speech_end_s": float,      # from the recordings;
                   "first_sound_ms": float | null,               # negative: ATLAS began
                   "first_answer_ms": float | null} | null,      # before the speech ended
         "speech_basis": str,                   # manifest's stated end or energy end-point
         "clock_gap_ms": float | null,          # clocks minus audio, first sound
         "audio": [{"label": "filler" | "answer", "start": float, "end": float}]}
                                                # what the sink played, monotonic seconds
      ],
      "summary": {
        "tiers": {tier: {"turns": int, metric: {"n": int, "p50": float | null,
                                               "p95": float | null, "max": float | null}}},
        "stt_ms": {"n", "p50", "p95", "max"},
        "rtf": {"stt": float | null, "tts": float | null},
        "cost_usd": float
      },
      "talked_over": [{"file", "repeat", "tier", "transcript", "heard_first_sound_ms"}],
      "clock_disagreements": [{..., "clock_gap_ms": float}],    # |gap| > 50 ms
      "comparisons": {name: {"ratio": float | null, "note": str, ...details}},
                                                # each: its own run, same files, vs main
      "measured": {target_name: float},         # what --check compares
      "check": [{"target": str, "limit_ms": float, "measured": float | null,
                 "ok": bool | null}]            # null: not measured in this run
    }

Missing figures are ``null`` (JSON has no NaN). Times on shared machines are noisy:
read medians and the ratios of side-by-side comparisons first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from atlas.bench.heard import HeardReply
from atlas.bench.stats import METRICS, Dist, stage_deltas
from atlas.settings import LatencyTargets
from atlas.turn import TurnRecord

SCHEMA = "atlas-bench/2"
CLOCK_GAP_FLAG_MS = 50.0
"""A turn whose clock-based and audio-based first sound differ by more is flagged."""
TIER_ORDER = ("skill", "home", "local", "haiku", "agent")
"""`skill`: answered by a deterministic local handler, no LLM (reported apart); `home`:
a device request answered through Home Assistant (or its honest line)."""


@dataclass(frozen=True)
class TurnSample:
    """One measured turn: the daemon's TurnRecord, where it came from, and its reply as
    found in the audio (`heard`: None when this turn is not the first reply to an
    utterance of the input, e.g. the second half of an utterance cut in two)."""

    file: str
    repeat: int
    record: TurnRecord
    stt_ms: float | None = None
    stt_audio_s: float | None = None
    audio: tuple[tuple[str, float, float], ...] = ()
    """(label, first sample, end) of what the sink played in this turn, monotonic s."""
    heard: HeardReply | None = None
    speech_basis: str = ""
    run: str = "main"
    zero_at: float | None = None
    """Monotonic time of the input file's sample 0 (= the reply recording's sample 0)."""

    @property
    def tier(self) -> str | None:
        return self.record.tier

    @property
    def heard_ms(self) -> float | None:
        """End of speech -> first audible sample, from the audio (negative: talked over)."""
        return None if self.heard is None else self.heard.first_sound_ms

    @property
    def metrics(self) -> dict[str, float]:
        m = stage_deltas(self.record.timestamps)
        if self.heard is not None:
            if self.heard.first_sound_ms is not None:
                m["heard_first_sound"] = self.heard.first_sound_ms
            if self.heard.first_answer_ms is not None:
                m["heard_first_answer"] = self.heard.first_answer_ms
        return m

    @property
    def clock_gap_ms(self) -> float | None:
        """Pipeline clocks minus the audio, for the first sound (None: not comparable)."""
        m = self.metrics
        if "heard_first_sound" not in m or "first_sound" not in m:
            return None
        return m["first_sound"] - m["heard_first_sound"]

    def as_dict(self) -> dict[str, Any]:
        r = self.record.as_dict()
        return {
            "file": self.file,
            "repeat": self.repeat,
            "turn": r["turn"],
            "tier": r["tier"],
            "transcript": r["transcript"],
            "addressed": r["addressed"],
            "filler": r["filler"],
            "answer": r["answer"],
            "interrupted": r["interrupted"],
            "cost_usd": r["cost_usd"],
            "stt_ms": None if self.stt_ms is None else round(self.stt_ms, 1),
            "stt_audio_s": None if self.stt_audio_s is None else round(self.stt_audio_s, 3),
            "timestamps": r["timestamps"],
            "since_speech_end_ms": r["since_speech_end_ms"],
            "metrics": {k: round(v, 1) for k, v in self.metrics.items()},
            "heard": None if self.heard is None else self.heard.as_dict(),
            "speech_basis": self.speech_basis,
            "clock_gap_ms": None if (g := self.clock_gap_ms) is None else round(g, 1),
            "audio": [
                {"label": label, "start": round(a, 4), "end": round(b, 4)}
                for label, a, b in self.audio
            ],
        }


def tier_summary(samples: Iterable[TurnSample]) -> dict[str, dict[str, Dist]]:
    """Per tier, a Dist of every metric over the addressed turns that tier answered."""
    by_tier: dict[str, list[dict[str, float]]] = {}
    for s in samples:
        if s.record.addressed and s.tier:
            by_tier.setdefault(s.tier, []).append(s.metrics)
    ordered = sorted(by_tier, key=lambda t: (*TIER_ORDER, t).index(t))
    return {
        tier: {key: Dist.of([m[key] for m in by_tier[tier] if key in m]) for key, _ in METRICS}
        for tier in ordered
    }


@dataclass(frozen=True)
class TargetResult:
    target: str
    limit_ms: float
    measured: float | None
    """None: this run did not measure it (another mode does)."""

    @property
    def ok(self) -> bool | None:
        return None if self.measured is None else self.measured <= self.limit_ms

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "limit_ms": round(self.limit_ms, 1),
            "measured": None if self.measured is None else round(self.measured, 3),
            "ok": self.ok,
        }


def check_targets(
    targets: LatencyTargets, measured: Mapping[str, float], hangover_ms: float
) -> list[TargetResult]:
    """Each configured target against what was measured (NaN counts as not measured)."""
    out: list[TargetResult] = []
    for f in fields(targets):
        name = f.name
        if name == "cloud_filler_margin":
            continue
        limit = getattr(targets, name)
        if name == "cloud_filler_p50" and limit is None:
            stt = measured.get("stt_p50")
            if stt is None or math.isnan(stt):
                continue
            limit = hangover_ms + stt + targets.cloud_filler_margin
        value = measured.get(name)
        if value is not None and math.isnan(value):
            value = None
        out.append(TargetResult(name, float(limit), value))
    return out


def missed(results: Sequence[TargetResult]) -> list[TargetResult]:
    return [r for r in results if r.ok is False]


def format_check(results: Sequence[TargetResult]) -> str:
    lines = ["targets (bench.latency_targets_ms)"]
    for r in results:
        if r.measured is None:
            state, value = "not measured", ""
        else:
            state = "ok" if r.ok else "MISSED"
            value = f"{r.measured:9.2f}"
        lines.append(f"  {r.target:28s} <= {r.limit_ms:8.1f}  {value:>9s}  {state}")
    return "\n".join(lines)


@dataclass
class PipelineReport:
    """Everything one `atlas bench pipeline` run measured."""

    machine: dict[str, Any]
    setup: dict[str, Any]
    turns: list[TurnSample] = field(default_factory=list)
    tts_rtf: float = float("nan")
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra_measured: dict[str, float] = field(default_factory=dict)
    slowest: Any = None
    """pipeline.Slowest: the slowest turn with both recordings, for the waveform plot."""

    def stt_dist(self) -> Dist:
        return Dist.of([t.stt_ms for t in self.turns if t.stt_ms is not None])

    def stt_rtf(self) -> float:
        pairs = [(t.stt_ms, t.stt_audio_s) for t in self.turns if t.stt_ms and t.stt_audio_s]
        audio = sum(a for _, a in pairs)
        return sum(ms / 1000 for ms, _ in pairs) / audio if audio else float("nan")

    def measured(self) -> dict[str, float]:
        """The figures `--check` knows by target name (voice-to-voice from the audio)."""
        tiers = tier_summary(self.turns)
        out: dict[str, float] = dict(self.extra_measured)
        for tier in ("skill", "local"):
            if tier in tiers:
                d = tiers[tier]["heard_first_answer"]
                out[f"{tier}_voice_to_voice_p50"] = d.p50
                out[f"{tier}_voice_to_voice_p95"] = d.p95
        cloud = [
            m["heard_first_sound"]
            for t in self.turns
            if t.tier in ("haiku", "agent") and "heard_first_sound" in (m := t.metrics)
        ]
        if cloud:
            out["cloud_filler_p50"] = Dist.of(cloud).p50
        stt = self.stt_dist()
        if stt.n:
            out["stt_p50"] = stt.p50
            out["stt_2s_command"] = stt.p50
        return out

    def talked_over(self) -> list[TurnSample]:
        """Turns whose reply started before the person had finished speaking."""
        return [t for t in self.turns if (v := t.heard_ms) is not None and v < 0]

    def clock_disagreements(self, limit_ms: float = CLOCK_GAP_FLAG_MS) -> list[TurnSample]:
        """Turns where the pipeline's clocks and the audio differ by more than `limit_ms`."""
        return [t for t in self.turns if (g := t.clock_gap_ms) is not None and abs(g) > limit_ms]

    def unanswered(self) -> int:
        """Utterances in the input that got no reply turn of their own."""
        return sum(1 for t in self.turns if t.heard is None and t.record.addressed)

    def as_dict(self, check: Sequence[TargetResult] = ()) -> dict[str, Any]:
        tiers = tier_summary(self.turns)
        counts = {
            t: sum(1 for s in self.turns if s.tier == t and s.record.addressed) for t in tiers
        }
        return {
            "schema": SCHEMA,
            "mode": "pipeline",
            "machine": self.machine,
            "setup": self.setup,
            "turns": [t.as_dict() for t in self.turns],
            "summary": {
                "tiers": {
                    tier: {"turns": counts[tier], **{k: d.as_dict() for k, d in m.items()}}
                    for tier, m in tiers.items()
                },
                "stt_ms": self.stt_dist().as_dict(),
                "rtf": {"stt": _num(self.stt_rtf(), 4), "tts": _num(self.tts_rtf, 4)},
                "cost_usd": round(sum(t.record.cost_usd for t in self.turns), 6),
            },
            "talked_over": [_where(t) for t in self.talked_over()],
            "clock_disagreements": [
                {**_where(t), "clock_gap_ms": round(t.clock_gap_ms or 0.0, 1)}
                for t in self.clock_disagreements()
            ],
            "comparisons": self.comparisons,
            "measured": {k: _num(v, 3) for k, v in self.measured().items()},
            "check": [r.as_dict() for r in check],
        }


def format_pipeline(report: PipelineReport) -> str:
    tiers = tier_summary(report.turns)
    bases = sorted({t.speech_basis for t in report.turns if t.speech_basis})
    lines = [
        f"pipeline: {len(report.turns)} turns over {len(report.setup.get('files', []))} files"
        f" x {report.setup.get('repeats')} repeats"
        f"{' (after a warm-up)' if report.setup.get('warmup') else ''};"
        f" cloud: {report.setup.get('cloud')}",
        "  ms after the end of speech. heard_*: measured FROM THE AUDIO (input paced in real",
        f"  time, first reply sample >= {report.setup.get('level_dbfs', -40)} dBFS); the rest:",
        "  the pipeline's own clocks, where the time goes (stt_wait, routing: step durations).",
        *(f"  end of speech: {b}" for b in bases),
    ]
    for tier, metrics in tiers.items():
        n = sum(1 for s in report.turns if s.tier == tier and s.record.addressed)
        lines.append(f"  [{tier}] {n} turns")
        lines.append(f"    {'metric':22s} {'p50':>8s} {'p95':>8s} {'max':>8s} {'n':>4s}")
        for key, _ in METRICS:
            d = metrics[key]
            if d.n:
                lines.append(f"    {key:22s} {d.p50:8.0f} {d.p95:8.0f} {d.max:8.0f} {d.n:4d}")
    over = report.talked_over()
    lines.append(
        f"  replies that started before the speech ended: {len(over)}"
        + "".join(f"\n    {t.file}#{t.repeat}: {t.heard_ms:.0f} ms" for t in over)
    )
    lines.append(f"  turns that were not the first reply to an utterance: {report.unanswered()}")
    gaps = report.clock_disagreements()
    lines.append(
        f"  turns where clocks and audio disagree by > {CLOCK_GAP_FLAG_MS:.0f} ms: {len(gaps)}"
        + "".join(
            f"\n    {t.file}#{t.repeat} [{t.tier}]: clocks {t.clock_gap_ms:+.0f} ms vs audio"
            for t in gaps[:10]
        )
    )
    stt = report.stt_dist()
    lines.append(
        f"  STT engine time p50 {_fmt(stt.p50)} ms, p95 {_fmt(stt.p95)} ms (n={stt.n});"
        f" RTF stt {_fmt(report.stt_rtf(), 3)}, tts {_fmt(report.tts_rtf, 3)}"
    )
    cost = sum(t.record.cost_usd for t in report.turns)
    if report.setup.get("cloud") == "live":
        lines.append(f"  cost of cloud turns: ${cost:.5f}")
    if report.comparisons:
        lines.append("comparisons (each side measured in its own run, same invocation)")
        for name, c in report.comparisons.items():
            r = c.get("ratio")
            shown = "skipped" if c.get("skipped") else "-" if r is None else f"{r:.2f}x"
            lines.append(f"  {name:34s} {shown:>8s}  {c.get('note', '')}")
            for detail in c.get("lines", []):
                lines.append(f"      {detail}")
    return "\n".join(lines)


def _where(t: TurnSample) -> dict[str, Any]:
    return {
        "file": t.file,
        "repeat": t.repeat,
        "tier": t.tier,
        "transcript": t.record.transcript,
        "heard_first_sound_ms": None if (v := t.heard_ms) is None else round(v, 1),
    }


def _fmt(v: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def _num(v: float, digits: int) -> float | None:
    return None if math.isnan(v) else round(v, digits)
