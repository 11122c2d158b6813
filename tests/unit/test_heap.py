"""The heap is trimmed after every turn the conversation answers, off the event loop;
where glibc is not the allocator the trim is harmlessly nothing."""

from __future__ import annotations

import asyncio
import platform
import threading
from typing import cast

import numpy as np
import pytest

from atlas.app import Ears
from atlas.assistant import Assistant
from atlas.conversation import Conversation
from atlas.heap import trim
from atlas.settings import AssistantConfig
from atlas.turn import Floor, TurnRecord
from voice.listener import Heard
from voice.types import Transcript, Utterance


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_trims_the_heap() -> None:
    assert trim() is True
    assert trim() is True  # again: idempotent, nothing held


class _Assistant:
    """Answers at once; notes what it was asked."""

    def __init__(self) -> None:
        self.live: list[bool] = []

    def share_floor(self, floor: Floor) -> None:
        pass

    async def handle(self, heard: Heard, *, live: bool = True) -> TurnRecord:
        self.live.append(live)
        return TurnRecord(
            turn=1,
            transcript=heard.transcript.text,
            addressed=True,
            ignored_reason=None,
            tier="skill",
            wanted="skill",
            stage="pattern",
            reason="test",
            filler=None,
            answer="It is noon.",
            heard="It is noon.",
            interrupted=None,
            cost_usd=0.0,
            fallback_reason=None,
            timestamps={},
            since_speech_end_ms={},
        )


def _heard(text: str) -> Heard:
    audio = np.zeros(16000, dtype=np.float32)
    return Heard(Utterance(audio, 0.0, 0.0, 1.0, 1.0, 0.0), Transcript(text, (), 1.0), 0.0)


async def test_each_answered_turn_is_reported_then_the_heap_trimmed_off_the_loop() -> None:
    events: list[str] = []
    trimmed = threading.Event()
    loop_thread = threading.get_ident()

    def trim_heap() -> bool:
        events.append("trim" if threading.get_ident() != loop_thread else "trim on the loop")
        trimmed.set()
        return True

    assistant = _Assistant()
    conversation = Conversation(
        cast(Ears, None),  # answer() never listens
        cast(Assistant, assistant),
        AssistantConfig(),
        None,
        lambda record: events.append(f"turn: {record.transcript}"),
        trim_heap=trim_heap,
    )
    record = await conversation.answer(_heard("what time is it"), live=False)
    await asyncio.wait_for(conversation.heap_trimmed(), 5.0)
    assert trimmed.is_set()
    assert record.answer == "It is noon."
    assert assistant.live == [False]
    assert events == ["turn: what time is it", "trim"]
