"""A short rolling conversation history, so follow-ups ("and tomorrow?") work."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from atlas.llm.base import Message
from atlas.llm.config import MemoryConfig


@dataclass(frozen=True)
class Exchange:
    user: str
    assistant: str
    at: float


conversation_room: ContextVar[str] = ContextVar("conversation_room", default="")
"""Whose conversation this is: a satellite room sets its own in its task's context, so
a follow-up in the kitchen never continues what was said in the study."""

_MAX_ROOMS = 64  # rooms remembered at once (the oldest conversation is forgotten first)


class ConversationMemory:
    """The last `max_turns` exchanges younger than `max_age_s`, per room (see
    `conversation_room`); older ones are forgotten."""

    def __init__(self, config: MemoryConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._rooms: OrderedDict[str, deque[Exchange]] = OrderedDict()

    @property
    def _exchanges(self) -> deque[Exchange]:
        room = conversation_room.get()
        exchanges = self._rooms.get(room)
        if exchanges is None:
            exchanges = self._rooms[room] = deque(maxlen=max(self._config.max_turns, 1))
            while len(self._rooms) > _MAX_ROOMS:
                self._rooms.popitem(last=False)
        self._rooms.move_to_end(room)
        return exchanges

    def add(self, user: str, assistant: str) -> None:
        if self._config.max_turns == 0 or not user.strip() or not assistant.strip():
            return
        answer = assistant.strip()[: self._config.max_answer_chars]
        self._exchanges.append(Exchange(user.strip(), answer, self._clock()))

    def messages(self, max_turns: int | None = None) -> list[Message]:
        """The remembered exchanges of this room as alternating user/assistant messages,
        oldest first (only the last `max_turns` of them when given)."""
        horizon = self._clock() - self._config.max_age_s
        recent = [ex for ex in self._exchanges if ex.at >= horizon]
        if max_turns is not None:
            recent = recent[len(recent) - max_turns :] if max_turns else []
        out: list[Message] = []
        for ex in recent:
            out += [Message("user", ex.user), Message("assistant", ex.assistant)]
        return out

    def local_messages(self) -> list[Message]:
        """The shorter history the local model gets (config.local_max_turns)."""
        return self.messages(self._config.local_max_turns)

    def clear(self) -> None:
        self._exchanges.clear()

    def __len__(self) -> int:
        return len(self.messages()) // 2
