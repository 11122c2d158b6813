from __future__ import annotations

import itertools
import random
import re
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from atlas.llm.config import PersonaConfig
from atlas.persona import LINE_KINDS, Persona, spoken_datetime
from atlas.settings import load_settings

# What the issue forbids ATLAS to say in its own voice, independent of the config, so
# a config that quietly drops a word from forbidden_words still fails here.
BANNED_WORDS = ("model", "cloud", "tier", "API", "budget")
BANNED_PHRASES = (
    "switching to a more powerful model",
    "I need to use the cloud",
    "my local capabilities",
    "as an AI",
)


@pytest.fixture(scope="module")
def shipped() -> PersonaConfig:
    return load_settings(env={}).persona


def own_lines(cfg: PersonaConfig) -> list[str]:
    lines = list(cfg.fillers)
    for kind in LINE_KINDS:
        lines += getattr(cfg, kind)
    return lines


def test_shipped_config_validates(shipped: PersonaConfig) -> None:
    Persona(shipped).validate()


def test_nothing_atlas_says_itself_breaks_character(shipped: PersonaConfig) -> None:
    lines = own_lines(shipped)
    assert len(lines) >= 10
    for line in lines:
        for word in BANNED_WORDS:
            assert not re.search(rf"\b{word}s?\b", line, re.I), (word, line)
        for phrase in BANNED_PHRASES + tuple(shipped.never_say):
            assert phrase.lower() not in line.lower(), (phrase, line)


def test_shipped_forbidden_words_cover_the_issue(shipped: PersonaConfig) -> None:
    assert {w.lower() for w in shipped.forbidden_words} >= {w.lower() for w in BANNED_WORDS}
    said = {p.lower() for p in shipped.never_say}
    assert {p.lower() for p in BANNED_PHRASES} <= said


def test_no_filler_twice_in_a_row(shipped: PersonaConfig) -> None:
    persona = Persona(shipped, random.Random(7))
    draws = [persona.filler() for _ in range(200)]
    assert all(a != b for a, b in itertools.pairwise(draws))
    assert set(draws) == set(shipped.fillers)  # and every filler gets its turn


@pytest.mark.parametrize("kind", LINE_KINDS)
def test_every_line_kind(shipped: PersonaConfig, kind: str) -> None:
    persona = Persona(shipped, random.Random(3))
    lines = [persona.line(kind) for _ in range(50)]
    assert set(lines) <= set(getattr(shipped, kind))
    if len(getattr(shipped, kind)) > 1:
        assert all(a != b for a, b in itertools.pairwise(lines))


def test_a_single_line_may_repeat() -> None:
    persona = Persona(PersonaConfig(fillers=("One moment.",)))
    assert [persona.filler() for _ in range(3)] == ["One moment."] * 3


def test_unknown_line_kind_is_refused(shipped: PersonaConfig) -> None:
    with pytest.raises(ValueError, match="unknown persona line kind"):
        Persona(shipped).line("gossip")


def test_system_prompt_fills_name_time_and_tier_hint(shipped: PersonaConfig) -> None:
    persona = Persona(shipped)
    now = datetime(2024, 3, 5, 15, 20, tzinfo=ZoneInfo("Europe/London"))
    prompts = {tier: persona.system_prompt(tier, now) for tier in ("local", "haiku", "agent")}
    for tier, hint in zip(("local", "haiku", "agent"), shipped.tier_hints, strict=True):
        text = prompts[tier]
        assert hint in text
        assert "Atlas" in text
        if tier == "local":  # the date only: keeps llama.cpp's prompt cache valid all day
            assert "Tuesday 5 March 2024" in text and "3:20" not in text
        else:
            assert "Tuesday 5 March 2024, 3:20 PM (GMT)" in text
        assert "{" not in text
    assert len(set(prompts.values())) == 3
    with pytest.raises(ValueError, match="unknown tier"):
        persona.system_prompt("sonnet", now)


def test_spoken_datetime_midnight_and_noon() -> None:
    utc = UTC
    assert spoken_datetime(datetime(2024, 1, 1, 0, 5, tzinfo=utc)) == (
        "Monday 1 January 2024, 12:05 AM (UTC)"
    )
    assert spoken_datetime(datetime(2024, 1, 1, 12, 0, tzinfo=utc)).endswith("12:00 PM (UTC)")


def test_prompt_keeps_other_braces() -> None:
    cfg = PersonaConfig(
        system_prompt="{name} says {json: 1} {tier_hint}", tier_hints=("a", "b", "c")
    )
    now = datetime(2024, 3, 5, 15, 20, tzinfo=UTC)
    assert Persona(cfg).system_prompt("agent", now) == "Atlas says {json: 1} c"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("As an AI, I have no opinions.", ["as an AI", "an AI", "AI"]),
        ("I’m just an AI.", ["I'm just an AI", "an AI", "AI"]),  # typographic apostrophe
        ("We use a model train set.", ["model"]),
        ("Two MODELS and the clouds.", ["model", "cloud"]),
        ("Check the API docs", ["the API", "API"]),
        ("The apiary is busy; modelling clay is fun.", []),  # no whole-word match
        ("The weather is fine.", []),
    ],
)
def test_violations(shipped: PersonaConfig, text: str, expected: list[str]) -> None:
    assert Persona(shipped).violations(text) == expected


def test_scrub_drops_only_never_say_sentences(shipped: PersonaConfig) -> None:
    persona = Persona(shipped)
    answer = "As an AI, I can't taste food. Basil goes well with tomato! Try it fresh."
    assert persona.scrub(answer) == "Basil goes well with tomato! Try it fresh."


def test_scrub_keeps_forbidden_words_in_answers(shipped: PersonaConfig) -> None:
    # A user may ask about a model train or the cloud forecast.
    answer = "A model train runs on 12 volts. Clouds are coming in from the west."
    assert Persona(shipped).scrub(answer) == answer


def test_scrub_may_leave_nothing(shipped: PersonaConfig) -> None:
    assert Persona(shipped).scrub("I'm just an AI. My training data ends in 2023.") == ""


def _bad(cfg: PersonaConfig, **changes: object) -> str:
    with pytest.raises(ValueError) as e:
        Persona(replace(cfg, **changes)).validate()  # type: ignore[arg-type]
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_validate_rejects_a_forbidden_word_in_a_filler(shipped: PersonaConfig) -> None:
    fillers = (*shipped.fillers, "Consulting the cloud.")
    msg = _bad(shipped, fillers=fillers)
    assert f"persona.fillers[{len(fillers) - 1}]" in msg
    assert "Consulting the cloud." in msg


def test_validate_rejects_a_never_say_phrase_in_a_failure_line(shipped: PersonaConfig) -> None:
    msg = _bad(shipped, timeout=("Sorry, my local capabilities are limited.",))
    assert "persona.timeout[0]" in msg
    assert "my local capabilities" in msg


@pytest.mark.parametrize("kind", ["fillers", *LINE_KINDS])
def test_validate_rejects_an_empty_list(shipped: PersonaConfig, kind: str) -> None:
    assert f"persona.{kind} is empty" in _bad(shipped, **{kind: ()})


def test_validate_rejects_missing_tier_hints(shipped: PersonaConfig) -> None:
    assert "tier_hints" in _bad(shipped, tier_hints=("only one",))


def test_validate_rejects_an_empty_never_say_phrase(shipped: PersonaConfig) -> None:
    assert "never_say" in _bad(shipped, never_say=(*shipped.never_say, "  "))
