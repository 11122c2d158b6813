"""The rule that picks the router's thresholds from out-of-source predictions
(scripts/router_thresholds.py), on made-up probabilities."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from atlas.llm.config import RouterConfig
from tests.conftest import script_module


@pytest.fixture
def thresholds(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    yield from script_module("router_thresholds", monkeypatch)


def _rows(p_local: float, p_agent: float, n: int) -> list[list[float]]:
    return [[p_local, 1.0 - p_local - p_agent, p_agent]] * n


def test_route_is_the_learned_stage_rule(thresholds: ModuleType) -> None:
    p = np.array([[0.9, 0.1, 0.0], [0.5, 0.2, 0.3], [0.7, 0.3, 0.0], [0.1, 0.9, 0.0]])
    # agent wins at its bar before local; local needs its own bar; the rest is haiku
    assert thresholds.route(p, 0.25, 0.8, RouterConfig()).tolist() == [0, 2, 1, 1]


def test_scores_weigh_each_tier_the_same(thresholds: ModuleType) -> None:
    y = np.array([0] * 90 + [1] * 10 + [2] * 10)
    pred = np.array([0] * 90 + [0] * 5 + [1] * 5 + [2] * 10)
    acc, recall, precision = thresholds.scores(pred, y)
    assert recall == [1.0, 0.5, 1.0] and acc == pytest.approx(2.5 / 3)
    # five haiku rows of ten taken for commands weigh as 50% of the haiku tier
    assert precision[0] == pytest.approx(1.0 / 1.5)


def test_expected_cost_weighs_each_tier_the_same(thresholds: ModuleType) -> None:
    y = np.array([0] * 90 + [1] * 10 + [2] * 10)
    # five haiku rows of ten taken for commands: half the haiku tier at cost 3
    pred = np.array([0] * 90 + [0] * 5 + [1] * 5 + [2] * 10)
    assert thresholds.expected_cost(pred, y) == pytest.approx((0 + 1.5 + 0) / 3)
    # the same five mistakes the other way round cost less: a command sent to the cloud
    flipped = np.array([0] * 85 + [1] * 5 + [1] * 10 + [2] * 10)
    assert thresholds.expected_cost(flipped, y) < thresholds.expected_cost(pred, y)


def test_choose_takes_the_cheapest_pair(thresholds: ModuleType) -> None:
    # commands at 0.95, requests that look like commands at 0.70, plain requests at
    # 0.10, medical questions with agent 0.5: a local bar above 0.70 loses nothing
    p = np.array(
        _rows(0.95, 0.0, 100) + _rows(0.70, 0.0, 20) + _rows(0.10, 0.0, 80) + _rows(0.0, 0.5, 100)
    )
    y = np.array([0] * 100 + [1] * 100 + [2] * 100)
    agent, local, cost, acc, recall, precision = thresholds.choose(p, y, RouterConfig())
    assert cost == 0.0 and acc == 1.0
    assert 0.70 < local <= 0.95 and agent <= 0.5
    assert recall == [1.0, 1.0, 1.0] and precision[0] == 1.0


def test_choose_gives_up_some_commands_rather_than_answer_requests_locally(
    thresholds: ModuleType,
) -> None:
    # 20 of 100 commands and 10 of 100 requests both sit at local 0.70: taking them
    # costs 10 requests x 3, leaving them costs 20 commands x 1; the bar goes above 0.70
    p = np.array(
        _rows(0.95, 0.0, 80)
        + _rows(0.70, 0.0, 20)
        + _rows(0.70, 0.0, 10)
        + _rows(0.10, 0.0, 90)
        + _rows(0.0, 0.5, 100)
    )
    y = np.array([0] * 100 + [1] * 100 + [2] * 100)
    _, local, cost, _, recall, precision = thresholds.choose(p, y, RouterConfig())
    assert local > 0.70 and recall[0] == 0.8 and precision[0] == 1.0
    assert cost == pytest.approx(0.2 / 3)


def test_bad_input_is_one_line_and_exit_2(
    thresholds: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "no_source.tsv"
    data.write_text("utterance\ttier\nhello\tlocal\n", encoding="utf-8")
    sys.argv = ["router_thresholds.py", str(data)]
    assert thresholds.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"router_thresholds: {data}: no 'source' column, so no corpus can be held out"]
