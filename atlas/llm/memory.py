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
        self._exchanges.append(Exchange(user.strip(), assistant.strip(), self._clock()))

    def messages(self) -> list[Message]:
        """The remembered exchanges as alternating user/assistant messages, oldest first."""
        horizon = self._clock() - self._config.max_age_s
        out: list[Message] = []
        for ex in self._exchanges:
            if ex.at >= horizon:
                out += [Message("user", ex.user), Message("assistant", ex.assistant)]
        return out

    def clear(self) -> None:
        self._exchanges.clear()

    def __len__(self) -> int:
        return len(self.messages()) // 2
