"""Finding what a request names among Home Assistant's entities (pure functions)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from atlas.home.client import EntityState
from atlas.home.detect import spoken_object

SENSITIVE_COVERS = ("garage", "door", "gate")
SERVICES = {
    ("lock", "lock"): "lock",
    ("lock", "unlock"): "unlock",
    ("lock", "open"): "open",
    ("cover", "open"): "open_cover",
    ("cover", "close"): "close_cover",
    ("alarm_control_panel", "arm"): "alarm_arm_away",
    ("alarm_control_panel", "disarm"): "alarm_disarm",
}


def is_sensitive(s: EntityState) -> bool:
    if s.domain in ("lock", "alarm_control_panel"):
        return True
    if s.domain != "cover":
        return False
    device_class = str(s.attributes.get("device_class") or "")
    return device_class in SENSITIVE_COVERS or any(w in s.name.lower() for w in SENSITIVE_COVERS)


def targets(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    rows = data.get(key)
    if not isinstance(rows, list):
        return []
    return [r for r in rows if isinstance(r, Mapping) and isinstance(r.get("id"), str)]


def resolve_sensitive(states: Sequence[EntityState], t: str, verb: str) -> EntityState | None:
    """The sensitive entity a request names: its name in the request, the longest wins."""
    domains = {d for d, v in SERVICES if v == verb}
    obj = spoken_object(t) or ""
    best: tuple[int, EntityState] | None = None
    for s in states:
        if s.domain not in domains or not is_sensitive(s):
            continue
        name = s.name.lower()
        score = len(name) if name in t else (len(obj) if obj and obj in name else 0)
        if score and (best is None or score > best[0]):
            best = (score, s)
    return best[1] if best else None


def known(states: Sequence[EntityState], obj: str) -> bool:
    """Whether the house has something whose name holds `obj` ("thermostat")."""
    pattern = re.compile(rf"\b{re.escape(obj)}\b")
    return any(pattern.search(s.name.lower()) for s in states)


def for_day(entries: Sequence[Mapping[str, Any]], day: date) -> Mapping[str, Any] | None:
    """The forecast entry for `day` (local time), if Home Assistant has one."""
    for entry in entries:
        try:
            when_ = datetime.fromisoformat(str(entry.get("datetime")))
        except ValueError:
            continue
        local = when_.astimezone() if when_.tzinfo else when_
        if local.date() == day:
            return entry
    return None
