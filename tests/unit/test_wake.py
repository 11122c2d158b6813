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


def test_echo_of_what_atlas_said_is_dropped_even_in_the_follow_up_window() -> None:
    clock = Clock(100.0)
    g = gate(clock, echo_window_s=20.0)
    said = "Heat pumps move heat rather than make it."
    g.remember_said(said)
    g.open_followup(101.0)
    clock.t = 102.0
    for heard in (said, "heat pumps move heat rather than make it", "move heat rather than make"):
        got = g.check(heard)
        assert not got.addressed and "echo" in got.reason
    # Something else in the window is a follow-up, not an echo.
    assert g.check("and how much do they cost?").reason == "follow_up"


def test_echo_guard_forgets_after_its_window() -> None:
    clock = Clock(100.0)
    g = gate(clock, echo_window_s=20.0, enabled=False)
    g.remember_said("It is twelve oh nine at night.")
    clock.t = 110.0
    assert not g.check("it is twelve oh nine at night").addressed
    clock.t = 121.0
    assert g.check("it is twelve oh nine at night").addressed


def test_echo_guard_keeps_a_bounded_memory() -> None:
    clock = Clock(100.0)
    g = gate(clock, enabled=False)
    g.remember_said("the very first sentence ATLAS said")
    for i in range(50):
        g.remember_said(f"filler number {i} of many")
    # Only the last few lines are remembered; the first one is no echo any more.
    assert g.check("the very first sentence ATLAS said").addressed
    assert not g.check("filler number 49 of many").addressed
