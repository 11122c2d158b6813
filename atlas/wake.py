"""Is an utterance meant for ATLAS? Wake phrase, follow-up window, echo guard.

The wake phrase is checked on the transcript (text, fuzzy: Whisper writes "Atlas",
"Atlus", "At last"...). After ATLAS stops speaking, a follow-up window lets the person
answer without the wake phrase. The echo guard drops a transcript that is ATLAS's own
voice coming back through the microphone: it must have started while ATLAS was audible
(or in the room's echo tail just after), and its words must be, mostly, the words ATLAS
was playing from that moment on. A "no" said after a reply that contained "no" is heard.
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
_ECHO_MEMORY = 32
"""Pieces of played speech remembered (bounded)."""
_EARLY_S = 0.05
"""Speech detected a hair before the first sample of a piece is timing noise."""


@dataclass(frozen=True)
class _Played:
    words: list[str]
    start_at: float
    end_at: float


def _overlap(heard: list[str], played: list[str]) -> float:
    """Share of `heard` words found, in order, in `played`."""
    blocks = SequenceMatcher(None, heard, played, autojunk=False).get_matching_blocks()
    return sum(b.size for b in blocks) / len(heard)


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
    """Share of a transcript's words that must be what ATLAS was playing for an echo."""
    echo_window_s: float = bounded(20.0, 0.0, 600.0)
    """What ATLAS played is remembered this long."""
    echo_tail_ms: int = bounded(250, 0, 5000)
    """Speech that starts this soon after ATLAS went quiet may still be its echo (the
    speaker's and the microphone's buffers, the room's reverberation)."""


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
        self._played: deque[_Played] = deque(maxlen=_ECHO_MEMORY)

    def open_followup(self, spoke_until: float) -> None:
        """ATLAS finished speaking at `spoke_until`: the follow-up window starts then."""
        self._followup_until = spoke_until + self._config.followup_window_s

    def close_followup(self) -> None:
        self._followup_until = float("-inf")

    def remember_played(self, text: str, start_at: float, end_at: float) -> None:
        """Something ATLAS played out loud, and when (monotonic), for the echo guard."""
        norm = normalize_text(text)
        if norm:
            self._played.append(_Played(norm.split(), start_at, end_at))

    def is_echo(self, transcript: str, started_at: float | None) -> bool:
        """Did this speech start while ATLAS was audible, and is it what ATLAS played?"""
        heard = normalize_text(transcript).split()
        if not heard or started_at is None:
            return False
        horizon = self._clock() - self._config.echo_window_s
        tail = self._config.echo_tail_ms / 1000
        played = [p for p in self._played if p.end_at >= horizon]
        for i, p in enumerate(played):
            if p.start_at - _EARLY_S <= started_at <= p.end_at + tail:
                # What came back is what was playing then (and the piece after it).
                words = [w for q in played[i : i + 2] for w in q.words]
                return _overlap(heard, words) >= self._config.echo_similarity
        return False

    def check(self, transcript: str, started_at: float | None = None) -> Addressed:
        """Is this for ATLAS? `started_at`: when the speech began (monotonic), for the
        echo guard; without it no echo can be told and none is assumed."""
        text = transcript.strip()
        if self.is_echo(text, started_at):
            return Addressed(False, text, "echo of ATLAS's own voice")
        if not self._config.enabled:
            return Addressed(True, text, "wake_disabled")
        stripped = self._strip_wake(text)
        if stripped is not None:
            return Addressed(True, stripped, "wake_phrase")
        if self._clock() <= self._followup_until:
            return Addressed(True, text, "follow_up")
        return Addressed(False, text, "no wake phrase")

    def request_text(self, transcript: str) -> str:
        """The request without a wake phrase; '' when the phrase was all that was said."""
        text = transcript.strip()
        stripped = self._strip_wake(text)
        return text if stripped is None else stripped

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
