"""The ledger is the truth across processes, even when some are SIGKILLed mid-call.

Several ATLAS processes (tests/unit/ledger_worker.py: the real Router and Anthropic
client) share one ledger file and one fake Anthropic server that bills every request it
receives. The parent kills some workers at random moments (before, during and after
their calls: mid-reservation, mid-stream, mid-settlement). Afterwards:

* the hard daily limit held, for what the fake billed and for what the ledger charged;
* no billed call is lost: every request in the fake's log has a ledger row;
* none is invented: every settled row matches one request in the log, at its cost;
* a call whose process died in flight is a row with status 'unknown' at its worst case
  (at most one per killed process, which makes one call at a time).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from atlas.llm.budget import BudgetLedger, query_hash
from atlas.llm.config import BudgetConfig
from atlas.testing.fake_anthropic import FakeAnthropic, LatencyProfile, split_deltas

WORKERS = 6
KILLED = 3
CALLS = 8
DAILY_USD = 0.008
IN_USD, OUT_USD = 1.0e-6, 5.0e-6  # CloudTierConfig's default prices per token
PROFILE = LatencyProfile(first_token_ms=20.0, tokens_per_s=60.0, input_tokens=300)
ROOT = Path(__file__).resolve().parents[2]


def _bill() -> float:
    """What the fake bills for each request (it reports the whole answer's usage)."""
    return PROFILE.input_tokens * IN_USD + len(split_deltas(PROFILE.answer)) * OUT_USD


def _query_of(body: Any) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content)


def _spawn(db: Path, url: str, worker: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    args = [str(db), url, str(worker), str(CALLS), str(DAILY_USD)]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.unit.ledger_worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _read_lines(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.strip())


def test_killed_processes_never_lose_or_invent_a_billed_call(tmp_path: Path) -> None:
    seed = int(os.environ.get("LEDGER_TEST_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    db = tmp_path / "ledger.sqlite3"
    BudgetLedger(db, BudgetConfig(daily_usd=DAILY_USD, timezone="UTC")).close()
    with FakeAnthropic(PROFILE) as fake:
        procs = [_spawn(db, fake.base_url, w) for w in range(WORKERS)]
        out: list[list[str]] = [[] for _ in procs]
        readers = [
            threading.Thread(target=_read_lines, args=(p, o), daemon=True)
            for p, o in zip(procs, out, strict=True)
        ]
        for r in readers:
            r.start()
        deadline = time.monotonic() + 180
        while not all("ready" in o for o in out) and time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.05)
        assert all("ready" in o for o in out), f"workers did not start: {out}"
        victims = rng.sample(range(WORKERS), KILLED)
        # Spread the kills over the busy period: some land mid-stream, some between calls.
        at = sorted((rng.uniform(0.0, 2.5), v) for v in victims)
        t0 = time.monotonic()
        for when, v in at:
            time.sleep(max(0.0, t0 + when - time.monotonic()))
            procs[v].send_signal(signal.SIGKILL)
        for p in procs:
            p.wait(timeout=180)
        for r in readers:
            r.join(timeout=10)
        requests = [r for r in fake.requests if r.path.startswith("/v1/messages")]
    survivors = [w for w in range(WORKERS) if w not in victims]
    for w in survivors:
        assert procs[w].returncode == 0, (seed, w, out[w])
        assert sum(line.startswith("done") for line in out[w]) == CALLS, (seed, out[w])

    # Opening the ledger again charges what the dead left in flight.
    with BudgetLedger(db, BudgetConfig(daily_usd=DAILY_USD, timezone="UTC")) as ledger:
        status = ledger.status()
    conn = sqlite3.connect(db)
    try:
        (salt,) = conn.execute("SELECT salt FROM install").fetchone()
        rows = conn.execute("SELECT query_hash, status, cost_usd FROM calls").fetchall()
        (open_reservations,) = conn.execute("SELECT COUNT(*) FROM reservations").fetchone()
    finally:
        conn.close()

    billed = Counter(query_hash(salt, _query_of(r.body)) for r in requests)
    settled = Counter(h for h, s, _ in rows if s != "unknown")
    unknown = Counter(h for h, s, _ in rows if s == "unknown")
    why = f"seed {seed}, victims {victims}"
    # The hard limit held: for the money the fake billed, and for the ledger's own sums.
    assert len(requests) * _bill() <= DAILY_USD + 1e-9, why
    assert status.spent_today <= DAILY_USD + 1e-9, why
    assert sum(c for _, _, c in rows) <= DAILY_USD + 1e-9, why
    # None invented: every settled row is a billed request, charged what it was billed.
    assert not settled - billed, why
    assert all(c == pytest.approx(_bill()) for _, s, c in rows if s == "ok"), why
    # None lost: every billed request has a row (settled, or 'unknown' at its worst case).
    assert not billed - (settled + unknown), why
    assert sum(unknown.values()) <= KILLED and open_reservations == 0, why
    # The limit bound: the survivors were refused cloud calls once it was reached.
    assert len(requests) < WORKERS * CALLS, why
    print(
        f"ledger processes: seed {seed}: {len(requests)} billed, {sum(settled.values())} "
        f"settled, {sum(unknown.values())} unknown, spent ${status.spent_today:.6f} "
        f"of ${DAILY_USD}"
    )
