"""SQLite cost ledger of cloud calls, and the budget status the router decides with.

The ledger file is the truth, shared by every ATLAS process on the box (the daemon, an
`atlas ask`, a replay): admission and settlement are SQLite transactions (BEGIN
IMMEDIATE), never process memory.

* `reserve()` books a call's worst-case cost as a row in `reservations` and admits the
  call only when spent + every process's reservations + the worst case stays within BOTH
  the daily and the monthly limit.
* `settle()` swaps the reservation for the call's real row in one transaction, committed
  before the caller carries on: a process killed after that loses nothing.
* A process killed with a call in flight leaves its reservation; the next transaction
  (any process) finds its owner gone and charges the worst case as a row with status
  'unknown' (it may or may not have been billed; the limit holds either way).
* A locked or full database refuses cloud spend with one log line (never overspends,
  never raises into a turn); a settlement that cannot be written keeps its reservation
  (the worst case stays booked) and is retried.

Day and month boundaries are in the configured local time zone, because "today" is what
the person means. Only real usage is charged: a call that never happened, or reported no
usage, is `release()`d and leaves no row; a failed or cancelled stream whose tokens were
billed is `settle()`d with status 'failed'/'cancelled' and its real cost.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from atlas.llm.config import BudgetConfig
from atlas.llm.ledger_db import (
    INSERT_CALL,
    SCHEMA_VERSION,
    BudgetError,
    describe_sqlite_error,
    immediate,
    init_schema,
    open_database,
    owner_alive,
    process_owner,
    utc_now,
)
from atlas.llm.ledger_records import (
    BudgetStatus,
    CallRecord,
    CallStatus,
    DaySpend,
    Mode,
    Reservation,
    UsageRow,
    query_hash,
    resolve_timezone,
)
from atlas.logs import redact_text

__all__ = [
    "SCHEMA_VERSION", "BudgetError", "BudgetLedger", "BudgetStatus", "CallRecord", "CallStatus",
    "DaySpend", "Reservation", "UsageRow", "describe_sqlite_error", "query_hash",
    "resolve_timezone",
]  # fmt: skip

log = structlog.get_logger("atlas.llm.budget")

MAX_PENDING_ROWS = 1000
"""Open reservations + unwritten settlements of one process; beyond it calls are refused."""

_TOTALS = """
SELECT
    (SELECT COALESCE(SUM(cost_usd), 0.0) FROM calls WHERE local_day = ?),
    (SELECT COALESCE(SUM(cost_usd), 0.0) FROM calls WHERE local_month = ?),
    (SELECT COALESCE(SUM(worst_case_usd), 0.0) FROM reservations),
    (SELECT daily_usd FROM limits WHERE id = 1),
    (SELECT monthly_usd FROM limits WHERE id = 1)
"""


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _check_limit(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise BudgetError(f"{name} limit must be a non-negative number of dollars, not {value}")


def _mode(
    spent_d: float, spent_m: float, reserved: float, daily: float, monthly: float, soft: float
) -> Mode:
    if daily <= 0 or monthly <= 0 or spent_d + reserved >= daily or spent_m + reserved >= monthly:
        return "local_only"
    if spent_d + reserved >= soft * daily or spent_m + reserved >= soft * monthly:
        return "thrifty"
    return "normal"


@dataclass(frozen=True)
class _Totals:
    spent_day: float
    spent_month: float
    reserved: float
    daily: float
    monthly: float


class BudgetLedger:
    """The cost ledger. Thread-safe; each method is one short SQLite transaction."""

    def __init__(
        self,
        path: Path,
        config: BudgetConfig,
        *,
        clock: Callable[[], datetime] | None = None,
        salt: bytes | None = None,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Open (creating or migrating if needed) the ledger; BudgetError: one clear line.

        `salt` is used only when the ledger is created (tests pin it); `on_connect` gets the
        configured connection (a seam for tests, e.g. PRAGMA max_page_count = a full disk).
        """
        self._path = Path(path).expanduser()
        self._config = config
        self._clock = clock or utc_now
        self._zone = resolve_timezone(config.timezone)
        self._owner = process_owner()
        self._conn = open_database(self._path, config.busy_timeout_ms)
        try:
            if on_connect is not None:
                on_connect(self._conn)
            self._salt, stored = init_schema(self._conn, self._path, salt)
            with immediate(self._conn):
                self._charge_orphans()
        except sqlite3.Error as e:
            self._conn.close()
            raise BudgetError(describe_sqlite_error(self._path, e)) from None
        except BudgetError:
            self._conn.close()
            raise
        # One connection, used under _lock: short transactions, so a caller waits at most
        # the busy timeout (another process holding the write lock), never longer.
        self._lock = threading.Lock()
        self._mine: dict[int, float] = {}
        """This ledger's open reservations: id -> worst case."""
        self._unwritten: dict[int, tuple[Any, ...] | None] = {}
        """Settlements (row values) or releases (None) a failed commit left to retry."""
        self._failing = False
        self._last = self._empty_status(stored)
        self._closed = False
        log.info(
            "ledger open",
            path=str(self._path),
            timezone=str(self._zone),
            daily_usd=self._last.daily_limit,
            monthly_usd=self._last.monthly_limit,
        )

    @property
    def path(self) -> Path:
        return self._path

    def local_now(self) -> datetime:
        """The ledger's clock in the household's time zone."""
        return _aware(self._clock()).astimezone(self._zone)

    def _local_keys(self, ts: datetime) -> tuple[date, str, str]:
        local = _aware(ts).astimezone(self._zone)
        return local.date(), local.date().isoformat(), f"{local.year:04d}-{local.month:02d}"

    def _empty_status(self, stored: tuple[float | None, float | None]) -> BudgetStatus:
        daily = self._config.daily_usd if stored[0] is None else stored[0]
        monthly = self._config.monthly_usd if stored[1] is None else stored[1]
        return BudgetStatus(
            0.0, 0.0, daily, monthly, 0.0, "normal", self._local_keys(self._clock())[0],
            self._config.soft_fraction,
        )  # fmt: skip

    # ---- database failures degrade, never raise into a turn -------------------------

    def _db_failed(self, what: str, err: sqlite3.Error) -> None:
        if not self._failing:
            log.warning(what, problem=describe_sqlite_error(self._path, err))
        self._failing = True

    def _db_ok(self) -> None:
        if self._failing:
            log.info("ledger usable again", path=str(self._path))
        self._failing = False

    # ---- the latency path ------------------------------------------------------------

    def _totals(self, day: str, month: str) -> _Totals:
        d, m, reserved, daily, monthly = self._conn.execute(_TOTALS, (day, month)).fetchone()
        return _Totals(
            float(d),
            float(m),
            float(reserved),
            self._config.daily_usd if daily is None else float(daily),
            self._config.monthly_usd if monthly is None else float(monthly),
        )

    def status(self) -> BudgetStatus:
        """Spend, every process's reservations and the mode; local-only if unreadable."""
        today, day, month = self._local_keys(self._clock())
        with self._lock:
            try:
                t = self._totals(day, month)
            except sqlite3.Error as e:
                self._db_failed("ledger unreadable; cloud calls refused", e)
                return replace(self._last, mode="local_only")
            soft = self._config.soft_fraction
            self._last = BudgetStatus(
                spent_today=t.spent_day,
                spent_month=t.spent_month,
                daily_limit=t.daily,
                monthly_limit=t.monthly,
                reserved_usd=t.reserved,
                mode=_mode(t.spent_day, t.spent_month, t.reserved, t.daily, t.monthly, soft),
                today=today,
                soft_fraction=soft,
            )
            return self._last

    def reserve(
        self,
        tier: str,
        worst_case_usd: float,
        *,
        query_text: str = "",
        model: str = "",
        provider: str = "anthropic",
    ) -> Reservation | None:
        """Book the worst case, or None when it could cross either hard limit (don't call).

        None too when the ledger cannot be written: no cloud spend that is not booked.
        """
        if not (math.isfinite(worst_case_usd) and worst_case_usd >= 0):
            raise ValueError(f"worst case must be a non-negative amount, not {worst_case_usd}")
        now = self._clock()
        _, day, month = self._local_keys(now)
        with self._lock:
            if self._closed:
                return None
            if self._unwritten:
                self._retry_unwritten()
            if len(self._mine) + len(self._unwritten) >= MAX_PENDING_ROWS:
                # Every admitted call must have room for its row: refuse rather than lose.
                log.warning("ledger backlog full; cloud call refused", open=len(self._mine))
                return None
            try:
                with immediate(self._conn):
                    self._charge_orphans()
                    t = self._totals(day, month)
                    if (
                        t.daily <= 0
                        or t.monthly <= 0
                        or t.spent_day + t.reserved + worst_case_usd > t.daily
                        or t.spent_month + t.reserved + worst_case_usd > t.monthly
                    ):
                        return None
                    cur = self._conn.execute(
                        "INSERT INTO reservations (owner, tier, provider, model, query_hash, "
                        "worst_case_usd, made_utc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            self._owner,
                            tier,
                            provider,
                            model,
                            query_hash(self._salt, query_text),
                            worst_case_usd,
                            _aware(now).astimezone(UTC).isoformat(),
                        ),
                    )
            except sqlite3.Error as e:
                self._db_failed("ledger cannot be written; cloud call refused", e)
                return None
            self._db_ok()
            rid = int(cur.lastrowid or 0)
            self._mine[rid] = worst_case_usd
        return Reservation(id=rid, tier=tier, worst_case_usd=worst_case_usd, made_at=now)

    def settle(self, reservation: Reservation, record: CallRecord) -> None:
        """Replace the reservation by the call's real row, committed before returning."""
        values = self._row_values(record)
        with self._lock:
            worst = self._mine.pop(reservation.id, None)
            if worst is None:
                log.error("settle of an unknown or already settled reservation", id=reservation.id)
                return
            if self._closed:
                # The reservation row stays: once this process ends, the worst case is
                # charged as an 'unknown' row. Lost it is not.
                log.error("settle after the ledger was closed", cost_usd=record.cost_usd)
                return
            self._write(reservation.id, values)
        if record.cost_usd > worst + 1e-12:
            log.warning(
                "call cost more than its worst case",
                tier=record.tier,
                cost_usd=record.cost_usd,
                worst_case_usd=worst,
            )

    def release(self, reservation: Reservation, reason: str) -> None:
        """Drop a reservation whose call cost nothing (never sent, or no usage reported)."""
        with self._lock:
            known = self._mine.pop(reservation.id, None) is not None
            if known and not self._closed:
                self._write(reservation.id, None)
        log.debug(
            "reservation released", id=reservation.id, tier=reservation.tier, reason=reason,
            known=known,
        )  # fmt: skip

    def _row_values(self, record: CallRecord) -> tuple[Any, ...]:
        ts = _aware(record.ts or self._clock())
        _, day, month = self._local_keys(ts)
        text = redact_text(record.query_text) if self._config.store_query_text else None
        return (
            ts.astimezone(UTC).isoformat(), day, month, query_hash(self._salt, record.query_text),
            text, record.tier, record.model, record.input_tokens, record.output_tokens,
            record.cache_read_tokens, record.cache_write_tokens, record.cost_usd,
            record.latency_ms, record.first_token_ms, record.confidence, record.category,
            record.fallback_reason, record.status, record.provider,
        )  # fmt: skip

    def _write(self, rid: int, values: tuple[Any, ...] | None) -> None:
        """Settle (values) or release (None) a reservation now; on failure keep it to retry.

        Until it is written the reservation row keeps the worst case booked, so a failed
        write never lets the limit slip, and a process that dies leaves an 'unknown' row.
        """
        try:
            with immediate(self._conn):
                gone = self._conn.execute("DELETE FROM reservations WHERE id = ?", (rid,))
                if values is not None and gone.rowcount == 1:
                    self._conn.execute(INSERT_CALL, values)
            if values is not None and gone.rowcount != 1:
                log.error("reservation already charged as unknown; row not added", id=rid)
        except sqlite3.Error as e:
            self._unwritten[rid] = values
            self._db_failed("ledger write failed; the worst case stays booked, will retry", e)
            return
        self._unwritten.pop(rid, None)
        self._db_ok()

    def _retry_unwritten(self) -> None:
        for rid, values in list(self._unwritten.items()):
            self._write(rid, values)
            if rid in self._unwritten:
                return

    def _charge_orphans(self) -> None:
        """Charge the worst case of reservations whose process has ended (in a transaction)."""
        owners = self._conn.execute(
            "SELECT DISTINCT owner FROM reservations WHERE owner != ?", (self._owner,)
        ).fetchall()
        for (owner,) in owners:
            if owner_alive(owner):
                continue
            rows = self._conn.execute(
                "SELECT id, tier, provider, model, query_hash, worst_case_usd, made_utc "
                "FROM reservations WHERE owner = ?",
                (owner,),
            ).fetchall()
            for rid, tier, provider, model, qhash, worst, made in rows:
                _, day, month = self._local_keys(datetime.fromisoformat(made))
                self._conn.execute(
                    INSERT_CALL,
                    (made, day, month, qhash, None, tier, model, 0, 0, 0, 0, worst, None, None,
                     None, "", "process_ended", "unknown", provider),
                )  # fmt: skip
                self._conn.execute("DELETE FROM reservations WHERE id = ?", (rid,))
            log.warning(
                "a process ended with cloud calls in flight; their worst case is charged",
                owner=owner,
                calls=len(rows),
                cost_usd=math.fsum(r[5] for r in rows),
            )

    def flush(self, timeout: float = 5.0) -> bool:
        """Retry settlements a failed write left behind; False if some are still unwritten.

        (Settlements are committed by settle() itself; `timeout` is kept for callers.)
        """
        with self._lock:
            if self._unwritten and not self._closed:
                self._retry_unwritten()
            return not self._unwritten

    # ---- the CLI side ----------------------------------------------------------------

    def set_limits(self, daily: float | None, monthly: float | None) -> None:
        """Store limits that override config (None keeps the current one); every
        process sees them at its next transaction."""
        _check_limit("daily", daily)
        _check_limit("monthly", monthly)
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO limits (id, daily_usd, monthly_usd, updated_utc) "
                    "VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                    "daily_usd = COALESCE(excluded.daily_usd, daily_usd), "
                    "monthly_usd = COALESCE(excluded.monthly_usd, monthly_usd), "
                    "updated_utc = excluded.updated_utc",
                    (daily, monthly, utc_now().isoformat()),
                )
            except sqlite3.Error as e:
                raise BudgetError(describe_sqlite_error(self._path, e)) from None
        log.info("budget limits set", daily_usd=daily, monthly_usd=monthly)

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise BudgetError(describe_sqlite_error(self._path, e)) from None

    def history(self, days: int = 7) -> list[DaySpend]:
        """Spend per local day, oldest first, ending today; days without calls show 0."""
        if days < 1:
            return []
        today, _, _ = self._local_keys(self._clock())
        first = today - timedelta(days=days - 1)
        rows = self._read(
            "SELECT local_day, SUM(cost_usd), COUNT(*) FROM calls "
            "WHERE local_day >= ? AND local_day <= ? GROUP BY local_day",
            (first.isoformat(), today.isoformat()),
        )
        by_day = {d: (float(c), int(n)) for d, c, n in rows}
        return [
            DaySpend(day, *by_day.get(day.isoformat(), (0.0, 0))) for day in _days(first, today)
        ]

    def usage(self, first: date, last: date) -> list[UsageRow]:
        """Calls, tokens and cost per local day, tier and provider (days with calls only)."""
        rows = self._read(
            "SELECT local_day, tier, provider, COUNT(*), SUM(input_tokens), "
            "SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), "
            "SUM(cost_usd) FROM calls WHERE local_day >= ? AND local_day <= ? "
            "GROUP BY local_day, tier, provider ORDER BY local_day, tier, provider",
            (first.isoformat(), last.isoformat()),
        )
        return [
            UsageRow(
                date.fromisoformat(d), t, p, int(n), int(i), int(o), int(cr), int(cw), float(c)
            )
            for d, t, p, n, i, o, cr, cw, c in rows
        ]

    def close(self, timeout: float = 5.0) -> None:
        """Retry what is unwritten, then close the database.

        Reservations still open (calls in flight) stay booked; once this process ends,
        the next process to reserve charges their worst case as 'unknown' rows.
        """
        if self._closed:
            return
        if not self.flush(timeout):
            log.error("ledger rows unwritten at close; their worst case stays booked")
        with self._lock:
            self._closed = True
            self._conn.close()

    def __enter__(self) -> BudgetLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)
