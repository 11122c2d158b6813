"""What ATLAS says about the house, in the Lethal Gentleman's voice.

Sentences are built from entity states read back from Home Assistant, never from its
stock phrasing ("Turned off the light"), so what is said is what the house reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from atlas.home.client import EntityState, ErrorKind
from atlas.skills.words import format_plain

_CONDITIONS = {
    "clear-night": "clear",
    "cloudy": "cloudy",
    "exceptional": "exceptional",
    "fog": "foggy",
    "hail": "hail",
    "lightning": "stormy",
    "lightning-rainy": "stormy, with rain",
    "partlycloudy": "partly cloudy",
    "pouring": "pouring with rain",
    "rainy": "rainy",
    "snowy": "snowy",
    "snowy-rainy": "sleety",
    "sunny": "sunny",
    "windy": "windy",
    "windy-variant": "windy",
}
_UNITS = {"°C": "degrees", "°F": "degrees", "%": "percent", "W": "watts", "kWh": "kilowatt hours"}
_QUIET = ("unavailable", "unknown", "None", "")


def the(name: str) -> str:
    """'Kitchen Lights' -> 'the kitchen lights' (acronyms kept: 'the RGBWW lights')."""
    words = [w if (w.isupper() and len(w) > 1) else w.lower() for w in name.split()]
    text = " ".join(words)
    return text if text.startswith("the ") else f"the {text}"


def _plural(name: str) -> bool:
    last = name.split()[-1].lower() if name.split() else ""
    return last.endswith("s") and not last.endswith("ss")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def number(value: Any) -> str:
    try:
        return format_plain(round(float(value), 1))
    except (TypeError, ValueError):
        return str(value)


def describe(s: EntityState, name: str | None = None) -> str:
    """One sentence on an entity's state, without the closing full stop."""
    who = the(name or s.name)
    be = "are" if _plural(name or s.name) else "is"
    a, state = s.attributes, s.state
    if state in _QUIET:
        return f"{_cap(who)} {be} not reporting just now"
    if s.domain == "light" and state == "on" and a.get("brightness") is not None:
        pct = round(float(a["brightness"]) / 255 * 100)
        return f"{_cap(who)} {be} on, at {pct} percent"
    if s.domain == "climate":
        mode = state.replace("_", " ")
        target = a.get("temperature")
        now = a.get("current_temperature")
        text = f"{_cap(who)} {be} set to {mode}"
        if target is not None:
            text += f", aiming for {number(target)} degrees"
        if now is not None:
            text += f"; it reads {number(now)} degrees"
        return text
    if s.domain in ("sensor", "number") or s.domain == "input_number":
        unit = str(a.get("unit_of_measurement") or "")
        spoken_unit = _UNITS.get(unit, unit)
        return f"{_cap(who)} {be} {number(state)} {spoken_unit}".rstrip()
    if s.domain == "media_player" and state == "playing" and a.get("media_title"):
        return f"{_cap(who)} {be} playing {a['media_title']}"
    return f"{_cap(who)} {be} {state.replace('_', ' ')}"


def listing(items: Sequence[str]) -> str:
    """'a, b or c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def sentences(parts: Sequence[str]) -> str:
    """Sentences joined, the first addressed to the listener ("..., sir.")."""
    if not parts:
        return ""
    first, rest = parts[0], parts[1:]
    return " ".join([f"{first}, sir.", *(f"{p}." for p in rest)])


def area_summary(area: str, states: Sequence[EntityState]) -> str | None:
    """'The living room lights are on, at 30 percent' when they all agree, else None."""
    if not states or len({s.domain for s in states}) != 1:
        return None
    described = {describe(s, "x").removeprefix("The x is ") for s in states}
    if len(described) != 1:
        return None
    noun = {"light": "lights", "cover": "blinds", "switch": "switches", "fan": "fans"}.get(
        states[0].domain
    )
    if noun is None:
        return None
    return f"The {area.lower()} {noun} are {described.pop()}"


def weather_now(s: EntityState) -> str:
    cond = _CONDITIONS.get(s.state, s.state.replace("-", " "))
    temp = s.attributes.get("temperature")
    if temp is None:
        return sentences([f"It is {cond} outside"])
    return sentences([f"It is {number(temp)} degrees and {cond} outside"])


def weather_forecast(day: str, entry: Mapping[str, Any]) -> str:
    cond = _CONDITIONS.get(str(entry.get("condition")), str(entry.get("condition", "")))
    parts = [f"{_cap(day)} looks {cond}"]
    high, low = entry.get("temperature"), entry.get("templow")
    if high is not None and low is not None:
        parts.append(f"A high of {number(high)} and a low of {number(low)} degrees")
    elif high is not None:
        parts.append(f"Around {number(high)} degrees")
    rain = entry.get("precipitation_probability")
    if rain is not None:
        parts.append(f"The chance of rain is {number(rain)} percent")
    return sentences(parts)


def temperature_answer(value: str, area: str | None) -> str | None:
    """Home Assistant's bare "22 degrees" as a sentence (None when it is not one)."""
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?) ?(?:degrees|°C|°F|°)", value.strip())
    if m is None:
        return None
    where = f" in the {area}" if area else ""
    return sentences([f"It is {number(m.group(1))} degrees{where}"])


# ------------------------------------------------------------------ honest lines

_THINGS = (
    (r"\blights?|lamps?|brightness\b", "lights"),
    (r"\bheating|heat|heater|thermostat|radiators?|temperature|ac|air ?con\b", "heating"),
    (r"\bdoors?|locks?|gates?|garage|alarm\b", "doors and locks"),
    (r"\bblinds?|curtains?|shutters?|covers?|windows?\b", "blinds and windows"),
    (r"\bmusic|radio|volume|speakers?|tv|telly|television|media\b", "music and television"),
)


def things(t: str) -> str:
    for pattern, noun in _THINGS:
        if re.search(pattern, t):
            return noun
    return "devices"


def not_configured(kind: str, t: str) -> str:
    if kind == "weather":
        return "I have no window on the weather yet, sir; the house is not connected to me."
    if kind == "state":
        return f"I can't see the house's {things(t)} yet, sir; the house is not connected to me."
    return f"I have no hand on the house's {things(t)} yet, sir."


def fault(kind: ErrorKind, request_kind: str) -> str:
    acted = request_kind == "control"
    if kind == "timeout":
        if acted:
            return "The house is slow to answer, sir; I can't say whether that was done."
        return "The house is slow to answer just now, sir."
    if kind == "auth":
        tail = " Nothing has been changed." if acted else ""
        return "The house is refusing my requests just now, sir." + tail
    if kind == "unreachable":
        tail = " Nothing has been changed." if acted else ""
        return "The house is not answering just now, sir." + tail
    return "The house gave me an answer I could not make sense of, sir."


def not_found(obj: str | None) -> str:
    if obj:
        return f"I can't find {the(obj)} in the house, sir."
    return "I can't find that in the house, sir."


def not_understood(obj: str) -> str:
    return f"The house does not follow that request for {the(obj)}, sir. Nothing has been changed."


def failed(names: Sequence[str]) -> str:
    who = " and ".join(the(n) for n in names) or "it"
    return f"The house could not do that for {who}, sir."
