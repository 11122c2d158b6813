"""A per-turn handle: its stage timestamps, its tasks, and its interruption.

Every turn carries monotonic timestamps for each stage; logs, `atlas replay --json` and
the benchmark all read the same `TurnRecord`. Interruption (barge-in, shutdown) goes
through the handle: it cancels the turn's tasks, clears the sink, and records what was
actually heard. A cancelled turn is not an upstream failure (the router sees a plain
cancellation, which its breakers ignore).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

STAGES = (
    "speech_start",
    "speech_end",
    "end_of_turn",
    "transcript",
    "route",
    "home",
    "filler_first_sample",
    "first_token",
    "first_chunk",
    "first_answer_sample",
    "last_sample",
)
"""Stage names in pipeline order (DESIGN.md: the flow of one turn)."""


@dataclass(frozen=True)
class TurnRecord:
    """What happened in one turn, for logs, `atlas replay --json` and the benchmark."""

    turn: int
    transcript: str
    addressed: bool
    """False when the utterance was ignored (no wake phrase, echo, half-duplex)."""
    ignored_reason: str | None
    tier: str | None
    wanted: str | None
    stage: str | None
    reason: str | None
    filler: str | None
    answer: str
    heard: str
    """What the person actually heard of the answer (all of it unless interrupted)."""
    interrupted: str | None
    """'barge_in', 'shutdown', 'continuation' or 'deadline' when the turn was cut."""
    cost_usd: float
    fallback_reason: str | None
    timestamps: dict[str, float]
    """Monotonic seconds per stage (see STAGES); absent stages did not happen."""
    since_speech_end_ms: dict[str, float]
    """The same stamps as milliseconds after the end of speech: the latency a person hears."""
    deadline_missed: str | None = None
    """The stage whose deadline passed (atlas.deadlines); 'route' is recorded, not cut."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "transcript": self.transcript,
            "addressed": self.addressed,
            "ignored_reason": self.ignored_reason,
            "tier": self.tier,
            "wanted": self.wanted,
            "stage": self.stage,
            "reason": self.reason,
            "filler": self.filler,
            "answer": self.answer,
            "heard": self.heard,
            "interrupted": self.interrupted,
            "deadline_missed": self.deadline_missed,
            "cost_usd": round(self.cost_usd, 6),
            "fallback_reason": self.fallback_reason,
            "timestamps": {k: round(v, 4) for k, v in self.timestamps.items()},
            "since_speech_end_ms": {k: round(v, 1) for k, v in self.since_speech_end_ms.items()},
        }


@dataclass
class TurnHandle:
    """The live state of one turn; owned by the assistant while the turn runs."""

    number: int
    transcript: str
    clock: Callable[[], float] = time.monotonic
    stamps: dict[str, float] = field(default_factory=dict)
    interrupted: str | None = None
    missed_deadline: str | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def stamp(self, stage: str, at: float | None = None) -> None:
        """Record a stage's time once (the first occurrence wins)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        self.stamps.setdefault(stage, self.clock() if at is None else at)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run part of the turn as a task the handle can cancel."""
        task = asyncio.create_task(coro, name=f"turn{self.number}.{name}")
        self._tasks.append(task)
        return task

    def cancel(self, reason: str) -> None:
        """Interrupt the turn: every task of it is cancelled (idempotent)."""
        if self.interrupted is None:
            self.interrupted = reason
        for task in self._tasks:
            if not task.done():
                task.cancel()

    @property
    def cancelled(self) -> bool:
        return self.interrupted is not None

    def since_speech_end_ms(self) -> dict[str, float]:
        end = self.stamps.get("speech_end")
        if end is None:
            return {}
        return {k: (v - end) * 1000 for k, v in self.stamps.items()}


class Floor:
    """Whether the person is talking right now, so ATLAS never starts over them.

    The conversation marks every frame voiced or not; a turn's first sound waits (up to
    `max_wait_s`) until the microphone is quiet. Speech that goes on becomes a
    continuation or barge-in and cancels the turn before it was ever heard.
    """

    def __init__(self, max_wait_s: float = 1.0) -> None:
        self._quiet = asyncio.Event()
        self._quiet.set()
        self.max_wait_s = max_wait_s

    def heard(self, voiced: bool) -> None:
        if voiced:
            self._quiet.clear()
        else:
            self._quiet.set()

    @property
    def quiet(self) -> bool:
        return self._quiet.is_set()

    async def wait_quiet(self) -> None:
        """Until the person is quiet, or `max_wait_s` (a noisy room must not mute ATLAS)."""
        if self._quiet.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), self.max_wait_s)
