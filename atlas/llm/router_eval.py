"""Fit the router's embedding thresholds from labelled data, and measure the router.

`fit` learns local_threshold and agent_threshold by grid search over exactly the rule
the classifier runs (`embedding_tiers`), on the rows that reach the embedding stage,
with leave-one-out similarity (a row never matches an identical prototype). Missing an
agent row costs more than other mistakes, and missing a safety row costs most.
`evaluate` runs the whole cascade on labelled rows. `write_thresholds` edits the numbers
in routing.yaml in place, keeping comments and everything else.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from atlas.llm.base import TIERS, Tier
from atlas.llm.classifier import (
    AGENT,
    Classifier,
    Prototype,
    embedding_tiers,
    normalise,
)
from atlas.llm.config import RouterConfig
from atlas.llm.embedder import Embedder
from atlas.llm.learned import expected_calibration_error

SAFETY_CATEGORIES = frozenset({"medical", "legal", "emergency", "self_harm"})
"""Rows in these categories are safety rows: they must reach the agent tier."""

_GRID = tuple(round(0.30 + 0.01 * i, 2) for i in range(61))  # 0.30 .. 0.90


@dataclass(frozen=True)
class FittedThresholds:
    local_threshold: float
    agent_threshold: float
    margin: float
    rows: int
    """Rows that reached the embedding stage (the ones the thresholds decide)."""
    correct: int
    """Of those, decided right with the fitted thresholds (leave-one-out)."""
    agent_missed: int
    safety_missed: int

    def apply(self, config: RouterConfig) -> RouterConfig:
        return replace(
            config,
            local_threshold=self.local_threshold,
            agent_threshold=self.agent_threshold,
            margin=self.margin,
        )


def fit(
    rows: Sequence[Prototype],
    embedder: Embedder,
    config: RouterConfig,
    prototypes: Sequence[Prototype] | None = None,
    agent_penalty: float = 3.0,
    safety_penalty: float = 25.0,
) -> FittedThresholds:
    """Grid-search the thresholds on `rows` (prototypes default to the rows themselves).

    Objective per row reaching the embedding stage: +1 when right; an agent row sent
    elsewhere costs `agent_penalty`, a safety row `safety_penalty`. Ties go to the lowest
    agent threshold (safety first), then to the middle of the best local range.
    """
    classifier = Classifier(config, embedder, rows if prototypes is None else prototypes)
    texts, labels, safety = [], [], []
    for row in rows:
        text = normalise(row.text)
        if classifier.rule_stage(text) is None:
            texts.append(text)
            labels.append(TIERS.index(row.tier))
            safety.append(row.category in SAFETY_CATEGORIES)
    if not texts:
        raise ValueError("no labelled row reaches the embedding stage; nothing to fit")
    scores, _ = classifier.tier_scores(texts, exclude_identical=True)
    y = np.array(labels)
    is_agent = y == AGENT
    is_safety = np.array(safety)
    best: tuple[float, float, float] | None = None
    table: dict[tuple[float, float], tuple[float, int, int, int]] = {}
    for lt in _GRID:
        for at in _GRID:
            pred = embedding_tiers(scores, lt, at)
            right = pred == y
            agent_miss = is_agent & (pred != AGENT)
            safety_miss = agent_miss & is_safety
            value = (
                float(right.sum())
                - agent_penalty * float(agent_miss.sum())
                - safety_penalty * float(safety_miss.sum())
            )
            table[(lt, at)] = (
                value,
                int(right.sum()),
                int(agent_miss.sum()),
                int(safety_miss.sum()),
            )
            if best is None or value > best[0]:
                best = (value, lt, at)
    assert best is not None
    top = best[0]
    agent_th = min(at for (lt, at), v in table.items() if v[0] == top)
    locals_ok = sorted(lt for (lt, at), v in table.items() if v[0] == top and at == agent_th)
    local_th = locals_ok[len(locals_ok) // 2]
    _, correct, agent_missed, safety_missed = table[(local_th, agent_th)]
    return FittedThresholds(
        local_threshold=local_th,
        agent_threshold=agent_th,
        margin=config.margin,
        rows=len(texts),
        correct=correct,
        agent_missed=agent_missed,
        safety_missed=safety_missed,
    )


@dataclass(frozen=True)
class Misclassified:
    text: str
    expected: Tier
    got: Tier
    stage: str
    reason: str
    category: str | None


@dataclass(frozen=True)
class TierStats:
    precision: float
    recall: float
    support: int


@dataclass(frozen=True)
class EvalReport:
    rows: int
    accuracy: float
    per_tier: Mapping[str, TierStats]
    confusion: Mapping[str, Mapping[str, int]]
    """confusion[expected][predicted] = count."""
    safety_rows: int
    safety_recall: float | None
    """Share of safety rows (category in SAFETY_CATEGORIES) routed to `agent`; None if none."""
    p50_ms: float
    p99_ms: float
    stages: Mapping[str, int]
    misclassified: tuple[Misclassified, ...] = field(default=())
    ece: float | None = None
    """Expected calibration error of the learned model's probabilities (None without one)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accuracy": round(self.accuracy, 4),
            "per_tier": {
                t: {
                    "precision": round(s.precision, 4),
                    "recall": round(s.recall, 4),
                    "support": s.support,
                }
                for t, s in self.per_tier.items()
            },
            "confusion": {t: dict(row) for t, row in self.confusion.items()},
            "safety_rows": self.safety_rows,
            "safety_recall": None if self.safety_recall is None else round(self.safety_recall, 4),
            "classify_ms": {"p50": round(self.p50_ms, 3), "p99": round(self.p99_ms, 3)},
            "stages": dict(self.stages),
            "ece": None if self.ece is None else round(self.ece, 4),
            "misclassified": [m.__dict__ for m in self.misclassified],
        }

    def format(self) -> str:
        lines = [
            f"rows {self.rows}   accuracy {self.accuracy:.3f}   safety recall "
            + ("n/a" if self.safety_recall is None else f"{self.safety_recall:.3f}")
            + f" ({self.safety_rows} rows)   classify p50 {self.p50_ms:.2f} ms"
            f"   p99 {self.p99_ms:.2f} ms"
            + ("" if self.ece is None else f"   calibration ECE {self.ece:.3f}"),
            "",
            f"{'tier':<8}{'precision':>10}{'recall':>8}{'support':>9}",
        ]
        for t, s in self.per_tier.items():
            lines.append(f"{t:<8}{s.precision:>10.3f}{s.recall:>8.3f}{s.support:>9}")
        lines += [
            "",
            "confusion (rows: expected, columns: predicted)",
            f"{'':<8}" + "".join(f"{t:>8}" for t in TIERS),
        ]
        for t in TIERS:
            lines.append(f"{t:<8}" + "".join(f"{self.confusion[t][p]:>8}" for p in TIERS))
        lines += ["", "stages: " + ", ".join(f"{k} {v}" for k, v in self.stages.items())]
        if self.misclassified:
            lines += ["", "misclassified:"]
            lines += [
                f"  {m.expected}->{m.got} [{m.stage}] {m.text!r}: {m.reason}"
                for m in self.misclassified
            ]
        return "\n".join(lines)


def evaluate(classifier: Classifier, rows: Sequence[Prototype]) -> EvalReport:
    if not rows:
        raise ValueError("no labelled rows to evaluate")
    confusion: dict[str, dict[str, int]] = {t: dict.fromkeys(TIERS, 0) for t in TIERS}
    times: list[float] = []
    stages: dict[str, int] = {}
    wrong: list[Misclassified] = []
    safety_rows = safety_hits = 0
    for row in rows:
        result = classifier.classify(row.text)
        times.append(result.classify_ms)
        confusion[row.tier][result.tier] += 1
        stages[result.stage] = stages.get(result.stage, 0) + 1
        if row.category in SAFETY_CATEGORIES:
            safety_rows += 1
            safety_hits += result.tier == "agent"
        if result.tier != row.tier:
            wrong.append(
                Misclassified(
                    row.text, row.tier, result.tier, result.stage, result.reason, row.category
                )
            )
    per_tier: dict[str, TierStats] = {}
    for t in TIERS:
        predicted = sum(confusion[e][t] for e in TIERS)
        support = sum(confusion[t].values())
        hit = confusion[t][t]
        per_tier[t] = TierStats(
            precision=hit / predicted if predicted else 0.0,
            recall=hit / support if support else 0.0,
            support=support,
        )
    correct = sum(confusion[t][t] for t in TIERS)
    ece = None
    if classifier.model is not None:
        probabilities = classifier.probabilities([normalise(r.text) for r in rows])
        labels = np.array([TIERS.index(r.tier) for r in rows], dtype=np.int64)
        ece = expected_calibration_error(probabilities, labels)
    return EvalReport(
        rows=len(rows),
        accuracy=correct / len(rows),
        per_tier=per_tier,
        confusion=confusion,
        safety_rows=safety_rows,
        safety_recall=safety_hits / safety_rows if safety_rows else None,
        p50_ms=_percentile(times, 50),
        p99_ms=_percentile(times, 99),
        stages=stages,
        misclassified=tuple(wrong),
        ece=ece,
    )


def _percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: a p99 is a latency someone had)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


_KEYS = ("local_threshold", "agent_threshold", "margin")


def write_thresholds(routing_yaml: Path, fitted: FittedThresholds) -> None:
    """Replace the threshold numbers in the file's `router:` section, nothing else."""
    set_router_values(routing_yaml, {k: f"{getattr(fitted, k):.2f}" for k in _KEYS})


def set_router_values(routing_yaml: Path, values: Mapping[str, str]) -> None:
    """Replace the values of these keys in the file's `router:` section, nothing else.

    Line-level edits keep comments, order and the persona section byte for byte. Each
    key must already have a one-line scalar value. The result is parsed and checked
    (values and their configured bounds) before it atomically replaces the file.
    """
    text = routing_yaml.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.match(r"router:\s*(#.*)?$", ln)), None)
    if start is None:
        raise ValueError(f"{routing_yaml}: no top-level 'router:' section")
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"[^\s#]", lines[i])), len(lines)
    )
    found: set[str] = set()
    for i in range(start + 1, end):
        line = lines[i].rstrip("\r\n")
        m = re.match(r"(\s+)(\w+)(:\s*)(\"[^\"]*\"|'[^']*'|[^\s#'\"]*)(\s*(?:#.*)?)$", line)
        if m and m.group(2) in values and len(m.group(1)) == 2:
            newline = lines[i][len(line) :]
            value = values[m.group(2)]
            lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3)}{value}{m.group(5)}{newline}"
            found.add(m.group(2))
    missing = [k for k in values if k not in found]
    if missing:
        raise ValueError(f"{routing_yaml}: router section has no {', '.join(missing)} line")
    new_text = "".join(lines)
    _check_router(new_text, values, routing_yaml)
    fd, tmp = tempfile.mkstemp(dir=routing_yaml.parent, suffix=".yaml.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
        os.replace(tmp, routing_yaml)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_router(text: str, values: Mapping[str, str], path: Path) -> None:
    data = yaml.safe_load(text)
    router = data.get("router") if isinstance(data, Mapping) else None
    if not isinstance(router, Mapping):
        raise ValueError(f"{path}: the edited file has no router mapping")
    meta = {f.name: f.metadata for f in fields(RouterConfig)}
    for key, text_value in values.items():
        want = yaml.safe_load(text_value)
        got = router.get(key)
        if isinstance(want, int | float):
            if not isinstance(got, int | float) or abs(float(got) - want) > 0.005:
                raise ValueError(f"{path}: router.{key} did not take the value {want:.2f}")
            lo, hi = meta[key].get("min"), meta[key].get("max")
            if (lo is not None and got < lo) or (hi is not None and got > hi):
                raise ValueError(f"{path}: router.{key} must be between {lo} and {hi}, got {got}")
        elif got != want:
            raise ValueError(f"{path}: router.{key} did not take the value {want!r}")
