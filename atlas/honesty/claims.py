"""Does a sentence claim that something was done, or state a fact ATLAS has no source for?

A model asked to "turn on the lights" readily answers "I've turned them on" although
nothing can. These patterns find such sentences in an answer, one sentence at a time:

* a first-person action on something ATLAS could act on ("I'll turn on the lights",
  "I've added milk to your list", "let me lock the door");
* a passive or bare report of one ("The lights have been switched off", "Done.",
  "Now playing jazz.");
* a state of the house read from nowhere ("The front door is locked.");
* a forecast from nowhere ("It will be sunny tomorrow.").

Categories let a caller exempt what a tool really did (the agent tier can set timers).
Questions and negations ("I can't turn on the lights") are not claims.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Things ATLAS could be asked to act on, by category.
_NOUNS: dict[str, str] = {
    "devices": (
        r"lights?|lamps?|bulbs?|thermostat|heating|heat|heater|radiators?|boiler|ac|"
        r"air ?con(?:ditioning|ditioner)?|fan|tv|telly|television|plugs?|sockets?|switch(?:es)?|"
        r"blinds|curtains|shutters|kettle|coffee(?: machine| maker)?|dishwasher|"
        r"washing machine|dryer|vacuum|hoover|oven|stove|hob|sprinklers?|"
        r"doors?|front door|back door|garage(?: door)?|gate|locks?|windows?|alarm system|"
        r"temperature|brightness|living room|kitchen|bedroom|hallway|bathroom"
    ),
    "media": r"music|songs?|tracks?|playlist|album|radio|podcast|volume|speakers?|jazz|news",
    "messages": r"messages?|texts?|emails?|e-mails?|calls?|voicemail|whatsapp|sms",
    "purchases": r"orders?|purchases?|delivery|groceries|taxi|cab|uber|ride|table|booking|tickets?",
    "reminders": r"reminders?|alarms?|appointments?|calendar|meetings?|events?|wake up call",
    "lists": r"(?:shopping|grocery|to ?do|todo) list|list|notes?",
    "timers": r"timers?|countdown|stopwatch",
}
_ANY_NOUN = "|".join(f"(?:{n})" for n in _NOUNS.values())

_VERBS = (
    r"turn(?:ed|ing)?|switch(?:ed|ing)?|flipp?(?:ed|ing)?|dimm?(?:ed|ing)?|brighten(?:ed|ing)?|"
    r"lock(?:ed|ing)?|unlock(?:ed|ing)?|open(?:ed|ing)?|clos(?:e|ed|ing)|shut(?:ting)?|"
    r"set(?:ting)?|reset|add(?:ed|ing)?|put(?:ting)?|order(?:ed|ing)?|bought|buy(?:ing)?|"
    r"purchas(?:e|ed|ing)|sen[dt](?:ing)?|text(?:ed|ing)?|e-?mail(?:ed|ing)?|"
    r"messag(?:e|ed|ing)|call(?:ed|ing)?|rang|ring(?:ing)?|phon(?:e|ed|ing)|"
    r"play(?:ed|ing)?|paus(?:e|ed|ing)|resum(?:e|ed|ing)|skipp?(?:ed|ing)?|"
    r"start(?:ed|ing)?|stopp?(?:ed|ing)?|book(?:ed|ing)?|schedul(?:e|ed|ing)|"
    r"remind(?:ed|ing)?|adjust(?:ed|ing)?|rais(?:e|ed|ing)|lower(?:ed|ing)?|"
    r"increas(?:e|ed|ing)|decreas(?:e|ed|ing)|chang(?:e|ed|ing)|activat(?:e|ed|ing)|"
    r"deactivat(?:e|ed|ing)|cancel(?:l?ed|l?ing)?|creat(?:e|ed|ing)|sav(?:e|ed|ing)|"
    r"not(?:e|ed|ing) down|jott?(?:ed|ing) down|mut(?:e|ed|ing)|unmut(?:e|ed|ing)|"
    r"arm(?:ed|ing)?|disarm(?:ed|ing)?|boost(?:ed|ing)?|crank(?:ed|ing)?|bump(?:ed|ing)?|"
    r"get(?:ting)? (?:that|it|those|them) (?:on|off|going|started|sorted|done)"
)
# Verbs that report a done deed by themselves, no object needed ("I've ordered it").
_STRONG = (
    r"turned (?:on|off|up|down)|switched (?:on|off)|dimmed|brightened|locked|unlocked|"
    r"ordered|bought|purchased|texted|e-?mailed|messaged|booked|scheduled|"
    r"turning (?:on|off|up|down)|switching (?:on|off)"
)
_SUBJECT = (
    r"(?:^|[\s,;:(\"'])(?:i|ive|i have|ill|i will|im|i am|id have|we|weve|we have|well|"
    r"we will|were|we are|let me|lets|allow me to)"
)
_ADVERBS = (
    r"(?:\s+(?:just|now|already|also|quickly|promptly|successfully|gone ahead and|"
    r"went ahead and|gone and|been|happily|right away|straight away|certainly))*"
)
_NEG = re.compile(
    r"\b(?:cant|cannot|can not|couldnt|wont|dont|didnt|unable|not able|no way|"
    r"afraid|sorry|forgive|wish i could|if i could|unfortunately)\b"
)

_FIRST_PERSON = re.compile(
    rf"{_SUBJECT}{_ADVERBS}\s+(?:(?P<strong>{_STRONG})\b|(?:{_VERBS})\b(?P<rest>(?:\s+\S+){{0,6}}))"
)
_PASSIVE = re.compile(
    rf"\b(?:has|have|had|is|are|was|were)\s+(?:now\s+|just\s+|already\s+|been\s+)*"
    rf"(?:been\s+)?(?:{_STRONG}|set|added|sent|started|stopped|cancell?ed|created|saved|"
    rf"noted|scheduled|paused|played|muted|opened|closed|shut|armed|disarmed|adjusted|"
    rf"raised|lowered|changed|activated|deactivated)\b"
)
_BARE = re.compile(
    r"^(?:(?:very good|certainly|of course|right|okay|ok|sure|absolutely|there we are|"
    r"there you go|there)[\s,.!-]+)*"
    r"(?:done|all done|consider it done|it is done|its done|right away|straight away|"
    r"coming right up|on it|as you wish|your wish is my command)[\s.!]*$"
    r"|^(?:(?:very good|certainly|of course|okay|ok|sure|right)[\s,.!-]+)*"
    r"(?:now )?(?:playing|turning|switching|dimming|locking|unlocking|setting|adding|"
    r"ordering|sending|calling|texting|opening|closing|starting|stopping|booking)\b"
)
_STATE = re.compile(
    rf"\b(?:the|your|my|all the|all your|both)\s+(?:\w+\s+){{0,2}}?(?:{_ANY_NOUN})\s+"
    r"(?:is|are|was|were|has been|have been|should be|will be)\s+"
    r"(?:now\s+|already\s+|still\s+|currently\s+|all\s+|safely\s+|securely\s+|firmly\s+)*"
    r"(?:on|off|locked|unlocked|open|closed|shut|set|dimmed|playing|running|armed|disarmed|"
    r"at \d+|(?:set )?to \d+|\d+ (?:percent|degrees))"
    r"(?=\s*(?:[.,!?;:]|$|now\b|and\b|for\b|at\b|to\b|as\b|right\b))"
)
_COUNTDOWN = re.compile(r"\b(?:starting|beginning|counting down|ticking) (?:now|from now)\b")
_FORECAST = re.compile(
    r"\b(?:it ?(?:will|ll|is going to|s going to|should) be|expect|forecast|"
    r"tomorrow (?:will|should) be|it is|its|today is|tonight will be|there will be)\b"
    r".{0,40}\b(?:sunny|rain(?:y|ing)?|cloudy|overcast|snow(?:ing|y)?|showers?|"
    r"storms?|stormy|windy|foggy|drizzle|thunder(?:storms?)?|\d+ degrees|clear skies)\b"
)


# Words from which a sentence in progress might still turn into a claim: a text held
# by the guard from the first of these on (see atlas.honesty.guard).
RISKY_WORDS = re.compile(
    rf"\b(?:{_VERBS}|done|playing|now|consider|coming|sunny|rain\w*|snow\w*|"
    r"cloudy|forecast|degrees|tomorrow|tonight|showers?|storms?|windy|starting|beginning|"
    r"ticking|counting)\b"
    rf"|\b(?:the|your|my|our|all the|both)\s+(?:\w+\s+){{0,2}}?(?:{_ANY_NOUN})\b"
)


def _plain(sentence: str) -> str:
    t = sentence.lower().replace("\u2019", "'").replace("\u2018", "'").replace("'", "")
    return " ".join(t.split())


def _category(text: str) -> str | None:
    for name, nouns in _NOUNS.items():
        if re.search(rf"\b(?:{nouns})\b", text):
            return name
    return None


@dataclass(frozen=True)
class Claim:
    kind: str
    """action, report, state or forecast."""
    category: str
    """What it was about: devices, media, messages, ..., timers, weather, or general."""
    text: str


class ClaimDetector:
    """Finds claims in one sentence; `exempt` categories were really done by a tool."""

    def __init__(self, exempt: Iterable[str] = ()) -> None:
        self._exempt = frozenset(exempt)

    def find(self, sentence: str) -> Claim | None:
        t = _plain(sentence)
        if not t or t.endswith("?"):
            return None
        claim = self._find(t)
        if claim is None or claim.category in self._exempt:
            return None
        return claim

    def _find(self, t: str) -> Claim | None:
        if _FORECAST.search(t) and not _NEG.search(t):
            return Claim("forecast", "weather", t)
        if _COUNTDOWN.search(t) and not _NEG.search(t):
            return Claim("report", "timers", t)
        m = _FIRST_PERSON.search(t)
        if m and not _NEG.search(t[: m.end()]):
            if m.group("strong"):
                return Claim("action", _category(t[m.start() :]) or "devices", t)
            rest = m.group("rest") or ""
            category = _category(m.group(0)) or _category(rest)
            if category is not None:
                return Claim("action", category, t)
        m2 = _PASSIVE.search(t)
        if m2 and not _NEG.search(t):
            category = _category(t)
            if category is not None:
                return Claim("report", category, t)
        if _BARE.search(t) and not _NEG.search(t):
            return Claim("report", _category(t) or "general", t)
        m3 = _STATE.search(t)
        if m3 and not _NEG.search(t):
            return Claim("state", _category(m3.group(0)) or "devices", t)
        return None


def claim_in(sentence: str, exempt: Iterable[str] = ()) -> Claim | None:
    """One-off check (builds a detector each call; the guard keeps one)."""
    return ClaimDetector(exempt).find(sentence)
