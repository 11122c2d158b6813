"""Which utterances are device requests, and how they are read (no Home Assistant needed)."""

from __future__ import annotations

import pytest

from atlas.home.client import EntityState
from atlas.home.detect import (
    brightness_rewrites,
    clean,
    detect,
    is_no,
    is_yes,
    sensitive_verb,
    spoken_object,
)
from atlas.home.speech import describe, the


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Atlas, turn on the kitchen lights.", "control"),
        ("Dim the living room lights to 30%.", "control"),
        ("could you switch the telly off", "control"),
        ("close the garage door", "control"),
        ("Atlas is the front door lock.", "state"),  # a dropped "-ed"
        ("are the bedroom lights still on?", "state"),
        ("What's the temperature in the living room?", "state"),
        ("what's the weather like tomorrow", "weather"),
        ("will it rain tomorrow", "weather"),
        ("what time is it", None),
        ("set a timer for ten minutes", None),
        ("how does a heat pump work", None),
        ("is the shop open on sunday", None),
        ("tell me a joke about doors", None),
    ],
)
def test_detect(text: str, kind: str | None) -> None:
    request = detect(text)
    assert (request.kind if request else None) == kind


def test_reading_a_request() -> None:
    assert clean("Atlas, dim the lights to thirty percent.") == "dim the lights to 30 percent"
    assert brightness_rewrites("dim the living room lights to 30 percent") == [
        "set the living room brightness to 30%",
        "set the living room lights to 30%",
    ]
    assert spoken_object("turn on the moon lights please") == "moon lights"
    assert spoken_object("turn the hall lamp off") == "hall lamp"
    assert spoken_object("is the back door locked") == "back door"
    assert sensitive_verb("shut the garage door") == "close"
    assert sensitive_verb("close the kitchen window") is None
    assert sensitive_verb("unlock the front door") == "unlock"


@pytest.mark.parametrize("text", ["Yes.", "yes please", "Go ahead.", "do it", "yes sir"])
def test_yes(text: str) -> None:
    assert is_yes(text) and not is_no(text)


@pytest.mark.parametrize("text", ["No.", "no thanks", "cancel", "never mind", "leave it"])
def test_no(text: str) -> None:
    assert is_no(text) and not is_yes(text)


def test_sentences_come_from_states() -> None:
    light = EntityState("light.kitchen_lights", "on", {"friendly_name": "Kitchen Lights"})
    assert describe(light) == "The kitchen lights are on"
    dim = EntityState("light.x", "on", {"friendly_name": "Desk Lamp", "brightness": 77})
    assert describe(dim) == "The desk lamp is on, at 30 percent"
    gone = EntityState("lock.front_door", "unavailable", {"friendly_name": "Front Door"})
    assert describe(gone) == "The front door is not reporting just now"
    assert the("Living Room RGBWW Lights") == "the living room RGBWW lights"
