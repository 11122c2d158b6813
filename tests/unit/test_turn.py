"""TurnHandle: stage stamps, cancellation of the turn's tasks, latencies after speech end."""

from __future__ import annotations

import asyncio

import pytest

from atlas.turn import STAGES, TurnHandle


class Clock:
    def __init__(self, t: float = 50.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_first_stamp_wins() -> None:
    clock = Clock(10.0)
    h = TurnHandle(1, "what time is it", clock)
    h.stamp("first_token")
    clock.t = 11.0
    h.stamp("first_token")
    h.stamp("first_token", at=12.0)
    assert h.stamps == {"first_token": 10.0}


def test_explicit_time_is_used() -> None:
    h = TurnHandle(1, "", Clock(10.0))
    h.stamp("first_answer_sample", at=10.75)
    assert h.stamps["first_answer_sample"] == 10.75


def test_unknown_stage_raises() -> None:
    h = TurnHandle(1, "", Clock())
    with pytest.raises(ValueError, match="unknown stage"):
        h.stamp("first_tokn")
    assert h.stamps == {}


def test_stages_are_the_documented_pipeline_order() -> None:
    assert STAGES[0] == "speech_start" and STAGES[-1] == "last_sample"
    assert STAGES.index("speech_end") < STAGES.index("transcript") < STAGES.index("route")
    assert STAGES.index("filler_first_sample") < STAGES.index("first_answer_sample")


def test_since_speech_end_ms() -> None:
    h = TurnHandle(3, "", Clock())
    assert h.since_speech_end_ms() == {}  # no speech end: nothing to measure against
    h.stamp("speech_start", at=9.0)
    h.stamp("speech_end", at=10.0)
    h.stamp("end_of_turn", at=10.5)
    h.stamp("first_answer_sample", at=10.875)
    got = h.since_speech_end_ms()
    assert got == pytest.approx(
        {"speech_start": -1000.0, "speech_end": 0.0, "end_of_turn": 500.0,
         "first_answer_sample": 875.0}
    )  # fmt: skip


async def test_cancel_cancels_every_spawned_task_and_records_the_reason() -> None:
    h = TurnHandle(1, "", Clock())
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    async def quick() -> str:
        return "done"

    a = h.spawn(forever(), "answer")
    b = h.spawn(forever(), "filler")
    done = h.spawn(quick(), "quick")
    await done
    await started.wait()
    assert not h.cancelled and h.interrupted is None
    h.cancel("barge_in")
    assert h.cancelled and h.interrupted == "barge_in"
    for task in (a, b):
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
    assert done.result() == "done"  # a finished task is left alone
    assert a.get_name() == "turn1.answer"


async def test_cancel_is_idempotent_and_keeps_the_first_reason() -> None:
    h = TurnHandle(2, "", Clock())
    task = h.spawn(asyncio.sleep(3600), "answer")
    h.cancel("barge_in")
    h.cancel("shutdown")
    assert h.interrupted == "barge_in"
    with pytest.raises(asyncio.CancelledError):
        await task
