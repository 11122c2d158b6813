"""WakeGate: the fuzzy wake phrase, the follow-up window (on a fake clock), the echo guard."""

from __future__ import annotations

import pytest

from atlas.wake import WakeConfig, WakeGate


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def gate(clock: Clock | None = None, **config: object) -> WakeGate:
    return WakeGate(WakeConfig(**config), clock or Clock())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("transcript", "request_text"),
    [
        ("Atlas, what time is it?", "what time is it?"),
        ("Hey Atlas, turn on the lights.", "turn on the lights."),
        ("Okay Atlas what is up", "what is up"),
        ("At last, what time is it?", "what time is it?"),  # Whisper's split form
        ("Atlus, set a timer.", "set a timer."),
        ("Atlas what time is it", "what time is it"),
        ("What time is it, Atlas?", "What time is it"),  # trailing ", Atlas?"
        ("Good morning, Atlas.", "Good morning"),
    ],
)
def test_wake_phrase_variants_are_addressed(transcript: str, request_text: str) -> None:
    got = gate().check(transcript)
    assert got.addressed and got.reason == "wake_phrase"
    assert got.text == request_text


@pytest.mark.parametrize("transcript", ["Atlas.", "Hey, Atlas!", "atlas", "Atlas?"])
def test_only_the_wake_phrase_leaves_an_empty_request(transcript: str) -> None:
    got = gate().check(transcript)
    assert got.addressed and got.text == ""


@pytest.mark.parametrize(
    "transcript",
    [
        "at least we tried",
        "Alice, what time is it?",
        "What time is it?",
        "The atlas of the world is big",  # the word, but not opening or closing the request
        "",
    ],
)
def test_no_wake_phrase_is_ignored(transcript: str) -> None:
    got = gate().check(transcript)
    assert not got.addressed
    assert got.reason == "no wake phrase"


def test_a_configured_phrase_replaces_atlas() -> None:
    g = gate(phrase="jarvis")
    assert g.check("Jarvis, lights on.").addressed
    assert not g.check("Atlas, lights on.").addressed


def test_disabled_wake_addresses_everything() -> None:
    got = gate(enabled=False).check("what about tomorrow?")
    assert got.addressed and got.reason == "wake_disabled"
    assert got.text == "what about tomorrow?"


def test_follow_up_window_opens_when_atlas_stops_speaking_and_closes_after() -> None:
    clock = Clock(100.0)
    g = gate(clock, followup_window_s=8.0)
    assert not g.check("and what about tomorrow?").addressed
    g.open_followup(spoke_until=105.0)  # the answer plays until t=105
    clock.t = 104.0
    assert g.check("and what about tomorrow?").reason == "follow_up"
    clock.t = 112.9
    got = g.check("and what about tomorrow?")
    assert got.addressed and got.reason == "follow_up" and got.text == "and what about tomorrow?"
    clock.t = 113.1  # 8 s after ATLAS stopped speaking
    assert not g.check("and what about tomorrow?").addressed
    # The wake phrase still works after the window.
    assert g.check("Atlas, and tomorrow?").addressed


def test_close_followup_ends_the_window_at_once() -> None:
    clock = Clock(100.0)
    g = gate(clock)
    g.open_followup(100.0)
    g.close_followup()
    assert not g.check("and tomorrow?").addressed


def test_wake_phrase_wins_over_follow_up_reason() -> None:
    clock = Clock(100.0)
    g = gate(clock)
    g.open_followup(100.0)
    got = g.check("Atlas, and tomorrow?")
    assert got.reason == "wake_phrase" and got.text == "and tomorrow?"


def test_echo_of_what_atlas_was_playing_is_dropped_even_in_the_follow_up_window() -> None:
    clock = Clock(100.0)
    g = gate(clock, echo_window_s=20.0)
    g.remember_played("Heat pumps move heat rather than make it.", 100.0, 102.5)
    g.remember_played("That is why they are cheap to run.", 102.6, 104.5)
    g.open_followup(104.5)
    clock.t = 106.0
    for heard, started in (
        ("heat pumps move heat rather than make it", 100.1),
        ("move heat rather than make it that is why", 101.0),
        ("that is why they are cheap to run", 104.65),  # in the echo tail
    ):
        got = g.check(heard, started_at=started)
        assert not got.addressed and "echo" in got.reason, heard
    # Something else in the window is a follow-up, not an echo.
    assert g.check("and how much do they cost?", started_at=102.0).reason == "follow_up"


@pytest.mark.parametrize("word", ["no", "yes", "stop", "thanks", "again"])
def test_a_short_reply_after_atlas_stopped_is_heard_even_if_atlas_said_it(word: str) -> None:
    clock = Clock(100.0)
    g = gate(clock)
    g.remember_played(f"It is now twenty past nine, {word} doubt about it.", 100.0, 102.0)
    g.open_followup(102.0)
    clock.t = 104.0
    got = g.check(word, started_at=103.0)  # 1 s after ATLAS went quiet
    assert got.addressed and got.reason == "follow_up"


def test_speech_over_atlas_that_is_not_its_words_is_no_echo() -> None:
    clock = Clock(100.0)
    g = gate(clock, enabled=False)
    g.remember_played("It is now twenty past nine.", 100.0, 102.0)
    assert g.check("what about tomorrow", started_at=101.0).addressed
    assert not g.check("twenty past nine", started_at=101.0).addressed


def test_echo_guard_forgets_after_its_window_and_needs_timing() -> None:
    clock = Clock(100.0)
    g = gate(clock, echo_window_s=20.0, enabled=False)
    g.remember_played("It is twelve oh nine at night.", 100.0, 101.0)
    assert not g.check("it is twelve oh nine at night", started_at=100.2).addressed
    assert g.check("it is twelve oh nine at night").addressed  # no timing: not an echo
    clock.t = 122.0
    assert g.check("it is twelve oh nine at night", started_at=100.2).addressed


def test_echo_guard_keeps_a_bounded_memory() -> None:
    clock = Clock(100.0)
    g = gate(clock, enabled=False)
    g.remember_played("the very first sentence ATLAS said", 100.0, 100.5)
    for i in range(50):
        g.remember_played(f"filler number {i} of many", 101.0 + i, 101.5 + i)
    assert g.check("the very first sentence ATLAS said", started_at=100.1).addressed
    assert not g.check("filler number 49 of many", started_at=150.1).addressed
