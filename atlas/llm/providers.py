"""A cloud tier served by an ordered list of providers, each behind its own breaker.

`ProviderChain` is one `LLMClient` for the router: it tries the tier's providers in
order (Anthropic, then OpenAI-compatible endpoints such as OpenAI, Groq, OpenRouter or a
vLLM server, as configured) and answers from the first one that produces its first
token in time. A provider is passed over while its breaker is open, and dropped for
good on a refused key or an unknown model id. Once a provider has started an answer
the chain never switches: a failure then ends the answer (the router says so in
persona), because a second voice continuing a half-said sentence would be worse.

When every provider has failed, the chain raises the last failure; the router then
answers with the local model, exactly as with a single provider. A refused key or a
missing model is reported as such only when it is the tier's only provider, so that
one provider's bad key never switches the whole tier off.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import overload

import structlog

from atlas.llm.base import (
    CLOUD_TIERS,
    ErrorKind,
    LLMClient,
    LLMError,
    LLMResponse,
    Message,
    Price,
    StreamItem,
    Tier,
    collect,
)
from atlas.llm.breaker import CloudBreaker
from atlas.llm.config import BreakerConfig, CloudProviderConfig, CloudTierConfig
from atlas.llm.openai_cloud import OpenAICloudClient
from atlas.llm.toolturn import ToolModel

log = structlog.get_logger("atlas.llm.providers")

_PERMANENT = (ErrorKind.AUTH, ErrorKind.MODEL_NOT_FOUND)


@dataclass
class ProviderLink:
    """One provider of a tier: its client, breaker and own limits."""

    name: str
    client: LLMClient
    breaker: CloudBreaker
    first_token_deadline_s: float
    price: Price
    max_tokens: int | None = None
    """None: what the router asks for (the tier's own setting)."""
    temperature: float | None = None
    disabled: str | None = None
    """Why this provider is off for good (refused key, unknown model)."""


class ProviderChain:
    """LLMClient over a tier's providers, tried in order before the first token."""

    def __init__(self, tier: Tier, links: Sequence[ProviderLink]) -> None:
        if not links:
            raise ValueError("a provider chain needs at least one provider")
        self.tier = tier
        self.links = tuple(links)
        self.backend = links[0].client.backend
        self.model = links[0].client.model

    @property
    def first_token_deadline_s(self) -> float:
        """The whole chain's time to a first token: every provider's deadline in turn."""
        return sum(link.first_token_deadline_s for link in self.links)

    def worst_price(self, max_tokens: int) -> tuple[Price, int]:
        """The dearest prices and longest answer of any provider (for the reservation)."""
        return (
            Price(
                max(link.price.input_per_mtok for link in self.links),
                max(link.price.output_per_mtok for link in self.links),
                max(link.price.cache_write_multiplier for link in self.links),
                max(link.price.cache_read_multiplier for link in self.links),
            ),
            max(link.max_tokens or max_tokens for link in self.links),
        )

    async def is_available(self) -> bool:
        for link in self.links:
            if link.disabled is None and await link.client.is_available():
                return True
        return False

    async def aclose(self) -> None:
        for link in self.links:
            with contextlib.suppress(Exception):
                await link.client.aclose()

    async def generate(
        self, messages: Sequence[Message], system: str, temperature: float, max_tokens: int
    ) -> LLMResponse:
        return await collect(self.stream(messages, system, temperature, max_tokens))

    async def stream(
        self, messages: Sequence[Message], system: str, temperature: float, max_tokens: int
    ) -> AsyncIterator[StreamItem]:
        last: LLMError | None = None
        spent: LLMResponse | None = None  # failed providers' finished steps, still billed
        for link in self.links:
            if link.disabled is not None or not link.breaker.allow():
                continue
            stream = link.client.stream(
                messages,
                system,
                temperature if link.temperature is None else link.temperature,
                max_tokens if link.max_tokens is None else link.max_tokens,
            )
            deadline = asyncio.get_running_loop().time() + link.first_token_deadline_s
            bill: LLMResponse | None = None
            try:
                first, error = await _first_item(stream, link, deadline)
                while isinstance(first, LLMResponse) and first.interim:
                    # A tool loop's running bill: passed on (a barge-in still pays for
                    # the finished steps), but this provider has not answered yet.
                    bill = first
                    yield _plus(spent, first)
                    first, error = await _first_item(stream, link, deadline)
            except (asyncio.CancelledError, GeneratorExit):  # a barge-in before any word
                link.breaker.release()
                await _close(stream)
                raise
            if error is not None:
                if bill is not None:  # cut short here (the deadline): its steps still count
                    error.billed = error.billed or bill
                    error.acted = error.acted or bill.acted
                last = error
                self._failed(link, error)
                await _close(stream)
                if error.acted:  # another provider would set the timer (or the light) again
                    error.provider = error.provider or link.name
                    error.billed = _plus(spent, error.billed)
                    raise error
                spent = _plus(spent, error.billed)
                continue
            # This provider answers: its breaker hears how the whole answer went.
            try:
                item = first
                while item is not None:
                    yield _plus(spent, item) if isinstance(item, LLMResponse) else item
                    item = await anext(stream, None)
                link.breaker.record_success()
            except LLMError as e:
                link.breaker.record_failure(e)
                e.provider = e.provider or link.name
                e.billed = _plus(spent, e.billed)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                link.breaker.release()
                raise
            finally:
                await _close(stream)
            return
        exhausted = self._exhausted(last)
        exhausted.billed = _plus(spent, exhausted.billed)
        raise exhausted

    def _failed(self, link: ProviderLink, error: LLMError) -> None:
        if error.counts_for_breaker:
            link.breaker.record_failure(error)
        else:
            link.breaker.release()
        if error.kind in _PERMANENT and len(self.links) > 1:
            link.disabled = error.kind.value
            log.warning(
                "provider.disabled", tier=self.tier, provider=link.name, why=error.kind.value
            )
        else:
            log.warning(
                "provider.failed", tier=self.tier, provider=link.name, kind=error.kind.value
            )

    def _exhausted(self, last: LLMError | None) -> LLMError:
        if last is None:
            return LLMError(ErrorKind.UNAVAILABLE, f"no {self.tier} provider is available now")
        alive = [link for link in self.links if link.disabled is None]
        if last.kind in _PERMANENT and len(self.links) > 1 and alive:
            # Another provider is only resting (its breaker): the tier stays on.
            return LLMError(ErrorKind.UNAVAILABLE, f"every {self.tier} provider failed")
        return last


@overload
def _plus(earlier: LLMResponse | None, record: LLMResponse) -> LLMResponse: ...
@overload
def _plus(earlier: LLMResponse | None, record: LLMResponse | None) -> LLMResponse | None: ...
def _plus(earlier: LLMResponse | None, record: LLMResponse | None) -> LLMResponse | None:
    """`record` with what `earlier` cost added (either may be missing)."""
    if earlier is None or record is None:
        return record or earlier
    return replace(record, cost_usd=record.cost_usd + earlier.cost_usd)


async def _first_item(
    stream: AsyncIterator[StreamItem], link: ProviderLink, deadline: float
) -> tuple[StreamItem | None, LLMError | None]:
    """The next item, unless the provider's first-token deadline (loop time) passes."""
    try:
        async with asyncio.timeout_at(deadline):
            return await anext(stream), None
    except TimeoutError:
        return None, LLMError(ErrorKind.TIMEOUT, f"{link.name}: first-token deadline missed")
    except StopAsyncIteration:
        return None, LLMError(ErrorKind.MID_STREAM, f"{link.name}: empty stream")
    except LLMError as e:
        return None, e


async def _close(stream: AsyncIterator[StreamItem]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def with_providers(
    clients: Mapping[Tier, LLMClient],
    tier_configs: Mapping[Tier, CloudTierConfig],
    providers: Sequence[CloudProviderConfig],
    keys: Mapping[str, str],
    breaker: BreakerConfig,
    anthropic_prices: Mapping[Tier, Price],
    *,
    agent_loop: Callable[[ToolModel], LLMClient] | None = None,
) -> dict[Tier, LLMClient]:
    """`clients` with each cloud tier that has OpenAI-compatible providers turned into a
    chain (Anthropic first when it is there, unless a provider says `before_anthropic`).
    `keys`: api_key_env name -> key; a provider without its key is left out, logged.
    `agent_loop` wraps each `agent`-tier provider in the same tool loop (and tools) as
    the Anthropic agent; without it those providers answer as plain chat models."""
    out = dict(clients)
    for tier in CLOUD_TIERS:
        before: list[ProviderLink] = []
        after: list[ProviderLink] = []
        for p in providers:
            if p.tier != tier:
                continue
            key = keys.get(p.api_key_env)
            if not key:
                log.warning("provider.no_key", tier=tier, provider=p.name, env=p.api_key_env)
                continue
            client = OpenAICloudClient(p, key)
            answerer: LLMClient = client
            if tier == "agent" and agent_loop is not None:
                answerer = agent_loop(client)
            link = ProviderLink(
                p.name,
                answerer,
                CloudBreaker(f"{tier}/{p.name}", breaker),
                p.first_token_deadline_s,
                client.price,
                p.max_tokens,
                p.temperature,
            )
            (before if p.before_anthropic else after).append(link)
        if not before and not after:
            continue
        links = [*before]
        if (anthropic := clients.get(tier)) is not None:
            links.append(
                ProviderLink(
                    "anthropic",
                    anthropic,
                    CloudBreaker(f"{tier}/anthropic", breaker),
                    tier_configs[tier].first_token_deadline_s,
                    anthropic_prices[tier],
                )
            )
        out[tier] = ProviderChain(tier, [*links, *after])
    return out
