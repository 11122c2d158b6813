"""The frozen evaluation set through the real brain with the embedded SmolLM2 and no
key (the defaults a new user gets): at least 95% of answers pass every check, and no
answer says a never-say phrase or claims a deed. Behaviour only: no timing asserted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from atlas.answer_eval import AnswerGrader, EvalReport, load_eval, run_eval
from atlas.app import build_store
from atlas.brain import build_brain
from atlas.cli_eval import DEFAULT_EVAL
from atlas.persona import Persona
from atlas.settings import Secrets, load_settings

pytestmark = pytest.mark.slow


async def test_the_frozen_set_passes_with_the_embedded_model(tmp_path: Path) -> None:
    s = load_settings()
    s = replace(
        s,
        llm=replace(s.llm, local=replace(s.llm.local, backend="embedded")),
        budget=replace(s.budget, db_path=str(tmp_path / "ledger.sqlite3")),
    )
    brain = await build_brain(s, build_store(s), Secrets())
    try:
        grader = AnswerGrader(Persona(s.persona), brain.router.now)
        report = EvalReport()
        async for graded in run_eval(brain.router, load_eval(DEFAULT_EVAL), grader):
            report.graded.append(graded)
    finally:
        await brain.aclose()
    passed, total = report.all_passed
    assert passed >= 0.95 * total, report.format()
    for check in ("never_say", "no_false_claim", "correct"):
        ok, n = report.rate(check)
        assert ok == n, report.format()
