"""A short rolling conversation history, so follow-ups ("and tomorrow?") work."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from atlas.llm.base import Message
from atlas.llm.config import MemoryConfig


@dataclass(frozen=True)
class Exchange:
    user: str
    assistant: str
    at: float


class ConversationMemory:
    """The last `max_turns` exchanges younger than `max_age_s`; older ones are forgotten."""

    def __init__(self, config: MemoryConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._exchanges: deque[Exchange] = deque(maxlen=max(config.max_turns, 1))

    def add(self, user: str, assistant: str) -> None:
        if self._config.max_turns == 0 or not user.strip() or not assistant.strip():
            return
        answer = assistant.strip()[: self._config.max_answer_chars]
        self._exchanges.append(Exchange(user.strip(), answer, self._clock()))

    def messages(self, max_turns: int | None = None) -> list[Message]:
        """The remembered exchanges as alternating user/assistant messages, oldest first
        (only the last `max_turns` of them when given)."""
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
