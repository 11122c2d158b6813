from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from atlas.llm.base import LLMResponse, Usage
from atlas.llm.budget import (
    MAX_PENDING_ROWS,
    BudgetError,
    BudgetLedger,
    CallRecord,
    query_hash,
)
from atlas.llm.config import BudgetConfig

SALT = b"s" * 32


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def config(**kw: object) -> BudgetConfig:
    base: dict[str, object] = {
        "daily_usd": 1.0,
        "monthly_usd": 10.0,
        "timezone": "UTC",
        "busy_timeout_ms": 50,
    }
    base.update(kw)
    return BudgetConfig(**base)  # type: ignore[arg-type]


def record(cost: float, text: str = "what is a good pasta recipe", **kw: object) -> CallRecord:
    return CallRecord(
        query_text=text,
        tier="haiku",
        model="claude-haiku-4-5-20251001",
        input_tokens=300,
        output_tokens=100,
        cost_usd=cost,
        **kw,  # type: ignore[arg-type]
    )


def spend(ledger: BudgetLedger, cost: float, **kw: object) -> None:
    r = ledger.reserve("haiku", cost)
    assert r is not None, f"could not reserve {cost}"
    ledger.settle(r, record(cost, **kw))


def rows(path: Path, sql: str = "SELECT * FROM calls ORDER BY id") -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 5, 15, 12, 0, tzinfo=UTC))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def ledger(db: Path, clock: FakeClock) -> Iterator[BudgetLedger]:
    led = BudgetLedger(db, config(), clock=clock, salt=SALT)
    yield led
    led.close()


# ---- opening ----------------------------------------------------------------------


def test_creates_parent_dirs_in_wal_mode_with_a_versioned_schema(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "ledger.sqlite3"
    BudgetLedger(path, config()).close()
    assert path.is_file()
    assert rows(path, "PRAGMA journal_mode")[0][0] == "wal"
    assert rows(path, "SELECT version FROM schema_version")[0][0] == 2
    tables = {r[0] for r in rows(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"calls", "limits", "schema_version", "install", "reservations"} <= tables


def test_not_a_database(db: Path) -> None:
    db.write_bytes(b"this is not sqlite at all " * 200)
    with pytest.raises(BudgetError) as ei:
        BudgetLedger(db, config())
    assert str(ei.value) == f"ledger {db} is not a database"


def test_locked_by_another_process(db: Path) -> None:
    BudgetLedger(db, config()).close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("PRAGMA locking_mode = EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(BudgetError) as ei:
            BudgetLedger(db, config())
        assert str(ei.value) == f"ledger {db} is locked by another process"
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_cannot_create_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "sub" / "ledger.sqlite3"
    with pytest.raises(BudgetError) as ei:
        BudgetLedger(path, config())
    msg = str(ei.value)
    assert msg.startswith(f"ledger {path}: cannot create directory {path.parent}")
    assert "\n" not in msg


def test_a_directory_in_the_way(db: Path) -> None:
    db.mkdir()
    with pytest.raises(BudgetError, match="cannot be opened"):
        BudgetLedger(db, config())


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write a read-only file")
def test_read_only(db: Path) -> None:
    BudgetLedger(db, config()).close()
    for p in db.parent.iterdir():
        p.chmod(0o444)
    db.parent.chmod(0o555)
    try:
        with pytest.raises(BudgetError, match=r"read-only|cannot be opened"):
            BudgetLedger(db, config())
    finally:
        db.parent.chmod(0o755)


def test_newer_schema_is_refused(db: Path) -> None:
    BudgetLedger(db, config()).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(BudgetError, match=r"schema version 99; this ATLAS understands up to 2"):
        BudgetLedger(db, config())


def test_unknown_time_zone(db: Path) -> None:
    with pytest.raises(BudgetError, match="unknown time zone 'Mars/Olympus'"):
        BudgetLedger(db, config(timezone="Mars/Olympus"))


def test_local_time_zone_resolves(db: Path) -> None:
    with BudgetLedger(db, config(timezone="local")) as led:
        assert led.status().today == datetime.now().astimezone().date()


# ---- time zones ---------------------------------------------------------------------


def test_late_evening_in_los_angeles_counts_for_that_local_day_and_month(db: Path) -> None:
    # 23:30 on Jan 31 in Los Angeles is already Feb 1 in UTC.
    clock = FakeClock(datetime(2026, 2, 1, 7, 30, tzinfo=UTC))
    with BudgetLedger(db, config(timezone="America/Los_Angeles"), clock=clock) as led:
        spend(led, 0.25)
        st = led.status()
        assert st.today == date(2026, 1, 31)
        assert st.spent_today == 0.25 and st.spent_month == 0.25
        assert led.flush(5)
        row = rows(db)[0]
        assert (row["local_day"], row["local_month"]) == ("2026-01-31", "2026-01")
        assert row["ts_utc"].startswith("2026-02-01T07:30")

        clock.now = datetime(2026, 2, 1, 8, 30, tzinfo=UTC)  # 00:30 Feb 1 in LA
        st = led.status()
        assert st.today == date(2026, 2, 1)
        assert st.spent_today == 0.0 and st.spent_month == 0.0


def test_just_after_midnight_in_tokyo_is_the_new_month(db: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 31, 14, 30, tzinfo=UTC))  # 23:30 Mar 31 in Tokyo
    with BudgetLedger(db, config(timezone="Asia/Tokyo"), clock=clock) as led:
        spend(led, 0.5)
        clock.now = datetime(2026, 3, 31, 15, 30, tzinfo=UTC)  # 00:30 Apr 1, still Mar in UTC
        spend(led, 0.125)
        st = led.status()
        assert st.today == date(2026, 4, 1)
        assert (st.spent_today, st.spent_month) == (0.125, 0.125)
        assert led.flush(5)
    got = [(r["local_day"], r["local_month"]) for r in rows(db)]
    assert got == [("2026-03-31", "2026-03"), ("2026-04-01", "2026-04")]
    # Reopened later, the totals come from the database with the same boundaries.
    with BudgetLedger(db, config(timezone="Asia/Tokyo"), clock=clock) as led:
        assert (led.status().spent_today, led.status().spent_month) == (0.125, 0.125)


# ---- modes and limits -----------------------------------------------------------------


def test_thrifty_at_the_soft_limit(ledger: BudgetLedger) -> None:
    spend(ledger, 0.75)
    assert ledger.status().mode == "normal"
    spend(ledger, 0.05)
    st = ledger.status()
    assert st.mode == "thrifty" and st.thrifty and st.cloud_allowed


def test_reservations_count_toward_thrifty(ledger: BudgetLedger) -> None:
    spend(ledger, 0.5)
    r = ledger.reserve("agent", 0.3)
    assert r is not None
    assert ledger.status().mode == "thrifty"
    ledger.release(r, "never sent")
    assert ledger.status().mode == "normal"


def test_monthly_soft_limit_also_makes_it_thrifty(db: Path, clock: FakeClock) -> None:
    with BudgetLedger(db, config(monthly_usd=2.0), clock=clock) as led:
        for day in (1, 2):
            clock.now = datetime(2026, 5, day, 12, tzinfo=UTC)
            spend(led, 0.8)
        clock.now = datetime(2026, 5, 3, 12, tzinfo=UTC)
        st = led.status()
        assert st.spent_today == 0 and st.spent_month == 1.6
        assert st.mode == "thrifty"


def test_local_only_at_the_hard_limit(ledger: BudgetLedger) -> None:
    spend(ledger, 0.5)
    spend(ledger, 0.5)
    st = ledger.status()
    assert st.mode == "local_only" and not st.cloud_allowed and st.remaining == 0
    assert ledger.reserve("haiku", 0.0001) is None


def test_a_zero_limit_means_local_only(db: Path, clock: FakeClock) -> None:
    with BudgetLedger(db, config(daily_usd=0.0), clock=clock) as led:
        assert led.status().mode == "local_only"
        assert led.reserve("haiku", 0.0) is None


def test_worst_case_refused_at_the_edge(ledger: BudgetLedger) -> None:
    spend(ledger, 0.5)
    assert ledger.reserve("agent", 0.5 + 1e-9) is None  # would cross: not sent
    r = ledger.reserve("agent", 0.25)
    assert r is not None
    assert ledger.reserve("haiku", 0.25 + 1e-9) is None  # the reservation counts
    last = ledger.reserve("haiku", 0.25)  # exactly reaching the limit is allowed
    assert last is not None
    assert ledger.reserve("haiku", 0.0001) is None
    ledger.settle(r, record(0.125))  # the real cost was lower: room frees up
    assert ledger.reserve("haiku", 0.125) is not None


def test_monthly_limit_binds_even_when_today_is_empty(db: Path, clock: FakeClock) -> None:
    with BudgetLedger(db, config(monthly_usd=2.0), clock=clock) as led:
        for day in (1, 2):
            clock.now = datetime(2026, 5, day, 12, tzinfo=UTC)
            spend(led, 0.875)
        clock.now = datetime(2026, 5, 3, 12, tzinfo=UTC)
        assert led.reserve("agent", 0.5) is None
        assert led.reserve("agent", 0.25) is not None


def test_set_limits_persist_across_reopen(db: Path, clock: FakeClock) -> None:
    with BudgetLedger(db, config(), clock=clock) as led:
        led.set_limits(0.5, 4.0)
        assert (led.status().daily_limit, led.status().monthly_limit) == (0.5, 4.0)
        led.set_limits(None, 3.0)  # None keeps the daily one
    with BudgetLedger(db, config(), clock=clock) as led:
        st = led.status()
        assert (st.daily_limit, st.monthly_limit) == (0.5, 3.0)
        spend(led, 0.5)
        assert led.reserve("haiku", 0.01) is None  # the stored limit is the one enforced


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_set_limits_rejects_nonsense(ledger: BudgetLedger, bad: float) -> None:
    with pytest.raises(BudgetError, match="daily limit must be a non-negative number"):
        ledger.set_limits(bad, None)


def test_negative_worst_case_is_a_bug(ledger: BudgetLedger) -> None:
    with pytest.raises(ValueError):
        ledger.reserve("haiku", -0.1)


# ---- what is recorded ------------------------------------------------------------------


def test_query_text_not_stored_by_default_and_hash_groups_equal_queries(
    ledger: BudgetLedger, db: Path
) -> None:
    spend(ledger, 0.01, text="What time is it in Paris?")
    spend(ledger, 0.01, text="  what time is it   in paris? ")
    spend(ledger, 0.01, text="tell me a joke")
    assert ledger.flush(5)
    got = rows(db)
    assert [r["query_text"] for r in got] == [None, None, None]
    assert got[0]["query_hash"] == got[1]["query_hash"] != got[2]["query_hash"]
    expected = hmac.new(SALT, b"what time is it in paris?", hashlib.sha256).hexdigest()
    assert got[0]["query_hash"] == expected
    assert all("paris" not in str(tuple(r)).lower() for r in got)


def test_hash_differs_across_installs_and_is_stable_within_one(
    tmp_path: Path, clock: FakeClock
) -> None:
    hashes = []
    for name in ("a.sqlite3", "b.sqlite3", "a.sqlite3"):
        with BudgetLedger(tmp_path / name, config(), clock=clock) as led:
            spend(led, 0.01, text="hello there")
        hashes.append(rows(tmp_path / name)[-1]["query_hash"])
    assert hashes[0] == hashes[2]  # same install: the salt is kept in the database
    assert hashes[0] != hashes[1]
    assert query_hash(SALT, "Hello  There") == query_hash(SALT, "hello there")


def test_query_text_stored_when_opted_in_without_secrets(db: Path, clock: FakeClock) -> None:
    key = "sk-ant-api03-" + "Z" * 40
    with BudgetLedger(db, config(store_query_text=True), clock=clock) as led:
        spend(led, 0.01, text="what is the weather")
        spend(led, 0.01, text=f"my key is {key}")
    got = [r["query_text"] for r in rows(db)]
    assert got[0] == "what is the weather"
    assert key not in got[1] and "[REDACTED]" in got[1]


def test_every_field_is_recorded(ledger: BudgetLedger, db: Path) -> None:
    r = ledger.reserve("agent", 0.05)
    assert r is not None
    rec = CallRecord(
        query_text="plan my week",
        tier="agent",
        model="claude-sonnet-4-5-20250929",
        input_tokens=2000,
        output_tokens=500,
        cache_read_tokens=30,
        cache_write_tokens=40,
        cost_usd=0.0135,
        latency_ms=2500.0,
        first_token_ms=700.0,
        confidence=0.71,
        category="planning",
        fallback_reason="",
        status="ok",
    )
    ledger.settle(r, rec)
    assert ledger.flush(5)
    row = rows(db)[0]
    assert (row["tier"], row["model"], row["status"]) == ("agent", rec.model, "ok")
    assert (row["input_tokens"], row["output_tokens"]) == (2000, 500)
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (30, 40)
    assert (row["cost_usd"], row["latency_ms"], row["first_token_ms"]) == (0.0135, 2500, 700)
    assert (row["confidence"], row["category"]) == (0.71, "planning")
    assert rec.usage == Usage(2000, 500, 30, 40)


def test_from_response_takes_the_real_usage() -> None:
    resp = LLMResponse(
        content="hi",
        model="claude-haiku-4-5-20251001",
        backend="anthropic",
        first_token_ms=320.0,
        total_duration_ms=900.0,
        usage=Usage(310, 42, 0, 0),
        cost_usd=0.00052,
    )
    rec = CallRecord.from_response(resp, query_text="hi", tier="haiku", confidence=0.9)
    assert (rec.model, rec.input_tokens, rec.output_tokens) == (resp.model, 310, 42)
    assert (rec.cost_usd, rec.first_token_ms, rec.latency_ms) == (0.00052, 320.0, 900.0)


def test_billed_usage_of_a_failed_stream_is_charged_and_release_leaves_no_row(
    ledger: BudgetLedger, db: Path
) -> None:
    r1 = ledger.reserve("haiku", 0.01)
    r2 = ledger.reserve("haiku", 0.01)
    assert r1 is not None and r2 is not None
    ledger.settle(r1, record(0.004, status="failed", fallback_reason="mid_stream"))
    ledger.release(r2, "429 before the first token")
    st = ledger.status()
    assert st.spent_today == 0.004 and st.reserved_usd == 0
    assert ledger.flush(5)
    got = rows(db)
    assert len(got) == 1 and got[0]["status"] == "failed"
    assert got[0]["fallback_reason"] == "mid_stream"


def test_settling_twice_charges_once(ledger: BudgetLedger) -> None:
    r = ledger.reserve("haiku", 0.01)
    assert r is not None
    ledger.settle(r, record(0.01))
    with capture_logs() as logs:
        ledger.settle(r, record(0.01))
    assert ledger.status().spent_today == 0.01
    assert any(e["log_level"] == "error" for e in logs)


def test_history_includes_empty_days(ledger: BudgetLedger, clock: FakeClock) -> None:
    clock.now = datetime(2026, 5, 10, 9, tzinfo=UTC)
    spend(ledger, 0.25)
    spend(ledger, 0.125)
    assert ledger.flush(5)
    clock.now = datetime(2026, 5, 13, 9, tzinfo=UTC)
    spend(ledger, 0.5)  # still unwritten rows count too
    hist = ledger.history(7)
    assert [h.day for h in hist] == [date(2026, 5, 7) + timedelta(days=i) for i in range(7)]
    by_day = {h.day.day: (h.cost_usd, h.calls) for h in hist}
    assert by_day[10] == (0.375, 2)
    assert by_day[13] == (0.5, 1)
    assert all(by_day[d] == (0.0, 0) for d in (7, 8, 9, 11, 12))
    assert ledger.history(1)[0].day == date(2026, 5, 13)


def test_the_backlog_is_bounded_by_refusing_new_calls(ledger: BudgetLedger) -> None:
    held = [ledger.reserve("haiku", 0.0) for _ in range(MAX_PENDING_ROWS)]
    assert all(r is not None for r in held)
    assert ledger.reserve("haiku", 0.0) is None
    ledger.release(held[0], "done")  # type: ignore[arg-type]
    assert ledger.reserve("haiku", 0.0) is not None


def test_close_writes_what_is_pending(db: Path, clock: FakeClock) -> None:
    led = BudgetLedger(db, config(), clock=clock)
    for _ in range(5):
        spend(led, 0.01)
    led.close()
    assert len(rows(db)) == 5
    with BudgetLedger(db, config(), clock=clock) as led:
        assert led.status().spent_today == pytest.approx(0.05)


# ---- write failures ---------------------------------------------------------------------


def test_locked_database_refuses_cloud_spend_with_one_log_line(
    ledger: BudgetLedger, db: Path
) -> None:
    spend(ledger, 0.25)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with capture_logs() as logs:
            assert ledger.reserve("haiku", 0.1) is None  # refused, never raised
            assert ledger.reserve("haiku", 0.1) is None
        failed = [e for e in logs if e["log_level"] == "warning"]
        assert len(failed) == 1, "one line, not one per call"
        assert "locked" in failed[0]["problem"]
    finally:
        other.execute("ROLLBACK")
        other.close()
    with capture_logs() as logs:
        assert ledger.reserve("haiku", 0.1) is not None
    assert any(e["event"] == "ledger usable again" for e in logs)
    assert [r["cost_usd"] for r in rows(db)] == [0.25]


def test_a_settlement_that_cannot_be_written_keeps_the_worst_case_booked(
    db: Path, clock: FakeClock
) -> None:
    conns: list[sqlite3.Connection] = []
    led = BudgetLedger(db, config(store_query_text=True), clock=clock, on_connect=conns.append)
    try:
        held = [led.reserve("haiku", 0.01) for _ in range(3)]
        pages = conns[0].execute("PRAGMA page_count").fetchone()[0]
        conns[0].execute(f"PRAGMA max_page_count = {pages}")  # the disk is now "full"
        with capture_logs() as logs:
            for i, r in enumerate(held):
                assert r is not None
                led.settle(r, record(0.004, text=f"question {i} " + "x" * 5000))
            assert not led.flush()
        assert any("full" in e.get("problem", "") for e in logs)
        st = led.status()
        assert st.spent_today + st.reserved_usd == pytest.approx(0.03)  # worst cases held
        conns[0].execute("PRAGMA max_page_count = 1073741823")  # space freed
        assert led.flush()
        st = led.status()
        assert (st.spent_today, st.reserved_usd) == (pytest.approx(0.012), 0.0)
    finally:
        led.close()
    assert len(rows(db)) == 3


def test_unreadable_ledger_means_local_only(ledger: BudgetLedger, db: Path) -> None:
    spend(ledger, 0.25)
    assert ledger.status().mode == "normal"
    ledger._conn.close()  # the connection failing under a running daemon
    with capture_logs():
        st = ledger.status()
    assert st.mode == "local_only" and not st.cloud_allowed
    assert st.spent_today == 0.25  # the last figures known
    assert ledger.reserve("haiku", 0.01) is None


# ---- across processes ------------------------------------------------------------------


def test_two_ledgers_on_one_file_share_reservations_and_limits(db: Path, clock: FakeClock) -> None:
    a = BudgetLedger(db, config(), clock=clock)
    b = BudgetLedger(db, config(), clock=clock)
    try:
        ra = a.reserve("haiku", 0.6)
        assert ra is not None
        assert b.reserve("haiku", 0.6) is None  # a's call in flight counts for b
        assert b.status().reserved_usd == pytest.approx(0.6)
        a.settle(ra, record(0.2))
        assert b.status().spent_today == pytest.approx(0.2)  # committed before settle returned
        b.set_limits(0.1, None)
        assert a.reserve("haiku", 0.01) is None  # b's new limit binds a at once
    finally:
        a.close()
        b.close()


_DIE_WITH_A_CALL_IN_FLIGHT = """
import os, sys
from pathlib import Path
from atlas.llm.budget import BudgetLedger
from atlas.llm.config import BudgetConfig
led = BudgetLedger(Path(sys.argv[1]), BudgetConfig(daily_usd=1.0, timezone="UTC"))
assert led.reserve("agent", 0.3, query_text="plan my week", model="m") is not None
os._exit(0)  # no settle, no close: as if killed
"""


def test_a_dead_process_reservation_is_charged_as_unknown(db: Path) -> None:
    import subprocess
    import sys

    BudgetLedger(db, config(), salt=SALT).close()
    subprocess.run(
        [sys.executable, "-c", _DIE_WITH_A_CALL_IN_FLIGHT, str(db)],
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    with capture_logs() as logs, BudgetLedger(db, config()) as led:  # the real clock
        st = led.status()
        assert st.reserved_usd == 0.0 and st.spent_today == pytest.approx(0.3)
    assert any("process ended" in e["event"] and e["calls"] == 1 for e in logs)
    (row,) = rows(db)
    assert (row["status"], row["cost_usd"], row["tier"]) == ("unknown", 0.3, "agent")
    assert row["query_hash"] == query_hash(SALT, "plan my week")
    assert row["fallback_reason"] == "process_ended"


def test_a_killed_process_not_yet_reaped_counts_as_ended(db: Path) -> None:
    """A zombie keeps its pid and start time until its parent waits for it."""
    import subprocess
    import sys

    from atlas.llm.ledger_db import owner_alive

    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc: liveness falls back to kill(pid, 0)")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = f"{child.pid}:{_start_of(child.pid)}"
        assert owner_alive(owner)
        child.kill()
        for _ in range(200):  # SIGKILL lands asynchronously; the zombie stays unreaped
            if not owner_alive(owner):
                break
            time.sleep(0.05)
        assert not owner_alive(owner)
    finally:
        child.kill()
        child.wait()


def _start_of(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2 :].split()[19]


def test_a_version_1_ledger_is_migrated_in_place_without_losing_rows(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.executescript(V1_SCHEMA)
    conn.execute(
        "INSERT INTO calls (ts_utc, local_day, local_month, query_hash, tier, model, "
        "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, "
        "category, fallback_reason, status) VALUES ('2026-05-15T10:00:00+00:00', "
        "'2026-05-15', '2026-05', 'h', 'haiku', 'm', 300, 100, 0, 0, 0.0008, '', '', 'ok')"
    )
    conn.commit()
    conn.close()
    clock = FakeClock(datetime(2026, 5, 15, 12, 0, tzinfo=UTC))
    with BudgetLedger(db, config(), clock=clock) as led:
        assert led.status().spent_today == pytest.approx(0.0008)
        spend(led, 0.001)
    got = rows(db)
    assert [(r["id"], r["provider"], r["input_tokens"]) for r in got] == [
        (1, "anthropic", 300),
        (2, "anthropic", 300),
    ]
    assert rows(db, "SELECT version FROM schema_version")[0][0] == 2


V1_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE install (id INTEGER PRIMARY KEY CHECK (id = 1), salt BLOB NOT NULL,
    created_utc TEXT NOT NULL);
INSERT INTO install VALUES (1, x'00', '2026-01-01');
CREATE TABLE calls (id INTEGER PRIMARY KEY, ts_utc TEXT NOT NULL, local_day TEXT NOT NULL,
    local_month TEXT NOT NULL, query_hash TEXT NOT NULL, query_text TEXT,
    tier TEXT NOT NULL, model TEXT NOT NULL, input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, latency_ms REAL,
    first_token_ms REAL, confidence REAL, category TEXT NOT NULL,
    fallback_reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'cancelled')));
CREATE INDEX calls_local_day ON calls (local_day);
CREATE INDEX calls_local_month ON calls (local_month);
CREATE TABLE limits (id INTEGER PRIMARY KEY CHECK (id = 1), daily_usd REAL,
    monthly_usd REAL, updated_utc TEXT NOT NULL);
"""
