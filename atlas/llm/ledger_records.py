"""What flows through the ledger: call records, reservations, the budget status, spend
per day; the household's time zone and the salted hash a spoken query is stored as."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from atlas.llm.base import LLMResponse, Usage
from atlas.llm.ledger_db import BudgetError

log = structlog.get_logger("atlas.llm.budget")

Mode = Literal["normal", "thrifty", "local_only"]
CallStatus = Literal["ok", "failed", "cancelled"]


@dataclass(frozen=True, kw_only=True)
class CallRecord:
    """One cloud call as it really went (usage as the API reported it)."""

    ts: datetime | None = None
    """When the call was made (aware); None: the ledger's clock at settle()."""
    query_text: str
    tier: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float | None = None
    first_token_ms: float | None = None
    confidence: float | None = None
    category: str = ""
    fallback_reason: str = ""
    status: CallStatus = "ok"
    provider: str = "anthropic"
    """Who billed the call (per-provider history)."""

    @property
    def usage(self) -> Usage:
        return Usage(
            self.input_tokens, self.output_tokens, self.cache_read_tokens, self.cache_write_tokens
        )

    @classmethod
    def from_response(
        cls,
        response: LLMResponse,
        *,
        query_text: str,
        tier: str,
        confidence: float | None = None,
        category: str = "",
        fallback_reason: str = "",
        status: CallStatus = "ok",
        ts: datetime | None = None,
        provider: str = "anthropic",
    ) -> CallRecord:
        u = response.usage
        return cls(
            ts=ts,
            query_text=query_text,
            tier=tier,
            model=response.model,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
            cost_usd=response.cost_usd,
            latency_ms=response.total_duration_ms,
            first_token_ms=response.first_token_ms,
            confidence=confidence,
            category=category,
            fallback_reason=fallback_reason,
            status=status,
            provider=provider,
        )


@dataclass(frozen=True)
class Reservation:
    """A worst-case amount booked against the limits until settle() or release()."""

    id: int
    tier: str
    worst_case_usd: float
    made_at: datetime


@dataclass(frozen=True)
class BudgetStatus:
    spent_today: float
    spent_month: float
    daily_limit: float
    monthly_limit: float
    reserved_usd: float
    mode: Mode
    today: date
    """The local date the figures are for."""
    soft_fraction: float = 0.8

    @property
    def cloud_allowed(self) -> bool:
        return self.mode != "local_only"

    @property
    def thrifty(self) -> bool:
        return self.mode == "thrifty"

    @property
    def remaining_today(self) -> float:
        return max(0.0, self.daily_limit - self.spent_today - self.reserved_usd)

    @property
    def remaining_month(self) -> float:
        return max(0.0, self.monthly_limit - self.spent_month - self.reserved_usd)

    @property
    def remaining(self) -> float:
        """What the next call may cost at most (the tighter of the two limits)."""
        return min(self.remaining_today, self.remaining_month)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["today"] = self.today.isoformat()
        d["remaining_usd"] = self.remaining
        return d


@dataclass(frozen=True)
class DaySpend:
    day: date
    cost_usd: float
    calls: int


@dataclass(frozen=True)
class UsageRow:
    """What one (local day, tier, provider) cost."""

    day: date
    tier: str
    provider: str
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


def resolve_timezone(name: str) -> tzinfo:
    """An IANA zone, or the system zone for "local" (DST-aware whenever it can be)."""
    if name != "local":
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise BudgetError(f"unknown time zone {name!r} (budget.timezone)") from None
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return ZoneInfo(env)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    m = re.search(r"zoneinfo/(.+)$", os.path.realpath(localtime))
    if m:
        try:
            return ZoneInfo(m.group(1))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with localtime.open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        pass
    # Last resort: today's fixed offset (wrong across a DST change, hence the warning).
    zone = datetime.now().astimezone().tzinfo or UTC
    log.warning("system time zone unknown; using a fixed offset", zone=str(zone))
    return zone


def query_hash(salt: bytes, text: str) -> str:
    """Salted so equal queries group within an install but cannot be dictionary-matched."""
    normalized = " ".join(text.casefold().split())
    return hmac.new(salt, normalized.encode("utf-8"), hashlib.sha256).hexdigest()
