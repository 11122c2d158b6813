"""The soak's verdict: unanswered turns and growth after the warm-up are named; a
connection or two more or less in the pool is not growth. And its bad arguments."""

from __future__ import annotations

import pytest

from atlas.bench.cli import main
from atlas.bench.soak_report import SLACK, SoakReport, SoakTurn, Vitals


def turn(answered: bool = True, tier: str = "local", ms: float = 500.0) -> SoakTurn:
    return SoakTurn("f.wav", "local", "none", tier, answered, None, None, ms, ms * 2)


def report(vitals: list[tuple[int, Vitals]], turns: int = 200) -> SoakReport:
    return SoakReport(window=50, turns=[turn() for _ in range(turns)], vitals=vitals)


def test_steady_vitals_after_the_warm_up_hold() -> None:
    r = report([(0, Vitals(900, 10, 10)), (100, Vitals(1100, 20, 18)), (200, Vitals(1120, 21, 18))])
    assert r.problems() == []
    assert r.growth() == {"rss_growth_pct": 1.82, "fd_growth": 1, "thread_growth": 0}
    assert "soak held" in r.format()


def test_growth_and_unanswered_turns_are_each_named() -> None:
    grown = Vitals(1200, 21 + SLACK, 19 + SLACK)
    r = report([(0, Vitals(900, 10, 10)), (100, Vitals(1100, 20, 18)), (200, grown)])
    r.turns[7] = turn(answered=False)
    problems = r.problems()
    assert len(problems) == 4, problems
    assert problems[0] == "1 turns were not answered"
    assert "RSS grew 9.09%" in problems[1]


def test_windows_give_latency_per_tier_and_the_vitals_after_them() -> None:
    r = report([(0, Vitals(900, 10, 10)), (50, Vitals(950, 11, 12))], turns=50)
    r.turns[0] = turn(tier="haiku", ms=900.0)
    (row,) = r.rows()
    assert row["answered"] == 50 and row["deadline_misses"] == 0
    assert row["first_sound_ms"]["haiku"] == (900, 900, 1)
    assert row["vitals_after"] == {"rss_mb": 950, "fds": 11, "threads": 12}


@pytest.mark.parametrize(
    "args", [["--turns", "0"], ["--window", "0"], ["--turns", "5", "--window", "6"], ["x.wav"]]
)
def test_bad_soak_arguments_are_one_line_and_exit_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["soak", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("atlas bench:"), err
