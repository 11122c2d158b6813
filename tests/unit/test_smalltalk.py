"""Small talk answered in persona without a model, and only whole utterances."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from atlas.skills import SmallTalkSkill

EVENING = datetime(2026, 12, 2, 19, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("hello", "greeting"),
        ("Good evening, Atlas.", "greeting"),
        ("good night", "goodnight"),
        ("how are you doing today", "how_are_you"),
        ("thanks a lot", "thanks"),
        ("ok thank you", "thanks"),
        ("what's your name", "identity"),
        ("are you a robot", "identity"),
        ("are you there", "presence"),
        ("see you later", "goodbye"),
        ("what can you do", "abilities"),
    ],
)
def test_small_talk_has_one_answer_in_persona(text: str, kind: str) -> None:
    answer = SmallTalkSkill().handle(text, EVENING)
    assert answer is not None and answer.data["kind"] == kind
    if kind == "greeting":
        assert answer.text.startswith("Good evening.")


@pytest.mark.parametrize(
    "text", ["thank you for explaining that", "hello world in python", "who are you voting for"]
)
def test_small_talk_leaves_real_questions_alone(text: str) -> None:
    assert SmallTalkSkill().handle(text, EVENING) is None
