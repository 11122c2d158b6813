"""The contract every skill keeps, and the record a skill answers with."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol


@dataclass(frozen=True)
class SkillAnswer:
    """What ATLAS says (spoken, in persona), which skill said it, and the facts behind it."""

    text: str
    skill: str
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


class Skill(Protocol):
    name: str

    def handle(self, text: str, now: datetime) -> SkillAnswer | None:
        """The answer, or None when the utterance is not this skill's business.

        `now` is timezone-aware. Skills must be sure before answering: anything they
        are not certain about belongs to an LLM.
        """
        ...


# Courtesy around a request that changes nothing about it. Applied to normalized text.
_POLITE_PREFIX = re.compile(
    r"^(?:(?:hey|ok|okay|so|um|uh|er|well|excuse me|sorry|please)\s+)*"
    r"(?:(?:can|could|would|will) you\s+(?:please\s+)?(?:tell me\s+|let me know\s+)?"
    r"|(?:do|would) you (?:happen to )?know\s+|please\s+|tell me\s+"
    r"|i (?:want|would like) to know\s+)?"
)
_POLITE_SUFFIX = re.compile(r"(?:\s+(?:please|thanks|thank you|for me|atlas))+$")


def strip_courtesy(normalized: str) -> str:
    """'could you tell me what time it is please' -> 'what time it is'."""
    text = _POLITE_PREFIX.sub("", normalized, count=1)
    return _POLITE_SUFFIX.sub("", text).strip()
