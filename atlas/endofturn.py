"""When has the person finished? Silence alone cannot tell "one ..." from "what time is it".

The conversation transcribes speculatively as soon as a pause begins; this module reads
that transcript and says how much silence this turn needs before it ends:

* complete (a question, a command, a greeting, a one-word answer like "no"): end as
  soon as it is transcribed, once `complete_silence_ms` of silence has passed;
* incomplete (a lone number or word, a trailing "and"/"um"/"the"/"to", a wake phrase
  alone, a trailing comma or ellipsis): wait `incomplete_silence_ms`;
* anything else: `unsure_silence_ms`.

Pure text rules: no model, microseconds per call. The word lists were written from the
development set tests/data/endofturn_dev.tsv and are evaluated on the frozen
tests/data/endofturn_eval.tsv (made from other sources: the router's held-out set and
its prefixes); tests/unit/test_endofturn.py checks both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from voice.config import bounded


@dataclass(frozen=True)
class TurnTakingConfig:
    complete_silence_ms: int = bounded(250, 64, 3000)
    """Silence that ends a turn whose transcript is a complete request."""
    unsure_silence_ms: int = bounded(600, 64, 5000)
    """Silence that ends a turn the rules cannot call complete or incomplete."""
    incomplete_silence_ms: int = bounded(1500, 64, 5000)
    """Silence that ends a turn whose words stop mid-sentence ("one ...", "set a timer for")."""
    transcript_wait_ms: int = bounded(1200, 64, 5000)
    """Longest silence spent waiting for the speculative transcript before ending anyway."""
    continuation_window_ms: int = bounded(1500, 0, 5000)
    """Speech that starts this soon after a turn ended continues that turn: the answer
    is stopped and the whole utterance is transcribed and answered (0: off)."""
    continuation_grace_ms: int = bounded(300, 0, 2000)
    """... unless ATLAS's answer was already audible this long before the speech began
    (then it is an interruption, handled by barge-in, not a continuation)."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


class Completeness(Enum):
    COMPLETE = "complete"
    UNSURE = "unsure"
    INCOMPLETE = "incomplete"
    EMPTY = "empty"


_TRAILING_OPEN = _words(
    """
    and or but so because cause then than if unless until while when where whether the a
    an my your our their its every to of for from with without into onto at by as after
    before between through via per um uh er erm ah hmm mm uhm eh also plus minus divided
    what's whats what which whose i'm i'd i'll we're you're it's there's let's gonna
    wanna is are set switch
    """
)
"""A request that ends on one of these has more to come ("set a timer for ...")."""

_ONE_WORD_COMPLETE = _words(
    """
    yes yeah yep no nope stop cancel pause resume continue again thanks thank cheers
    okay ok sure fine great hello hi hey goodbye bye goodnight help louder quieter
    softer mute unmute skip next previous repeat done enough nevermind never correct
    right wrong exactly perfect lovely brilliant indeed please morning evening afternoon
    night
    """
)
"""Words that are a whole turn on their own ("no", "stop", "thanks")."""

_OPENERS = _words(
    """
    what what's whats when where who whom whose why how which is are was were do does
    did can could would will should shall may might have has had am isn't aren't don't
    doesn't didn't won't can't set turn switch dim brighten lock unlock open close start
    stop cancel pause resume play skip tell give show remind add remove delete put call
    text send read find look check make convert calculate explain describe define plan
    suggest recommend help let please good hello hi hey thanks thank i i'm my it's we
    there's how's what'll
    """
)
"""First words of a question or a command."""

_ASKING = _words("can could would will may")
_CUT_PREPOSITIONS = _words("for to of from with at by into onto")
_DEMONSTRATIVES = _words("that this these those")
_PARTICLES = _words("on off up down")
_POLITE_TAIL = _words("you please me i")

_NUMBER_WORDS = _words(
    """
    zero oh one two three four five six seven eight nine ten eleven twelve thirteen
    fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty
    seventy eighty ninety hundred thousand million point
    """
)

_WORD = re.compile(r"[a-z0-9']+")


def _is_number(word: str) -> bool:
    return word in _NUMBER_WORDS or word.replace("'", "").isdigit()


def completeness(text: str) -> Completeness:
    """How finished a (wake-phrase-stripped) transcript sounds."""
    raw = text.strip()
    words = _WORD.findall(raw.lower())
    if not words:
        return Completeness.EMPTY
    tail = raw.rstrip()
    if tail.endswith(("...", "…", ",", "-", "—", ":")):
        return Completeness.INCOMPLETE
    if all(_is_number(w) for w in words):
        return Completeness.INCOMPLETE  # "one", "one two": counting, not a request
    if len(words) == 1:
        return Completeness.COMPLETE if words[0] in _ONE_WORD_COMPLETE else Completeness.INCOMPLETE
    if len(words) <= 3 and all(w in _ONE_WORD_COMPLETE for w in words):
        return Completeness.COMPLETE  # "yes, please", "no thanks", "okay, stop"
    if words[-1] in _TRAILING_OPEN:
        return Completeness.INCOMPLETE
    if len(words) >= 3 and words[-1] == "it" and words[-2] in _CUT_PREPOSITIONS:
        # Whisper tiny completes a cut-off "set a timer for" as "set a timer for it."
        return Completeness.INCOMPLETE
    if len(words) >= 3 and words[-1] in _DEMONSTRATIVES and words[-2] in _PARTICLES:
        # ... and hears a cut-off "turn on the" as "turn on that." ("turn that on" is
        # how the finished request goes).
        return Completeness.INCOMPLETE
    if len(words) <= 3 and words[0] in _ASKING and words[-1] in _POLITE_TAIL:
        return Completeness.INCOMPLETE  # "can you", "could you please": the ask is to come
    shaped = words[0] in _OPENERS or tail.endswith("?")
    if shaped and len(words) >= 2:
        return Completeness.COMPLETE
    if len(words) >= 3 and tail.endswith((".", "!", "?")):
        return Completeness.COMPLETE
    return Completeness.UNSURE


class EndOfTurnPolicy:
    """Silence (ms) a pause needs before the turn ends, given what was said so far."""

    def __init__(self, config: TurnTakingConfig) -> None:
        self.config = config

    def silence_ms(self, verdict: Completeness) -> int:
        c = self.config
        if verdict is Completeness.COMPLETE:
            return c.complete_silence_ms
        if verdict is Completeness.INCOMPLETE:
            return c.incomplete_silence_ms
        return c.unsure_silence_ms
