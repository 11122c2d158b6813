"""SQLite cost ledger of cloud calls, and the budget status the router decides with.

The hard limit must hold even with concurrent turns, so admission is a reservation:
`reserve()` books a call's worst-case cost under a lock and admits it only when
spent + reserved + worst case stays within BOTH the daily and the monthly limit;
`settle()` swaps the reservation for the real cost (never more than admitted, unless the
API bills more than the worst case, which is logged). Day and month boundaries are in the
configured local time zone, because "today" is what the person means.

Writes are off the latency path: settled rows wait in memory (bounded: a reservation is
refused while the backlog is full, so a row always has room) and a single writer thread
inserts them. In-memory totals are the last committed sums plus the unwritten rows, so
the limit holds before a write lands. A failed write is retried with backoff and logged;
the row is kept until it is written (or the process ends).

Only real usage is charged: a call that never happened, or reported no usage, is
`release()`d and leaves no row; a failed or cancelled stream whose tokens were billed is
`settle()`d with status 'failed'/'cancelled' and its real cost.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import math
import os
import re
import secrets
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from atlas.llm.base import LLMResponse, Usage
from atlas.llm.config import BudgetConfig
from atlas.logs import redact_text

log = structlog.get_logger("atlas.llm.budget")

SCHEMA_VERSION = 1
MAX_PENDING_ROWS = 1000
"""Unwritten rows + open reservations; beyond it new calls are refused, never rows lost."""
_BATCH_ROWS = 200
_RETRY_INITIAL_S = 0.05
_RETRY_MAX_S = 5.0

Mode = Literal["normal", "thrifty", "local_only"]
CallStatus = Literal["ok", "failed", "cancelled"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS install (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    salt BLOB NOT NULL,
    created_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    ts_utc TEXT NOT NULL,
    local_day TEXT NOT NULL,
    local_month TEXT NOT NULL,
    query_hash TEXT NOT NULL,
    query_text TEXT,
    tier TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_ms REAL,
    first_token_ms REAL,
    confidence REAL,
    category TEXT NOT NULL,
    fallback_reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'cancelled'))
);
CREATE INDEX IF NOT EXISTS calls_local_day ON calls (local_day);
CREATE INDEX IF NOT EXISTS calls_local_month ON calls (local_month);
CREATE TABLE IF NOT EXISTS limits (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    daily_usd REAL,
    monthly_usd REAL,
    updated_utc TEXT NOT NULL
);
"""

_INSERT = """
INSERT INTO calls (ts_utc, local_day, local_month, query_hash, query_text, tier, model,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd,
    latency_ms, first_token_ms, confidence, category, fallback_reason, status)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


class BudgetError(Exception):
    """The ledger cannot be used; the message is one line naming the file and the problem."""


@dataclass(frozen=True, kw_only=True)
class CallRecord:
    """One cloud call as it really went (usage as the API reported it)."""

    ts: datetime | None = None
    """When the call was made (aware); None: the ledger's clock at settle()."""
    query_text: str
    tier: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float | None = None
    first_token_ms: float | None = None
    confidence: float | None = None
    category: str = ""
    fallback_reason: str = ""
    status: CallStatus = "ok"

    @property
    def usage(self) -> Usage:
        return Usage(
            self.input_tokens, self.output_tokens, self.cache_read_tokens, self.cache_write_tokens
        )

    @classmethod
    def from_response(
        cls,
        response: LLMResponse,
        *,
        query_text: str,
        tier: str,
        confidence: float | None = None,
        category: str = "",
        fallback_reason: str = "",
        status: CallStatus = "ok",
        ts: datetime | None = None,
    ) -> CallRecord:
        u = response.usage
        return cls(
            ts=ts,
            query_text=query_text,
            tier=tier,
            model=response.model,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
            cost_usd=response.cost_usd,
            latency_ms=response.total_duration_ms,
            first_token_ms=response.first_token_ms,
            confidence=confidence,
            category=category,
            fallback_reason=fallback_reason,
            status=status,
        )


@dataclass(frozen=True)
class Reservation:
    """A worst-case amount booked against the limits until settle() or release()."""

    id: int
    tier: str
    worst_case_usd: float
    made_at: datetime


@dataclass(frozen=True)
class BudgetStatus:
    spent_today: float
    spent_month: float
    daily_limit: float
    monthly_limit: float
    reserved_usd: float
    mode: Mode
    today: date
    """The local date the figures are for."""
    soft_fraction: float = 0.8

    @property
    def cloud_allowed(self) -> bool:
        return self.mode != "local_only"

    @property
    def thrifty(self) -> bool:
        return self.mode == "thrifty"

    @property
    def remaining_today(self) -> float:
        return max(0.0, self.daily_limit - self.spent_today - self.reserved_usd)

    @property
    def remaining_month(self) -> float:
        return max(0.0, self.monthly_limit - self.spent_month - self.reserved_usd)

    @property
    def remaining(self) -> float:
        """What the next call may cost at most (the tighter of the two limits)."""
        return min(self.remaining_today, self.remaining_month)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["today"] = self.today.isoformat()
        d["remaining_usd"] = self.remaining
        return d


@dataclass(frozen=True)
class DaySpend:
    day: date
    cost_usd: float
    calls: int


@dataclass(frozen=True)
class _Row:
    """A settled call waiting for the writer."""

    values: tuple[Any, ...]
    local_day: str
    local_month: str
    cost_usd: float


def resolve_timezone(name: str) -> tzinfo:
    """An IANA zone, or the system zone for "local" (DST-aware whenever it can be)."""
    if name != "local":
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise BudgetError(f"unknown time zone {name!r} (budget.timezone)") from None
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return ZoneInfo(env)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    m = re.search(r"zoneinfo/(.+)$", os.path.realpath(localtime))
    if m:
        try:
            return ZoneInfo(m.group(1))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with localtime.open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        pass
    # Last resort: today's fixed offset (wrong across a DST change, hence the warning).
    zone = datetime.now().astimezone().tzinfo or UTC
    log.warning("system time zone unknown; using a fixed offset", zone=str(zone))
    return zone


def query_hash(salt: bytes, text: str) -> str:
    """Salted so equal queries group within an install but cannot be dictionary-matched."""
    normalized = " ".join(text.casefold().split())
    return hmac.new(salt, normalized.encode("utf-8"), hashlib.sha256).hexdigest()


def describe_sqlite_error(path: Path, err: sqlite3.Error) -> str:
    """One line naming the ledger file and what is wrong with it."""
    code = getattr(err, "sqlite_errorname", "")
    text = str(err)
    if code == "SQLITE_NOTADB" or "not a database" in text:
        return f"ledger {path} is not a database"
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return f"ledger {path} is locked by another process"
    if code.startswith("SQLITE_READONLY") or "readonly" in text:
        return f"ledger {path} is read-only (check its permissions)"
    if code.startswith("SQLITE_CANTOPEN"):
        return f"ledger {path} cannot be opened (is it a directory, or unreadable?)"
    if code == "SQLITE_FULL":
        return f"ledger {path} cannot be written: the disk is full"
    if code.startswith("SQLITE_CORRUPT"):
        return f"ledger {path} is corrupt"
    return f"ledger {path} cannot be used: {text}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


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


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    # Nothing may be open: SQLite rolls some failed statements back by itself.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


def _open_database(path: Path, config: BudgetConfig) -> sqlite3.Connection:
    """Connect in WAL mode with the busy timeout; BudgetError names what is wrong."""
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BudgetError(
            f"ledger {path}: cannot create directory {parent} ({e.strerror})"
        ) from None
    try:
        conn = sqlite3.connect(
            path,
            timeout=config.busy_timeout_ms / 1000,
            isolation_level=None,  # explicit BEGIN IMMEDIATE / COMMIT
            check_same_thread=False,  # used by the writer thread; _db_lock serialises
        )
    except sqlite3.Error as e:
        raise BudgetError(describe_sqlite_error(path, e)) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("ledger not in WAL mode", path=str(path), mode=mode)
        conn.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL, cheaper
    except sqlite3.Error as e:
        conn.close()
        raise BudgetError(describe_sqlite_error(path, e)) from None
    return conn


def _init_schema(
    conn: sqlite3.Connection, path: Path, salt: bytes | None
) -> tuple[bytes, tuple[float | None, float | None]]:
    """Create or check the schema; returns the install salt and any stored limits."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        if row[0] is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif row[0] > SCHEMA_VERSION:
            raise BudgetError(
                f"ledger {path} has schema version {row[0]}; "
                f"this ATLAS understands up to {SCHEMA_VERSION}"
            )
        got = conn.execute("SELECT salt FROM install WHERE id = 1").fetchone()
        if got is None:
            install_salt = salt if salt is not None else secrets.token_bytes(32)
            conn.execute(
                "INSERT INTO install (id, salt, created_utc) VALUES (1, ?, ?)",
                (install_salt, _utc_now().isoformat()),
            )
        else:
            install_salt = bytes(got[0])
        lim = conn.execute("SELECT daily_usd, monthly_usd FROM limits WHERE id = 1").fetchone()
        conn.execute("COMMIT")
    except BaseException:
        _rollback_quietly(conn)
        raise
    return install_salt, (lim[0], lim[1]) if lim else (None, None)


def _sums_by(conn: sqlite3.Connection, column: str) -> dict[str, float]:
    rows = conn.execute(f"SELECT {column}, SUM(cost_usd) FROM calls GROUP BY {column}")
    return {str(k): float(v) for k, v in rows.fetchall()}


class BudgetLedger:
    """The cost ledger. Thread-safe; every method but history()/set_limits() is I/O-free."""

    def __init__(
        self,
        path: Path,
        config: BudgetConfig,
        *,
        clock: Callable[[], datetime] | None = None,
        salt: bytes | None = None,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Open (creating if needed) the ledger; raises BudgetError with one clear line.

        `salt` is used only when the ledger is created (tests pin it); `on_connect` gets the
        configured connection (a seam for tests, e.g. PRAGMA max_page_count = a full disk).
        """
        self._path = Path(path).expanduser()
        self._config = config
        self._clock = clock or _utc_now
        self._zone = resolve_timezone(config.timezone)
        self._conn = _open_database(self._path, config)
        try:
            if on_connect is not None:
                on_connect(self._conn)
            self._salt, stored_limits = _init_schema(self._conn, self._path, salt)
            day_sums = _sums_by(self._conn, "local_day")
            month_sums = _sums_by(self._conn, "local_month")
        except sqlite3.Error as e:
            self._conn.close()
            raise BudgetError(describe_sqlite_error(self._path, e)) from None
        except BudgetError:
            self._conn.close()
            raise
        self._daily_limit = config.daily_usd if stored_limits[0] is None else stored_limits[0]
        self._monthly_limit = config.monthly_usd if stored_limits[1] is None else stored_limits[1]
        # _lock guards the in-memory state and is never held during database I/O, so the
        # event loop never waits on the disk. _db_lock serialises the one connection;
        # order is always _db_lock -> _lock.
        self._lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._written = threading.Condition(self._lock)
        self._committed_day: dict[str, float] = day_sums
        self._committed_month: dict[str, float] = month_sums
        self._pending: deque[_Row] = deque()
        self._reservations: dict[int, float] = {}
        self._ids = itertools.count(1)
        self._kick = False
        self._stop = False
        self._closed = False
        self._writer = threading.Thread(
            target=self._write_loop, name="atlas-ledger-writer", daemon=True
        )
        self._writer.start()
        log.info(
            "ledger open",
            path=str(self._path),
            timezone=str(self._zone),
            daily_usd=self._daily_limit,
            monthly_usd=self._monthly_limit,
        )

    @property
    def path(self) -> Path:
        return self._path

    # ---- the latency path (no I/O) -------------------------------------------------

    def _local_keys(self, ts: datetime) -> tuple[date, str, str]:
        local = _aware(ts).astimezone(self._zone)
        return local.date(), local.date().isoformat(), f"{local.year:04d}-{local.month:02d}"

    def _spent_locked(self, day: str, month: str) -> tuple[float, float]:
        pend_d = math.fsum(r.cost_usd for r in self._pending if r.local_day == day)
        pend_m = math.fsum(r.cost_usd for r in self._pending if r.local_month == month)
        return (
            self._committed_day.get(day, 0.0) + pend_d,
            self._committed_month.get(month, 0.0) + pend_m,
        )

    def status(self) -> BudgetStatus:
        today, day, month = self._local_keys(self._clock())
        with self._lock:
            spent_d, spent_m = self._spent_locked(day, month)
            reserved = math.fsum(self._reservations.values())
            daily, monthly = self._daily_limit, self._monthly_limit
        soft = self._config.soft_fraction
        return BudgetStatus(
            spent_today=spent_d,
            spent_month=spent_m,
            daily_limit=daily,
            monthly_limit=monthly,
            reserved_usd=reserved,
            mode=_mode(spent_d, spent_m, reserved, daily, monthly, soft),
            today=today,
            soft_fraction=soft,
        )

    def reserve(self, tier: str, worst_case_usd: float) -> Reservation | None:
        """Book the worst case, or None when it could cross either hard limit (don't call)."""
        if not (math.isfinite(worst_case_usd) and worst_case_usd >= 0):
            raise ValueError(f"worst case must be a non-negative amount, not {worst_case_usd}")
        now = self._clock()
        _, day, month = self._local_keys(now)
        with self._lock:
            if self._stop:
                return None
            if len(self._pending) + len(self._reservations) >= MAX_PENDING_ROWS:
                # Every admitted call must have room for its row: refuse rather than lose.
                log.warning("ledger backlog full; cloud call refused", pending=len(self._pending))
                return None
            spent_d, spent_m = self._spent_locked(day, month)
            reserved = math.fsum(self._reservations.values())
            daily, monthly = self._daily_limit, self._monthly_limit
            if (
                daily <= 0
                or monthly <= 0
                or spent_d + reserved + worst_case_usd > daily
                or spent_m + reserved + worst_case_usd > monthly
            ):
                return None
            rid = next(self._ids)
            self._reservations[rid] = worst_case_usd
        return Reservation(id=rid, tier=tier, worst_case_usd=worst_case_usd, made_at=now)

    def settle(self, reservation: Reservation, record: CallRecord) -> None:
        """Replace the reservation by the real cost and queue the row (written later)."""
        ts = _aware(record.ts or self._clock())
        _, day, month = self._local_keys(ts)
        text = redact_text(record.query_text) if self._config.store_query_text else None
        values = (
            ts.astimezone(UTC).isoformat(),
            day,
            month,
            query_hash(self._salt, record.query_text),
            text,
            record.tier,
            record.model,
            record.input_tokens,
            record.output_tokens,
            record.cache_read_tokens,
            record.cache_write_tokens,
            record.cost_usd,
            record.latency_ms,
            record.first_token_ms,
            record.confidence,
            record.category,
            record.fallback_reason,
            record.status,
        )
        row = _Row(values=values, local_day=day, local_month=month, cost_usd=record.cost_usd)
        with self._lock:
            worst = self._reservations.pop(reservation.id, None)
            stopped = self._stop
            if worst is not None and not stopped:
                self._pending.append(row)
                self._work.notify()
        if stopped:
            log.error("settle after the ledger was closed; not recorded", cost_usd=record.cost_usd)
        elif worst is None:
            log.error("settle of an unknown or already settled reservation", id=reservation.id)
        elif record.cost_usd > worst + 1e-12:
            log.warning(
                "call cost more than its worst case",
                tier=record.tier,
                cost_usd=record.cost_usd,
                worst_case_usd=worst,
            )

    def release(self, reservation: Reservation, reason: str) -> None:
        """Drop a reservation whose call cost nothing (never sent, or no usage reported)."""
        with self._lock:
            worst = self._reservations.pop(reservation.id, None)
        log.debug(
            "reservation released",
            id=reservation.id,
            tier=reservation.tier,
            reason=reason,
            known=worst is not None,
        )

    # ---- the writer ----------------------------------------------------------------

    def _write_loop(self) -> None:
        failures = 0
        while True:
            with self._lock:
                while not self._pending and not self._stop:
                    self._work.wait()
                if not self._pending:
                    return
                batch = list(itertools.islice(self._pending, _BATCH_ROWS))
            try:
                self._write_batch(batch)
            except Exception as e:  # sqlite3.Error or anything else: keep the rows, retry
                failures += 1
                delay = min(_RETRY_MAX_S, _RETRY_INITIAL_S * 2 ** min(failures - 1, 20))
                with self._lock:
                    if self._stop:
                        log.error(
                            "ledger rows not written at shutdown",
                            path=str(self._path),
                            rows=len(self._pending),
                            error=str(e),
                        )
                        return
                    pending = len(self._pending)
                    log_fn = log.warning if failures == 1 or failures % 20 == 0 else log.debug
                    log_fn(
                        "ledger write failed; will retry",
                        path=str(self._path),
                        error=str(e),
                        attempt=failures,
                        pending=pending,
                        retry_in_s=delay,
                    )
                    self._work.wait_for(lambda: self._kick or self._stop, timeout=delay)
                    self._kick = False
                continue
            if failures:
                log.info("ledger write recovered", path=str(self._path), attempts=failures + 1)
            failures = 0

    def _write_batch(self, batch: list[_Row]) -> None:
        _, today, this_month = self._local_keys(self._clock())
        days = {r.local_day for r in batch} | {today}
        months = {r.local_month for r in batch} | {this_month}
        with self._db_lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, [r.values for r in batch])
                # Re-read the sums in the same transaction: they then include exactly the
                # rows just written (and any another process wrote), never twice.
                day_sums = {d: self._sum(conn, "local_day", d) for d in days}
                month_sums = {m: self._sum(conn, "local_month", m) for m in months}
                conn.execute("COMMIT")
            except BaseException:
                _rollback_quietly(conn)
                raise
            with self._lock:  # still under _db_lock, so history() never sees a row twice
                for _ in batch:
                    self._pending.popleft()  # batch is a prefix; settle() only appends
                self._committed_day.update(day_sums)
                self._committed_month.update(month_sums)
                self._written.notify_all()

    @staticmethod
    def _sum(conn: sqlite3.Connection, column: str, key: str) -> float:
        row = conn.execute(
            f"SELECT COALESCE(SUM(cost_usd), 0.0) FROM calls WHERE {column} = ?", (key,)
        ).fetchone()
        return float(row[0])

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every settled row is written; False if some are still pending."""
        with self._lock:
            self._kick = True  # skip the writer's backoff: retry now
            self._work.notify_all()
            return self._written.wait_for(lambda: not self._pending, timeout=timeout)

    # ---- the CLI side (synchronous I/O) --------------------------------------------

    def set_limits(self, daily: float | None, monthly: float | None) -> None:
        """Store limits that override config (None keeps the current one)."""
        _check_limit("daily", daily)
        _check_limit("monthly", monthly)
        with self._db_lock:
            try:
                self._conn.execute(
                    "INSERT INTO limits (id, daily_usd, monthly_usd, updated_utc) "
                    "VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                    "daily_usd = COALESCE(excluded.daily_usd, daily_usd), "
                    "monthly_usd = COALESCE(excluded.monthly_usd, monthly_usd), "
                    "updated_utc = excluded.updated_utc",
                    (daily, monthly, _utc_now().isoformat()),
                )
            except sqlite3.Error as e:
                raise BudgetError(describe_sqlite_error(self._path, e)) from None
            with self._lock:
                if daily is not None:
                    self._daily_limit = daily
                if monthly is not None:
                    self._monthly_limit = monthly
        log.info("budget limits set", daily_usd=daily, monthly_usd=monthly)

    def history(self, days: int = 7) -> list[DaySpend]:
        """Spend per local day, oldest first, ending today; days without calls show 0."""
        if days < 1:
            return []
        today, _, _ = self._local_keys(self._clock())
        first = today - timedelta(days=days - 1)
        with self._db_lock:
            try:
                rows = self._conn.execute(
                    "SELECT local_day, SUM(cost_usd), COUNT(*) FROM calls "
                    "WHERE local_day >= ? AND local_day <= ? GROUP BY local_day",
                    (first.isoformat(), today.isoformat()),
                ).fetchall()
            except sqlite3.Error as e:
                raise BudgetError(describe_sqlite_error(self._path, e)) from None
            with self._lock:
                pending = [(r.local_day, r.cost_usd) for r in self._pending]
        cost: dict[str, list[float]] = {d: [float(c)] for d, c, _ in rows}
        count: dict[str, int] = {d: int(n) for d, _, n in rows}
        for d, c in pending:
            cost.setdefault(d, []).append(c)
            count[d] = count.get(d, 0) + 1
        out = []
        for day in _days(first, today):
            key = day.isoformat()
            out.append(
                DaySpend(day=day, cost_usd=math.fsum(cost.get(key, [])), calls=count.get(key, 0))
            )
        return out

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending (up to `timeout`), stop the writer, close the database."""
        if self._closed:
            return
        self._closed = True
        if not self.flush(timeout):
            log.error("ledger rows still unwritten at close", path=str(self._path))
        with self._lock:
            self._stop = True
            self._work.notify_all()
        self._writer.join(timeout=self._config.busy_timeout_ms / 1000 + 1.0)
        with self._db_lock:
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
