"""`atlas budget`: spend and limits, history, this month's projection, a simulated month.

Only the ledger is opened (no model is loaded).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from atlas.cli_args import in_range
from atlas.settings import Settings

MAX_HISTORY_DAYS = 3660
_usd = in_range(float, 0.0, 100000.0, "an amount in USD")
_days = in_range(int, 1, MAX_HISTORY_DAYS, "a whole number of days")


def add_parsers(sub: Any) -> None:
    b = sub.add_parser("budget", help="spend today / this month, limits and mode")
    b.add_argument("--json", action="store_true")
    bsub = b.add_subparsers(dest="budget_action", metavar="ACTION")
    bs = bsub.add_parser("set", help="set the daily and/or monthly limit (USD)")
    bs.add_argument("--daily", type=_usd)
    bs.add_argument("--monthly", type=_usd)
    h = bsub.add_parser("history", help="calls, tokens and cost per day, tier and provider")
    h.add_argument("--days", type=_days, default=7, help="days back, today included (7)")
    h.add_argument("--csv", action="store_true", help="CSV with a header line")
    bsub.add_parser("project", help="this month's spend so far, extended to the month's end")
    s = bsub.add_parser("simulate", help="a month's cost at today's prices for a usage pattern")
    s.add_argument("--per-day", type=float, required=True, metavar="N", help="queries a day")
    s.add_argument(
        "--mix",
        default="local=0.75,haiku=0.2,agent=0.05",
        help="share of queries per tier (default local=0.75,haiku=0.2,agent=0.05)",
    )
    for p in (bs, h, bsub.choices["project"], s):
        # `atlas budget history --json` as well as `atlas budget --json history`.
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)


def cmd_budget(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.brain import open_budget
    from atlas.cost import CostError

    ledger = open_budget(settings)
    try:
        action = args.budget_action
        if action == "history":
            from atlas.cost import format_history, history

            fmt = "csv" if args.csv else "json" if args.json else "text"
            print(format_history(history(ledger, args.days), fmt, args.days))
            return 0
        if action == "project":
            from atlas.cost import project

            p = project(ledger)
            print(json.dumps(p.__dict__) if args.json else p.format())
            return 0
        if action == "simulate":
            return _simulate(args, settings, ledger)
        if action == "set":
            if args.daily is None and args.monthly is None:
                print("atlas: budget set needs --daily and/or --monthly", file=sys.stderr)
                return 2
            ledger.set_limits(args.daily, args.monthly)
        return _show(args, ledger)
    except CostError as e:
        print(f"atlas: {e}", file=sys.stderr)
        return 2
    finally:
        ledger.close()


def _show(args: argparse.Namespace, ledger: Any) -> int:
    status = ledger.status()
    history = ledger.history(7)
    if args.json:
        out = status.to_dict()
        out["last_7_days"] = [
            {"day": h.day.isoformat(), "cost_usd": round(h.cost_usd, 6), "calls": h.calls}
            for h in history
        ]
        print(json.dumps(out))
        return 0
    print(f"mode      {status.mode}")
    print(f"today     ${status.spent_today:.4f} of ${status.daily_limit:.2f}")
    print(f"month     ${status.spent_month:.4f} of ${status.monthly_limit:.2f}")
    if status.reserved_usd:
        print(f"in flight ${status.reserved_usd:.4f} (worst case of calls not yet settled)")
    print("last 7 days:")
    for h in history:
        print(f"  {h.day.isoformat()}  ${h.cost_usd:.4f}  ({h.calls} calls)")
    return 0


def _simulate(args: argparse.Namespace, settings: Settings, ledger: Any) -> int:
    from atlas.cost import estimated_tokens, ledger_tokens, parse_mix, simulate
    from atlas.persona import Persona
    from atlas.skills import TimerService, build_skills
    from atlas.skills.tools import skill_tools

    mix = parse_mix(args.mix)
    persona = Persona(settings.persona)
    now = datetime.now(UTC)
    timers = TimerService()
    specs = [t.spec.as_anthropic() for t in skill_tools(build_skills(UTC, timers), timers, UTC)]
    tool_chars = len(json.dumps(specs))
    tokens = {
        tier: estimated_tokens(tier, persona.system_prompt(tier, now), tool_chars)
        for tier in ("haiku", "agent")
    }
    tokens.update(ledger_tokens(ledger))
    sim = simulate(args.per_day, mix, settings.llm.anthropic, tokens)
    print(json.dumps(sim.as_dict()) if args.json else sim.format())
    return 0
