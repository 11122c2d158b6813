"""`atlas ask` says only what is true, `atlas eval answers` and `atlas doctor` through
`atlas.cli.main` (the same temp config and fakes as test_cli_brain)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas.testing.fake_anthropic import FakeAnthropic
from atlas.testing.fake_openai import FakeLLMServer
from tests.unit.test_cli_brain import anth, config, local, run

__all__ = ["anth", "config", "local"]  # fixtures shared with test_cli_brain


def test_ask_never_promises_a_timer_it_cannot_ring(
    config: Path, local: FakeLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "ask", "--json", "set a timer for ten minutes") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tier"] == "skill" and "atlas run" in out["answer"]
    assert "starting now" not in out["answer"]


def test_ask_a_device_request_gets_the_honest_line_without_a_model(
    config: Path, local: FakeLLMServer, anth: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (len(local.chat_requests()), len(anth.requests))
    assert run(config, "ask", "--json", "is the front door locked") == 0
    out = json.loads(capsys.readouterr().out)
    # Home Assistant is not configured here: the home stage's honest line, no model.
    assert (out["tier"], out["stage"]) == ("home", "home")
    assert out["answer"] == (
        "I can't see the house's doors and locks yet, sir; the house is not connected to me."
    )
    assert (len(local.chat_requests()), len(anth.requests)) == before


def test_eval_answers_reports_rates_per_check(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "few.tsv"
    rows.write_text(
        "prompt\tcategory\texpect\n"
        "what is 7 plus 5\tarithmetic\tre:\\b(?:12|twelve)\\b\n"
        "lock the front door\tdevice\thonest\n"
        "tell me something nice\tsmalltalk\t\n",
        encoding="utf-8",
    )
    assert run(config, "eval", "answers", str(rows), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answers"] == 3 and out["all_checks"]["passed"] == 3
    assert out["checks"]["correct"] == {"of": 2, "rate": 1.0, "passed": 2}


def test_eval_answers_bad_file_is_one_line(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "eval", "answers", str(tmp_path / "missing.tsv")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err


def test_doctor_prints_one_screen_with_fixes(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(config, "doctor")
    out = capsys.readouterr().out
    for section in ("tiers", "budget", "audio", "models"):
        assert f"\n{section}\n" in f"\n{out}"
    assert "sk-ant-cli-test" not in out
    lines = out.splitlines()
    assert len(lines) < 40
    failed = [x for x in lines if x.strip().startswith("FAIL")]
    assert code == (1 if failed else 0)
    for i, line in enumerate(lines):
        if line.strip().startswith("FAIL"):
            assert lines[i + 1].strip().startswith("fix:"), line
