"""The ledger's SQLite file: opening it, its schema and migrations, and who owns a row.

Every ATLAS process on the box (the daemon, `atlas ask`, a replay) opens the same file;
the budget is shared through transactions on it, never through process memory. A
reservation row names the process that made it (`owner`), so a process killed with a
call in flight leaves a row the next transaction can find and charge.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import structlog

log = structlog.get_logger("atlas.llm.budget")

SCHEMA_VERSION = 2

_CALLS = """
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
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'cancelled', 'unknown')),
    provider TEXT NOT NULL DEFAULT 'anthropic'
)"""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS install (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    salt BLOB NOT NULL,
    created_utc TEXT NOT NULL
);
{_CALLS};
-- Covering indexes: the totals on every reservation read the index alone.
DROP INDEX IF EXISTS calls_local_day;
DROP INDEX IF EXISTS calls_local_month;
CREATE INDEX IF NOT EXISTS calls_day_cost ON calls (local_day, cost_usd);
CREATE INDEX IF NOT EXISTS calls_month_cost ON calls (local_month, cost_usd);
CREATE TABLE IF NOT EXISTS limits (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    daily_usd REAL,
    monthly_usd REAL,
    updated_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    tier TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    query_hash TEXT NOT NULL,
    worst_case_usd REAL NOT NULL,
    made_utc TEXT NOT NULL
);
"""

CALL_COLUMNS = (
    "ts_utc, local_day, local_month, query_hash, query_text, tier, model, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, latency_ms, "
    "first_token_ms, confidence, category, fallback_reason, status, provider"
)
INSERT_CALL = f"INSERT INTO calls ({CALL_COLUMNS}) VALUES ({', '.join('?' * 19)})"

# Version 1 had no provider column and no 'unknown' status; SQLite cannot change a CHECK
# constraint in place, so the table is rebuilt inside the opening transaction.
_V1_COLUMNS = CALL_COLUMNS.removesuffix(", provider")
_MIGRATE_1_TO_2 = (
    _CALLS.replace("IF NOT EXISTS calls", "calls_v2"),
    f"INSERT INTO calls_v2 (id, {CALL_COLUMNS}) SELECT id, {_V1_COLUMNS}, 'anthropic' FROM calls",
    "DROP TABLE calls",
    "ALTER TABLE calls_v2 RENAME TO calls",
)


class BudgetError(Exception):
    """The ledger cannot be used; the message is one line naming the file and the problem."""


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
    if code == "SQLITE_FULL" or "full" in text:
        return f"ledger {path} cannot be written: the disk is full"
    if code.startswith("SQLITE_CORRUPT"):
        return f"ledger {path} is corrupt"
    return f"ledger {path} cannot be used: {text}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def rollback_quietly(conn: sqlite3.Connection) -> None:
    # Nothing may be open: SQLite rolls some failed statements back by itself.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception): the write lock up front,
    so two processes never both read the totals and then both admit."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield None
        conn.execute("COMMIT")
    except BaseException:
        rollback_quietly(conn)
        raise


def open_database(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
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
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,  # explicit BEGIN IMMEDIATE / COMMIT
            check_same_thread=False,  # the ledger's lock serialises its use
        )
    except sqlite3.Error as e:
        raise BudgetError(describe_sqlite_error(path, e)) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("ledger not in WAL mode", path=str(path), mode=mode)
        # WAL + NORMAL: a commit survives the process being killed (not a power cut),
        # and costs no fsync on the latency path.
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as e:
        conn.close()
        raise BudgetError(describe_sqlite_error(path, e)) from None
    return conn


def init_schema(
    conn: sqlite3.Connection, path: Path, salt: bytes | None
) -> tuple[bytes, tuple[float | None, float | None]]:
    """Create, migrate or check the schema; returns the install salt and stored limits."""
    with immediate(conn):
        row = None
        has_version = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if has_version:
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        if row is not None and row > SCHEMA_VERSION:
            raise BudgetError(
                f"ledger {path} has schema version {row}; "
                f"this ATLAS understands up to {SCHEMA_VERSION}"
            )
        if row == 1:
            for stmt in _MIGRATE_1_TO_2:
                conn.execute(stmt)
            log.info("ledger migrated", path=str(path), from_version=1, to_version=2)
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif row < SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        got = conn.execute("SELECT salt FROM install WHERE id = 1").fetchone()
        if got is None:
            install_salt = salt if salt is not None else secrets.token_bytes(32)
            conn.execute(
                "INSERT INTO install (id, salt, created_utc) VALUES (1, ?, ?)",
                (install_salt, utc_now().isoformat()),
            )
        else:
            install_salt = bytes(got[0])
        lim = conn.execute("SELECT daily_usd, monthly_usd FROM limits WHERE id = 1").fetchone()
    return install_salt, (lim[0], lim[1]) if lim else (None, None)


# ---- who owns a reservation ----------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None  # a zombie: killed, not yet reaped by its parent; it will do no more
    return fields[19] if len(fields) > 19 else None


def process_owner() -> str:
    """This process, as a reservation's owner: 'pid:start time'."""
    pid = os.getpid()
    return f"{pid}:{_start_time(pid) or '?'}"


def owner_alive(owner: str) -> bool:
    """Whether the process that made a reservation still runs (unsure: assume it does)."""
    pid_text, _, started = owner.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return True
    if started and started != "?" and Path("/proc/self/stat").exists():
        return _start_time(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but another user's
    return True
