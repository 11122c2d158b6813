"""What the cloud costs: the ledger's history, this month's projection, and a month
simulated from today's configured prices.

The simulation takes its token counts from the ledger's real calls when there are
enough of them (the API's own usage figures); otherwise from an estimate built from
what ATLAS really sends: the persona's system prompt, the agent's tool definitions, and
answers of the length the prompt asks for. Every figure says which it is.
"""

from __future__ import annotations

import calendar
import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from atlas.llm.budget import BudgetLedger, UsageRow
from atlas.llm.config import AnthropicConfig, CloudTierConfig

TIERS = ("local", "haiku", "agent")
CHARS_PER_TOKEN = 4.0
"""English prose in Claude's tokenizer: about 4 characters a token (an estimate)."""
QUERY_TOKENS = 15
"""A spoken request: about ten words."""
ANSWER_TOKENS = {"haiku": 100, "agent": 180}
"""The persona asks for at most four (haiku) / six (agent) spoken sentences."""
TOOL_STEP_TOKENS = 60
"""The agent's tool call, and about as much again for the tool's result."""
TOOL_SYSTEM_TOKENS = 350
"""The system prompt the API adds when tools are sent (Anthropic lists 159-530 tokens
for Claude 3 models; not measured here for newer ones)."""
MIN_LEDGER_CALLS = 10
"""Fewer real calls of a tier than this in the last 30 days: estimate instead."""


class CostError(ValueError):
    """Bad input to a cost command; the text is one line."""


# ---- history ----------------------------------------------------------------------

_FIELDS = (
    "day", "tier", "provider", "calls", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "cost_usd",
)  # fmt: skip


def history(ledger: BudgetLedger, days: int) -> list[UsageRow]:
    """Per local day, tier and provider over the last `days` days (today included)."""
    today = ledger.local_now().date()
    return ledger.usage(today - timedelta(days=days - 1), today)


def _row_dict(r: UsageRow) -> dict[str, Any]:
    d = asdict(r)
    d["day"] = r.day.isoformat()
    d["cost_usd"] = round(r.cost_usd, 6)
    return d


def format_history(rows: Sequence[UsageRow], fmt: str, days: int) -> str:
    """`fmt`: text, csv or json."""
    if fmt == "json":
        return json.dumps({"days": days, "rows": [_row_dict(r) for r in rows]})
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_row_dict(r) for r in rows)
        return out.getvalue().rstrip("\n")
    if not rows:
        return f"no cloud calls in the last {days} days"
    lines = [
        f"{'day':10}  {'tier':6} {'provider':10} {'calls':>5} {'input':>8} {'output':>7} "
        f"{'cache rd':>8} {'cache wr':>8} {'cost':>9}"
    ]
    for r in rows:
        lines.append(
            f"{r.day.isoformat():10}  {r.tier:6} {r.provider:10} {r.calls:5d} "
            f"{r.input_tokens:8d} {r.output_tokens:7d} {r.cache_read_tokens:8d} "
            f"{r.cache_write_tokens:8d} ${r.cost_usd:8.4f}"
        )
    total = math.fsum(r.cost_usd for r in rows)
    calls = sum(r.calls for r in rows)
    lines.append(
        f"{'total':10}  {'':6} {'':10} {calls:5d} {'':8} {'':7} {'':8} {'':8} ${total:8.4f}"
    )
    return "\n".join(lines)


# ---- projection --------------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    month: str
    spent_usd: float
    days_elapsed: float
    """Local days since the month began (at least 1: earlier, one day stands for it)."""
    days_in_month: int
    projected_usd: float
    monthly_limit_usd: float

    def format(self) -> str:
        over = self.projected_usd > self.monthly_limit_usd
        note = "  (over the limit: ATLAS will answer locally once it is reached)" if over else ""
        return (
            f"{self.month}: ${self.spent_usd:.4f} spent in {self.days_elapsed:.1f} of "
            f"{self.days_in_month} days; at this rate ${self.projected_usd:.2f} this month "
            f"(limit ${self.monthly_limit_usd:.2f}){note}"
        )


def project(ledger: BudgetLedger) -> Projection:
    """This month's spend so far, extended at the same daily rate to the month's end."""
    now = ledger.local_now()
    status = ledger.status()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elapsed = max(1.0, (now - start).total_seconds() / 86400)
    days_in = calendar.monthrange(now.year, now.month)[1]
    return Projection(
        month=f"{now.year:04d}-{now.month:02d}",
        spent_usd=status.spent_month,
        days_elapsed=elapsed,
        days_in_month=days_in,
        projected_usd=status.spent_month / elapsed * days_in,
        monthly_limit_usd=status.monthly_limit,
    )


# ---- simulation --------------------------------------------------------------------


@dataclass(frozen=True)
class TurnTokens:
    """One cloud turn's usage (all of an agent turn's steps together)."""

    input_tokens: float
    output_tokens: float
    source: str


@dataclass(frozen=True)
class TierCost:
    tier: str
    turns_per_month: float
    tokens: TurnTokens | None
    """None for the local tier (no cloud cost)."""
    usd_per_turn: float
    usd_per_month: float


@dataclass(frozen=True)
class Simulation:
    per_day: float
    days: int
    tiers: tuple[TierCost, ...]

    @property
    def usd_per_month(self) -> float:
        return math.fsum(t.usd_per_month for t in self.tiers)

    def format(self) -> str:
        lines = [f"{self.per_day:g} queries a day, {self.days}-day month, today's prices:"]
        for t in self.tiers:
            if t.tokens is None:
                lines.append(f"  {t.tier:6} {t.turns_per_month:7.0f} turns   $0.00 (answered here)")
                continue
            lines.append(
                f"  {t.tier:6} {t.turns_per_month:7.0f} turns x ~{t.tokens.input_tokens:.0f} in "
                f"/ {t.tokens.output_tokens:.0f} out tokens = ${t.usd_per_month:.2f}  "
                f"({t.tokens.source})"
            )
        lines.append(f"  total  ${self.usd_per_month:.2f} a month")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "per_day": self.per_day,
            "days": self.days,
            "usd_per_month": round(self.usd_per_month, 4),
            "tiers": [asdict(t) for t in self.tiers],
        }


def parse_mix(text: str) -> dict[str, float]:
    """'local=0.75,haiku=0.2,agent=0.05' -> shares of the three tiers (sum 1)."""
    mix = dict.fromkeys(TIERS, 0.0)
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or name not in mix:
            raise CostError(f"--mix wants tier=share pairs of {', '.join(TIERS)}, got {part!r}")
        try:
            share = float(value)
        except ValueError:
            raise CostError(f"--mix: {name} share is not a number: {value!r}") from None
        if not (math.isfinite(share) and 0.0 <= share <= 1.0):
            raise CostError(f"--mix: {name} share must be between 0 and 1, got {value!r}")
        mix[name] = share
    total = math.fsum(mix.values())
    if abs(total - 1.0) > 1e-6:
        raise CostError(f"--mix shares must add up to 1, not {total:g}")
    return mix


def estimated_tokens(tier: str, system_prompt: str, tool_spec_chars: int) -> TurnTokens:
    """A turn's tokens from what ATLAS sends (no memory of earlier turns)."""
    prompt = len(system_prompt) / CHARS_PER_TOKEN + QUERY_TOKENS
    answer = ANSWER_TOKENS[tier]
    if tier != "agent":
        return TurnTokens(prompt, answer, "estimate: system prompt + query")
    # Two steps: a tool call, then the answer; both carry the tools, the second also the
    # first step's call and its result.
    tools = tool_spec_chars / CHARS_PER_TOKEN + TOOL_SYSTEM_TOKENS
    return TurnTokens(
        2 * (prompt + tools) + 2 * TOOL_STEP_TOKENS,
        TOOL_STEP_TOKENS + answer,
        "estimate: 2 steps with tools",
    )


def ledger_tokens(ledger: BudgetLedger) -> dict[str, TurnTokens]:
    """Mean real usage per turn of each cloud tier over the last 30 days (enough calls)."""
    totals: dict[str, list[int]] = {}
    for r in history(ledger, 30):
        t = totals.setdefault(r.tier, [0, 0, 0])
        t[0] += r.calls
        t[1] += r.input_tokens + r.cache_read_tokens + r.cache_write_tokens
        t[2] += r.output_tokens
    return {
        tier: TurnTokens(i / n, o / n, f"ledger: mean of {n} real calls")
        for tier, (n, i, o) in totals.items()
        if n >= MIN_LEDGER_CALLS
    }


def simulate(
    per_day: float,
    mix: Mapping[str, float],
    anthropic: AnthropicConfig,
    tokens: Mapping[str, TurnTokens],
    days: int = 30,
) -> Simulation:
    """A month of `per_day` queries split by `mix`, at the configured prices.

    Cache tokens are priced as plain input: the voice prompts are below the minimum
    cacheable prefix, so nothing is cached (FACTS: Haiku 4.5 needs 4096 tokens).
    """
    if not (math.isfinite(per_day) and 0 <= per_day <= 100_000):
        raise CostError(
            f"--per-day must be a number of queries between 0 and 100000, not {per_day}"
        )
    tiers: list[TierCost] = []
    for tier in TIERS:
        turns = per_day * days * mix.get(tier, 0.0)
        if tier == "local":
            tiers.append(TierCost(tier, turns, None, 0.0, 0.0))
            continue
        cfg: CloudTierConfig = getattr(anthropic, tier)
        tok = tokens[tier]
        per_turn = (
            tok.input_tokens * cfg.input_usd_per_mtok + tok.output_tokens * cfg.output_usd_per_mtok
        ) / 1e6
        tiers.append(TierCost(tier, turns, tok, per_turn, per_turn * turns))
    return Simulation(per_day, days, tuple(tiers))
