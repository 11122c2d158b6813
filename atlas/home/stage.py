"""The device-request stage the router consults first.

A request that looks like home control, home state or weather goes to Home Assistant
(its conversation API knows the household's names, aliases and areas) within the
configured deadline. What ATLAS then says is built from the states Home Assistant reports
back, so it is true; when Home Assistant did not recognise the request at all, `handle`
returns None and the router goes on as before. Doors, locks, alarms and garage covers
are only acted on after a spoken yes ("Shall I unlock the front door, sir?").

With no Home Assistant configured, or one that is down, slow or refuses the token, a
device request gets one honest line and a log line naming the problem and the fix;
never a claim that something was done.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import structlog

from atlas.home import speech
from atlas.home.client import EntityState, HomeClient, HomeError
from atlas.home.config import HomeAssistantConfig, HomeConnection
from atlas.home.detect import (
    area_phrase,
    brightness_rewrites,
    clean,
    detect,
    domain_of,
    is_no,
    is_yes,
    sensitive_verb,
    spoken_object,
    target_temperature,
    when,
)
from atlas.home.resolve import (
    SERVICES,
    for_day,
    known,
    resolve_sensitive,
    targets,
)

log = structlog.get_logger("atlas.home")

room_area: ContextVar[str | None] = ContextVar("atlas_room_area", default=None)
"""The area of the room whose turn is running (set by a satellite room for its tasks):
a request that names no area means that room first ("turn on the lights")."""

_SERVICE_TIMEOUT_S = 30.0
"""A started service call may take this long (a lock motor) after the reply is spoken."""
_HEATING_WORDS = re.compile(r"\b(?:heating|heat|heater|thermostat|temperature|climate)\b")


@dataclass(frozen=True)
class HomeReply:
    text: str
    outcome: str
    """done, answered, confirm, declined, not_found, not_understood, failed,
    not_configured, timeout, auth, unreachable, refused, bad_response."""
    entities: tuple[str, ...] = ()
    done_at: float = 0.0
    """Monotonic time Home Assistant's part of the turn ended."""


@dataclass(frozen=True)
class PendingAction:
    """A sensitive service call waiting for the spoken yes."""

    domain: str
    service: str
    entity_id: str
    name: str
    verb: str
    expires_at: float


class HomeStage:
    def __init__(
        self,
        config: HomeAssistantConfig,
        connection: HomeConnection,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self.connection = connection
        self.client: HomeClient | None = None
        if connection.problem is None and connection.url and connection.token:
            self.client = HomeClient(connection.url, connection.token, config.timeout_s)
        self._clock = clock
        self._pending: PendingAction | None = None
        self._calls: set[asyncio.Task[Any]] = set()

    @property
    def config(self) -> HomeAssistantConfig:
        return self._config

    async def aclose(self) -> None:
        if self._calls:  # service calls still under way: a moment to finish, then stop
            _, late = await asyncio.wait(self._calls, timeout=2.0)
            for task in late:
                task.cancel()
        if self.client is not None:
            await self.client.aclose()

    # ------------------------------------------------------------------ deciding

    def wants(self, text: str) -> str | None:
        """'confirm', 'control', 'state' or 'weather' when this stage should answer."""
        p = self._pending
        if p is not None and p.expires_at >= self._clock() and (is_yes(text) or is_no(text)):
            return "confirm"
        request = detect(text)
        return request.kind if request else None

    def ask_first(self, s: EntityState, domain: str, service: str, verb: str) -> str:
        """Hold a sensitive call until the spoken yes; returns the question to ask."""
        self._pending = PendingAction(
            domain, service, s.entity_id, s.name, verb,
            self._clock() + self._config.confirm_window_s,
        )  # fmt: skip
        return f"Shall I {verb} {speech.the(s.name)}, sir?"

    # ------------------------------------------------------------------ handling

    async def handle(self, text: str, kind: str) -> HomeReply | None:
        """The spoken answer, or None when Home Assistant did not recognise the request."""
        t0 = time.perf_counter()
        t = clean(text)
        pending, self._pending = self._pending, None
        if kind == "confirm" and pending is None:
            return None
        if self.client is None:
            log.warning("home.not_configured", problem=self.connection.problem)
            return self._reply(speech.not_configured(kind, t), "not_configured")
        reply: HomeReply | None
        try:
            async with asyncio.timeout(self._config.timeout_s):
                if kind == "confirm":
                    assert pending is not None
                    reply = await self._confirmed(pending, text)
                elif kind == "weather":
                    reply = await self._weather(self.client, t)
                elif kind == "control" and (verb := sensitive_verb(t)) is not None:
                    reply = await self._sensitive(self.client, t, verb)
                elif kind == "control" and (wanted := target_temperature(t)) is not None:
                    reply = await self._set_temperature(self.client, t, *wanted)
                else:
                    reply = await self._converse(self.client, t, kind)
        except TimeoutError:
            log.warning(
                "home.timeout",
                url=self.client.url,
                deadline_s=self._config.timeout_s,
                fix="Home Assistant is slow or stuck: check its log, or raise "
                "home_assistant.timeout_s",
            )
            reply = self._reply(speech.fault("timeout", kind), "timeout")
        except HomeError as e:
            if e.kind == "not_found":
                reply = self._reply(speech.not_found(spoken_object(t)), "not_found")
            else:
                log.warning(f"home.{e.kind}", problem=str(e))
                reply = self._reply(speech.fault(e.kind, kind), e.kind)
        log.info(
            "home.request",
            kind=kind,
            outcome=reply.outcome if reply else "not_recognised",
            entities=list(reply.entities) if reply else [],
            ms=round((time.perf_counter() - t0) * 1000, 1),
        )
        return reply

    def _reply(self, text: str, outcome: str, entities: Sequence[str] = ()) -> HomeReply:
        return HomeReply(text, outcome, tuple(entities), time.monotonic())

    async def _converse(self, client: HomeClient, t: str, kind: str) -> HomeReply | None:
        phrasings = [*brightness_rewrites(t), t] if kind == "control" else [t]
        area = room_area.get()
        if area and area_phrase(t) is None:
            # This room's devices first; Home Assistant's own area matching does the rest.
            phrasings = [f"{p} in the {area.lower()}" for p in phrasings] + phrasings
        response: Mapping[str, Any] = {}
        for phrase in phrasings:
            response = await client.converse(phrase, self._config.language)
            if response.get("response_type") != "error":
                break
        data = response.get("data") or {}
        rtype = response.get("response_type")
        if rtype == "action_done":
            return await self._done(client, data, t)
        if rtype == "query_answer":
            return await self._answered(client, response, data, t)
        code = data.get("code") if isinstance(data, Mapping) else None
        if code in ("no_intent_match", "no_valid_targets"):
            obj = spoken_object(t)
            if obj is None:
                return None  # nothing named that we could check: the router goes on
            if kind == "state" and (by_area := await self._area_state(client, obj)):
                return by_area
            if known(await client.states(), obj):
                return self._reply(speech.not_understood(obj), "not_understood")
            return self._reply(speech.not_found(obj), "not_found")
        log.warning("home.not_done", code=code)
        return self._reply(speech.failed([]), "failed")

    async def _done(self, client: HomeClient, data: Mapping[str, Any], t: str) -> HomeReply:
        success = targets(data, "success")
        ids = [x["id"] for x in success if x.get("type") == "entity"]
        states = list(await asyncio.gather(*(client.state(i) for i in ids)))
        domains = {s.domain for s in states}
        areas = [x["name"] for x in success if x.get("type") == "area"]
        summary = speech.area_summary(areas[0], states) if areas and states else None
        parts = [summary] if summary else [speech.describe(s) for s in states]
        failed = [
            x.get("name") or x["id"]
            for x in targets(data, "failed")
            if x.get("type") == "entity" and str(x["id"]).split(".")[0] in domains
        ]
        if not parts:
            return self._reply("The house reports it done, sir.", "done")
        text = speech.sentences(parts)
        if failed:
            text += " " + speech.failed(failed)
        return self._reply(text, "done", ids)

    async def _answered(
        self,
        client: HomeClient,
        response: Mapping[str, Any],
        data: Mapping[str, Any],
        t: str,
    ) -> HomeReply:
        ids = [x["id"] for x in targets(data, "success") if x.get("type") == "entity"]
        if ids:
            states = await asyncio.gather(*(client.state(i) for i in ids))
            return self._reply(
                speech.sentences([speech.describe(s) for s in states]), "answered", ids
            )
        said = str(((response.get("speech") or {}).get("plain") or {}).get("speech") or "")
        sentence = speech.temperature_answer(said, area_phrase(t))
        if sentence is None:
            sentence = (
                f"The house reports {said.rstrip('.')}, sir." if said else speech.not_found(None)
            )
        return self._reply(sentence, "answered")

    async def _weather(self, client: HomeClient, t: str) -> HomeReply:
        entity_id = self._config.weather_entity
        if entity_id is None:
            found = [s.entity_id for s in await client.states() if s.domain == "weather"]
            if not found:
                return self._reply("The house has no weather to consult, sir.", "not_found")
            entity_id = found[0]
        if when(t) == "tomorrow":
            entries = await client.forecast(entity_id, "daily")
            entry = for_day(entries, date.today() + timedelta(days=1))
            if entry is not None:
                return self._reply(
                    speech.weather_forecast("tomorrow", entry), "answered", [entity_id]
                )
            return self._reply("The house has no forecast for tomorrow, sir.", "not_found")
        s = await client.state(entity_id)
        return self._reply(speech.weather_now(s), "answered", [entity_id])

    async def _sensitive(self, client: HomeClient, t: str, verb: str) -> HomeReply:
        target = resolve_sensitive(await client.states(), t, verb)
        if target is None:
            return self._reply(speech.not_found(spoken_object(t)), "not_found")
        service = SERVICES.get((target.domain, verb))
        if service is None:
            return self._reply(
                f"{speech.the(target.name).capitalize()} cannot be told to {verb}, sir.",
                "failed",
                [target.entity_id],
            )
        question = self.ask_first(target, target.domain, service, verb)
        return self._reply(question, "confirm", [target.entity_id])

    async def _confirmed(self, p: PendingAction, text: str) -> HomeReply:
        if not is_yes(text):
            line = f"Very well, sir. I shall leave {speech.the(p.name)} as it is."
            return self._reply(line, "declined", [p.entity_id])
        assert self.client is not None
        s = await self._act(self.client, p.domain, p.service, {}, p.entity_id)
        return self._reply(speech.sentences([speech.describe(s)]), "done", [p.entity_id])

    async def _act(
        self, client: HomeClient, domain: str, service: str, data: Mapping[str, Any], entity: str
    ) -> EntityState:
        """Start a service call and return the entity's state once it has finished, or
        after half the deadline: a slow device (a lock motor) is then reported as it is
        ("locking"), which is true, instead of holding the turn until it is done."""
        waiting = [True]

        async def call() -> None:
            try:
                await client.call_service(
                    domain, service, {**data, "entity_id": entity}, timeout_s=_SERVICE_TIMEOUT_S
                )
            except HomeError as e:
                if not waiting[0]:
                    log.warning("home.late_failure", service=f"{domain}.{service}", problem=str(e))
                raise

        task = asyncio.create_task(call())
        self._calls.add(task)
        task.add_done_callback(_settled(self._calls))
        done, _ = await asyncio.wait({task}, timeout=self._config.timeout_s / 2)
        waiting[0] = False
        if task in done:
            task.result()  # a refusal (HomeError) is the turn's answer
        return await client.state(entity)

    async def _set_temperature(
        self, client: HomeClient, t: str, target: str, degrees: float
    ) -> HomeReply:
        """Home Assistant 2024.3's intents cannot set a temperature: ATLAS does it."""
        climates = [s for s in await client.states() if s.domain == "climate"]
        named = [s for s in climates if s.name.lower() in target]
        chosen = named or (climates if _HEATING_WORDS.search(target) else [])
        if not chosen:
            return self._reply(speech.not_found(target), "not_found")
        if len(chosen) > 1:
            names = speech.listing([speech.the(s.name) for s in chosen])
            line = f"Which shall I set, sir: {names}? Nothing has been changed."
            return self._reply(line, "not_found", [s.entity_id for s in chosen])
        entity = chosen[0].entity_id
        s = await self._act(client, "climate", "set_temperature", {"temperature": degrees}, entity)
        return self._reply(speech.sentences([speech.describe(s)]), "done", [entity])

    async def _area_state(self, client: HomeClient, obj: str) -> HomeReply | None:
        """ "Are the living room lights on?": the area's entities of that kind, read directly."""
        domain = domain_of(obj)
        if domain is None:
            return None
        areas = await client.areas()
        area_id = next((a for a, name in areas.items() if name.lower() in obj), None)
        if area_id is None:
            return None
        where = await client.entity_areas()
        states = [
            s
            for s in await client.states()
            if s.domain == domain and where.get(s.entity_id) == area_id
        ]
        area = areas[area_id]
        if not states:
            return self._reply(
                f"There is nothing of that kind in the {area.lower()}, sir.", "not_found"
            )
        summary = speech.area_summary(area, states)
        parts = [summary] if summary else [speech.describe(s) for s in states]
        return self._reply(speech.sentences(parts), "answered", [s.entity_id for s in states])


def _settled(calls: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        calls.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a late failure was logged by the call itself

    return done
