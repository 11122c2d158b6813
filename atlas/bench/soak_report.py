"""What a soak measured: per-turn outcomes, per-window latency and the process's vitals.

Growth is judged after the warm-up (`settled_after` turns): RSS may rise while caches
fill in the first turns; after that it must stay within `max_rss_growth` and file
descriptors and OS threads must not grow at all.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from atlas.bench.stats import percentile
from atlas.turn import TurnRecord

TIERS = ("skill", "local", "haiku", "agent", "persona")
SLACK = 2
"""Descriptors or threads that may come and go between samples without being growth:
the HTTP client's keep-alive pool holds a connection or two more or less, and the
default executor starts its threads lazily."""


@dataclass(frozen=True)
class Vitals:
    rss_mb: float
    fds: int
    threads: int


@dataclass(frozen=True)
class SoakTurn:
    file: str
    kind: str
    """What the fixture asks for: skill, local, home or cloud."""
    fault: str
    """The case of the fault matrix the fake cloud played ('none' when not a cloud turn)."""
    tier: str | None
    """Who answered (skill, local, haiku, agent, persona...)."""
    answered: bool
    """Something was said: the answer, a line, the filler, or (a barge-in) its first sound."""
    deadline_missed: str | None
    interrupted: str | None
    first_sound_ms: float | None
    """End of speech (before Whisper) -> the first sample of the filler or the answer."""
    turn_ms: float

    @staticmethod
    def of(rec: TurnRecord, file: str, kind: str, fault: str, t0: float, t1: float) -> SoakTurn:
        heard = rec.since_speech_end_ms
        sounds = [heard[k] for k in ("filler_first_sample", "first_answer_sample") if k in heard]
        return SoakTurn(
            file=file,
            kind=kind,
            fault=fault,
            tier=rec.tier,
            answered=bool(rec.heard.strip() or rec.filler or sounds),
            deadline_missed=rec.deadline_missed,
            interrupted=rec.interrupted,
            first_sound_ms=min(sounds) if sounds else None,
            turn_ms=(t1 - t0) * 1000,
        )


@dataclass
class SoakReport:
    window: int
    turns: list[SoakTurn] = field(default_factory=list)
    vitals: list[tuple[int, Vitals]] = field(default_factory=list)
    """(turns done, vitals) every `window` turns, and at the end."""
    settled_after: int = 100
    max_rss_growth: float = 0.05

    @property
    def answered(self) -> int:
        return sum(t.answered for t in self.turns)

    @property
    def deadline_misses(self) -> int:
        return sum(t.deadline_missed is not None for t in self.turns)

    def _settled(self) -> tuple[Vitals, Vitals] | None:
        """Vitals at the end of the warm-up (or the first sample after it) and at the end."""
        after = [v for n, v in self.vitals if n >= min(self.settled_after, self.vitals[-1][0])]
        return (after[0], after[-1]) if len(after) >= 2 else None

    def growth(self) -> dict[str, float]:
        pair = self._settled()
        if pair is None:
            return {}
        a, b = pair
        return {
            "rss_growth_pct": round((b.rss_mb - a.rss_mb) / a.rss_mb * 100, 2),
            "fd_growth": b.fds - a.fds,
            "thread_growth": b.threads - a.threads,
        }

    def problems(self) -> list[str]:
        """Each target missed, as one line (empty: the soak held)."""
        out = []
        if self.answered < len(self.turns):
            out.append(f"{len(self.turns) - self.answered} turns were not answered")
        g = self.growth()
        if g.get("rss_growth_pct", 0.0) > self.max_rss_growth * 100:
            out.append(f"RSS grew {g['rss_growth_pct']}% after turn {self.settled_after}")
        if g.get("fd_growth", 0) > SLACK:
            out.append(f"{g['fd_growth']} more open file descriptors at the end")
        if g.get("thread_growth", 0) > SLACK:
            out.append(f"{g['thread_growth']} more threads at the end")
        return out

    def rows(self) -> list[dict[str, Any]]:
        marks = dict(self.vitals)
        rows = []
        for start in range(0, len(self.turns), self.window):
            chunk = self.turns[start : start + self.window]
            by_tier: dict[str, list[float]] = defaultdict(list)
            for t in chunk:
                if t.first_sound_ms is not None and t.interrupted != "barge_in":
                    by_tier[t.tier or "none"].append(t.first_sound_ms)
            end = start + len(chunk)
            v = marks.get(end)
            rows.append(
                {
                    "turns": f"{start + 1}-{end}",
                    "answered": sum(t.answered for t in chunk),
                    "n": len(chunk),
                    "deadline_misses": sum(t.deadline_missed is not None for t in chunk),
                    "first_sound_ms": {
                        tier: (round(percentile(ms, 50)), round(percentile(ms, 95)), len(ms))
                        for tier, ms in sorted(by_tier.items())
                    },
                    "vitals_after": asdict(v) if v else None,
                }
            )
        return rows

    def format(self) -> str:
        head = f"{'turns':>10} {'answered':>9} {'missed':>6}  " + "  ".join(
            f"{t + ' p50/p95':>15}" for t in TIERS
        )
        lines = [
            "first sound after the end of speech (ms, Whisper included), by who answered;",
            "vitals after each window",
            head + f"  {'RSS MB':>7} {'fds':>4} {'threads':>7}",
        ]
        for r in self.rows():
            cells = []
            for tier in TIERS:
                p = r["first_sound_ms"].get(tier)
                cells.append(f"{f'{p[0]}/{p[1]}' if p else '-':>15}")
            v = r["vitals_after"] or {}
            lines.append(
                f"{r['turns']:>10} {str(r['answered']) + '/' + str(r['n']):>9} "
                f"{r['deadline_misses']:>6}  " + "  ".join(cells)
                + f"  {v.get('rss_mb', 0):>7.0f} {v.get('fds', 0):>4} {v.get('threads', 0):>7}"
            )  # fmt: skip
        start = self.vitals[0][1] if self.vitals else None
        if start:
            lines.append(f"{'start':>10}  RSS {start.rss_mb:.0f} MB, {start.fds} fds, "
                         f"{start.threads} threads (before the first turn)")  # fmt: skip
        lines.append(self._summary())
        return "\n".join(lines)

    def _summary(self) -> str:
        faults: dict[str, int] = defaultdict(int)
        for t in self.turns:
            faults[t.fault] += 1
        g = self.growth()
        held = "held" if not self.problems() else "NOT held: " + "; ".join(self.problems())
        return (
            f"turns {len(self.turns)}, answered {self.answered}, deadline misses "
            f"{self.deadline_misses}; after turn {self.settled_after}: {g}; faults "
            f"{dict(sorted(faults.items()))}\nsoak {held}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "turns": len(self.turns),
            "answered": self.answered,
            "deadline_misses": self.deadline_misses,
            "growth_after_settling": self.growth(),
            "settled_after": self.settled_after,
            "problems": self.problems(),
            "windows": self.rows(),
            "vitals": [{"turns_done": n, **asdict(v)} for n, v in self.vitals],
            "per_turn": [asdict(t) for t in self.turns],
        }
