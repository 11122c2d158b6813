"""`atlas eval answers [FILE] [--json] [--fake-cloud]`: the answer-quality evaluation.

Runs every prompt of the set through the real router (skills, request stages, the
local model, the answer guard) in a fresh conversation, with a throw-away cost ledger.
By default no cloud is used (the embedded defaults, as with no key); `--fake-cloud`
points the real Anthropic SDK at the project's fake server on 127.0.0.1, answering
each row with its scripted `cloud_reply`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from atlas.settings import PROJECT_ROOT, Secrets, Settings

DEFAULT_EVAL = PROJECT_ROOT / "tests" / "data" / "answers_eval.tsv"
_FAKE_KEY = "sk-ant-fake-eval-0000"


def add_parsers(sub: Any) -> None:
    e = sub.add_parser("eval", help="measure answer quality on an evaluation set")
    esub = e.add_subparsers(dest="eval_action", metavar="ACTION", required=True)
    a = esub.add_parser("answers", help="pass rate per check, and the failures")
    a.add_argument("file", type=Path, nargs="?", default=DEFAULT_EVAL, metavar="FILE.tsv")
    a.add_argument("--json", action="store_true", help="one JSON object")
    a.add_argument("--show", action="store_true", help="print every answer, not only failures")
    a.add_argument(
        "--fake-cloud",
        action="store_true",
        help="cloud tiers answered by the local fake Anthropic server (scripted replies)",
    )


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.answer_eval import EvalFileError, load_eval

    try:
        rows = load_eval(args.file)
    except EvalFileError as e:
        print(f"atlas: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="atlas-eval-") as tmp:
        budget = replace(settings.budget, db_path=str(Path(tmp) / "ledger.sqlite3"))
        settings = replace(settings, budget=budget)
        report = asyncio.run(_evaluate(settings, rows, args.fake_cloud))
    if args.json:
        print(json.dumps(report.as_dict(show_all=args.show)))
    else:
        print(report.format(show_all=args.show))
    return 0


async def _evaluate(settings: Settings, rows: list[Any], fake_cloud: bool) -> Any:
    from atlas.answer_eval import AnswerGrader, EvalReport, EvalRow, run_eval
    from atlas.app import build_store
    from atlas.brain import build_brain
    from atlas.persona import Persona
    from atlas.testing.fake_anthropic import FakeAnthropic, LatencyProfile

    report = EvalReport()
    fake = FakeAnthropic().start() if fake_cloud else None
    try:
        secrets = Secrets()
        if fake is not None:
            anth = replace(settings.llm.anthropic, base_url=fake.base_url, retries=0)
            settings = replace(settings, llm=replace(settings.llm, anthropic=anth))
            secrets = Secrets(anthropic_api_key=_FAKE_KEY)
        brain = await build_brain(settings, build_store(settings), secrets)
        try:
            grader = AnswerGrader(Persona(settings.persona), brain.router.now)

            def script(row: EvalRow) -> None:
                if fake is not None:
                    fake.set_profile(LatencyProfile(answer=row.cloud_reply or _DEFAULT_REPLY))

            async for graded in run_eval(brain.router, rows, grader, script):
                report.graded.append(graded)
        finally:
            await brain.aclose()
    finally:
        if fake is not None:
            fake.close()
    return report


_DEFAULT_REPLY = "Certainly. In short, it depends on the particulars, but that is the gist of it."
