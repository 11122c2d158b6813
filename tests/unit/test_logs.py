from __future__ import annotations

import io
import json

import structlog

from atlas.logs import configure_logging, redact_text, stage


def capture(fmt: str = "json") -> io.StringIO:
    buf = io.StringIO()
    configure_logging("debug", fmt, stream=buf)
    return buf


def test_json_lines_when_not_a_terminal() -> None:
    buf = capture("auto")  # StringIO is not a tty
    structlog.get_logger("t").info("stt", ms=12.5)
    rec = json.loads(buf.getvalue().strip())
    assert rec["event"] == "stt" and rec["ms"] == 12.5 and rec["level"] == "info"
    assert "timestamp" in rec


def test_console_format_is_not_json() -> None:
    buf = capture("console")
    structlog.get_logger("t").info("hello", n=1)
    out = buf.getvalue()
    assert "hello" in out and not out.startswith("{")


def test_keys_are_redacted_in_values_fields_and_exceptions() -> None:
    buf = capture()
    log = structlog.get_logger("t")
    key = "sk-ant-api03-" + "A" * 40
    log.warning("call failed", detail=f"header x-api-key: {key}", api_key=key)
    log.error("boom", error=RuntimeError(f"bad key {key}"), nested={"h": [f"Bearer {key}"]})
    out = buf.getvalue()
    assert key not in out
    assert "[REDACTED]" in out
    for line in out.strip().splitlines():
        json.loads(line)


def test_redact_text_keeps_normal_words() -> None:
    assert redact_text("what time is it") == "what time is it"
    assert "sk-proj" not in redact_text("sk-proj-abcdefghijklmnopqrstuv")


def test_stage_logs_duration() -> None:
    buf = capture()
    with stage(structlog.get_logger("t"), "vad", frames=3) as extra:
        extra["utterances"] = 1
    rec = json.loads(buf.getvalue().strip())
    assert rec["event"] == "vad" and rec["frames"] == 3 and rec["utterances"] == 1
    assert rec["ms"] >= 0


def test_level_filtering() -> None:
    buf = io.StringIO()
    configure_logging("warning", "json", stream=buf)
    structlog.get_logger("t").info("quiet")
    assert buf.getvalue() == ""
