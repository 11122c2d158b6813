"""Spoken durations: "an hour and a half", "1.5 hours", "10 minutes and 30 seconds".

Works on `words.normalize()`d text, so numbers are already digits.
"""

from __future__ import annotations

import re

from atlas.skills.words import int_words

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_UNIT = r"(?:hours?|hrs?|minutes?|mins?|seconds?|secs?)"
_PART = (
    rf"(?:\d+(?:\.\d+)?|an?) {_UNIT}(?: and a (?:half|quarter))?"
    r"|half an? (?:hour|minute)|(?:a )?quarter (?:of an )?hour|(?:three )?quarters of an hour"
)
DURATION = rf"(?:{_PART})(?:(?: and|,)? (?:{_PART}))*"
"""A regex (no groups) for a whole spoken duration, for use inside the skills' grammars."""

_PART_RE = re.compile(
    rf"(?P<n>\d+(?:\.\d+)?|an?) (?P<u>{_UNIT})(?: and a (?P<frac>half|quarter))?"
    r"|(?P<half>half an? (?P<hu>hour|minute))"
    r"|(?P<three>(?:3|three) quarters of an hour)"
    r"|(?P<quarter>(?:a )?quarter (?:of an )?hour)"
)
_DURATION_RE = re.compile(DURATION)


def parse_duration(text: str) -> float | None:
    """Seconds in a normalized duration phrase, or None if it is not (only) a duration."""
    text = text.strip()
    if not _DURATION_RE.fullmatch(text):
        return None
    total = 0.0
    for m in _PART_RE.finditer(text):
        if m.group("half"):
            total += _UNIT_SECONDS[m.group("hu")[0]] / 2
        elif m.group("three"):
            total += 2700.0
        elif m.group("quarter"):
            total += 900.0
        else:
            n = 1.0 if m.group("n") in ("a", "an") else float(m.group("n"))
            n += {"half": 0.5, "quarter": 0.25}.get(m.group("frac") or "", 0.0)
            total += n * _UNIT_SECONDS[m.group("u")[0]]
    return total


def _parts(seconds: float) -> tuple[int, int, int]:
    s = round(seconds)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    return hours, minutes, secs


def say_duration(seconds: float) -> str:
    """Remaining time as said aloud: 'nine minutes and twelve seconds', 'one hour'."""
    hours, minutes, secs = _parts(seconds)
    if hours:
        # Past an hour, nobody wants the seconds.
        minutes += 1 if secs >= 30 else 0
        hours, minutes = hours + minutes // 60, minutes % 60
        units = [(hours, "hour"), (minutes, "minute")]
    else:
        units = [(minutes, "minute"), (secs, "second")]
    said = [f"{int_words(n)} {unit}{'' if n == 1 else 's'}" for n, unit in units if n]
    return " and ".join(said) if said else "less than a second"


def duration_adjective(seconds: float) -> str:
    """A timer's name from its length: 'ten minute', 'ninety second', 'two hour ten minute'."""
    hours, minutes, secs = _parts(seconds)
    if not hours and ((minutes < 2 and secs) or minutes == 0):
        return f"{int_words(minutes * 60 + secs)} second"
    if not secs and hours < 2 and minutes:
        return f"{int_words(hours * 60 + minutes)} minute"  # "ninety minute", as people say
    units = [(hours, "hour"), (minutes, "minute"), (secs, "second")]
    return " ".join(f"{int_words(n)} {unit}" for n, unit in units if n)
