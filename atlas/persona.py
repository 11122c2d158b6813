"""The Lethal Gentleman: system prompts, fillers, failure lines and the never-say check.

Everything ATLAS says in its own voice comes from config (`persona:` in routing.yaml)
through this class, so one test can prove none of it talks about how ATLAS works.
"""

from __future__ import annotations

import random
import re
from datetime import datetime
from typing import Literal, get_args

import structlog

from atlas.llm.base import TIERS
from atlas.llm.config import PersonaConfig

log = structlog.get_logger("atlas.persona")

LineKind = Literal[
    "budget_warning",
    "budget_exceeded",
    "timeout",
    "api_error",
    "cut_short",
    "part_done",
    "misunderstanding",
    "acknowledge",
    "not_done",
    "no_answer",
    "safety",
    "legal",
    "unsure",
    "too_slow",
]
LINE_KINDS: tuple[LineKind, ...] = get_args(LineKind)

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
# Sentence ends: keep the punctuation with its sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def spoken_datetime(now: datetime) -> str:
    """'Tuesday 5 March 2024, 3:20 PM (GMT)': unambiguous, and independent of the C locale."""
    hour12 = now.hour % 12 or 12
    ampm = "AM" if now.hour < 12 else "PM"
    zone = now.tzname()
    text = (
        f"{_WEEKDAYS[now.weekday()]} {now.day} {_MONTHS[now.month - 1]} {now.year}, "
        f"{hour12}:{now.minute:02d} {ampm}"
    )
    return f"{text} ({zone})" if zone else text


def spoken_date(now: datetime) -> str:
    """'Tuesday 5 March 2024'."""
    return f"{_WEEKDAYS[now.weekday()]} {now.day} {_MONTHS[now.month - 1]} {now.year}"


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A phrase matched case-insensitively, any whitespace, and not inside a longer word."""
    body = r"\s+".join(re.escape(w) for w in _plain(phrase).split())
    start = r"\b" if re.match(r"\w", phrase.strip()) else ""
    end = r"\b" if re.search(r"\w$", phrase.strip()) else ""
    return re.compile(start + body + end, re.IGNORECASE)


def _word_pattern(word: str) -> re.Pattern[str]:
    # Plurals too: "models" and "APIs" give the game away as much as "model" does.
    return re.compile(rf"\b{re.escape(word.strip())}(?:s|es)?\b", re.IGNORECASE)


def _plain(text: str) -> str:
    """Typographic apostrophes as plain ones, so "I’m just an AI" is caught too."""
    return text.replace("\u2019", "'").replace("\u2018", "'")


class Persona:
    """Lines in ATLAS's own voice; picks at random, never the same line twice running."""

    def __init__(self, config: PersonaConfig, rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng if rng is not None else random.Random()
        self._last: dict[str, str] = {}
        self._never = [(p, _phrase_pattern(p)) for p in config.never_say if p.strip()]
        self._forbidden = [(w, _word_pattern(w)) for w in config.forbidden_words if w.strip()]

    @property
    def name(self) -> str:
        return self._config.name

    def system_prompt(self, tier: str, now: datetime) -> str:
        """The prompt for `tier`. The local tier is told only the date: a prompt that
        changes every minute would defeat llama.cpp's prompt cache, and the time of day
        is answered by the clock skill, not the model."""
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r} (expected one of {', '.join(TIERS)})")
        hints = self._config.tier_hints
        index = TIERS.index(tier)
        hint = hints[index] if index < len(hints) else ""
        template = self._config.system_prompt
        if tier == "local" and self._config.local_system_prompt.strip():
            template = self._config.local_system_prompt
        # str.replace, not str.format: a prompt may legitimately contain other braces.
        text = (
            template.replace("{name}", self._config.name)
            .replace("{now}", spoken_date(now) if tier == "local" else spoken_datetime(now))
            .replace("{tier_hint}", hint)
        )
        return text.strip()

    def filler(self) -> str:
        return self._pick("fillers", self._config.fillers)

    def line(self, kind: str) -> str:
        """A failure line of `kind` (one of LINE_KINDS; checked at run time, so callers
        may carry the kind around as a plain string)."""
        if kind not in LINE_KINDS:
            raise ValueError(f"unknown persona line kind {kind!r}")
        lines: tuple[str, ...] = getattr(self._config, kind)
        return self._pick(kind, lines)

    def _pick(self, kind: str, lines: tuple[str, ...]) -> str:
        if not lines:
            raise ValueError(f"persona.{kind} is empty")
        last = self._last.get(kind)
        choices = [line for line in lines if line != last] or list(lines)
        chosen = self._rng.choice(choices)
        self._last[kind] = chosen
        return chosen

    def violations(self, text: str) -> list[str]:
        """Never-say phrases and forbidden words found in `text` (as configured)."""
        plain = _plain(text)
        found = [phrase for phrase, pattern in self._never if pattern.search(plain)]
        found += [word for word, pattern in self._forbidden if pattern.search(plain)]
        return found

    def never_said(self, text: str) -> list[str]:
        """Only the never-say phrases in `text` (what an answer is checked against)."""
        plain = _plain(text)
        return [phrase for phrase, pattern in self._never if pattern.search(plain)]

    def scrub(self, answer: str) -> str:
        """The answer without any sentence that contains a never-say phrase.

        Forbidden words are not checked here: a user may well ask about a model train.
        May return "" when every sentence had to go; the caller decides what to say then.
        """
        sentences = [s for s in _SENTENCE_END.split(answer.strip()) if s]
        kept = [s for s in sentences if not self.never_said(s)]
        if len(kept) != len(sentences):
            log.info("persona.scrubbed", dropped=len(sentences) - len(kept), kept=len(kept))
        return " ".join(kept)

    def validate(self) -> None:
        """Raise ValueError (one line) if ATLAS's own lines break the persona rules."""
        cfg = self._config
        for phrase in cfg.never_say:
            if not phrase.strip():
                raise ValueError("persona.never_say has an empty phrase")
        for word in cfg.forbidden_words:
            if not word.strip():
                raise ValueError("persona.forbidden_words has an empty word")
        if not cfg.name.strip():
            raise ValueError("persona.name is empty")
        if not cfg.system_prompt.strip():
            raise ValueError("persona.system_prompt is empty")
        if len(cfg.tier_hints) != len(TIERS):
            raise ValueError(
                f"persona.tier_hints needs {len(TIERS)} entries ({', '.join(TIERS)}), "
                f"has {len(cfg.tier_hints)}"
            )
        bad_name = self.violations(cfg.name)
        if bad_name:
            raise ValueError(f"persona.name {cfg.name!r} must not say {bad_name[0]!r}")
        own: list[tuple[str, tuple[str, ...]]] = [("fillers", cfg.fillers)]
        own += [(kind, getattr(cfg, kind)) for kind in LINE_KINDS]
        for key, lines in own:
            if not lines:
                raise ValueError(f"persona.{key} is empty")
            for i, line in enumerate(lines):
                if not line.strip():
                    raise ValueError(f"persona.{key}[{i}] is empty")
                bad = self.violations(line)
                if bad:
                    raise ValueError(f"persona.{key}[{i}] {line!r} must not say {bad[0]!r}")
