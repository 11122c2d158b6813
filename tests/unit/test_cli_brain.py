"""`atlas ask | route | budget | router eval` through `atlas.cli.main`, with a temp config
whose local backend is a FakeLLMServer and whose Anthropic base_url is a FakeAnthropic
(both real HTTP servers on 127.0.0.1). `ask` and `router eval` load the real MiniLM
embedder (a few seconds once per process), so invocations are kept few.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from atlas import cli
from atlas.llm.base import Price, Usage
from atlas.settings import DEFAULT_CONFIG, load_settings
from atlas.testing.fake_anthropic import FakeAnthropic, FakeScript
from atlas.testing.fake_openai import FakeLLMScript, FakeLLMServer

KEY = "sk-ant-cli-test-0123456789"
HAIKU_Q = "how does a heat pump work"  # the learned model: haiku
LOCAL_REPLY = "Very good, sir."
CLOUD_REPLY = "It moves heat from the air outside into the house."


@pytest.fixture(scope="module")
def anth() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(scope="module")
def local() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default=FakeLLMScript(reply=LOCAL_REPLY)) as server:
        yield server


@pytest.fixture
def config(
    tmp_path: Path, anth: FakeAnthropic, local: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The shipped config and routing files, pointed at the fakes and a temp ledger."""
    data: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data["budget"]["db_path"] = str(tmp_path / "ledger.sqlite3")
    data["llm"]["local"].update(
        backend="openai", base_url=local.openai_base_url, model="qwen2.5:3b-instruct"
    )
    data["llm"]["anthropic"].update(base_url=anth.base_url, retries=1, retry_initial_s=0.01)
    path = tmp_path / "atlas.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    shutil.copy(DEFAULT_CONFIG.parent / data.get("routing_file", "routing.yaml"), tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    return path


def run(config: Path, *args: str) -> int:
    return cli.main(["--config", str(config), *args])


def haiku_price(config: Path) -> Price:
    tier = load_settings(config).llm.anthropic.haiku
    return Price(tier.input_usd_per_mtok, tier.output_usd_per_mtok)


def budget_json(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert run(config, "budget", "--json") == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


# ------------------------------------------------------------------------------ ask


def test_ask_json_reports_the_turn_and_books_its_cost(
    config: Path, anth: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    anth.enqueue(FakeScript(text=CLOUD_REPLY, input_tokens=321))
    sent = len(anth.requests)
    assert run(config, "ask", HAIKU_Q, "--json") == 0
    captured = capsys.readouterr()
    turn = json.loads(captured.out)
    assert turn["tier"] == "haiku"
    assert turn["stage"] == "learned" and turn["reason"]
    assert turn["answer"] == CLOUD_REPLY
    assert turn["filler"] in load_settings(config).persona.fillers
    assert isinstance(turn["first_token_ms"], float) and turn["first_token_ms"] >= 0
    assert turn["local_backend"].startswith("openai-compatible server")
    usage = Usage(turn["usage"]["input_tokens"], turn["usage"]["output_tokens"])
    assert usage.input_tokens == 321
    expected = haiku_price(config).cost(usage)
    assert turn["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert len(anth.requests) == sent + 1
    assert KEY not in captured.out + captured.err
    status = budget_json(config, capsys)
    assert status["spent_today"] == pytest.approx(expected, abs=1e-12)
    assert sum(day["calls"] for day in status["last_7_days"]) == 1


def test_ask_text_streams_the_answer_and_a_summary(
    config: Path, anth: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    anth.enqueue(FakeScript(text=CLOUD_REPLY))
    assert run(config, "ask", HAIKU_Q) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == CLOUD_REPLY
    summary = captured.err.strip().splitlines()[-1]
    assert summary.startswith("[tier haiku | reason: ")
    assert "first token" in summary and "cost $" in summary


def test_ask_without_a_key_answers_locally(
    config: Path,
    anth: FakeAnthropic,
    local: FakeLLMServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    sent = len(anth.requests)
    assert run(config, "ask", HAIKU_Q, "--json") == 0
    turn = json.loads(capsys.readouterr().out)
    assert (turn["tier"], turn["wanted"], turn["downgrade"]) == ("local", "haiku", "no_key")
    assert turn["answer"] == LOCAL_REPLY, "no failure line when the cloud is simply off"
    assert turn["filler"] is None
    assert turn["cost_usd"] == 0.0
    assert len(anth.requests) == sent
    assert local.chat_requests(), "the local server answered"


@pytest.mark.parametrize("command", ["ask", "route"])
@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_query_is_one_line_and_exit_2(
    config: Path, capsys: pytest.CaptureFixture[str], text: str, command: str
) -> None:
    """`route ""` behaves like `ask ""`: nothing to decide, not a decision about nothing."""
    assert run(config, command, text) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err == f"atlas: nothing to {command} (the query is empty)\n"


# ---------------------------------------------------------------------------- route


def test_route_json_calls_no_model(
    config: Path,
    anth: FakeAnthropic,
    local: FakeLLMServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = (len(anth.requests), len(local.requests))
    assert run(config, "route", "my chest hurts", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["tier"], out["stage"], out["filler"]) == ("agent", "safety", True)
    assert out["pattern"] and "chest hurts" in out["reason"]
    assert run(config, "route", "turn on the lights") == 0
    # The house's requests go to Home Assistant first (an honest line without it).
    assert capsys.readouterr().out.startswith("local  <- home: a home control request")
    assert (len(anth.requests), len(local.requests)) == before


# --------------------------------------------------------------------------- budget


def test_budget_set_is_persisted(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh = budget_json(config, capsys)
    assert (fresh["spent_today"], fresh["mode"]) == (0.0, "normal")
    assert len(fresh["last_7_days"]) == 7
    assert run(config, "budget", "set", "--daily", "1", "--monthly", "5") == 0
    capsys.readouterr()
    status = budget_json(config, capsys)
    assert (status["daily_limit"], status["monthly_limit"]) == (1.0, 5.0)
    assert run(config, "budget") == 0
    text = capsys.readouterr().out
    assert "mode      normal" in text and "of $1.00" in text and "of $5.00" in text


def test_budget_set_needs_a_limit(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, "budget", "set") == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- router


def test_router_eval_lists_the_rows_it_got_wrong_only_when_asked(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    heldout = Path(__file__).resolve().parents[1] / "data" / "router_heldout.tsv"
    assert run(config, "router", "eval", str(heldout), "--json") == 0
    assert json.loads(capsys.readouterr().out)["misclassified"] == []
    assert run(config, "router", "eval", str(heldout)) == 0
    assert "misclassified" not in capsys.readouterr().out
    bad = config.parent / "wrong.tsv"
    bad.write_text("utterance\ttier\nturn on the kitchen lights\tagent\n", encoding="utf-8")
    assert run(config, "router", "eval", str(bad), "--errors") == 0
    assert "misclassified:\n  agent->" in capsys.readouterr().out


def test_router_eval_json_runs_on_the_held_out_split(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    heldout = Path(__file__).resolve().parents[1] / "data" / "router_heldout.tsv"
    assert run(config, "router", "eval", str(heldout), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    rows = len([ln for ln in heldout.read_text().splitlines()[1:] if ln.strip()])
    assert report["rows"] == rows
    assert 0.0 <= report["accuracy"] <= 1.0
    assert set(report["per_tier"]) == {"local", "haiku", "agent"}
    assert report["classify_ms"]["p50"] >= 0


@pytest.mark.parametrize(
    "content",
    ["utterance\tlabel\nhello\tlocal\n", "utterance\ttier\nhello\tsomewhere\n", ""],
    ids=["no-tier-column", "bad-tier", "empty"],
)
def test_router_eval_bad_tsv_is_one_line_and_exit_2(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text(content, encoding="utf-8")
    assert run(config, "router", "eval", str(bad)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("atlas: ") and str(bad) in captured.err
