"""Home Assistant as tools for the `agent` tier: areas, entities, states, services.

Only domains in `home_assistant.allowed_domains` can be read or acted on. A call that
would act on a door, lock, alarm or garage cover is not made: it is held for the
user's spoken yes (the same confirmation the voice path uses) and the model is told to
ask for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from atlas.home.client import EntityState, HomeClient, HomeError
from atlas.home.resolve import is_sensitive
from atlas.home.speech import describe
from atlas.home.stage import HomeStage
from atlas.llm.tools import Tool, ToolSpec
from atlas.skills.tools import SkillTool

_MAX_ENTITIES = 80
_VERBS = {
    "open_cover": "open",
    "close_cover": "close",
    "alarm_disarm": "disarm",
    "alarm_arm_away": "arm",
    "alarm_arm_home": "arm",
    "alarm_arm_night": "arm",
}
_ATTRS = (
    "brightness", "current_temperature", "temperature", "hvac_action", "current_position",
    "unit_of_measurement", "device_class", "media_title", "volume_level", "humidity",
)  # fmt: skip


def home_tools(home: HomeStage) -> list[Tool]:
    """The agent's hands on the house (none when Home Assistant is not set up)."""
    client = home.client
    if client is None:
        return []
    allowed = set(home.config.allowed_domains)

    def check_entity(entity_id: Any) -> str:
        if not isinstance(entity_id, str) or "." not in entity_id:
            raise ValueError("entity_id must look like 'light.kitchen_lights'")
        if entity_id.split(".", 1)[0] not in allowed:
            raise ValueError(f"the domain of {entity_id} is not allowed")
        return entity_id

    async def list_areas(args: Mapping[str, Any]) -> str:
        areas = await _safe(client.areas())
        if isinstance(areas, str):
            return areas
        return "\n".join(f"{name} (area_id {aid})" for aid, name in sorted(areas.items()))

    async def list_entities(args: Mapping[str, Any]) -> str:
        domain, area = args.get("domain"), args.get("area")
        states = await _safe(client.states())
        if isinstance(states, str):
            return states
        areas: dict[str, str] = {}
        where: dict[str, str] = {}
        if area:
            got = await _safe(_areas(client))
            if isinstance(got, str):
                return got
            areas, where = got
        lines = []
        for s in states:
            if s.domain not in allowed or (domain and s.domain != domain):
                continue
            in_area = areas.get(where.get(s.entity_id, ""), "")
            if area and str(area).lower() not in (in_area.lower(), where.get(s.entity_id, "")):
                continue
            suffix = f" (area {in_area})" if in_area else ""
            lines.append(f"{s.entity_id}: {s.name}, {s.state}{suffix}")
        if not lines:
            return "No matching entities."
        more = len(lines) - _MAX_ENTITIES
        return "\n".join(lines[:_MAX_ENTITIES]) + (f"\n... and {more} more" if more > 0 else "")

    async def get_state(args: Mapping[str, Any]) -> str:
        s = await _safe(client.state(check_entity(args.get("entity_id"))))
        if isinstance(s, str):
            return s
        attrs = {k: s.attributes[k] for k in _ATTRS if k in s.attributes}
        return f"{describe(s)}. state={s.state} attributes={json.dumps(attrs, default=str)}"

    async def call_service(args: Mapping[str, Any]) -> str:
        domain, service = args.get("domain"), args.get("service")
        entity_id = check_entity(args.get("entity_id"))
        if not isinstance(domain, str) or domain not in allowed:
            raise ValueError(f"domain {domain!r} is not allowed")
        if entity_id.split(".", 1)[0] != domain:
            raise ValueError(f"{entity_id} is not in domain {domain}")
        if not isinstance(service, str) or not service.replace("_", "").isalnum():
            raise ValueError("service must be a name like 'turn_on'")
        extra = args.get("data") or {}
        if not isinstance(extra, Mapping):
            raise ValueError("data must be an object")
        s = await _safe(client.state(entity_id))
        if isinstance(s, str):
            return s
        if is_sensitive(s):
            question = home.ask_first(s, domain, service, _VERBS.get(service, service))
            return (
                "NOT DONE YET: doors, locks, alarms and garage covers need the user's spoken "
                f"confirmation. End your answer by asking exactly: {question!r} Their yes "
                "carries it out."
            )
        done = await _safe(client.call_service(domain, service, {**extra, "entity_id": entity_id}))
        if isinstance(done, str):
            return done
        after = await _safe(client.state(entity_id))
        return f"Done. Now: {describe(after)}." if isinstance(after, EntityState) else after

    entity_arg = {"type": "string", "description": "e.g. light.kitchen_lights"}
    return [
        SkillTool(
            ToolSpec("home_list_areas", "The areas (rooms) of the house.", acts=False), list_areas
        ),
        SkillTool(
            ToolSpec(
                "home_list_entities",
                "Devices and sensors of the house with their state; filter by domain "
                "(light, cover, lock, climate, sensor, ...) and/or area name.",
                {
                    "type": "object",
                    "properties": {"domain": {"type": "string"}, "area": {"type": "string"}},
                },
                acts=False,
            ),
            list_entities,
        ),
        SkillTool(
            ToolSpec(
                "home_get_state",
                "The current state of one entity.",
                {
                    "type": "object",
                    "properties": {"entity_id": entity_arg},
                    "required": ["entity_id"],
                },
                acts=False,
            ),
            get_state,
        ),
        SkillTool(
            ToolSpec(
                "home_call_service",
                "Act on one entity through a Home Assistant service, e.g. domain light, "
                f"service turn_on, data {{'brightness_pct': 30}}. Allowed domains: "
                f"{', '.join(sorted(allowed))}. Doors, locks, alarms and garage covers "
                "need the user's spoken yes first.",
                {
                    "type": "object",
                    "properties": {
                        "domain": {"type": "string"},
                        "service": {"type": "string"},
                        "entity_id": entity_arg,
                        "data": {"type": "object"},
                    },
                    "required": ["domain", "service", "entity_id"],
                },
            ),
            call_service,
        ),
    ]


async def _areas(client: HomeClient) -> tuple[dict[str, str], dict[str, str]]:
    return await client.areas(), await client.entity_areas()


async def _safe(coro: Any) -> Any:
    """The result, or the problem as text for the model (never the token)."""
    try:
        return await coro
    except HomeError as e:
        return f"Home Assistant error ({e.kind}): {e}. Tell the user plainly; do not retry."
