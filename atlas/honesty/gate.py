"""The capability gate: requests ATLAS has no means to carry out or no source to answer.

Consulted by the router after the skills and before any model, so that "turn on the
kitchen lights" or "what's the weather tomorrow" get an honest line in persona instead
of a model's invention. Each request stage has the skills' signature
(`handle(text, now) -> SkillAnswer | None`): a stage that CAN act or answer (Home
Assistant, a list kept by ATLAS) goes in front of this one in the router's `stages`,
and this gate then only sees what nothing else took.

Matching is on the classifier's normalised text (lowercase, no apostrophes or wake
word), and is deliberately about requests, not topics: "how does a thermostat work" is
a question for a model; "set the thermostat to 20" is a request for an actor.
"""

from __future__ import annotations

import re
from datetime import datetime
from types import MappingProxyType
from typing import Protocol

from atlas.llm.classifier import normalise
from atlas.skills.base import SkillAnswer

_LEAD = (
    r"^(?:(?:hey|ok|okay|so|um+|uh+|er+|erm|please|can you|could you|would you|will you|"
    r"would you mind|i want you to|i need you to|i would like you to|id like you to|just|"
    r"quickly|go ahead and|lets|now|and|also|then)\s+)*"
)
_DEVICE = (
    r"(?:lights?|lamps?|bulbs?|thermostat|heating|heat|heater|radiators?|boiler|ac|"
    r"air ?con(?:ditioning|ditioner)?|aircon|fans?|tv|telly|television|plugs?|sockets?|"
    r"blinds|curtains|shutters|kettle|coffee (?:machine|maker)|dishwasher|washing machine|"
    r"dryer|tumble dryer|vacuum|hoover|robot vacuum|oven|hob|sprinklers?|doors?|garage(?: door)?|"
    r"gate|locks?|windows?|alarm system|burglar alarm|security system|cameras?|"
    r"hot water|immersion|temperature|ceiling fan|porch light)"
)
_ACT = (
    r"(?:turn|switch|flip|put|shut|kill|dim|brighten|lower|raise|set|make|bump|crank|open|"
    r"close|lock|unlock|start|stop|boost|run|arm|disarm|activate|deactivate|adjust|change|"
    r"increase|decrease|heat|cool|warm)"
)


class RequestStage(Protocol):
    """A stage the router consults before any model (a Skill's signature)."""

    name: str

    def handle(self, text: str, now: datetime) -> SkillAnswer | None: ...


_RULES: tuple[tuple[str, str, str], ...] = (
    # (category, pattern on normalised text, the honest line)
    (
        "devices",
        rf"{_LEAD}{_ACT}\b.{{0,40}}\b{_DEVICE}\b"
        r"|\blights? (?:on|off|up|down)\b|\b(?:on|off) the lights?\b"
        r"|^(?:its|it is|im) (?:a bit |way |really |so |too |getting |rather |very )*"
        r"(?:dark|bright|cold|hot|warm|chilly|freezing|boiling|stuffy)"
        r"(?: in (?:here|the \w+(?: room)?))?$"
        r"|\bmake it (?:warmer|cooler|colder|brighter|darker)\b"
        r"|^(?:goodnight|good night) turn\b",
        "I'm afraid the lights, locks and appliances aren't connected to me, "
        "so I can't change them from here.",
    ),
    (
        "house_state",
        r"\b(?:is|are|did i leave|have i left|did (?:i|we|someone) (?:lock|close|shut)) "
        r"(?:the |my |our )?"
        r"(?:\w+ )?(?:door|garage|window|gate|lights?|oven|hob|heating|iron|tv|alarm|back door|"
        r"front door|kettle|fridge|freezer)(?: door)?"
        r"(?: (?:open|locked|unlocked|on|off|shut|closed|"
        r"still on|still open|left on|left open|running|armed))?$"
        r"|\bwhat is the (?:thermostat|heating|temperature) "
        r"(?:set to|at|in here|inside|in the house)\b"
        r"|\bwhats the thermostat\b|\bhow (?:warm|cold|hot) is it (?:in here|inside|in the house)\b"
        r"|\bwhat is the temperature (?:in here|inside|in the house|in the \w+ room)\b"
        r"|\bwho is at the door\b"
        r"|\bis (?:anyone|someone|somebody) (?:at the door|home|in the house)\b",
        "I can't see the doors, lights or appliances from here, so I couldn't tell you. "
        "A quick look will settle it.",
    ),
    (
        "media",
        r"^(?:(?:hey|ok|okay|so|um+|please|can you|could you|would you|will you|just)\s+)*"
        r"(?:play|shuffle|resume|pause|skip|mute|unmute|louder|quieter|turn it (?:up|down)|"
        r"put on (?:some |the )?(?:music|news|radio|a podcast|some \w+)|stop (?:the )?"
        r"(?:music|playing|song|podcast|radio))\b"
        r"|\bnext (?:song|track|episode)\b|\bprevious (?:song|track)\b"
        r"|\b(?:volume|sound) (?:up|down|to \d+)\b|\bwhat (?:song|track) is (?:this|playing)\b",
        "I'm afraid I can't play music or work the speakers yet.",
    ),
    (
        "messages",
        r"^(?:(?:hey|ok|okay|so|please|can you|could you|would you|will you|just)\s+)*"
        r"(?:send|text|message|email|e mail|call|ring|phone|dial|facetime|whatsapp|reply to)\b"
        r"(?! me\b)(?!.*\b(?:ambulance|police|999|911|112|emergency)\b).{0,60}$"
        r"|\b(?:read|check|any|do i have (?:any )?(?:new )?|have i got (?:any )?(?:new )?)"
        r"(?:my )?(?:new )?(?:messages|texts|emails|voicemails?|missed calls)\b",
        "I can't send or read messages, or place calls, I'm afraid.",
    ),
    (
        "purchases",
        r"^(?:(?:hey|ok|okay|so|please|can you|could you|would you|will you|just)\s+)*"
        r"(?:order|buy|purchase|book|reserve|reorder)\b"
        r"|\bbook (?:me |us )?(?:a |an )?(?:table|taxi|cab|uber|flight|hotel|appointment|ticket)",
        "I can't buy, order or book anything for you, I'm afraid.",
    ),
    (
        "reminders",
        r"\bremind (?:me|us|him|her)\b|\bset (?:an? |my )?(?:alarm|reminder)\b"
        r"|\bwake me(?: up)? (?:at|in|by|tomorrow)\b|\b(?:add|put) .{1,40} (?:to|on|in) "
        r"(?:the |my |our )?(?:calendar|diary|schedule)\b|^snooze\b"
        r"|\b(?:what|any) (?:reminders|alarms) (?:do i have|are set)\b",
        "I can't keep reminders or alarms yet, I'm afraid. A timer I can set, if that helps.",
    ),
    (
        "lists",
        r"\b(?:add|put) .{1,40} (?:to|on) (?:the |my |our )?(?:shopping|grocery|to do|todo)"
        r"(?: list)?\b"
        r"|\b(?:whats|what is) on (?:the |my |our )?(?:shopping|grocery|to do|todo) list\b"
        r"|\b(?:read|check|clear) (?:me )?(?:the |my |our )?(?:shopping|grocery|to do|todo) list\b",
        "I don't keep a shopping or to-do list yet, I'm afraid, so I can neither add to "
        "one nor read one out.",
    ),
    (
        "weather",
        r"\b(?:whats|what is|hows|how is|what will|what about|tell me|check|give me) (?:the |"
        r"todays |tomorrows )?weather\b|\bweather (?:like|today|tomorrow|tonight|this|for|in|"
        r"forecast|report|going to|be)\b|^weather$|\bforecast\b"
        r"|\b(?:will|is) it (?:going to )?(?:rain|snow|be (?:sunny|"
        r"hot|cold|warm|windy|nice|dry|wet))\b|\bdo i need (?:an umbrella|a coat|a jacket)\b"
        r"|\b(?:how|what is the) (?:hot|cold|warm) (?:is it )?(?:outside|out)\b"
        r"|\btemperature (?:outside|out there|tomorrow|today)\b"
        r"|\bhow (?:hot|cold|warm) is it (?:outside|out)\b"
        r"|\bis it (?:raining|snowing|sunny|windy|cold|hot) (?:outside|out)\b",
        "I've no window on the weather from here, I'm afraid. A forecast service, or a "
        "glance outside, will serve you better.",
    ),
    (
        "news",
        r"\b(?:the|todays|latest|any) (?:news|headlines)\b|^(?:news|headlines)$"
        r"|\b(?:latest|last nights?|todays|yesterdays) (?:score|scores|results?|match)\b"
        r"|\bwho (?:won|is winning)\b.{0,30}\b(?:last night|today|yesterday|tonight|"
        r"this (?:weekend|week|season))\b"
        r"|\b(?:stock|share) price\b"
        r"|\bhow (?:is|are) (?:the )?(?:markets?|stocks|ftse|dow|nasdaq)\b"
        r"|\btraffic (?:like|on|today|this morning)\b|\bhow is the traffic\b"
        r"|\bwhats on (?:tv|telly|television)\b|\bwhat is on (?:tv|telly|television)\b",
        "I have no news or live information to hand, I'm afraid.",
    ),
    (
        "calendar",
        r"\b(?:my|our) (?:calendar|diary|schedule|agenda|appointments?|meetings?)\b"
        r"|\bdo i have (?:any )?(?:meetings|appointments|plans|anything (?:on|planned))\b"
        r"|\bwhen is my (?:next )?(?:meeting|appointment)\b|\bwhats on today\b",
        "I can't see your calendar, I'm afraid.",
    ),
    (
        "workings",
        r"\b(?:are you|is this|do you|you|your)\b.{0,30}\b(?:model|llm|gpt|chatgpt|claude|"
        r"anthropic|openai|cloud|api|budget|tier|server|language model|neural network|"
        r"running on|powered by|trained)\b"
        r"|\b(?:model|cloud|api|budget|tier)\b.{0,20}\b(?:do you|have you|are you|you have|"
        r"you use|you using|you got)\b"
        r"|\b(?:are you|is this) (?:an? )?(?:ai|artificial intelligence|chatbot|bot)\b",
        "A gentleman never discusses his workings, I'm afraid. What can I do for you?",
    ),
    (
        "whereabouts",
        r"\bwhere (?:is|are|did i (?:put|leave)) (?:my|our|the) (?:phone|keys|wallet|glasses|"
        r"car|purse|bag|remote|kids|children|husband|wife|partner)\b"
        r"|\bfind my (?:phone|keys|wallet|glasses|car)\b",
        "I can't see where things are from here, I'm afraid.",
    ),
)

_LEGAL = re.compile(
    r"\b(?:police|cops?|arrest|sue|sued|suing|lawsuit|lawyer|attorney|solicitor|court|"
    r"custody|evict|eviction|subpoena|summons|warrant|divorce|legal|illegal|charged|"
    r"criminal|fine|fined|scam|scammed|fraud|tribunal|ticket|landlord)\w*\b"
)


class CapabilityGate:
    """Honest lines for requests no code of ATLAS can carry out or answer."""

    name = "capability"

    def __init__(self) -> None:
        self._rules = [(cat, re.compile(pattern), line) for cat, pattern, line in _RULES]

    def handle(self, text: str, now: datetime) -> SkillAnswer | None:
        t = normalise(text)
        if not t:
            return None
        for category, pattern, line in self._rules:
            if pattern.search(t):
                return SkillAnswer(
                    text=line,
                    skill=f"{self.name}:{category}",
                    data=MappingProxyType({"category": category, "honest": True}),
                )
        return None

    @staticmethod
    def lines() -> list[str]:
        """Every line the gate can say (checked against the persona by the tests)."""
        return [line for _, _, line in _RULES]


def is_legal(text: str) -> bool:
    """A safety-stage query that is about the law rather than health or danger."""
    return bool(_LEGAL.search(normalise(text)))
