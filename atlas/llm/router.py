"""Who answers, and the answer as a stream: classify, decide (budget, breaker), fall back.

`decide()` explains a decision without calling any model. `respond()` streams the
answer: a deterministic skill, the local model, or a cloud tier guarded by the budget
(a reservation of the call's worst case), the tier's circuit breaker and a first-token
deadline. Before any answer text has been produced, a cloud failure falls back to the
local model with an in-persona line; after that, the provider is never switched and a
failure ends the answer with a persona line. A device request (`RouteDecision.home`) goes
to the home stage (atlas.home) first; only what Home Assistant did not recognise goes on
to the tiers. Nothing raises out of `respond()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import structlog

from atlas.honesty import AnswerGuard, ClaimDetector, GuardPolicy, RequestStage
from atlas.honesty.gate import is_legal
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
)
from atlas.llm.breaker import CloudBreaker
from atlas.llm.budget import BudgetLedger, CallRecord, CallStatus, Reservation
from atlas.llm.classifier import Classification, Classifier, normalise
from atlas.llm.config import CloudTierConfig
from atlas.llm.memory import ConversationMemory
from atlas.llm.model_check import model_gone_warning
from atlas.llm.providers import ProviderChain
from atlas.logs import redact_text
from atlas.persona import Persona
from atlas.skills import SkillAnswer, SkillSet

if TYPE_CHECKING:
    from atlas.home.stage import HomeStage

log = structlog.get_logger("atlas.router")

_T = TypeVar("_T")
# What the answer guard holds each tier to (see atlas.honesty.guard). The agent's tools
# really set timers, so its timer claims are not false.
GUARD_POLICIES: dict[Tier, GuardPolicy] = {
    "local": GuardPolicy(max_sentences=2, max_words=40, one_paragraph=True),
    "haiku": GuardPolicy(max_sentences=6, max_words=120),
    "agent": GuardPolicy(max_sentences=8, max_words=160, exempt=frozenset({"timers"})),
}
_CHARS_PER_TOKEN_WORST = 3.0
# A question of fact (after the skills and request stages had their turn): a small
# local model would only guess at it.
_QUESTION_OF_FACT = re.compile(
    r"^(?:what|who|whom|whose|when|where|why|how|which|is|are|was|were|does|do|did|can|"
    r"could|should|would|will|tell me (?:about|what|who|how|why|when|where))\b"
)  # conservative: English averages ~4 characters per token


@dataclass(frozen=True)
class RouteDecision:
    text: str
    tier: Tier
    """Who will answer (after budget, breaker and key checks)."""
    wanted: Tier
    """What the classifier (or a skill) chose."""
    stage: str
    reason: str
    confidence: float
    budget_mode: str
    downgrade: str | None = None
    """Why `tier` differs from `wanted`: thrifty, budget, breaker_open, no_key, disabled."""
    lead_line: str | None = None
    """A persona line said before a downgraded answer."""
    skill: SkillAnswer | None = None
    decide_ms: float = 0.0
    classification: Classification | None = field(default=None, repr=False)
    home: str | None = None
    """A device request ('control', 'state', 'weather', 'confirm'): the home stage goes first."""

    @property
    def wants_filler(self) -> bool:
        """Cloud answers start with a filler phrase (the Poker Face Protocol)."""
        return self.tier in CLOUD_TIERS and self.home is None


@dataclass(frozen=True)
class AnswerResult:
    """The end of every `respond()` stream."""

    decision: RouteDecision
    answered_by: str
    """'skill', 'local', 'haiku', 'agent' (or 'persona' when only a line was said)."""
    text: str
    response: LLMResponse | None = None
    fallback_reason: str | None = None
    first_text_ms: float | None = None
    """From the start of respond() to the first text it yielded."""
    cost_usd: float = 0.0
    home_at: float | None = None
    """Monotonic time the home stage's Home Assistant calls ended (device requests)."""


AnswerItem = str | AnswerResult


class _FallBack(Exception):
    def __init__(self, reason: str, line_kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line_kind = line_kind


class Router:
    def __init__(
        self,
        *,
        classifier: Classifier,
        skills: SkillSet,
        persona: Persona,
        budget: BudgetLedger,
        breakers: Mapping[Tier, CloudBreaker],
        clients: Mapping[Tier, LLMClient],
        tier_configs: Mapping[Tier, CloudTierConfig],
        memory: ConversationMemory,
        now: Callable[[], datetime],
        local_max_tokens: int = 160,
        local_temperature: float = 0.6,
        max_query_chars: int = 2000,
        agent_steps: int = 1,
        stages: Sequence[RequestStage] = (),
        guard_policies: Mapping[Tier, GuardPolicy] | None = None,
        home: HomeStage | None = None,
        local_declines: bool = False,
    ) -> None:
        self._classifier = classifier
        self._skills = skills
        self._persona = persona
        self._budget = budget
        self._breakers = breakers
        self._clients = dict(clients)
        self._tiers = tier_configs
        self._memory = memory
        self._now = now
        self._local_max_tokens = local_max_tokens
        self._local_temperature = local_temperature
        self._max_query_chars = max_query_chars
        self._agent_steps = agent_steps
        self._home = home
        self._disabled: set[Tier] = set()
        self._stages = tuple(stages)
        """Consulted after the skills, before any model (Home Assistant, the gate)."""
        self._policies = dict(guard_policies if guard_policies is not None else GUARD_POLICIES)
        self._local_declines = local_declines
        """Questions meant for a cloud tier get the `unsure` line, not a local guess."""

    async def prime(self, text: str, *, classify: bool = True) -> None:
        """Warm the local model's prompt cache for a probable query (no side effects).

        Skills are not consulted (they act: a timer would be set); a query a skill will
        answer just costs a little CPU here. `classify=False`: prime without asking the
        classifier first, for a turn that ends now: the prompt is then evaluated on the
        model's thread while the turn is routed (the router's own classification runs
        meanwhile), instead of after it; a turn that goes elsewhere has cost one
        prompt's evaluation on a thread nobody waits for.
        """
        client = self._clients.get("local")
        prime = getattr(client, "prime", None)
        if prime is None or not text.strip():
            return
        goes_local = True
        if classify:
            c = self._classifier.classify(self._clip(text))
            goes_local = (
                c.tier == "local"
                or c.tier not in self._clients
                or c.tier in self._disabled
                or self._budget.status().mode == "local_only"
                or self._breakers[c.tier].state == "open"
            )
        if goes_local:
            messages = [*self._memory.local_messages(), Message("user", self._clip(text))]
            await prime(messages, self._persona.system_prompt("local", self._now()))

    def now(self) -> datetime:
        """The household's current time (the router's clock)."""
        return self._now()

    def forget(self) -> None:
        """Drop the conversation history (a new conversation, e.g. per replayed file)."""
        self._memory.clear()

    def filler(self) -> str:
        """A filler phrase for the Poker Face Protocol (never the same twice in a row)."""
        return self._persona.filler()

    # ------------------------------------------------------------------ decide

    def decide(self, text: str) -> RouteDecision:
        """Classify and apply budget/breaker/key state; calls no model."""
        t0 = time.perf_counter()
        text = self._clip(text)
        home = self._home.wants(text) if self._home is not None else None
        # A pending "Shall I unlock the front door?" owns the yes/no, even "cancel".
        skill = None if home == "confirm" else self._skills.handle(text, self._now())
        if skill is not None:
            return RouteDecision(
                text, "local", "local", "skill", f"skill '{skill.skill}'", 1.0,
                self._budget.status().mode, skill=skill, decide_ms=_ms(t0),
            )  # fmt: skip
        c = self._classifier.classify(text)
        mode = self._budget.status().mode
        tier, downgrade, line = self._apply_state(c, mode)
        # A request Home Assistant can act on or answer goes to it (in respond); only
        # without it do the honest lines speak for the house.
        honest = None if home is not None else self._honest_line(text, c, tier)
        if honest is not None:
            return RouteDecision(
                text, "local", c.tier, honest.skill.split(":")[0], f"honest line ({honest.skill})",
                1.0, mode,
                downgrade=downgrade, skill=honest, decide_ms=_ms(t0), classification=c,
            )  # fmt: skip
        return RouteDecision(
            text=text,
            tier=tier,
            wanted=c.tier,
            stage="home" if home is not None else c.stage,
            reason=f"a home {home} request: Home Assistant first" if home else c.reason,
            confidence=c.confidence,
            budget_mode=mode,
            downgrade=downgrade,
            lead_line=self._persona.line(line) if line else None,
            decide_ms=_ms(t0),
            classification=c,
            home=home,
        )

    def _honest_line(self, text: str, c: Classification, tier: Tier) -> SkillAnswer | None:
        """A line in persona instead of a model's answer, or None.

        A safety worry the careful tier cannot take gets the safety line (a small local
        model must not improvise medical or legal advice); anything else goes past the
        request stages, which answer what ATLAS can do or honestly say it cannot; and a
        question the small local model would have to guess at (`local_declines`: one
        meant for a cloud tier, or any question of fact) gets the `unsure` line.
        """
        if c.stage == "safety":
            if tier != "local":
                return None
            kind = _worry(text)
            return SkillAnswer(self._persona.line(kind), f"safety:{kind}")
        answer = self._stage_line(text)
        if answer is not None:
            return answer
        guess = c.tier in CLOUD_TIERS or bool(_QUESTION_OF_FACT.match(normalise(text)))
        if self._local_declines and tier == "local" and guess:
            return SkillAnswer(self._persona.line("unsure"), "decline:unsure")
        return None

    def _stage_line(self, text: str) -> SkillAnswer | None:
        """The first request stage's answer (the capability gate's honest lines), or None."""
        now = self._now()
        for stage in self._stages:
            try:
                answer = stage.handle(text, now)
            except Exception:  # a broken stage must not cost the user an answer
                log.exception("router.stage_failed", stage=stage.name)
                continue
            if answer is not None:
                return answer
        return None

    def _apply_state(self, c: Classification, mode: str) -> tuple[Tier, str | None, str | None]:
        wanted: Tier = c.tier
        if wanted == "local":
            return "local", None, None
        if wanted not in self._clients:
            return "local", "no_key", None  # cloud simply off: no failure line
        if wanted in self._disabled:
            return "local", "disabled", None
        if mode == "local_only":
            return "local", "budget", "budget_exceeded"
        if mode == "thrifty" and wanted == "haiku" and c.marginal:
            return "local", "thrifty", None
        breaker = self._breakers[wanted]
        if breaker.state == "open":
            # Only allow() moves an open breaker to half-open once its reset timeout has
            # passed; checking the state alone would keep the tier off for good.
            if not breaker.allow():
                return "local", "breaker_open", "api_error"
            breaker.release()  # due for a trial: the call itself takes the trial slot
        return wanted, None, None

    def _clip(self, text: str) -> str:
        text = " ".join(text.split())
        if len(text) > self._max_query_chars:
            log.warning("router.query_truncated", chars=len(text), kept=self._max_query_chars)
            text = text[: self._max_query_chars]
        return text

    # ----------------------------------------------------------------- respond

    async def ask(self, text: str) -> AsyncGenerator[AnswerItem, None]:
        """decide() then respond(); an empty query gets the misunderstanding line."""
        if not text.strip():
            line = self._persona.line("misunderstanding")
            d = RouteDecision("", "local", "local", "empty", "empty query", 1.0, "normal")
            yield line
            yield AnswerResult(d, "persona", line)
            return
        # _closing: a consumer's aclose() (barge-in) must reach the cloud call now, not
        # whenever the garbage collector finalises the inner generator.
        async with _closing(self.respond(self.decide(text))) as items:
            async for item in items:
                yield item

    async def respond(self, d: RouteDecision) -> AsyncGenerator[AnswerItem, None]:
        t0 = time.perf_counter()
        said: list[str] = []
        first: list[float] = []

        def say(piece: str) -> str:
            if not first:
                first.append(_ms(t0))
            said.append(piece)
            return piece

        if d.skill is not None:
            yield say(d.skill.text)
            self._memory.add(d.text, d.skill.text)
            by = "skill" if d.stage == "skill" else "persona"
            yield AnswerResult(d, by, d.skill.text, first_text_ms=first[0])
            return
        if d.home is not None and self._home is not None:
            reply = await self._home.handle(d.text, d.home)
            if reply is not None:  # None: Home Assistant did not recognise it; go on
                yield say(reply.text)
                self._memory.add(d.text, reply.text)
                yield AnswerResult(
                    d, "home", reply.text, first_text_ms=first[0], home_at=reply.done_at
                )
                return
            # Not something Home Assistant knows: the honest line, if the request is one
            # ATLAS has no means for, rather than a model left to improvise about the house.
            honest = self._stage_line(d.text)
            if honest is not None:
                yield say(honest.text)
                self._memory.add(d.text, honest.text)
                yield AnswerResult(d, "persona", honest.text, first_text_ms=first[0])
                return

        history = self._memory.messages()
        lead = d.lead_line
        fallback: str | None = d.downgrade
        if d.tier in CLOUD_TIERS:
            cloud = _CloudCall(self, d, history)
            guard = self.guard(d.tier, d.text)
            try:
                async with _closing(cloud.stream()) as pieces:
                    async for piece in pieces:
                        for out in guard.feed(piece):
                            yield say(out)
                        if guard.stopped:
                            break
                for out in guard.finish():
                    yield say(out)
                text = "".join(said)
                self._memory.add(d.text, text)
                yield AnswerResult(
                    d, d.tier, text, cloud.response, cloud.failure, first[0] if first else None,
                    cloud.cost,
                )  # fmt: skip
                return
            except _FallBack as fb:
                fallback, lead = fb.reason, self._persona.line(fb.line_kind)

        response: LLMResponse | None = None
        if lead:
            yield say(lead + " ")
        local = self._clients["local"].stream(
            [*self._memory.local_messages(), Message("user", d.text)],
            self._persona.system_prompt("local", self._now()),
            self._local_temperature,
            self._local_max_tokens,
        )
        guard = self.guard("local", d.text)
        try:
            async with _closing(local) as items:
                async for item in items:
                    if isinstance(item, str):
                        for out in guard.feed(item):
                            yield say(out)
                        if guard.stopped:
                            break
                    else:
                        response = item
            for out in guard.finish():
                yield say(out)
        except Exception as e:  # LLMError, or a client bug: the user still gets a line
            log.error("router.local_failed", error=f"{type(e).__name__}: {redact_text(str(e))}")
            yield say(("" if not said else " ") + self._persona.line("cut_short"))
        text = "".join(said).strip()
        self._memory.add(d.text, text)
        yield AnswerResult(
            d, "local", text, response, fallback, first[0] if first else None
        )  # fmt: skip

    def guard(self, tier: Tier, prompt: str = "") -> AnswerGuard:
        """A fresh answer guard for one answer of `tier` to `prompt`."""
        policy = self._policies.get(tier, GuardPolicy())
        return AnswerGuard(self._persona, policy, ClaimDetector(policy.exempt), prompt)

    # -------------------------------------------------------------- cloud state

    def disable(self, tier: Tier, why: str = "the API key was refused") -> None:
        if tier not in self._disabled:
            self._disabled.add(tier)
            log.warning("router.tier_disabled", tier=tier, why=why)

    @property
    def disabled(self) -> frozenset[Tier]:
        return frozenset(self._disabled)

    def worst_case_usd(self, tier: Tier, history: list[Message], text: str) -> float:
        cfg = self._tiers[tier]
        chars = len(self._persona.system_prompt(tier, self._now())) + len(text)
        chars += sum(len(m.content) for m in history)
        steps = self._agent_steps if tier == "agent" else 1
        price, max_tokens = Price(cfg.input_usd_per_mtok, cfg.output_usd_per_mtok), cfg.max_tokens
        chain = self._clients.get(tier)
        if isinstance(chain, ProviderChain):  # any of its providers may answer: the dearest
            price, max_tokens = chain.worst_price(cfg.max_tokens)
        per_call = price.worst_case(int(chars / _CHARS_PER_TOKEN_WORST) + 1, max_tokens)
        # Each agent step re-sends the growing conversation: charge it with every answer so far.
        growth = (steps - 1) * steps / 2 * max_tokens * price.input_per_mtok / 1e6
        return per_call * steps + growth


class _CloudCall:
    """One guarded cloud call: reservation, breaker, first-token deadline, ledger row."""

    def __init__(self, router: Router, d: RouteDecision, history: list[Message]) -> None:
        self._r = router
        self._d = d
        self._history = history
        self._tier: Tier = d.tier
        self.response: LLMResponse | None = None
        self.failure: str | None = None
        self.provider: str | None = None
        """The provider whose answer failed mid-way (when the tier has several)."""
        self.billed: LLMResponse | None = None
        """What a failed request's finished steps cost (LLMError.billed)."""
        self.cost = 0.0

    async def stream(self) -> AsyncIterator[str]:
        r, tier = self._r, self._tier
        breaker = r._breakers[tier]
        worst = r.worst_case_usd(tier, self._history, self._d.text)
        reservation = r._budget.reserve(
            tier, worst, query_text=self._d.text, model=r._tiers[tier].model
        )
        if reservation is None:
            raise _FallBack("budget", "budget_exceeded")
        if not breaker.allow():
            r._budget.release(reservation, "breaker_open")
            raise _FallBack("breaker_open", "api_error")
        cfg = r._tiers[tier]
        client = r._clients[tier]
        started = time.perf_counter()
        text_parts: list[str] = []
        stream = client.stream(
            [*self._history, Message("user", self._d.text)],
            r._persona.system_prompt(tier, r._now()),
            cfg.temperature,
            cfg.max_tokens,
        )
        status: CallStatus = "ok"
        settled = False
        try:
            try:
                deadline = cfg.first_token_deadline_s
                if isinstance(client, ProviderChain):  # each provider has its own, in turn
                    deadline = client.first_token_deadline_s
                async with asyncio.timeout(deadline):
                    item: StreamItem | None = await anext(stream)
                    while isinstance(item, LLMResponse) and item.interim:
                        self.response = item  # the finished tool steps' running bill
                        item = await anext(stream)
            except TimeoutError:
                # Cut short during a tool loop: its finished steps may have acted.
                acted = self.response is not None and self.response.acted
                raise LLMError(
                    ErrorKind.TIMEOUT, "first-token deadline missed", acted=acted
                ) from None
            except StopAsyncIteration:
                raise LLMError(ErrorKind.MID_STREAM, "empty stream") from None
            while item is not None:
                if isinstance(item, LLMResponse):
                    self.response = item
                elif item:
                    text_parts.append(item)
                    yield item
                item = await anext(stream, None)
            breaker.record_success()
        except Exception as exc:  # LLMError, or a client bug: neither may escape the router
            e = exc if isinstance(exc, LLMError) else _unexpected(exc, bool(text_parts))
            status = "failed"
            self.failure = e.kind.value
            self.provider = e.provider
            self.billed = e.billed
            if e.counts_for_breaker:
                breaker.record_failure(e)
            else:
                breaker.release()
            if e.kind.value == "auth":
                r.disable(tier)
            elif e.kind == ErrorKind.MODEL_NOT_FOUND:
                r.disable(tier, model_gone_warning(tier, r._tiers[tier].model, "not found"))
            log.warning("router.cloud_failed", tier=tier, error=str(e), spoken=bool(text_parts))
            if e.acted and not text_parts:
                # A tool already changed something: neither another model nor a retry
                # may answer as if it had not (nor do it again); a worry keeps its line.
                line = r._persona.line("part_done")
                if self._d.stage == "safety":
                    line += " " + r._persona.line(_worry(self._d.text))
                yield line
            elif not text_parts and not e.text_started:
                settled = True
                self._settle(reservation, started, status, "")
                line = "timeout" if e.kind.value in ("timeout",) else "api_error"
                raise _FallBack(e.kind.value, line) from None
            else:
                yield " " + r._persona.line("cut_short")
        except (asyncio.CancelledError, GeneratorExit):
            status = "cancelled"
            breaker.release()
            raise
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            if not settled:
                self._settle(reservation, started, status, "".join(text_parts))

    def _settle(
        self, reservation: Reservation, started: float, status: CallStatus, text: str
    ) -> None:
        resp = self.response
        cut_short = resp is None or resp.interim  # no final usage record came
        spoken_cost = 0.0
        if cut_short and status != "ok" and text:
            # Cut off (barge-in or a mid-stream failure) before the final usage record:
            # those tokens were billed, so charge what the text must have cost.
            cfg = self._r._tiers[self._tier]
            spoken_cost = len(text) / 4 * cfg.output_usd_per_mtok / 1e6
        if cut_short and self.billed is not None:  # a failure: every step that finished
            resp = self.billed
        usage_cost = (resp.cost_usd if resp is not None else 0.0) + spoken_cost
        if resp is not None:
            resp = replace(resp, cost_usd=usage_cost)
        self.cost = usage_cost
        c = self._d.classification
        record = CallRecord(
            query_text=self._d.text,
            tier=self._tier,
            model=resp.model if resp else self._r._tiers[self._tier].model,
            input_tokens=resp.usage.input_tokens if resp else 0,
            output_tokens=resp.usage.output_tokens if resp else 0,
            cache_read_tokens=resp.usage.cache_read_tokens if resp else 0,
            cache_write_tokens=resp.usage.cache_write_tokens if resp else 0,
            cost_usd=usage_cost,
            latency_ms=_ms(started),
            first_token_ms=resp.first_token_ms if resp else None,
            confidence=c.confidence if c else None,
            category=self._d.stage,
            fallback_reason=self.failure or "",
            status=status,
            provider=resp.backend if resp else (self.provider or "anthropic"),
        )
        self._r._budget.settle(reservation, record)


@contextlib.asynccontextmanager
async def _closing(stream: AsyncIterator[_T]) -> AsyncIterator[AsyncIterator[_T]]:
    """Like contextlib.aclosing, for anything typed as a plain AsyncIterator."""
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _worry(text: str) -> str:
    """The persona line kind for a safety worry: legal trouble or everything else."""
    return "legal" if is_legal(text) else "safety"


def _unexpected(exc: Exception, text_started: bool) -> LLMError:
    """A non-LLMError out of a client is a bug on our side: no breaker verdict."""
    log.error("router.client_bug", error=f"{type(exc).__name__}: {redact_text(str(exc))}")
    return LLMError(ErrorKind.UNAVAILABLE, type(exc).__name__, text_started=text_started)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)
