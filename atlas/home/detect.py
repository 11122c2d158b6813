"""Which utterances are device requests: home control, home state, or weather.

Deliberately narrow: a command verb with a device noun, a yes/no question about a
device's state, a temperature or weather question. Everything else goes on through the
router as before. Works on `atlas.skills.words.normalize`d text ("what's" -> "what
is", "thirty percent" -> "30 percent").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from atlas.skills.words import normalize

Kind = Literal["control", "state", "weather"]

_FILLERS = (
    r"(?:hey|ok|okay|so|um+|uh+|er+|erm|please|can you|could you|would you|will you|"
    r"would you mind|i want you to|i need you to|just|quickly|go ahead and|lets|now)"
)
_NOUNS = (
    r"(?:lights?|lamps?|thermostat|heating|heat|heater|radiators?|ac|air ?con|"
    r"air conditioning|fans?|tv|telly|television|plugs?|sockets?|switch(?:es)?|music|radio|"
    r"volume|speakers?|blinds?|curtains?|shutters?|covers?|windows?|doors?|garage|gates?|"
    r"locks?|alarm|vacuum|hoover|humidifier|dehumidifier|siren|brightness|kettle|"
    r"media player|roof|hvac|climate)"
)
_VERBS = (
    r"(?:turn|switch|flip|put|shut|dim|brighten|set|make|open|close|lock|unlock|arm|disarm|"
    r"raise|lower|start|stop|pause|resume|activate|deactivate|mute|unmute)"
)
_STATES = r"(?:on|off|open|closed|shut|locked|unlocked|running|playing|paused|armed|disarmed)"

_CONTROL = re.compile(rf"^(?:{_FILLERS}\s+)*{_VERBS}\b.{{0,50}}\b{_NOUNS}\b|\b{_NOUNS} (?:on|off)$")
_STATE = re.compile(
    rf"^(?:(?:and|so|hey|ok|okay)\s+)*(?:is|are) (?:the |my |our )?(?:\w+ ){{0,4}}{_NOUNS}"
    rf"(?: door)? (?:still )?{_STATES}\b"
    r"|\bwhat is the (?:temperature|humidity) (?:in|of|inside|in here)\b"
    r"|\bhow (?:warm|cold|hot|humid) is (?:it )?in the \w+"
    r"|\bwhat is the thermostat\b|\bwhat is the (?:\w+ ){1,3}set to\b"
)
_WEATHER = re.compile(
    r"\bweather\b|\bforecast\b|\bwill it (?:rain|snow|be (?:sunny|cold|hot|warm|windy|nice))\b"
    r"|\bdo i need (?:an umbrella|a coat)\b|\bis it (?:going to )?(?:rain|snow)(?:ing)?\b"
    r"|\bhow (?:hot|cold|warm) (?:is it|will it be) (?:outside|today|tomorrow)\b"
    r"|\bwhat is the temperature outside\b"
)
_WAKE = re.compile(r"^(?:hey |ok |okay )?atlas\b\s*")
_CLIPPED_ED = re.compile(
    r"^(is the (?:\w+ ){0,4}(?:door|gate|lock|garage|window)(?: door)?) (unlock|lock|close)$"
)

_YES = re.compile(
    r"^(?:yes|yeah|yep|yup|aye|sure|certainly|please do|do it|go ahead|go on|"
    r"confirm(?:ed)?|affirmative|of course|indeed|very well|correct|right|ok(?:ay)?)"
    r"(?: (?:please|thanks|thank you|sir|do it|go ahead|i do|i am|it is|that is right))*$"
)
_NO = re.compile(
    r"^(?:no|nope|nah|dont|do not|cancel|cancel that|never ?mind|leave it|stop|not now|"
    r"no thanks|no thank you|negative)(?: (?:thanks|thank you|please|sir|leave it|dont))*$"
)
_OBJECT = re.compile(
    r"\b(?:turn|switch) (?:on|off) (?:the |my |our |all the )?(?P<a>.+?)$"
    r"|\b(?:turn|switch) (?:the |my |our )?(?P<b>.+?) (?:on|off)$"
    r"|\b(?:open|close|shut|lock|unlock|arm|disarm|dim|brighten|raise|lower|set|start|stop) "
    r"(?:the |my |our )?(?P<c>.+?)(?: (?:to|at) .*)?$"
    rf"|\b(?:is|are) (?:the |my |our )?(?P<d>.+?) (?:still )?{_STATES}$"
)
_BRIGHTNESS = re.compile(
    r"\b(?:dim|brighten|set|turn (?:down|up)|put|make) (?:the |my |our )?(?P<target>.+?)"
    r"(?: (?P<lights>lights?|lamps?))? (?:to|at) (?P<n>\d{1,3}) percent\b"
)
_SENSITIVE_VERB = re.compile(r"\b(?P<verb>open|close|shut|lock|unlock|arm|disarm)\b")
_SENSITIVE_NOUN = re.compile(r"\b(?:doors?|garage|gates?|locks?|alarm)\b")


@dataclass(frozen=True)
class Request:
    kind: Kind
    text: str
    """The normalized text, wake word removed."""


def clean(text: str) -> str:
    """Lower case, numbers as digits, no punctuation or apostrophes, no wake word."""
    t = normalize(text).replace("'", "")
    t = _WAKE.sub("", " ".join(t.split()))
    # Speech recognition often drops the "-ed" of "is the front door locked?".
    return _CLIPPED_ED.sub(lambda m: f"{m[1]} {m[2]}{'d' if m[2].endswith('e') else 'ed'}", t)


def detect(text: str) -> Request | None:
    t = clean(text)
    if not t:
        return None
    if _WEATHER.search(t):
        return Request("weather", t)
    if _STATE.search(t):
        return Request("state", t)
    if _CONTROL.search(t):
        return Request("control", t)
    return None


def is_yes(text: str) -> bool:
    return bool(_YES.match(clean(text)))


def is_no(text: str) -> bool:
    return bool(_NO.match(clean(text)))


def spoken_object(t: str) -> str | None:
    """The thing a request names ("turn on the moon lights" -> "moon lights")."""
    m = _OBJECT.search(t)
    if m is None:
        return None
    obj = next(g for g in m.groups() if g)
    obj = re.sub(r"\b(?:please|for me|now|again|right now)\b", "", obj)
    return " ".join(obj.split()) or None


def brightness_rewrites(t: str) -> list[str]:
    """Phrasings Home Assistant's intents understand for "dim the X lights to N percent".

    Its 2024.3 sentences know "set the <area> brightness to N%" and "set <name> to N%",
    not "dim ... to thirty percent"; the area form first, then the entity name.
    """
    m = _BRIGHTNESS.search(t)
    if m is None:
        return []
    target, n = m.group("target"), m.group("n")
    lights = m.group("lights") or "lights"
    return [f"set the {target} brightness to {n}%", f"set the {target} {lights} to {n}%"]


def sensitive_verb(t: str) -> str | None:
    """The verb of a request that may open the house ("unlock the front door")."""
    verb = _SENSITIVE_VERB.search(t)
    if verb is None or not _SENSITIVE_NOUN.search(t):
        return None
    return "close" if verb.group("verb") == "shut" else verb.group("verb")


_TEMPERATURE = re.compile(
    r"\b(?:set|turn|put|change|make) (?:the |my |our )?(?P<target>.+?) (?:to|at) "
    r"(?P<n>\d{1,2}(?:\.\d)?)(?: degrees?)?(?: (?:celsius|centigrade|fahrenheit))?$"
)
_DOMAIN_NOUNS = {
    "light": ("light", "lights", "lamp", "lamps"),
    "cover": ("blind", "blinds", "window", "windows", "shutters", "curtains", "covers"),
    "fan": ("fan", "fans"),
    "switch": ("switch", "switches", "plug", "plugs", "socket", "sockets"),
    "media_player": ("speaker", "speakers", "tv", "television", "music"),
    "lock": ("lock", "locks", "door", "doors"),
}


def target_temperature(t: str) -> tuple[str, float] | None:
    """("heating", 21.0) for "set the heating to 21 degrees" (None for brightness)."""
    m = _TEMPERATURE.search(t)
    if m is None or "percent" in t:
        return None
    return m.group("target"), float(m.group("n"))


def domain_of(obj: str) -> str | None:
    """The kind of device a phrase names by its last word ("living room lights" -> light)."""
    last = obj.split()[-1] if obj.split() else ""
    return next((d for d, nouns in _DOMAIN_NOUNS.items() if last in nouns), None)


def when(t: str) -> Literal["today", "tomorrow"]:
    return "tomorrow" if re.search(r"\btomorrow\b", t) else "today"


def area_phrase(t: str) -> str | None:
    m = re.search(r"\b(?:in|of|inside) (?:the |my |our )?(?P<area>[a-z ]+?)$", t)
    return m.group("area") if m else None
