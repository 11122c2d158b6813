"""Greetings, thanks, goodbyes and "who are you": said in persona, no model needed.

A small local model answers "thanks a lot" with "thanks a lot." and "what's your
name" with a name it made up; these exchanges have one right answer each, so they are
a skill. Only whole utterances match ("thank you for explaining that" is left alone).
"""

from __future__ import annotations

import re
from datetime import datetime
from types import MappingProxyType

from atlas.skills.base import SkillAnswer, strip_courtesy
from atlas.skills.words import normalize

_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (name, re.compile(pattern), line)
    for name, pattern, line in (
        (
            "greeting",
            r"(?:hi|hello|hey|hiya|howdy|good (?:morning|afternoon|evening|day)|morning|"
            r"evening|afternoon)(?: there| to you| everyone| all)?",
            "{greeting}. What can I do for you?",
        ),
        (
            "goodnight",
            r"(?:good ?night|night night|nighty night)(?: then)?",
            "Good night. Sleep well.",
        ),
        (
            "how_are_you",
            r"(?:(?:hi|hello|hey) )?(?:how are you(?: doing)?"
            r"(?: today| this (?:morning|afternoon|evening))?"
            r"|how is it going|how are things|how have you been|are you well|you alright)",
            "Very well, thank you. And you?",
        ),
        (
            "thanks",
            r"(?:(?:ok|okay|great|perfect|lovely) )?"
            r"(?:thanks|thank you|thankyou|cheers|ta|much obliged)"
            r"(?: (?:so|very) much| a lot| a million| kindly)?"
            r"(?: that is (?:great|perfect|lovely))?",
            "You're most welcome.",
        ),
        (
            "goodbye",
            r"(?:bye|bye bye|goodbye|good bye|see you(?: later| soon| tomorrow)?|that is all"
            r"|that is it(?: for now)?)",
            "Very good. I shall be here.",
        ),
        (
            "identity",
            r"what is your name|who are you|what are you called|what should i call you"
            r"|what are you|are you a (?:robot|person|human|computer)|are you (?:human|real)",
            "I'm Atlas, at your service.",
        ),
        (
            "abilities",
            r"what can you do|what are you able to do|what do you do|what can i ask you"
            r"|how can you help(?: me)?|what are you good at",
            "I can tell you the time and the date, keep kitchen timers, do sums and "
            "conversions, and answer questions as best I can.",
        ),
        (
            "presence",
            r"(?:are you|you) (?:there|awake|listening)|can you hear me",
            "I'm here.",
        ),
    )
)


def _greeting(now: datetime) -> str:
    if 5 <= now.hour < 12:
        return "Good morning"
    if 12 <= now.hour < 18:
        return "Good afternoon"
    return "Good evening"


class SmallTalkSkill:
    name = "smalltalk"

    def handle(self, text: str, now: datetime) -> SkillAnswer | None:
        plain = normalize(text)
        polite = strip_courtesy(plain)
        for kind, pattern, line in _RULES:
            if pattern.fullmatch(plain) or pattern.fullmatch(polite):
                said = line.replace("{greeting}", _greeting(now))
                return SkillAnswer(said, self.name, MappingProxyType({"kind": kind}))
        return None
