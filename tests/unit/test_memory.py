"""The rolling conversation history: bounded, aged, and kept per room."""

from __future__ import annotations

import asyncio
import contextvars

from atlas.llm.base import Message
from atlas.llm.config import MemoryConfig
from atlas.llm.memory import ConversationMemory, conversation_room


def test_exchanges_are_bounded_aged_and_oldest_first() -> None:
    now = [0.0]
    memory = ConversationMemory(MemoryConfig(max_turns=2, max_age_s=60.0), lambda: now[0])
    for i in range(3):
        memory.add(f"q{i}", f"a{i}")
        now[0] += 10
    assert memory.messages() == [
        Message("user", "q1"),
        Message("assistant", "a1"),
        Message("user", "q2"),
        Message("assistant", "a2"),
    ]
    now[0] += 100
    assert memory.messages() == [] and len(memory) == 0


def test_each_room_has_its_own_conversation() -> None:
    memory = ConversationMemory(MemoryConfig(max_turns=4, max_age_s=600.0))

    def in_room(room: str, fn: object) -> object:
        ctx = contextvars.copy_context()

        def run() -> object:
            conversation_room.set(room)
            return fn()  # type: ignore[operator]

        return ctx.run(run)

    in_room("tcp://kitchen:10700", lambda: memory.add("what's for dinner", "Risotto."))
    in_room("tcp://study:10700", lambda: memory.add("how far is the moon", "Far."))
    kitchen = in_room("tcp://kitchen:10700", memory.messages)
    assert kitchen == [Message("user", "what's for dinner"), Message("assistant", "Risotto.")]
    assert memory.messages() == []  # the local microphone's own conversation is untouched
    in_room("tcp://study:10700", memory.clear)
    assert in_room("tcp://study:10700", memory.messages) == []
    assert in_room("tcp://kitchen:10700", memory.messages) == kitchen


async def test_a_room_task_keeps_its_room_across_awaits() -> None:
    memory = ConversationMemory(MemoryConfig(max_turns=4, max_age_s=600.0))

    async def room(name: str) -> list[Message]:
        conversation_room.set(name)  # as a satellite room's session does
        memory.add(f"hello from {name}", "Good day.")
        await asyncio.sleep(0)
        return memory.messages()

    a, b = await asyncio.gather(room("a"), room("b"))
    assert a[0].content == "hello from a" and len(a) == 2
    assert b[0].content == "hello from b" and len(b) == 2
