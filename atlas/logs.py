"""structlog setup: JSON lines for machines, readable lines for people, secrets redacted.

Logs go to stderr so that command output on stdout (`atlas transcribe --json`) stays
clean; under systemd both end up in the journal. "auto" picks the console renderer
when the log stream is a terminal and JSON lines otherwise.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

# Anything shaped like an API key or bearer token. Anthropic keys start "sk-ant-";
# OpenAI-style "sk-..."; long opaque tokens after "Bearer" or "x-api-key".
_KEY_PATTERNS = (
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{12,}"),
    re.compile(r"(?i)(x-api-key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._\-]{12,}"),
)
_SECRET_FIELD = re.compile(r"(?i)(api_?key|secret|token|password|authorization)")
REDACTED = "[REDACTED]"


def redact_text(text: str) -> str:
    """Replace every key-shaped substring of `text` with [REDACTED]."""
    for pat in _KEY_PATTERNS:
        text = pat.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: blank fields named like secrets and key-shaped values."""
    for key in list(event_dict):
        if _SECRET_FIELD.search(key) and key not in ("event", "tokens"):
            if event_dict[key] is not None and not isinstance(event_dict[key], int | float):
                event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once per process (called by the CLI, never on import)."""
    target = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and target.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=False),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=target.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # Without an explicit stream, sys.stderr is looked up per call, so a replaced
        # stderr (tests, daemons that redirect it) is honoured.
        logger_factory=(
            structlog.PrintLoggerFactory(file=stream)
            if stream is not None
            else (lambda *_: structlog.PrintLogger(file=sys.stderr))
        ),
        cache_logger_on_first_use=False,
    )


@contextmanager
def stage(log: Any, name: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """Log one pipeline-stage event with its duration in ms.

    Yields a dict the caller may add fields to; they are logged with the event.
    """
    extra: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        yield extra
    finally:
        log.info(name, ms=round((time.perf_counter() - t0) * 1000, 1), **fields, **extra)
