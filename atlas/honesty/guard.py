"""The answer guard: between an LLM's text stream and the chunker, sentence by sentence.

Each finished sentence is checked before it is released:

* a never-say phrase ("as an AI", "language model") drops the sentence;
* a claim that something was done, or a house state or forecast from nowhere
  (`ClaimDetector`), drops the sentence and ends the answer with an honest line;
* a loop ("no, no, no", "a book of the Bible, a book of the Bible", a sentence said
  twice) ends the answer where the repetition starts;
* past the tier's length (sentences, words) the answer ends; a first sentence that is
  too long is cut at a comma (or the word limit) and closed with a full stop.

An answer left with nothing worth saying gets a persona line instead.

Latency: a clean first sentence is not held to its end. Its words are released as they
come, a few words behind the model (`lag_words`), for as long as nothing in it could
start a claim, a never-say phrase or a loop; from the first such word, the rest of the
sentence waits for its end and is checked whole. Later sentences are always checked
whole (the first one is still being spoken meanwhile, so holding them costs nothing).

Push API (`feed`, `finish`), so the router's existing stream loops need one line each;
`stopped` tells the caller to stop the model (closing its stream frees llama.cpp).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from atlas.honesty.claims import RISKY_WORDS, ClaimDetector
from atlas.persona import Persona

log = structlog.get_logger("atlas.honesty.guard")

# A sentence ends at . ! ? (and closing quotes/brackets) once the next non-space
# character has arrived: "$29.95" or "3.5" never end a sentence.
_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*\s+(?=\S)")
_WORD = re.compile(r"[\w']+")
# Words after which the rest of a first sentence is held until it is complete: those
# that could start a claim (claims.RISKY_WORDS), and those of the never-say kind.
_SELF_TALK = re.compile(
    r"\b(?:ai|assistant|model|models|language|cloud|api|budget|tier|training|cutoff|"
    r"capabilities|powerful|program|programmed|computer|chatbot|bot|artificial|virtual)\b"
)
_COMMA = re.compile(r"[,;:]\s")
_PARAGRAPH = re.compile(r"\S[ \t]*\n[ \t]*\n")
_LOOP_MIN_WORDS = 2
"""A loop cut that leaves fewer words than this leaves nothing worth saying."""
_ECHO_WORDS = 5
_LONGEST_WORD = 24


@dataclass(frozen=True)
class GuardPolicy:
    """Per-tier limits. `exempt`: claim categories a tool of this tier really performs."""

    max_sentences: int | None = None
    max_words: int | None = None
    exempt: frozenset[str] = frozenset()
    lag_words: int = 4
    one_paragraph: bool = False
    """End the answer at the first blank line (a small model's answer is one short
    paragraph; what follows a blank line is the model wandering off)."""


@dataclass
class GuardReport:
    dropped: list[tuple[str, str]] = field(default_factory=list)
    """(sentence, why) for each sentence not spoken: never_say, echo, claim:<kind>:<category>."""
    cut: str | None = None
    """Why the answer ended early: loop, repeat, length, claim."""
    line: str | None = None
    """A persona line added by the guard (not_done / no_answer)."""

    @property
    def clean(self) -> bool:
        return not self.dropped and self.cut is None and self.line is None


def _words(text: str) -> list[str]:
    return [w.lower().replace("'", "") for w in _WORD.findall(text)]


def loop_start(words: list[str]) -> int | None:
    """Index of the word where the tail starts repeating itself, or None.

    A "word" too long to be one, one word three times running ("no no no"), two or
    more words twice running
    ("a book of the bible a book of the bible"), or a phrase of five words said a
    second time anywhere. Returns where the SECOND occurrence begins, so everything
    before it is the text said once.
    """
    n_words = len(words)
    if n_words and len(words[-1]) > _LONGEST_WORD:  # "1000000000000...": not speech
        return n_words - 1
    if n_words >= 3 and words[-1] == words[-2] == words[-3]:
        return n_words - 2
    for n in range(2, min(12, n_words // 2) + 1):
        if words[-n:] == words[-2 * n : -n]:
            return n_words - n
    # A phrase of _ECHO_WORDS words said again, anywhere ("a benevolent and benevolent
    # being, and I'm a benevolent and benevolent being"): a spoken answer never needs it.
    n = _ECHO_WORDS
    if n_words >= 2 * n:
        tail = words[-n:]
        for i in range(n_words - 2 * n + 1):
            if words[i : i + n] == tail:
                return n_words - n
    return None


def first_loop(prior: list[str], words: list[str]) -> int | None:
    """How many of `words` come before the first repetition (counting `prior` as said)."""
    for i in range(len(words)):
        start = loop_start(prior + words[: i + 1])
        if start is not None:
            return max(start - len(prior), 0)
    return None


class AnswerGuard:
    """One answer's guard (make one per answer)."""

    def __init__(
        self, persona: Persona, policy: GuardPolicy, claims: ClaimDetector, prompt: str = ""
    ) -> None:
        self._persona = persona
        self._asked = set(persona.violations(prompt))
        self._prompt_words = _words(prompt)
        """Words the user said themselves ("what's a model train?") may be said back."""
        self._policy = policy
        self._claims = claims
        self.report = GuardReport()
        self._pending = ""
        """Text received and not yet released (the sentence in progress, mostly)."""
        self._early = 0
        """Characters of the sentence in progress already released early."""
        self._kept: list[list[str]] = []
        """Words of each sentence kept so far."""
        self._released_words: list[str] = []
        self._said = ""
        self.stopped = False

    # ------------------------------------------------------------------ public

    def feed(self, delta: str) -> list[str]:
        """Pieces to release for one text delta (maybe none)."""
        if self.stopped or not delta:
            return []
        self._pending += delta
        out: list[str] = []
        last_paragraph = False
        if self._policy.one_paragraph and (p := _PARAGRAPH.search(self._pending)):
            self._pending, last_paragraph = self._pending[: p.start() + 1], True
        while not self.stopped and (m := _BOUNDARY.search(self._pending)):
            sentence, self._pending = self._pending[: m.end()], self._pending[m.end() :]
            out += self._sentence(sentence)
        if last_paragraph and not self.stopped:
            if self._pending.strip():
                out += self._sentence(self._pending, last=True)
            self._pending = ""
            self._stop("paragraph")
        if not self.stopped:
            out += self._in_progress()
        return self._emit(out)

    def finish(self) -> list[str]:
        """The rest, at the end of the model's stream (and any closing line)."""
        out: list[str] = []
        if not self.stopped and self._pending.strip():
            out += self._sentence(self._pending, last=True)
        self._pending = ""
        self.stopped = True
        out = self._emit(out)
        out += self._emit(self._closing_line())
        return out

    @property
    def text(self) -> str:
        return self._said

    # ----------------------------------------------------------------- inside

    def _emit(self, pieces: list[str]) -> list[str]:
        pieces = [p for p in pieces if p]
        for p in pieces:
            self._said += p
            self._released_words += _words(p)
        return pieces

    def _stop(self, why: str) -> None:
        if self.report.cut is None:
            self.report.cut = why
        self.stopped = True

    def _in_progress(self) -> list[str]:
        """Release a clean first sentence's words early, `lag_words` behind."""
        if self._kept or self.report.dropped:
            return []
        text = self._pending
        words = list(_WORD.finditer(text))
        spoken = _words(text)
        start = loop_start(spoken)
        if start is not None:
            if start < _LOOP_MIN_WORDS:  # "no, no, no": nothing worth keeping
                self._stop("loop")
                return []
            cut_at = words[start].start()
            self._pending = text[:cut_at]
            out = self._sentence(self._pending, last=True, loop=True)
            self._stop("loop")
            return out
        limit = self._policy.max_words
        if limit is not None and len(words) > limit:
            early, self._early = self._early, 0
            return self._cut_words(text, early, limit, "length")
        plain = text.lower().replace("'", "")
        if RISKY_WORDS.search(plain) or _SELF_TALK.search(plain):
            return []
        release_upto = len(words) - self._policy.lag_words
        if release_upto <= 0:
            return []
        end = words[release_upto - 1].end()
        if end <= self._early:
            return []
        piece = text[self._early : end]
        self._early = end
        return [piece]

    def _sentence(self, sentence: str, *, last: bool = False, loop: bool = False) -> list[str]:
        """Check one whole sentence; returns what of it to release now."""
        early, self._early = self._early, 0
        rest = sentence[early:]
        words = _words(sentence)
        if not words:
            return []
        never = [v for v in self._persona.violations(sentence) if v not in self._asked]
        if never:
            self.report.dropped.append((sentence.strip(), "never_say"))
            log.info("guard.dropped", why="never_say", phrase=never[0])
            return []
        claim = self._claims.find(sentence)
        if claim is not None:
            self.report.dropped.append((sentence.strip(), f"claim:{claim.kind}:{claim.category}"))
            log.info("guard.dropped", why="claim", kind=claim.kind, category=claim.category)
            self._stop("claim")
            return []
        if any(words == kept for kept in self._kept):
            self._stop("repeat")
            return []
        if not loop:
            prior = self._released_words[
                : len(self._released_words) - len(_words(sentence[:early]))
            ]
            keep = first_loop(prior, words)
            if keep is not None:
                if self._kept:  # a later sentence that repeats itself: end before it
                    self._stop("loop")
                    return []
                return self._cut_words(sentence, early, keep, "loop")
        if not self._kept and words == self._prompt_words:  # "thanks a lot" -> "thanks a lot."
            self.report.dropped.append((sentence.strip(), "echo"))
            self._stop("echo")
            return []
        policy = self._policy
        if policy.max_sentences is not None and len(self._kept) >= policy.max_sentences:
            self._stop("length")
            return []
        total = sum(len(k) for k in self._kept)
        if policy.max_words is not None and total + len(words) > policy.max_words:
            if self._kept:
                self._stop("length")
                return []
            return self._cut_words(sentence, early, policy.max_words, "length")
        self._kept.append(words)
        if loop:
            return [_close(rest)]
        return [rest]

    def _cut_words(self, sentence: str, early: int, keep: int, why: str) -> list[str]:
        """Keep the first `keep` words (ending at a comma if there is one), then stop."""
        spans = list(_WORD.finditer(sentence))
        self._stop(why)
        if keep <= 0 or not spans:
            return []
        end = spans[min(keep, len(spans)) - 1].end()
        head = sentence[:end]
        commas = [m.start() for m in _COMMA.finditer(head) if m.start() >= early]
        if why == "length" and commas and commas[-1] > len(head) // 2:
            head = head[: commas[-1]]
        self._kept.append(_words(head))
        if len(head) <= early:  # cut inside what was already said: just end it there
            return ["."] if early and self._said.rstrip()[-1:] not in (".", "!", "?") else []
        return [_close(head[early:])]

    def _closing_line(self) -> list[str]:
        lead = " " if self._said.strip() else ""
        if any(why.startswith("claim") for _, why in self.report.dropped):
            self.report.line = self._persona.line("not_done")
            return [lead + self.report.line]
        if not self._released_words:
            self.report.line = self._persona.line("no_answer")
            return [lead + self.report.line]
        return []


def _close(text: str) -> str:
    """End a cut sentence with a full stop (keeping anything already punctuated)."""
    stripped = text.rstrip().rstrip(",;:-")
    if not stripped:
        return ""
    return stripped if stripped[-1] in ".!?" else stripped + "."


def guarded(pieces: Iterable[str], guard: AnswerGuard) -> list[str]:
    """A whole answer through a guard (for tests and the evaluation)."""
    out: list[str] = []
    for piece in pieces:
        out += guard.feed(piece)
        if guard.stopped:
            break
    return out + guard.finish()
