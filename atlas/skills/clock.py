"""Time and date, in the household's time zone, said the way a person says them.

Answers only questions it recognises in full: "what time is it" yes, "what time does
the pharmacy close" or "what time is it in Tokyo" no (those belong to an LLM).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta, tzinfo
from types import MappingProxyType

from atlas.skills.base import SkillAnswer, strip_courtesy
from atlas.skills.words import int_words, normalize, ordinal_words

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

_NOW = r"(?: now| right now| at the moment| currently| exactly)?"
_TIME = re.compile(
    r"(?:what is )?the (?:current |exact |local )?time" + _NOW
    + r"|(?:current|local) time"
    + r"|what time is it" + _NOW
    + r"|what time it is" + _NOW
    + r"|(?:do you have|have you got|got) the time"
)  # fmt: skip
_TODAY = r"(?: today| is it| is it today| is today| today is it| is it now)?"
_DATE = re.compile(
    r"what is (?:the |today's |todays |the current )?date" + _TODAY
    + r"|what date is it(?: today)?|what date is today|(?:the |today's |todays )date"
    + r"|what day is it(?: today)?|what day is today|what is today"
    + r"|what day of the (?:week|month) is it(?: today)?|what is the day today"
)  # fmt: skip
_TOMORROW = re.compile(
    r"what (?:day|date) is (?:it )?tomorrow|what is tomorrow(?:'s date)?"
    r"|what is the date tomorrow|what day will it be tomorrow|tomorrow's date"
)
_YESTERDAY = re.compile(
    r"what (?:day|date) was (?:it )?yesterday|what was yesterday(?:'s date)?"
    r"|what was the date yesterday|yesterday's date"
)
_DAYNAME = "(?:" + "|".join(WEEKDAYS) + ")"
_ON_WEEKDAY = re.compile(
    rf"what is the date (?:on |this |next |this coming |on next |on this )?{_DAYNAME}"
    rf"|what date is (?:it )?(?:on )?(?:this |next |this coming )?{_DAYNAME}"
    rf"|what is (?:this |next |this coming )?{_DAYNAME}'?s date"
)
_YEAR = re.compile(r"what year is it(?: now)?|what is the year|what year is this")
_MONTH = re.compile(r"what month is it(?: now)?|what is the month|what month is this")


def period_of_day(hour: int) -> str:
    if 5 <= hour < 12:
        return "in the morning"
    if 12 <= hour < 18:
        return "in the afternoon"
    if 18 <= hour < 21:
        return "in the evening"
    return "at night"


def _hour_words(hour: int) -> str:
    return int_words(hour % 12 or 12)


def _hour_named(hour: int) -> str:
    """The hour as the anchor of 'past'/'to': 'midnight', 'noon', 'three in the afternoon'."""
    hour %= 24
    if hour == 0:
        return "midnight"
    if hour == 12:
        return "noon"
    return f"{_hour_words(hour)} {period_of_day(hour)}"


def spoken_time(hour: int, minute: int) -> str:
    """14:20 -> 'twenty past two in the afternoon'; 9:07 -> 'nine oh seven in the morning'."""
    if minute == 0:
        if hour in (0, 12):
            return _hour_named(hour)
        return f"{_hour_words(hour)} o'clock {period_of_day(hour)}"
    if minute % 5 == 0:
        if minute <= 30:
            amount = {15: "a quarter", 30: "half"}.get(minute, int_words(minute))
            anchor = _hour_named(hour)
            # "twenty past twelve in the afternoon" reads better than "twenty past noon"
            if hour == 12:
                anchor = f"twelve {period_of_day(12)}"
            return f"{amount} past {anchor}"
        amount = "a quarter" if minute == 45 else int_words(60 - minute)
        return f"{amount} to {_hour_named(hour + 1)}"
    minutes = f"oh {int_words(minute)}" if minute < 10 else int_words(minute)
    return f"{_hour_words(hour)} {minutes} {period_of_day(hour)}"


def spoken_date(d: date) -> str:
    """'Tuesday, the fifth of March'."""
    weekday = WEEKDAYS[d.weekday()].capitalize()
    return f"{weekday}, the {ordinal_words(d.day)} of {MONTHS[d.month - 1]}"


def _date_data(kind: str, d: date) -> dict[str, object]:
    return {"kind": kind, "date": d.isoformat(), "weekday": WEEKDAYS[d.weekday()]}


class ClockSkill:
    name = "clock"

    def __init__(self, tz: tzinfo) -> None:
        self._tz = tz

    @property
    def tz(self) -> tzinfo:
        return self._tz

    def handle(self, text: str, now: datetime) -> SkillAnswer | None:
        if now.tzinfo is None:
            raise ValueError("ClockSkill needs a timezone-aware 'now'")
        local = now.astimezone(self._tz)
        t = strip_courtesy(normalize(text))
        if _TIME.fullmatch(t):
            data = {
                "kind": "time",
                "time": f"{local.hour:02d}:{local.minute:02d}",
                "iso": local.isoformat(timespec="seconds"),
            }
            return self._answer(f"It's {spoken_time(local.hour, local.minute)}.", data)
        today = local.date()
        if _DATE.fullmatch(t):
            return self._answer(f"Today is {spoken_date(today)}.", _date_data("date", today))
        if _TOMORROW.fullmatch(t):
            d = today + timedelta(days=1)  # date arithmetic: immune to DST changes
            return self._answer(f"Tomorrow is {spoken_date(d)}.", _date_data("tomorrow", d))
        if _YESTERDAY.fullmatch(t):
            d = today - timedelta(days=1)
            return self._answer(f"Yesterday was {spoken_date(d)}.", _date_data("yesterday", d))
        m = _ON_WEEKDAY.fullmatch(t)
        if m:
            # The coming one, 1..7 days ahead: on a Friday, "Friday" means next week's.
            wanted = next(i for i, day in enumerate(WEEKDAYS) if day in t)
            d = today + timedelta(days=(wanted - today.weekday() - 1) % 7 + 1)
            name = WEEKDAYS[wanted].capitalize()
            text_out = f"{name} is the {ordinal_words(d.day)} of {MONTHS[d.month - 1]}."
            return self._answer(text_out, _date_data("weekday", d))
        if _YEAR.fullmatch(t):
            return self._answer(f"It's {today.year}.", {"kind": "year", "year": today.year})
        if _MONTH.fullmatch(t):
            month = MONTHS[today.month - 1]
            return self._answer(f"It's {month}.", {"kind": "month", "month": today.month})
        return None

    def _answer(self, text: str, data: Mapping[str, object]) -> SkillAnswer:
        return SkillAnswer(text=text, skill=self.name, data=MappingProxyType(dict(data)))
