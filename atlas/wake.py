"""Is an utterance meant for ATLAS? Wake phrase, follow-up window, echo guard.

The wake phrase is checked on the transcript (text, fuzzy: Whisper writes "Atlas",
"Atlus", "At last"...). After ATLAS stops speaking, a follow-up window lets the person
answer without the wake phrase. The echo guard drops a transcript that is ATLAS's own
voice coming back through the microphone.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher

from voice.config import bounded
from voice.textnorm import normalize_text

_LEADING = {"hey", "hi", "ok", "okay", "oh", "yo", "hello", "so", "um", "uh", "and", "excuse", "me"}
_ECHO_MEMORY = 8


@dataclass(frozen=True)
class WakeConfig:
    phrase: str = "atlas"
    enabled: bool = True
    """False: every utterance is addressed to ATLAS (like `atlas replay --no-wake`)."""
    similarity: float = bounded(0.75, 0.5, 1.0)
    """How close (0..1) a transcript's opening word must be to the phrase."""
    followup_window_s: float = bounded(8.0, 0.0, 120.0)
    """After ATLAS stops speaking, this long no wake phrase is needed."""
    echo_similarity: float = bounded(0.8, 0.5, 1.0)
    echo_window_s: float = bounded(20.0, 0.0, 600.0)


@dataclass(frozen=True)
class Addressed:
    addressed: bool
    text: str
    """The request without the wake phrase (empty when only the phrase was said)."""
    reason: str
    """'wake_phrase', 'follow_up', 'wake_disabled', or why it was ignored."""


class WakeGate:
    def __init__(self, config: WakeConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._phrase = normalize_text(config.phrase).split()
        self._followup_until = float("-inf")
        self._said: deque[tuple[str, float]] = deque(maxlen=_ECHO_MEMORY)

    def open_followup(self, spoke_until: float) -> None:
        """ATLAS finished speaking at `spoke_until`: the follow-up window starts then."""
        self._followup_until = spoke_until + self._config.followup_window_s

    def close_followup(self) -> None:
        self._followup_until = float("-inf")

    def remember_said(self, text: str) -> None:
        """Something ATLAS said out loud (for the echo guard)."""
        norm = normalize_text(text)
        if norm:
            self._said.append((norm, self._clock()))

    def is_echo(self, transcript: str) -> bool:
        norm = normalize_text(transcript)
        if not norm:
            return False
        horizon = self._clock() - self._config.echo_window_s
        for said, at in self._said:
            if at < horizon:
                continue
            if norm in said or _similarity(norm, said) >= self._config.echo_similarity:
                return True
        return False

    def check(self, transcript: str) -> Addressed:
        text = transcript.strip()
        if self.is_echo(text):
            return Addressed(False, text, "echo of ATLAS's own voice")
        if not self._config.enabled:
            return Addressed(True, text, "wake_disabled")
        stripped = self._strip_wake(text)
        if stripped is not None:
            return Addressed(True, stripped, "wake_phrase")
        if self._clock() <= self._followup_until:
            return Addressed(True, text, "follow_up")
        return Addressed(False, text, "no wake phrase")

    def _strip_wake(self, text: str) -> str | None:
        """The text after the wake phrase if it opens the utterance (fuzzy), else None."""
        words = text.split()
        norm = [normalize_text(w) for w in words]
        n = len(self._phrase)
        # The phrase may follow a greeting ("hey atlas") within the first few words.
        for start in range(min(3, len(words))):
            if start and norm[start - 1] not in _LEADING:
                break
            for width in (n, n + 1):  # "at last" for "atlas"
                candidate = " ".join(x for x in norm[start : start + width] if x)
                # A split form must be closer ("at last" yes, "at least" no).
                need = self._config.similarity if width == n else max(0.88, self._config.similarity)
                if candidate and _matches(candidate, self._phrase, need):
                    rest = " ".join(words[start + width :])
                    return re.sub(r"^[\s,.!?:;-]+", "", rest)
        # "..., atlas?" at the very end also addresses ATLAS.
        tail = " ".join(x for x in norm[-n:] if x)
        if len(words) > n and _matches(tail, self._phrase, self._config.similarity):
            return re.sub(r"[\s,.!?:;-]+$", "", " ".join(words[:-n]))
        return None


def _matches(candidate: str, phrase: list[str], threshold: float) -> bool:
    target = " ".join(phrase)
    a, b = candidate.replace(" ", ""), target.replace(" ", "")
    return _similarity(a, b) >= threshold


def _similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b).ratio()
