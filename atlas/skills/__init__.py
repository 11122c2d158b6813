"""Deterministic local skills answered before any LLM: time and date, timers,
arithmetic, unit conversion, and small talk (greetings, thanks, "who are you").
Build once (`build_skills`) and pass down."""

from __future__ import annotations

from datetime import tzinfo

from atlas.skills.arithmetic import ArithmeticSkill
from atlas.skills.base import Skill, SkillAnswer
from atlas.skills.clock import ClockSkill
from atlas.skills.skillset import SkillSet
from atlas.skills.smalltalk import SmallTalkSkill
from atlas.skills.timer_skill import TimerSkill
from atlas.skills.timers import (
    Timer,
    TimerFired,
    TimerLimitError,
    TimerService,
    TimerStatus,
    TimersUnavailable,
)
from atlas.skills.units import UnitsSkill

__all__ = [
    "ArithmeticSkill",
    "ClockSkill",
    "Skill",
    "SkillAnswer",
    "SkillSet",
    "SmallTalkSkill",
    "Timer",
    "TimerFired",
    "TimerLimitError",
    "TimerService",
    "TimerSkill",
    "TimerStatus",
    "TimersUnavailable",
    "UnitsSkill",
    "build_skills",
]


def build_skills(
    tz: tzinfo, timers: TimerService, wake_names: tuple[str, ...] = ("atlas",)
) -> SkillSet:
    """The standard skills in the order they are tried (units before arithmetic, so
    "5 miles in km" is never mistaken for a sum)."""
    return SkillSet(
        [ClockSkill(tz), TimerSkill(timers), UnitsSkill(), ArithmeticSkill(), SmallTalkSkill()],
        wake_names=wake_names,
    )
