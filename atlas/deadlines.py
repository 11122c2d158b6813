"""Every turn ends in bounded time: the deadline of each stage, from config.

A turn's stages are stamped on its handle (atlas.turn). `next_deadline()` reads those
stamps and says which deadline is running now and when it passes; the assistant waits
for the turn's task at most that long. When one passes, ATLAS says a short line of its
own, cancels the turn through its handle and listens again.

Time spent waiting for the speaker (the sink's backpressure while earlier sentences
play) does not count against the answer: a long answer is throttled by its own
playback, which is not slowness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from voice.config import bounded


@dataclass(frozen=True)
class DeadlineConfig:
    """Seconds each stage of a turn may take (checked per turn; see atlas.deadlines)."""

    enabled: bool = True
    stt_s: float = bounded(8.0, 0.5, 120.0)
    """Transcribing one utterance (end of turn -> transcript)."""
    route_s: float = bounded(3.0, 0.1, 60.0)
    """Deciding who answers. decide() is CPU work that cannot be interrupted: a miss is
    logged and recorded, and the answer goes on."""
    home_s: float = bounded(5.0, 0.5, 120.0)
    """A device request: decision -> first words (Home Assistant's calls included)."""
    local_first_token_s: float = bounded(6.0, 0.5, 300.0)
    """A local answer (skill, embedded model or local server): decision -> first words."""
    local_answer_s: float = bounded(15.0, 1.0, 600.0)
    """... decision -> the whole answer text (time waiting for the speaker excluded)."""
    first_token_s: float = bounded(25.0, 0.5, 300.0)
    """A cloud answer (a filler is heard meanwhile): decision -> first words. Must cover
    the tier's own first-token deadline, the agent's tool loop and a local fallback."""
    answer_s: float = bounded(60.0, 1.0, 600.0)
    """... decision -> the whole answer text (time waiting for the speaker excluded)."""
    tts_s: float = bounded(10.0, 0.5, 120.0)
    """A sentence of the answer -> its first synthesized sample on the speaker."""
    cancel_grace_s: float = bounded(1.0, 0.1, 10.0)
    """After a cancel, how long the turn's tasks may take to stop before ATLAS moves on
    without them (a starved worker thread finishes on its own later)."""


@dataclass(frozen=True)
class Deadline:
    stage: str
    """'first_token', 'home', 'answer' or 'tts' (stt and route are checked elsewhere)."""
    limit_s: float
    at: float
    """Monotonic time it passes."""


def next_deadline(
    cfg: DeadlineConfig,
    stamps: Mapping[str, float],
    *,
    local: bool,
    home: bool,
    answered: bool,
    speaking_s: float,
) -> Deadline | None:
    """The earliest deadline still running for a turn, or None (nothing left to bound:
    the answer is complete and synthesized, only playback remains)."""
    route = stamps.get("route")
    if route is None:
        return None
    running: list[Deadline] = []
    if "first_token" not in stamps and not answered:
        if home:
            limit, stage = cfg.home_s, "home"
        else:
            limit, stage = (cfg.local_first_token_s if local else cfg.first_token_s), "first_token"
        running.append(Deadline(stage, limit, route + limit + speaking_s))
    if not answered:
        limit = cfg.local_answer_s if local else cfg.answer_s
        running.append(Deadline("answer", limit, route + limit + speaking_s))
    chunk = stamps.get("first_chunk")
    if chunk is not None and "first_answer_sample" not in stamps:
        running.append(Deadline("tts", cfg.tts_s, chunk + cfg.tts_s + speaking_s))
    return min(running, key=lambda d: d.at, default=None)


async def watch(
    task: asyncio.Task[Any],
    pending: Callable[[], Deadline | None],
    clock: Callable[[], float],
    cut: Callable[[], bool],
) -> Deadline | None:
    """Wait for `task` until the deadline `pending()` names passes; it is read again
    after every wait, as stages are reached. None: the task ended, only playback is
    left, or the turn was cut by something else (`cut()`: barge-in, shutdown)."""
    while not task.done():
        d = pending()
        if d is None:
            return None
        wait = d.at - clock()
        if wait > 0:
            await asyncio.wait({task}, timeout=wait)
            continue
        return None if cut() else d
    return None


async def let_stop(task: asyncio.Task[Any], grace_s: float, stragglers: set[Any]) -> bool:
    """After a cancel, wait up to `grace_s` for `task` to end. A task that does not (a
    worker thread in the middle of llama.cpp's prompt) is kept in `stragglers` until it
    ends on its own. False when it did not stop in time."""
    await asyncio.wait({task}, timeout=grace_s)
    task.add_done_callback(_retrieve)
    if task.done():
        return True
    stragglers.add(task)
    task.add_done_callback(stragglers.discard)
    return False


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a cut turn's error is not news: never "never retrieved"
