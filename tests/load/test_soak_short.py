"""A short soak in CI: the daemon's stack answers 28 turns with every cloud fault of
the matrix (dense: the faults back to back), a barge-in on the local model, skills and
a device request; every turn is answered and nothing grows turn after turn.

The full run is `atlas bench soak` (1,000 turns, reported, not part of the suite).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from atlas.bench.soak import UTTERANCES, fault_matrix, run_soak
from atlas.bench.soak_report import SLACK
from atlas.settings import load_settings

pytestmark = pytest.mark.slow

TURNS = 2 * len(UTTERANCES)
WINDOW = len(UTTERANCES) // 2


async def test_a_short_soak_answers_every_turn_and_grows_nothing() -> None:
    settings = load_settings()
    # Faults back to back: the breakers must not open and skip the cases.
    settings = replace(settings, breaker=replace(settings.breaker, fail_max=100))
    report = await run_soak(settings, TURNS, window=WINDOW, dense=True, settled_after=WINDOW)
    assert len(report.turns) == TURNS
    met = {t.fault for t in report.turns}
    assert {f.name for f in fault_matrix(settings, dense=True)} <= met, met
    unanswered = [t for t in report.turns if not t.answered]
    assert not unanswered, unanswered
    # No growth turn after turn: the end is no higher than the peak before it, give or
    # take a pooled connection (a leak of one descriptor or thread per faulty turn would
    # climb well past it).
    vitals = [v for n, v in report.vitals if n >= WINDOW]
    *before, end = vitals
    assert end.fds <= max(v.fds for v in before) + SLACK, report.vitals
    assert end.threads <= max(v.threads for v in before) + SLACK, report.vitals
