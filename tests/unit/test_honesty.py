"""Nothing false is said: claims found per sentence, the capability gate's honest lines,
and the answer guard on streamed text (never-say, false claims, loops, length)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from atlas.honesty import AnswerGuard, CapabilityGate, ClaimDetector, GuardPolicy
from atlas.honesty.gate import is_legal
from atlas.honesty.guard import guarded, loop_start
from atlas.persona import Persona
from atlas.settings import load_settings

NOW = datetime(2026, 12, 2, 15, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def persona() -> Persona:
    return Persona(load_settings().persona, random.Random(1))


def guard(persona: Persona, **policy: object) -> AnswerGuard:
    p = GuardPolicy(**policy)  # type: ignore[arg-type]
    return AnswerGuard(persona, p, ClaimDetector(p.exempt))


def word_deltas(text: str) -> list[str]:
    """Model-like deltas: each word with its leading space."""
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


# ----------------------------------------------------------------------- claims


@pytest.mark.parametrize(
    "sentence",
    [
        "I'll turn on the living room lights, I'll turn them on.",
        "I've turned off the kitchen lights.",
        "The front door is locked.",
        "Your lights are now on.",
        "I have added milk to your shopping list.",
        "Done.",
        "Now playing some jazz.",
        "I've sent the message to Tom.",
        "The heating has been turned up.",
        "Let me lock the front door for you.",
        "It will be sunny tomorrow with highs of 20 degrees.",
        "I've set a timer for ten minutes.",
        "I've ordered more coffee pods.",
        "Your reminder is set for three o'clock.",
    ],
)
def test_claims_are_found(sentence: str) -> None:
    assert ClaimDetector().find(sentence) is not None, sentence


@pytest.mark.parametrize(
    "sentence",
    [
        "I'm afraid I can't turn on the lights from here.",
        "A heat pump moves heat from the outside air into the house.",
        "Jane Austen wrote it in 1813.",
        "Shall I set a timer?",
        "I'll keep this brief.",
        "Let me see.",
        "Blot the stain, then work in cold water.",
        "I would call a doctor today.",
        "Good evening.",
        "Paris is the capital of France.",
        "Rain forms when water vapour condenses into droplets.",
    ],
)
def test_ordinary_sentences_are_not_claims(sentence: str) -> None:
    assert ClaimDetector().find(sentence) is None, sentence


def test_a_tool_that_really_acted_exempts_its_category() -> None:
    assert ClaimDetector(exempt={"timers"}).find("I've set a timer for ten minutes.") is None
    assert ClaimDetector(exempt={"timers"}).find("I've turned on the lights.") is not None


# ------------------------------------------------------------------------- gate


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("turn on the kitchen lights", "devices"),
        ("Atlas turn on the living room lights.", "devices"),
        ("dim the living room lights to 30 percent", "devices"),
        ("could you set the thermostat to 21 degrees", "devices"),
        ("it's too dark in here", "devices"),
        ("is the front door locked", "house_state"),
        ("did I leave the oven on", "house_state"),
        ("play some jazz", "media"),
        ("text my wife that I'm running late", "messages"),
        ("order more coffee pods", "purchases"),
        ("remind me to call the dentist at 3", "reminders"),
        ("add milk to the shopping list", "lists"),
        ("what's on my shopping list", "lists"),
        ("what's the weather tomorrow", "weather"),
        ("will it rain today", "weather"),
        ("what's the news", "news"),
        ("what's on my calendar today", "calendar"),
        ("where are my keys", "whereabouts"),
        ("what model are you running on", "workings"),
        ("are you using the cloud for this", "workings"),
        ("how much budget do you have left", "workings"),
    ],
)
def test_gate_answers_requests_it_has_no_means_for(text: str, category: str) -> None:
    answer = CapabilityGate().handle(text, NOW)
    assert answer is not None, text
    assert answer.skill == f"capability:{category}"
    assert answer.data["honest"] is True


@pytest.mark.parametrize(
    "text",
    [
        "how does a thermostat work",
        "why is the sky blue",
        "what causes the weather to change",
        "who won the world cup in 1966",
        "tell me a joke",
        "what time is it",
        "call an ambulance",
        "how do I turn off the water in an emergency",
        "run me through everything",
        "what model of car should I buy",
        "will the clouds clear by tonight",
    ],
)
def test_gate_leaves_questions_and_emergencies_alone(text: str) -> None:
    assert CapabilityGate().handle(text, NOW) is None, text


def test_gate_lines_keep_the_persona(persona: Persona) -> None:
    for line in CapabilityGate.lines():
        assert not persona.violations(line), line
        assert ClaimDetector().find(line) is None, line
        assert len(line.split()) <= 40


def test_legal_worries_are_told_apart() -> None:
    assert is_legal("the police want to interview me tomorrow")
    assert not is_legal("my chest hurts")


# ------------------------------------------------------------------------ guard


def test_a_clean_answer_passes_unchanged_and_starts_before_its_sentence_ends(
    persona: Persona,
) -> None:
    g = guard(persona, max_sentences=2, max_words=40)
    text = "Paris is the capital of France, and has been for centuries. It is lovely."
    released: list[str] = []
    first_at = None
    for i, delta in enumerate(word_deltas(text)):
        out = g.feed(delta)
        if out and first_at is None:
            first_at = i
        released += out
    released += g.finish()
    assert "".join(released) == text
    assert g.report.clean
    assert first_at is not None and first_at < 8  # before "centuries." arrived


def test_a_false_claim_is_replaced_by_an_honest_line(persona: Persona) -> None:
    g = guard(persona, max_sentences=2, max_words=40)
    out = "".join(
        guarded(word_deltas("I'll turn on the living room lights, I'll turn them on."), g)
    )
    assert "turn on" not in out
    assert out.strip() in load_settings().persona.not_done
    assert g.report.cut == "claim"


def test_never_say_sentences_are_dropped_and_the_rest_still_makes_sense(persona: Persona) -> None:
    g = guard(persona)
    text = "As an AI language model, I find this fascinating. Blue light scatters most."
    out = "".join(guarded(word_deltas(text), g))
    assert out.strip() == "Blue light scatters most."
    assert g.report.dropped[0][1] == "never_say"


def test_an_answer_with_nothing_left_gets_a_persona_line(persona: Persona) -> None:
    g = guard(persona)
    out = "".join(guarded(word_deltas("I'm just an AI, I am an AI."), g))
    assert out.strip() in load_settings().persona.no_answer


@pytest.mark.parametrize(
    "text",
    [
        "no, no, no. no. no no. no no no no no no no no",
        "It is 1000000000000000000000000000000000000000000000000000000000000",
        "It is a book of the Bible, a book of the Bible, a book of the Bible, a book of",
    ],
)
def test_loops_are_cut_before_they_are_spoken(persona: Persona, text: str) -> None:
    g = guard(persona, max_sentences=2, max_words=40)
    out = "".join(guarded(word_deltas(text), g))
    words = [w.strip(",.").lower() for w in out.split()]
    assert loop_start(words) is None
    assert out.lower().count("book of the bible") <= 1
    assert g.report.cut == "loop" or g.report.line is not None


def test_a_sentence_said_twice_ends_the_answer(persona: Persona) -> None:
    g = guard(persona)
    out = "".join(guarded(word_deltas("It is late. It is late. It is late."), g))
    assert out.strip() == "It is late."


def test_the_local_length_is_enforced(persona: Persona) -> None:
    g = guard(persona, max_sentences=2, max_words=40)
    text = "One thing. Two things. Three things. Four things."
    assert "".join(guarded(word_deltas(text), g)).strip() == "One thing. Two things."
    g = guard(persona, max_sentences=2, max_words=12)
    long = "I think a heat pump moves heat from outside, which it does with a refrigerant"
    out = "".join(guarded(word_deltas(long), g)).strip()
    assert out == "I think a heat pump moves heat from outside."
    g = guard(persona, max_sentences=2, max_words=6)
    out = "".join(guarded(word_deltas("A heat pump moves heat from outside into"), g))
    assert out.strip().endswith(".") and len(out.split()) <= 6


def test_a_skill_like_timer_claim_from_a_model_is_not_spoken(persona: Persona) -> None:
    g = guard(persona, max_sentences=2, max_words=40)
    out = "".join(guarded(["Ten minutes, ", "starting now. ", "I've set your timer."], g))
    assert out.strip() in load_settings().persona.not_done


def test_a_phrase_said_again_later_ends_the_answer(persona: Persona) -> None:
    g = guard(persona, max_sentences=2, max_words=40)
    text = (
        "I'm a robot, a benevolent and benevolent being. I'm a benevolent and benevolent "
        "being, and so on."
    )
    out = "".join(guarded(word_deltas(text), g)).strip()
    assert out.count("benevolent and benevolent being") == 1


def test_an_echo_of_the_question_is_not_an_answer(persona: Persona) -> None:
    p = GuardPolicy(max_sentences=2, max_words=40)
    g = AnswerGuard(persona, p, ClaimDetector(), prompt="thanks a lot")
    out = "".join(guarded(["thanks", " a", " lot."], g)).strip()
    assert out in load_settings().persona.no_answer


def test_words_the_user_said_may_be_said_back(persona: Persona) -> None:
    p = GuardPolicy()
    g = AnswerGuard(persona, p, ClaimDetector(), prompt="what is a model train")
    assert "".join(guarded(["A model train is a toy."], g)) == "A model train is a toy."
    g = AnswerGuard(persona, p, ClaimDetector(), prompt="what is a toy")
    out = "".join(guarded(["A model train is a toy."], g))
    assert out.strip() in load_settings().persona.no_answer
