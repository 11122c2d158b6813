"""The pipeline benchmark's report: per-turn samples, the per-tier summary, the table, the
JSON document, and the `--check` against `bench.latency_targets_ms`.

JSON schema (``atlas bench --json FILE``), version ``atlas-bench/1``::

    {
      "schema": "atlas-bench/1",
      "mode": "pipeline",                       # or "router", "llm", "ears"
      "machine": {"cpus": int, "machine": str, "python": str,
                  "loadavg_1_5_15": [float, float, float], "models": {str: str}},
      "setup": {"repeats": int, "files": [str], "cloud": "fake" | "live" | "off",
                "hangover_ms": int, "profile": {...}},        # how the run was made
      "turns": [                                # one record per measured turn
        {"file": str, "repeat": int, "turn": int, "tier": str | null,
         "transcript": str, "addressed": bool, "filler": str | null, "answer": str,
         "interrupted": str | null, "cost_usd": float,
         "stt_ms": float | null,                # STT engine wall time for this turn
         "stt_audio_s": float | null,           # seconds of audio it transcribed
         "timestamps": {stage: float},          # monotonic seconds, atlas.turn.STAGES
         "since_speech_end_ms": {stage: float}, # the same, ms after the end of speech
         "metrics": {metric: float},            # stats.METRICS, ms; absent = did not happen
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
      "comparisons": {name: {"ratio": float | null, "note": str, ...details}},
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

from atlas.bench.stats import METRICS, Dist, stage_deltas
from atlas.settings import LatencyTargets
from atlas.turn import TurnRecord

SCHEMA = "atlas-bench/1"
TIER_ORDER = ("skill", "home", "local", "haiku", "agent")
"""`skill`: answered by a deterministic local handler, no LLM (reported apart); `home`:
a device request answered through Home Assistant (or its honest line)."""


@dataclass(frozen=True)
class TurnSample:
    """One measured turn: the daemon's TurnRecord plus where it came from."""

    file: str
    repeat: int
    record: TurnRecord
    stt_ms: float | None = None
    stt_audio_s: float | None = None
    audio: tuple[tuple[str, float, float], ...] = ()
    """(label, first sample, end) of what the sink played in this turn, monotonic s."""

    @property
    def tier(self) -> str | None:
        return self.record.tier

    @property
    def metrics(self) -> dict[str, float]:
        return stage_deltas(self.record.timestamps)

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

    def stt_dist(self) -> Dist:
        return Dist.of([t.stt_ms for t in self.turns if t.stt_ms is not None])

    def stt_rtf(self) -> float:
        pairs = [(t.stt_ms, t.stt_audio_s) for t in self.turns if t.stt_ms and t.stt_audio_s]
        audio = sum(a for _, a in pairs)
        return sum(ms / 1000 for ms, _ in pairs) / audio if audio else float("nan")

    def measured(self) -> dict[str, float]:
        """The figures `--check` knows by target name."""
        tiers = tier_summary(self.turns)
        out: dict[str, float] = dict(self.extra_measured)
        if "local" in tiers:
            out["local_voice_to_voice_p50"] = tiers["local"]["first_answer_sample"].p50
        cloud = [
            m["filler_first_sample"]
            for t in self.turns
            if t.tier in ("haiku", "agent") and "filler_first_sample" in (m := t.metrics)
        ]
        if cloud:
            out["cloud_filler_p50"] = Dist.of(cloud).p50
        stt = self.stt_dist()
        if stt.n:
            out["stt_p50"] = stt.p50
            out["stt_2s_command"] = stt.p50
        return out

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
            "comparisons": self.comparisons,
            "measured": {k: _num(v, 3) for k, v in self.measured().items()},
            "check": [r.as_dict() for r in check],
        }


def format_pipeline(report: PipelineReport) -> str:
    tiers = tier_summary(report.turns)
    lines = [
        f"pipeline: {len(report.turns)} turns over {len(report.setup.get('files', []))} files"
        f" x {report.setup.get('repeats')} repeats"
        f"{' (after a warm-up pass)' if report.setup.get('warmup') else ''};"
        f" cloud: {report.setup.get('cloud')}",
        "  ms after the end of speech (stt_wait, routing: step durations)",
    ]
    for tier, metrics in tiers.items():
        n = sum(1 for s in report.turns if s.tier == tier and s.record.addressed)
        lines.append(f"  [{tier}] {n} turns")
        lines.append(f"    {'metric':22s} {'p50':>8s} {'p95':>8s} {'max':>8s} {'n':>4s}")
        for key, _ in METRICS:
            d = metrics[key]
            if d.n:
                lines.append(f"    {key:22s} {d.p50:8.0f} {d.p95:8.0f} {d.max:8.0f} {d.n:4d}")
    stt = report.stt_dist()
    lines.append(
        f"  STT engine time p50 {_fmt(stt.p50)} ms, p95 {_fmt(stt.p95)} ms (n={stt.n});"
        f" RTF stt {_fmt(report.stt_rtf(), 3)}, tts {_fmt(report.tts_rtf, 3)}"
    )
    cost = sum(t.record.cost_usd for t in report.turns)
    if report.setup.get("cloud") == "live":
        lines.append(f"  cost of cloud turns: ${cost:.5f}")
    if report.comparisons:
        lines.append("comparisons (same run, side by side)")
        for name, c in report.comparisons.items():
            r = c.get("ratio")
            shown = "skipped" if c.get("skipped") else "-" if r is None else f"{r:.2f}x"
            lines.append(f"  {name:34s} {shown:>8s}  {c.get('note', '')}")
            for detail in c.get("lines", []):
                lines.append(f"      {detail}")
    return "\n".join(lines)


def _fmt(v: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def _num(v: float, digits: int) -> float | None:
    return None if math.isnan(v) else round(v, digits)
