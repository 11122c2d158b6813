"""The hallucination gate on synthetic segments, and the text normalisation helpers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voice.config import SttConfig
from voice.stt import HallucinationGate, audio_level_dbfs, has_ngram_loop, is_stock_phrase
from voice.textnorm import normalize_text, number_to_words, word_error_rate
from voice.types import SAMPLE_RATE, Samples, Segment


def seg(
    text: str,
    *,
    avg_logprob: float = -0.2,
    no_speech_prob: float = 0.05,
    compression_ratio: float = 1.0,
) -> Segment:
    """A segment that looks like confident speech unless told otherwise."""
    return Segment(
        text=text,
        start_s=0.0,
        end_s=2.0,
        avg_logprob=avg_logprob,
        no_speech_prob=no_speech_prob,
        compression_ratio=compression_ratio,
    )


def noise(dbfs: float, seconds: float = 2.0, seed: int = 1) -> Samples:
    x = np.random.default_rng(seed).normal(size=int(seconds * SAMPLE_RATE))
    x *= 10 ** (dbfs / 20) / np.sqrt(np.mean(x**2))
    return x.astype(np.float32)


LOUD = noise(-20.0)
QUIET = noise(-60.0)


@pytest.fixture
def gate() -> HallucinationGate:
    return HallucinationGate(SttConfig())


def only_reason(gate: HallucinationGate, segment: Segment, audio: Samples) -> str:
    kept, dropped = gate.filter([segment], audio)
    assert kept == [], f"expected {segment.text!r} to be dropped"
    assert len(dropped) == 1
    return dropped[0]


# --- rules -------------------------------------------------------------------------


def test_confident_loud_speech_is_kept(gate: HallucinationGate) -> None:
    kept, dropped = gate.filter([seg(" What time is it? ")], LOUD)
    assert [s.text for s in kept] == ["What time is it?"]
    assert dropped == []


def test_quiet_but_real_speech_is_kept(gate: HallucinationGate) -> None:
    # Only stock phrases depend on the level: a soft-spoken command still counts.
    kept, _ = gate.filter([seg("Turn on the lamp.")], QUIET)
    assert [s.text for s in kept] == ["Turn on the lamp."]


def test_loud_confident_thank_you_is_kept(gate: HallucinationGate) -> None:
    kept, dropped = gate.filter([seg("Thank you.", avg_logprob=-0.3)], LOUD)
    assert [s.text for s in kept] == ["Thank you."]
    assert dropped == []


def test_quiet_thank_you_is_dropped(gate: HallucinationGate) -> None:
    reason = only_reason(gate, seg("Thank you.", avg_logprob=-0.3), QUIET)
    assert reason.startswith("stock phrase in quiet audio")
    assert "Thank you." in reason


def test_loud_stock_phrase_with_high_no_speech_prob_is_dropped(gate: HallucinationGate) -> None:
    # Above the no-speech threshold but confident enough to pass Whisper's own rule.
    reason = only_reason(gate, seg("Thanks for watching!", no_speech_prob=0.8), LOUD)
    assert reason.startswith("stock phrase with no_speech_prob")


def test_loud_stock_phrase_with_poor_confidence_is_dropped(gate: HallucinationGate) -> None:
    reason = only_reason(gate, seg("you", avg_logprob=-1.3, no_speech_prob=0.3), LOUD)
    assert reason.startswith("stock phrase with avg_logprob")


@pytest.mark.parametrize(
    "text",
    ["Subtitles by the Amara.org community", "Please subscribe.", "Bye.", "So...", "Okay."],
)
def test_other_stock_phrases_are_dropped_when_quiet(gate: HallucinationGate, text: str) -> None:
    assert only_reason(gate, seg(text), QUIET).startswith("stock phrase")


def test_no_speech_rule_needs_both_conditions(gate: HallucinationGate) -> None:
    reason = only_reason(gate, seg("Turn it up", no_speech_prob=0.9, avg_logprob=-1.2), LOUD)
    assert reason.startswith("no speech")
    # High no_speech_prob alone (confident text) is Whisper's "keep" case.
    kept, _ = gate.filter([seg("Turn it up", no_speech_prob=0.9, avg_logprob=-0.4)], LOUD)
    assert len(kept) == 1
    # Low-ish logprob alone, with speech present, is kept too.
    kept, _ = gate.filter([seg("Turn it up", no_speech_prob=0.1, avg_logprob=-1.2)], LOUD)
    assert len(kept) == 1


def test_very_low_confidence_is_dropped(gate: HallucinationGate) -> None:
    reason = only_reason(gate, seg("It's a good idea.", avg_logprob=-1.85), LOUD)
    assert reason.startswith("low confidence")


def test_high_compression_ratio_is_dropped(gate: HallucinationGate) -> None:
    reason = only_reason(gate, seg("and then and then we went", compression_ratio=2.6), LOUD)
    assert reason.startswith("repetition (compression ratio")


@pytest.mark.parametrize(
    "text",
    [
        "you you you you you",
        "The end. The end. The end.",
        "I'm going to go I'm going to go I'm going to go",
    ],
)
def test_ngram_loops_are_dropped(gate: HallucinationGate, text: str) -> None:
    assert only_reason(gate, seg(text), LOUD) == f"repetition (n-gram loop): {text!r}"


@pytest.mark.parametrize(
    "text",
    ["[BLANK_AUDIO]", "(silence)", "*music*", "[Music]", " .", "...", "♪ ♪", "(applause) [Music]"],
)
def test_non_speech_markers_are_always_dropped(gate: HallucinationGate, text: str) -> None:
    assert only_reason(gate, seg(text, avg_logprob=-0.1), LOUD).startswith("non-speech marker")


def test_markers_are_stripped_from_kept_text(gate: HallucinationGate) -> None:
    kept, _ = gate.filter([seg("[Music]  Turn on the   lights ")], LOUD)
    assert [s.text for s in kept] == ["Turn on the lights"]


def test_mixed_segments_keep_order_and_report_each_drop(gate: HallucinationGate) -> None:
    segments = [
        seg("Set a timer"),
        seg("[BLANK_AUDIO]"),
        seg("for five minutes."),
        seg("you you you you"),
    ]
    kept, dropped = gate.filter(segments, LOUD)
    assert [s.text for s in kept] == ["Set a timer", "for five minutes."]
    assert len(dropped) == 2


# --- helpers -----------------------------------------------------------------------


def loops(text: str) -> bool:
    return has_ngram_loop(text.split())


def test_ngram_loop_detector() -> None:
    assert loops("you you you you")
    assert loops("a b a b a b")
    assert loops("well one two three four one two three four one two three four")
    assert not loops("no no no")  # people say this
    assert not loops("bye bye")
    assert not loops("ask not what your country can do for you ask what you")
    assert not loops("")


def test_stock_phrase_matching_is_normalised() -> None:
    assert is_stock_phrase("  Thank you!  ")
    assert is_stock_phrase("THANKS FOR WATCHING!!")
    assert is_stock_phrase("Subtitles by the Amara.org community")
    assert not is_stock_phrase("Thank you, what time is it?")
    assert not is_stock_phrase("Turn on the lamp")


def test_audio_level_ignores_silent_padding() -> None:
    assert audio_level_dbfs(noise(-30.0)) == pytest.approx(-30.0, abs=0.5)
    padded = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), noise(-30.0, 0.8)])
    # Over the whole clip this would read about -34 dBFS.
    assert audio_level_dbfs(padded) == pytest.approx(-30.0, abs=1.0)
    assert audio_level_dbfs(np.zeros(16000, np.float32)) < -150
    assert audio_level_dbfs(np.zeros(0, np.float32)) < -150
    assert audio_level_dbfs(noise(-40.0, 0.01)) == pytest.approx(-40.0, abs=1.0)


# --- normalize_text / word_error_rate ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" What time is it? ", "what time is it"),
        ("Go forward 10 meters.", "go forward 10 meters"),
        ("He was not an ill-disposed young man", "he was not an ill disposed young man"),
        ("It's 3.5 degrees, 1,000 people!", "its 3.5 degrees 1000 people"),
        ("Hello,   world...  ♪", "hello world"),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Go forward 10 meters.", "go forward ten meters"),
        (
            "0, 7, 13, 21, 40, 99, 100",
            "zero seven thirteen twenty one forty ninety nine one hundred",
        ),
        ("1000001 and 007 stay", "1000001 and 007 stay"),
        ("3.5", "3.5"),
    ],
)
def test_normalize_text_numbers_to_words(text: str, expected: str) -> None:
    assert normalize_text(text, numbers_to_words=True) == expected


def test_number_to_words_range() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(58) == "fifty eight"
    assert number_to_words(100) == "one hundred"
    assert number_to_words(500) == "five hundred"
    assert number_to_words(1999) == "one thousand nine hundred ninety nine"
    assert number_to_words(21_000) == "twenty one thousand"
    assert normalize_text("15% of 80", numbers_to_words=True) == "fifteen percent of eighty"
    with pytest.raises(ValueError):
        number_to_words(1_000_000)


def test_word_error_rate() -> None:
    assert word_error_rate("what time is it", "What time is it?") == 0.0
    assert word_error_rate("go forward ten meters", "Go forward 10 meters.") == 0.25
    assert word_error_rate("go forward ten meters", "Go forward 10 meters.", True) == 0.0
    assert word_error_rate("a b c d", "a x c d") == 0.25  # substitution
    assert word_error_rate("a b c d", "a c d") == 0.25  # deletion
    assert word_error_rate("a b c d", "a b b c d") == 0.25  # insertion
    assert word_error_rate("a b", "c d e f") == 2.0  # can exceed 1
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "hello") == 1.0
    assert word_error_rate("hello", "") == 1.0


@given(st.text(max_size=40), st.text(max_size=40))
def test_word_error_rate_properties(ref: str, hyp: str) -> None:
    assert word_error_rate(ref, ref) == 0.0
    wer = word_error_rate(ref, hyp)
    assert wer >= 0.0
    n_ref = len(normalize_text(ref).split())
    if n_ref:
        n_hyp = len(normalize_text(hyp).split())
        assert wer <= max(n_ref, n_hyp) / n_ref


@given(st.text(max_size=60))
def test_normalize_text_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert once == once.strip()
    assert "  " not in once
