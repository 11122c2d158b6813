"""Spoken timer requests: set, how long left, list, cancel.

Every grammar must match the whole (normalized) utterance, so "how does a timer work"
or "my oven timer is broken" are left to an LLM.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from atlas.skills.base import SkillAnswer, strip_courtesy
from atlas.skills.durations import DURATION, parse_duration, say_duration
from atlas.skills.timers import (
    Timer,
    TimerLimitError,
    TimerService,
    TimerStatus,
    TimersUnavailable,
)
from atlas.skills.words import int_words, normalize

_LABEL = r"[a-z][a-z']*(?: [a-z][a-z']*){0,2}"
# Words that can sit where a label would, but are not one.
_NOT_LABELS = frozenset(
    {"a", "an", "the", "my", "this", "that", "another", "new", "second", "one", "quick"}
    | {"simple", "single", "timer", "timers", "for", "and", "of", "to", "set", "start"}
)
_VERB = r"(?:(?:set|start|create|make|put on|add|give me|run)(?: me| up)? )"
_NAMED = (
    r"(?: (?:(?:called|named|labelled|labeled) (?:the )?|for (?:the |my )?)"
    rf"(?P<label2>{_LABEL}))?"
)
_SET_A = re.compile(
    rf"{_VERB}?(?:a |an )?(?P<dur>{DURATION}) (?:(?P<label>{_LABEL}) )?timer{_NAMED}"
)
_SET_B = re.compile(
    rf"{_VERB}?(?:a |an |the |my )?(?:(?P<label>{_LABEL}) )?timer (?:for |of |to )?"
    rf"(?P<dur>{DURATION}){_NAMED}"
)
_SET_BARE = re.compile(rf"{_VERB}(?:a |an |the |my )?timer")
# Which timer an utterance means; parsed apart by _WHICH_RE once a grammar matched.
_WHICH = rf"(?:the |my |that |this )?(?:(?:{DURATION}|{_LABEL}) )?timer"
_WHICH_RE = re.compile(
    rf"(?:the |my |that |this )?(?:(?P<dur>{DURATION}) |(?P<label>{_LABEL}) )?timer"
)
_LEFT = re.compile(
    r"(?:how (?:much (?:more )?time|long)(?: is| do i have| have i got| is there)?"
    r" (?:left|remaining|to go)|how much longer|time (?:left|remaining))"
    rf"(?: (?:on|for|in) (?P<w1>{_WHICH}))?"
    rf"|how long (?:until|till|before) (?P<w2>{_WHICH}) (?:goes off|is done|rings|ends|finishes)"
    rf"|(?:check|how is) (?P<w3>{_WHICH})(?: doing)?"
)
_LIST = re.compile(
    r"(?:list|show|show me|read|check|tell me|what are) (?:all )?(?:of )?(?:my |the )?timers"
    r"|what timers (?:do i have|have i got|are (?:there|running|set|on|going))"
    r"|(?:do i have|have i got|are there) any timers(?: (?:running|set|on|going))?"
    r"|how many timers (?:do i have|have i got|are (?:there|running|set|on|going))"
    r"|which timers are (?:running|set|on|going)|my timers"
)
_STOP = r"(?:cancel|stop|delete|remove|clear|turn off|kill|end|dismiss|switch off)"
_CANCEL_ALL = re.compile(
    rf"{_STOP} (?:all (?:of )?(?:the |my )?timers|all|(?:the |my )?timers|every timer|each timer)"
)
_CANCEL_ONE = re.compile(rf"{_STOP} (?P<w1>{_WHICH})(?: (?:number )?(?P<id>\d+))?")


def _label(*candidates: str | None) -> str | None:
    for c in candidates:
        if c and not set(c.split()) & _NOT_LABELS:
            return c
    return None


def _data(action: str, timers: Sequence[Timer], **extra: Any) -> MappingProxyType[str, Any]:
    listed = [{"id": t.id, "label": t.label, "duration_s": t.duration_s} for t in timers]
    return MappingProxyType({"action": action, "timers": listed, **extra})


def _count(n: int, noun: str) -> str:
    return f"{int_words(n)} {noun}{'' if n == 1 else 's'}"


_MAX_SAID = 4  # a longer list is tiresome to hear


def _remaining(statuses: Sequence[TimerStatus]) -> str:
    said_now = statuses[:_MAX_SAID]
    parts = [f"your {s.timer.name} timer has {say_duration(s.remaining_s)} left" for s in said_now]
    if len(statuses) > _MAX_SAID:
        parts.append(f"{_count(len(statuses) - _MAX_SAID, 'more timer')} after those")
    said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]
    return said[0].upper() + said[1:] + "."


class TimerSkill:
    name = "timers"

    def __init__(self, service: TimerService) -> None:
        self._service = service

    def handle(self, text: str, now: datetime) -> SkillAnswer | None:
        t = strip_courtesy(normalize(text))
        for grammar in (_SET_A, _SET_B):
            m = grammar.fullmatch(t)
            if m:
                seconds = parse_duration(m.group("dur"))
                if seconds is not None:
                    return self._set(seconds, _label(m.group("label2"), m.group("label")))
        if _SET_BARE.fullmatch(t):
            return self._say(
                "Certainly, for how long? Say, for instance, set a timer for ten minutes.",
                _data("ask_duration", ()),
            )
        m = _LEFT.fullmatch(t)
        if m:
            return self._left(*self._pick(m))
        if _LIST.fullmatch(t):
            statuses = self._service.list()
            if not statuses:
                return self._say("You have no timers running.", _data("list", ()))
            head = f"You have {_count(len(statuses), 'timer')}. " if len(statuses) > 1 else ""
            return self._say(head + _remaining(statuses), _status_data("list", statuses))
        if _CANCEL_ALL.fullmatch(t):
            gone = self._service.cancel("all")
            if not gone:
                return self._say("You have no timers running.", _data("cancel", ()))
            if len(gone) == 1:
                return self._say(f"Your {gone[0].name} timer is cancelled.", _data("cancel", gone))
            return self._say(f"All {_count(len(gone), 'timer')} cancelled.", _data("cancel", gone))
        m = _CANCEL_ONE.fullmatch(t)
        if m:
            return self._cancel_one(*self._pick(m))
        return None

    def _pick(self, m: re.Match[str]) -> tuple[list[TimerStatus], bool]:
        """The running timers an utterance refers to (all of them when it names none),
        and whether it named one at all."""
        statuses = list(self._service.list())
        groups = m.groupdict()
        if groups.get("id"):
            return [s for s in statuses if s.timer.id == int(groups["id"])], True
        which = next((groups[k] for k in ("w1", "w2", "w3") if groups.get(k)), "")
        w = _WHICH_RE.fullmatch(which)
        if w and w.group("dur"):
            seconds = parse_duration(w.group("dur"))
            return [s for s in statuses if s.timer.duration_s == seconds], True
        label = _label(w.group("label")) if w else None
        if label:
            return [s for s in statuses if s.timer.label == label], True
        return statuses, False

    def _set(self, seconds: float, label: str | None) -> SkillAnswer:
        try:
            timer = self._service.set(seconds, label)
        except TimersUnavailable as e:
            said = (
                "I'm afraid I can only keep a timer while I'm running at home, and I'm not "
                "running just now: start me with atlas run, then ask again."
            )
            return self._say(said, _data("refused", (), reason=str(e)))
        except TimerLimitError as e:
            limit = self._service.max_timers
            if len(self._service.list()) >= limit:
                said = f"I'm afraid I can keep only {_count(limit, 'timer')} at once."
            else:
                said = f"I'm afraid I can't: {e}."
            return self._say(said, _data("refused", (), reason=str(e)))
        if label:
            said = f"Very good. Your {label} timer is set for {say_duration(seconds)}."
        else:
            said = f"Very good. {say_duration(seconds).capitalize()}, starting now."
        return self._say(said, _data("set", (timer,)))

    def _left(self, statuses: list[TimerStatus], named: bool) -> SkillAnswer:
        if not statuses:
            return self._none_found("left")
        return self._say(_remaining(statuses), _status_data("left", statuses))

    def _none_found(self, action: str) -> SkillAnswer:
        if not self._service.list():
            return self._say("You have no timers running.", _data(action, ()))
        return self._say("I can't find a timer by that name.", _data(action, ()))

    def _cancel_one(self, statuses: list[TimerStatus], named: bool) -> SkillAnswer:
        if not statuses:
            return self._none_found("cancel")
        if len(statuses) > 1 and not named:
            many = _count(len(statuses), "timer")
            return self._say(
                f"You have {many} running. Which one shall I cancel?",
                _data("ask_which", _timers(statuses)),
            )
        gone = [g for s in statuses for g in self._service.cancel(s.timer.id)]
        if len(gone) == 1:
            return self._say(f"Your {gone[0].name} timer is cancelled.", _data("cancel", gone))
        return self._say(
            f"{_count(len(gone), 'timer').capitalize()} cancelled.", _data("cancel", gone)
        )

    def _say(self, text: str, data: MappingProxyType[str, Any]) -> SkillAnswer:
        return SkillAnswer(text=text, skill=self.name, data=data)


def _timers(statuses: Sequence[TimerStatus]) -> list[Timer]:
    return [s.timer for s in statuses]


def _status_data(action: str, statuses: Sequence[TimerStatus]) -> MappingProxyType[str, Any]:
    remaining = [round(s.remaining_s, 3) for s in statuses]
    return _data(action, _timers(statuses), remaining_s=remaining)
