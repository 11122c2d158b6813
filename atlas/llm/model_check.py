"""Are the configured cloud model ids still served?

Two sources, neither of which costs a token: the Anthropic SDK's own deprecation table
(read at start-up; a model past its end-of-life date is refused by the API), and the
API's 404 "model not found" (a model lookup at the daemon's start-up and in `atlas
doctor`, and any call the router makes). Either way the tier is switched off with ONE
warning naming the config key to change, and the local tier answers in persona meanwhile.
"""

from __future__ import annotations

import calendar
import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from atlas.llm.base import CLOUD_TIERS, Tier
from atlas.llm.config import AnthropicConfig


@dataclass(frozen=True)
class ModelProblem:
    tier: Tier
    model: str
    problem: str
    """'reached end of life on 2026-11-30', 'not found', ..."""
    fatal: bool
    """True: the tier cannot work (it is switched off); False: a warning ahead of time."""

    @property
    def warning(self) -> str:
        return model_gone_warning(self.tier, self.model, self.problem, fatal=self.fatal)


def config_key(tier: Tier) -> str:
    return f"llm.anthropic.{tier}.model"


def model_gone_warning(tier: Tier, model: str, problem: str, *, fatal: bool = True) -> str:
    """One line: what is wrong, the key to change, and what happens meanwhile."""
    line = f"{config_key(tier)} = {model!r} {problem}: set it to a current model id"
    if fatal:
        line += f"; the {tier} tier is off until then (local answers instead)"
    return line


def deprecation_table() -> Mapping[str, str]:
    """The installed SDK's {model id: end-of-life date}; {} if it has none."""
    try:
        module = importlib.import_module("anthropic.resources.messages.messages")
    except ImportError:
        return {}
    table = getattr(module, "DEPRECATED_MODELS", None)
    if not isinstance(table, Mapping):
        return {}
    return {str(k): str(v) for k, v in table.items()}


_SPELLED = re.compile(r"([A-Za-z]+)\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})")
_MONTHS = {m: i for i, m in enumerate(calendar.month_name) if m}


def _end_of_life(model: str, table: Mapping[str, str]) -> date | None:
    """The SDK writes 'November 30th, 2026'; ISO dates are read too."""
    raw = table.get(model)
    if raw is None:
        return None
    m = _SPELLED.search(raw)
    try:
        if m and m.group(1).capitalize() in _MONTHS:
            return date(int(m.group(3)), _MONTHS[m.group(1).capitalize()], int(m.group(2)))
        return date.fromisoformat(raw.strip()[:10])
    except ValueError:
        return None


def check_model(
    tier: Tier, model: str, today: date, table: Mapping[str, str] | None = None
) -> ModelProblem | None:
    """A problem with `model` according to the deprecation table, or None."""
    table = deprecation_table() if table is None else table
    if not model.strip():
        return ModelProblem(tier, model, "is empty", True)
    eol = _end_of_life(model, table)
    if eol is None:
        return None
    if eol <= today:
        return ModelProblem(tier, model, f"reached end of life on {eol.isoformat()}", True)
    return ModelProblem(tier, model, f"reaches end of life on {eol.isoformat()}", False)


def check_cloud_models(
    config: AnthropicConfig, today: date, table: Mapping[str, str] | None = None
) -> list[ModelProblem]:
    """Problems with the haiku and agent model ids (deprecation table only)."""
    table = deprecation_table() if table is None else table
    tiers = {"haiku": config.haiku, "agent": config.agent}
    out = []
    for tier in CLOUD_TIERS:
        problem = check_model(tier, tiers[tier].model, today, table)
        if problem is not None:
            out.append(problem)
    return out


async def probe_model(
    config: AnthropicConfig, api_key: str | None, model: str, timeout_s: float
) -> str | None:
    """Ask the API about `model` (GET /v1/models/<id>: no tokens spent).

    None when it is served; else 'not found', 'key refused' or a short reason
    (unreachable, HTTP status). Never raises for an API or network problem.
    """
    import anthropic

    client = anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=config.base_url,
        max_retries=0,
        timeout=timeout_s,
    )
    try:
        await client.models.retrieve(model)
    except anthropic.NotFoundError:
        return "not found"
    except (anthropic.AuthenticationError, anthropic.PermissionDeniedError):
        return "key refused"
    except anthropic.APIStatusError as e:
        return f"HTTP {e.status_code}"
    except anthropic.APIConnectionError as e:
        return type(e).__name__
    finally:
        await client.close()
    return None


async def disable_unknown_models(
    config: AnthropicConfig,
    api_key: str | None,
    disable: Callable[[Tier, str], None],
    timeout_s: float = 5.0,
) -> None:
    """At start-up: switch off each cloud tier whose model id the API does not know
    (one warning naming the key). Unreachable or refused: left to the router's breaker
    and key handling, which see the same at the first call."""
    tiers = {"haiku": config.haiku, "agent": config.agent}
    for tier in CLOUD_TIERS:
        model = tiers[tier].model
        if await probe_model(config, api_key, model, timeout_s) == "not found":
            disable(tier, model_gone_warning(tier, model, "not found"))
