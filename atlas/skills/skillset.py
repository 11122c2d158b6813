"""The skills, tried in order before any LLM is asked."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime

import structlog

from atlas.skills.base import Skill, SkillAnswer

log = structlog.get_logger("atlas.skills")


class SkillSet:
    def __init__(self, skills: Sequence[Skill], wake_names: Sequence[str] = ("atlas",)) -> None:
        self._skills = tuple(skills)
        names = "|".join(re.escape(n.lower()) for n in wake_names if n.strip())
        # "Atlas, what time is it?" reaches the skills with the name still on it.
        self._wake = re.compile(rf"^\s*(?:(?:hey|ok|okay)\s+)?(?:{names})\b[\s,.!?]*", re.I)
        self._has_wake = bool(names)

    def __iter__(self) -> Iterator[Skill]:
        return iter(self._skills)

    def __len__(self) -> int:
        return len(self._skills)

    def handle(self, text: str, now: datetime) -> SkillAnswer | None:
        """The first skill's answer, or None: then an LLM answers."""
        if self._has_wake:
            text = self._wake.sub("", text, count=1)
        if not text.strip():
            return None
        for skill in self._skills:
            try:
                answer = skill.handle(text, now)
            except Exception:
                # A broken skill must not cost the user an answer: the LLM still has one.
                log.exception("skill.failed", skill=skill.name)
                continue
            if answer is not None:
                log.info("skill.answered", skill=skill.name)
                return answer
        return None
