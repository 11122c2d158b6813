"""The answer evaluation: file loading, grading, and the frozen set run through the real
router with a scripted model (every deterministic path must pass every check)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from atlas.answer_eval import (
    CHECKS,
    AnswerGrader,
    EvalFileError,
    EvalReport,
    EvalRow,
    load_eval,
    run_eval,
)
from atlas.cli_eval import DEFAULT_EVAL
from atlas.persona import Persona
from atlas.settings import Settings, load_settings
from tests.unit.test_router_honesty import ScriptedLocal, make_router

NOW = datetime(2026, 12, 2, 15, 20, tzinfo=UTC)
DEV = DEFAULT_EVAL.parent / "answers_dev.tsv"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="module")
def grader(settings: Settings) -> AnswerGrader:
    return AnswerGrader(Persona(settings.persona), lambda: NOW)


def test_the_frozen_set_is_big_and_broad_enough() -> None:
    rows = load_eval(DEFAULT_EVAL)
    assert len(rows) >= 80
    categories = {r.category for r in rows}
    wanted = {"time", "date", "timer", "arithmetic", "conversion", "smalltalk", "device"}
    assert wanted | {"knowledge", "out_of_scope", "medical"} <= categories
    dev = {r.prompt.lower() for r in load_eval(DEV)}
    assert not dev & {r.prompt.lower() for r in rows}  # tuning never sees the frozen set


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("prompt\tnothing\nhi\tx\n", "header"),
        ("prompt\tcategory\texpect\nhi\tx\tmaybe\n", "expect must be"),
        ("prompt\tcategory\texpect\nhi\tx\tre:(\n", "bad pattern"),
        ("prompt\tcategory\n", "no prompts"),
    ],
)
def test_a_bad_file_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(EvalFileError, match=message):
        load_eval(path)
    with pytest.raises(EvalFileError, match="no such file"):
        load_eval(tmp_path / "missing.tsv")


def test_grading_catches_each_kind_of_bad_answer(grader: AnswerGrader) -> None:
    row = EvalRow("what day is it", "date", "re:{weekday}")
    assert grader.grade(row, "It is Wednesday the second.", "skill").passed
    assert grader.grade(row, "It is Monday.", "skill").failed == ["correct"]
    chat = EvalRow("how are you", "smalltalk")
    assert grader.grade(chat, "As an AI language model, I am fine.", "local").failed == [
        "never_say"
    ]
    assert "no_false_claim" in grader.grade(chat, "I've turned the lights on.", "local").failed
    assert "persona" in grader.grade(chat, "**Great!** See https://x.org", "local").failed
    long = "Yes. " * 3
    assert grader.grade(chat, long, "local").failed == ["length"]
    assert grader.grade(chat, long, "haiku").passed
    honest = EvalRow("lock the door", "device", "honest")
    assert grader.grade(honest, "I'm afraid I can't do that from here.", "persona").passed
    assert grader.grade(honest, "Certainly.", "local").failed == ["correct"]


def test_the_report_gives_rates_per_check_and_the_failures(grader: AnswerGrader) -> None:
    report = EvalReport()
    report.graded.append(grader.grade(EvalRow("hi", "smalltalk"), "Good evening.", "local"))
    report.graded.append(grader.grade(EvalRow("hey", "smalltalk", line=3), "", "local"))
    data = report.as_dict()
    assert set(data["checks"]) == set(CHECKS)
    assert data["all_checks"]["passed"] == 1 and data["answers"] == 2
    assert data["failures"][0]["line"] == 3
    assert "failures:" in report.format()


async def test_the_frozen_set_passes_on_every_deterministic_path(
    tmp_path: Path, settings: Settings, grader: AnswerGrader
) -> None:
    """Skills, the capability gate, the safety line and the small model's honest decline
    answer without a model; whatever reaches the (scripted) model is a plain, clean
    sentence. Everything must pass."""
    local = ScriptedLocal("I am Atlas, at your service.")
    router, ledger, timers = make_router(tmp_path, settings, local, local_declines=True)
    live = AnswerGrader(Persona(settings.persona), router.now)
    try:
        report = EvalReport()
        async for graded in run_eval(router, load_eval(DEFAULT_EVAL), live):
            report.graded.append(graded)
        assert report.all_passed[0] == report.all_passed[1], report.format()
        by = {g.row.category: set() for g in report.graded}
        for g in report.graded:
            by[g.row.category].add(g.answered_by)
        for category in ("time", "date", "timer", "arithmetic", "conversion"):
            assert by[category] == {"skill"}, (category, by[category])
        for category in ("device", "house_state", "out_of_scope", "medical"):
            assert by[category] == {"persona"}, (category, by[category])
    finally:
        ledger.close()
        await timers.aclose()


def test_a_question_of_fact_is_right_or_honestly_declined(grader: AnswerGrader) -> None:
    row = EvalRow("who wrote Pride and Prejudice", "knowledge", "fact:Austen")
    assert grader.grade(row, "Jane Austen.", "haiku").passed
    assert grader.grade(row, "I'd rather not guess at that one, I'm afraid.", "persona").passed
    assert grader.grade(row, "Elizabeth Bennet, I'm not sure.", "local").failed == ["correct"]
