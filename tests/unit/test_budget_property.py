"""The hard limit is never exceeded, whatever the interleaving of concurrent turns."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from atlas.llm.budget import BudgetLedger, CallRecord
from atlas.llm.config import BudgetConfig

TOL = 1e-9
TODAY = datetime(2026, 5, 15, 18, 0, tzinfo=UTC)
EARLIER_THIS_MONTH = datetime(2026, 5, 3, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Turn:
    worst: float
    cost_share: float
    """Real cost as a share of the worst case (<= 1: the API never bills above max_tokens)."""
    yields: int
    """Scheduling points between reserve() and settle() (and before reserve())."""
    outcome: str  # "ok" | "failed" (billed) | "release" (never sent / no usage)


def dollars(high: float) -> st.SearchStrategy[float]:
    # Integers spread over the range: raw float strategies favour subnormals and 0.
    return st.integers(0, int(high * 100_000)).map(lambda n: n / 100_000)


turns_st = st.lists(
    st.builds(
        Turn,
        worst=dollars(0.5),
        # Mostly the full worst case: that is what pushes against the limit.
        cost_share=st.one_of(st.just(1.0), st.floats(0.0, 1.0)),
        yields=st.integers(0, 4),
        outcome=st.sampled_from(["ok", "ok", "failed", "release"]),
    ),
    min_size=1,
    max_size=40,
)
limits_st = st.tuples(dollars(2.0), dollars(4.0))
prior_st = st.lists(dollars(0.5), max_size=5)


class Clock:
    def __init__(self) -> None:
        self.now = EARLIER_THIS_MONTH

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def open_ledger(daily: float, monthly: float, prior: list[float]) -> Iterator[BudgetLedger]:
    clock = Clock()
    cfg = BudgetConfig(daily_usd=daily, monthly_usd=monthly, timezone="Europe/Berlin")
    with tempfile.TemporaryDirectory() as d:
        ledger = BudgetLedger(Path(d) / "ledger.sqlite3", cfg, clock=clock)
        try:
            # Spend earlier in the month, so the monthly limit can bind before the daily one.
            for cost in prior:
                r = ledger.reserve("haiku", cost)
                if r is not None:
                    ledger.settle(r, rec(cost, "ok"))
            clock.now = TODAY
            yield ledger
        finally:
            ledger.close()


def rec(cost: float, status: str) -> CallRecord:
    return CallRecord(
        query_text="q",
        tier="haiku",
        model="m",
        cost_usd=cost,
        status=status,  # type: ignore[arg-type]
    )


def finish(ledger: BudgetLedger, turn: Turn, reservation: object) -> None:
    assert reservation is not None
    if turn.outcome == "release":
        ledger.release(reservation, "not sent")  # type: ignore[arg-type]
    else:
        cost = turn.worst * turn.cost_share
        ledger.settle(reservation, rec(min(cost, turn.worst), turn.outcome))  # type: ignore[arg-type]


def check_invariants(ledger: BudgetLedger, daily: float, monthly: float, settled: int) -> None:
    st_ = ledger.status()
    assert st_.spent_today <= daily + TOL, (st_.spent_today, daily)
    assert st_.spent_month <= monthly + TOL, (st_.spent_month, monthly)
    assert st_.reserved_usd == 0
    assert ledger.flush(10)
    conn = sqlite3.connect(ledger.path)
    try:
        day_sum, day_n = conn.execute(
            "SELECT COALESCE(SUM(cost_usd), 0), COUNT(*) FROM calls WHERE local_day = ?",
            (st_.today.isoformat(),),
        ).fetchone()
        (month_sum,) = conn.execute(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM calls WHERE local_month = '2026-05'"
        ).fetchone()
    finally:
        conn.close()
    after = ledger.status()
    assert math.isclose(day_sum, after.spent_today, abs_tol=TOL)
    assert math.isclose(month_sum, after.spent_month, abs_tol=TOL)
    assert day_n == settled


# Every turn holds its reservation across a scheduling point: the interleaving that
# breaks a check which forgets reservations in flight.
ALL_IN_FLIGHT = example(limits=(1.0, 4.0), prior=[], turns=[Turn(0.4, 1.0, 1, "ok")] * 5)

COMMON = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@COMMON
@given(limits=limits_st, prior=prior_st, turns=turns_st)
@ALL_IN_FLIGHT
def test_hard_limit_holds_for_concurrent_asyncio_turns(
    limits: tuple[float, float], prior: list[float], turns: list[Turn]
) -> None:
    daily, monthly = limits
    settled = 0

    async def one(ledger: BudgetLedger, turn: Turn) -> None:
        nonlocal settled
        for _ in range(turn.yields % 2):
            await asyncio.sleep(0)  # other turns reserve/settle in between
        r = ledger.reserve("haiku", turn.worst)
        if r is None:
            return  # answered locally
        for _ in range(turn.yields):
            await asyncio.sleep(0)
        finish(ledger, turn, r)
        settled += turn.outcome != "release"

    async def run(ledger: BudgetLedger) -> None:
        await asyncio.gather(*(one(ledger, t) for t in turns))

    with open_ledger(daily, monthly, prior) as ledger:
        asyncio.run(run(ledger))
        check_invariants(ledger, daily, monthly, settled)


@COMMON
@given(limits=limits_st, prior=prior_st, turns=turns_st.filter(lambda t: len(t) <= 16))
@ALL_IN_FLIGHT
def test_hard_limit_holds_for_concurrent_threads(
    limits: tuple[float, float], prior: list[float], turns: list[Turn]
) -> None:
    daily, monthly = limits
    start = threading.Barrier(len(turns))
    held = threading.Barrier(len(turns))
    count_lock = threading.Lock()
    settled = 0

    def one(ledger: BudgetLedger, turn: Turn) -> None:
        nonlocal settled
        start.wait()  # everyone reserves at once (real contention on the lock)
        for _ in range(turn.yields):
            threading.Event().wait(0)
        r = ledger.reserve("haiku", turn.worst)
        held.wait()  # every admitted reservation is in flight at the same time
        if r is None:
            return
        finish(ledger, turn, r)
        with count_lock:
            settled += turn.outcome != "release"

    with open_ledger(daily, monthly, prior) as ledger:
        with ThreadPoolExecutor(max_workers=len(turns)) as pool:
            for f in [pool.submit(one, ledger, t) for t in turns]:
                f.result()
        check_invariants(ledger, daily, monthly, settled)


@COMMON
@given(limits=limits_st, turns=turns_st)
def test_one_at_a_time_admission_is_exact(limits: tuple[float, float], turns: list[Turn]) -> None:
    """Without concurrency, a call is admitted exactly when it fits under both limits."""
    daily, monthly = limits
    spent = 0.0
    with open_ledger(daily, monthly, []) as ledger:
        for turn in turns:
            fits = daily > 0 and monthly > 0 and spent + turn.worst <= min(daily, monthly)
            r = ledger.reserve("haiku", turn.worst)
            # Exact float edges may differ by an ulp; only assert away from the edge.
            if abs(spent + turn.worst - min(daily, monthly)) > TOL:
                assert (r is not None) == fits, (spent, turn.worst, daily, monthly)
            if r is not None:
                finish(ledger, turn, r)
                if turn.outcome != "release":
                    spent += min(turn.worst * turn.cost_share, turn.worst)
        assert math.isclose(ledger.status().spent_today, spent, abs_tol=TOL)
