"""Cost you can see: `atlas budget history | project | simulate`, from the ledger."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from atlas import cli
from atlas.cost import (
    MIN_LEDGER_CALLS,
    CostError,
    TurnTokens,
    estimated_tokens,
    format_history,
    history,
    ledger_tokens,
    parse_mix,
    project,
    simulate,
)
from atlas.llm.budget import BudgetLedger, CallRecord
from atlas.llm.config import AnthropicConfig, BudgetConfig
from atlas.settings import DEFAULT_CONFIG


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def book(led: BudgetLedger, tier: str, provider: str, cost: float, **usage: int) -> None:
    r = led.reserve(tier, cost, provider=provider)
    assert r is not None
    led.settle(
        r,
        CallRecord(query_text="q", tier=tier, model="m", cost_usd=cost, provider=provider, **usage),  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 6, 11, 12, 0, tzinfo=UTC))


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> BudgetLedger:
    cfg = BudgetConfig(daily_usd=5.0, monthly_usd=20.0, timezone="UTC")
    led = BudgetLedger(tmp_path / "ledger.sqlite3", cfg, clock=clock)
    clock.now = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
    book(led, "haiku", "anthropic", 0.001, input_tokens=300, output_tokens=100)
    book(led, "haiku", "anthropic", 0.002, input_tokens=500, output_tokens=200)
    book(led, "haiku", "openai", 0.004, input_tokens=900, output_tokens=10)
    clock.now = datetime(2026, 6, 11, 12, 0, tzinfo=UTC)
    book(led, "agent", "anthropic", 0.03, input_tokens=2000, cache_read_tokens=4096)
    yield led  # type: ignore[misc]
    led.close()


def test_history_groups_by_day_tier_and_provider(ledger: BudgetLedger) -> None:
    rows = history(ledger, 2)
    keyed = {(r.day, r.tier, r.provider): r for r in rows}
    assert set(keyed) == {
        (date(2026, 6, 10), "haiku", "anthropic"),
        (date(2026, 6, 10), "haiku", "openai"),
        (date(2026, 6, 11), "agent", "anthropic"),
    }
    h = keyed[(date(2026, 6, 10), "haiku", "anthropic")]
    assert (h.calls, h.input_tokens, h.output_tokens) == (2, 800, 300)
    assert h.cost_usd == pytest.approx(0.003)
    assert keyed[(date(2026, 6, 11), "agent", "anthropic")].cache_read_tokens == 4096
    assert [r.day for r in history(ledger, 1)] == [date(2026, 6, 11)]


def test_history_csv_and_text(ledger: BudgetLedger) -> None:
    rows = history(ledger, 7)
    parsed = list(csv.DictReader(io.StringIO(format_history(rows, "csv", 7))))
    assert len(parsed) == 3
    assert parsed[0]["day"] == "2026-06-10" and parsed[0]["provider"] == "anthropic"
    assert float(parsed[1]["cost_usd"]) == 0.004
    text = format_history(rows, "text", 7)
    assert text.splitlines()[-1].startswith("total") and "$  0.0370" in text
    assert format_history([], "text", 7) == "no cloud calls in the last 7 days"


def test_projection_extends_the_month_so_far(ledger: BudgetLedger) -> None:
    p = project(ledger)
    assert p.month == "2026-06" and p.days_in_month == 30
    assert p.days_elapsed == pytest.approx(10.5)  # 10 days and 12 hours
    assert p.projected_usd == pytest.approx(0.037 / 10.5 * 30)
    assert "limit $20.00" in p.format()


def test_projection_on_the_first_morning_counts_one_day(ledger: BudgetLedger, clock: Clock) -> None:
    clock.now = datetime(2026, 7, 1, 0, 30, tzinfo=UTC)
    book(ledger, "haiku", "anthropic", 0.01)
    p = project(ledger)
    assert (p.days_elapsed, p.projected_usd) == (1.0, pytest.approx(0.31))


def test_seed_claim_at_its_own_token_counts() -> None:
    """'$2.40/month at 100 queries/day' holds for 300 in / 100 out, all on Haiku."""
    tokens = {
        "haiku": TurnTokens(300, 100, "seed"),
        "agent": TurnTokens(2000, 500, "seed"),
    }
    sim = simulate(100, parse_mix("haiku=1"), AnthropicConfig(), tokens)
    assert sim.usd_per_month == pytest.approx(2.40)
    mixed = simulate(100, parse_mix("local=0.75,haiku=0.2,agent=0.05"), AnthropicConfig(), tokens)
    by_tier = {t.tier: t for t in mixed.tiers}
    assert by_tier["local"].usd_per_month == 0.0
    assert by_tier["haiku"].usd_per_month == pytest.approx(0.48)
    assert by_tier["agent"].usd_per_month == pytest.approx(150 * (2000 * 3 + 500 * 15) / 1e6)


def test_estimate_follows_the_system_prompt_and_the_tools() -> None:
    short = estimated_tokens("haiku", "x" * 400, 0)
    long = estimated_tokens("haiku", "x" * 4000, 0)
    assert long.input_tokens - short.input_tokens == pytest.approx(900)
    agent = estimated_tokens("agent", "x" * 400, 2000)
    assert agent.input_tokens > 2 * short.input_tokens + 2 * 500  # two steps, with tools
    assert "estimate" in agent.source


def test_real_usage_in_the_ledger_replaces_the_estimate(ledger: BudgetLedger, clock: Clock) -> None:
    assert "haiku" not in ledger_tokens(ledger)  # 3 calls: too few to stand for a habit
    for _ in range(MIN_LEDGER_CALLS):
        book(ledger, "haiku", "anthropic", 0.001, input_tokens=1000, output_tokens=50)
    got = ledger_tokens(ledger)["haiku"]
    n = MIN_LEDGER_CALLS + 3
    assert got.input_tokens == pytest.approx((800 + 900 + 1000 * MIN_LEDGER_CALLS) / n)
    assert "ledger" in got.source


@pytest.mark.parametrize(
    ("mix", "problem"),
    [
        ("local=0.5", "add up to 1"),
        ("local=1,haiku=nan", "between 0 and 1"),
        ("local=2,haiku=-1", "between 0 and 1"),
        ("cloud=1", "tier=share"),
        ("local", "tier=share"),
        ("local=x", "not a number"),
    ],
)
def test_bad_mix_is_one_line(mix: str, problem: str) -> None:
    with pytest.raises(CostError, match=problem):
        parse_mix(mix)


# ---- through the CLI ----------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data["budget"]["db_path"] = str(tmp_path / "ledger.sqlite3")
    path = tmp_path / "atlas.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp_path / "routing.yaml").write_text(
        (DEFAULT_CONFIG.parent / "routing.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    return path


def test_cli_history_project_simulate(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = lambda *a: cli.main(["--config", str(config), "budget", *a])  # noqa: E731
    assert run("history", "--csv") == 0
    assert capsys.readouterr().out.startswith("day,tier,provider,calls,input_tokens")
    assert run("history", "--days", "30", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"days": 30, "rows": []}
    assert run("project") == 0
    assert "at this rate $0.00 this month" in capsys.readouterr().out
    assert run("simulate", "--per-day", "100", "--json") == 0
    sim = json.loads(capsys.readouterr().out)
    assert sim["per_day"] == 100 and [t["tier"] for t in sim["tiers"]] == [
        "local", "haiku", "agent",
    ]  # fmt: skip
    assert 0 < sim["usd_per_month"] < 10
    for bad in (["simulate", "--per-day", "inf"], ["simulate", "--per-day", "1", "--mix", "x"]):
        assert run(*bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("atlas: ") and len(err.strip().splitlines()) == 1
