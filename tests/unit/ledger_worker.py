"""One ATLAS process of the cross-process ledger test: the real Router and the real
Anthropic client against a fake on 127.0.0.1, sharing one ledger file with its siblings.

    python -m tests.unit.ledger_worker DB BASE_URL WORKER CALLS DAILY_USD

Prints "ready" once built, then "done N" after each answer (the parent kills it with
SIGKILL at random points in between).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from atlas.llm.anthropic import AnthropicClient
from atlas.llm.base import CLOUD_TIERS, LLMClient, Tier
from atlas.llm.breaker import CloudBreaker
from atlas.llm.budget import BudgetLedger
from atlas.llm.classifier import Classifier
from atlas.llm.config import (
    AnthropicConfig,
    BreakerConfig,
    BudgetConfig,
    CloudTierConfig,
    LocalLLMConfig,
    MemoryConfig,
)
from atlas.llm.local import OpenAICompatClient
from atlas.llm.memory import ConversationMemory
from atlas.llm.router import AnswerResult, Router
from atlas.persona import Persona
from atlas.settings import load_settings
from atlas.skills import TimerService, build_skills

HAIKU = CloudTierConfig(model="claude-haiku-test", max_tokens=60, first_token_deadline_s=30.0)
AGENT = CloudTierConfig(model="claude-sonnet-test", max_tokens=60, first_token_deadline_s=30.0)


def query(worker: int, n: int) -> str:
    return f"worker {worker} question {n}: how does a heat pump work"


def _closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


async def main(db: Path, base_url: str, worker: int, calls: int, daily: float) -> None:
    settings = load_settings(env={})
    ledger = BudgetLedger(
        db,
        BudgetConfig(daily_usd=daily, monthly_usd=1000.0, timezone="UTC", busy_timeout_ms=20000),
    )
    anth = AnthropicConfig(base_url=base_url, retries=0, read_timeout_s=60.0)
    clients: dict[Tier, LLMClient] = {
        # Nothing listens there: a refused call's local fallback fails at once.
        "local": OpenAICompatClient(LocalLLMConfig(), base_url=_closed_url(), model="none"),
        "haiku": AnthropicClient(HAIKU, anth, "sk-ant-ledger-test"),
        "agent": AnthropicClient(AGENT, anth, "sk-ant-ledger-test"),
    }
    timers = TimerService()
    breaker_cfg = BreakerConfig(fail_max=100, reset_timeout_s=1.0)
    router = Router(
        classifier=Classifier(settings.router, None, ()),
        skills=build_skills(UTC, timers),
        persona=Persona(settings.persona),
        budget=ledger,
        breakers={t: CloudBreaker(t, breaker_cfg) for t in CLOUD_TIERS},
        clients=clients,
        tier_configs={"haiku": HAIKU, "agent": AGENT},
        memory=ConversationMemory(MemoryConfig(max_turns=0)),
        now=lambda: datetime.now(UTC),
    )
    print("ready", flush=True)
    for n in range(calls):
        async for item in router.ask(query(worker, n)):
            if isinstance(item, AnswerResult):
                print(f"done {n} {item.answered_by}", flush=True)
    for client in clients.values():
        await client.aclose()
    await timers.aclose()
    ledger.close()


if __name__ == "__main__":
    db, url, worker, calls, daily = sys.argv[1:6]
    asyncio.run(main(Path(db), url, int(worker), int(calls), float(daily)))
