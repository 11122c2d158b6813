from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from atlas.skills import TimerFired, TimerLimitError, TimerService, build_skills
from atlas.skills.tools import skill_tools

NOW = datetime(2024, 3, 5, 15, 20, tzinfo=UTC)


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def test_list_reports_remaining_time_on_the_service_clock() -> None:
    clock = FakeClock()
    service = TimerService(clock=clock)
    try:
        long = service.set(600)
        tea = service.set(300, "Tea")
        clock.t += 48
        statuses = service.list()
        assert [s.timer for s in statuses] == [tea, long]  # soonest first
        assert [s.remaining_s for s in statuses] == [252, 552]
        assert tea.label == "tea"
        assert tea.ends_at == 1300
        assert (tea.id, long.id) == (2, 1)
    finally:
        await service.aclose()


async def test_a_short_timer_fires_an_event() -> None:
    service = TimerService()
    timer = service.set(0.05, "egg")
    event = await asyncio.wait_for(service.events.get(), timeout=5)
    assert isinstance(event, TimerFired)
    assert event.timer == timer
    assert event.at >= timer.ends_at  # never early
    assert service.list() == ()
    assert event.timer.done_line() == "Your egg timer is done."


async def test_a_cancelled_timer_never_fires() -> None:
    service = TimerService()
    keep = service.set(0.05)
    gone = service.set(0.05, "tea")
    assert service.cancel("tea") == (gone,)
    event = await asyncio.wait_for(service.events.get(), timeout=5)
    assert event.timer == keep
    await asyncio.sleep(0.1)
    assert service.events.empty()


async def test_the_event_queue_is_bounded() -> None:
    service = TimerService(queue_size=1)
    assert service.events.maxsize == 1
    first = service.set(0.01)
    service.set(0.03)
    with capture_logs() as logs:
        for _ in range(500):
            if not service.list():
                break
            await asyncio.sleep(0.01)
    assert service.list() == ()
    assert service.events.qsize() == 1
    assert service.events.get_nowait().timer == first
    assert any(e["event"] == "timer.event_dropped" for e in logs)


async def test_max_timers() -> None:
    service = TimerService(clock=FakeClock(), max_timers=2)
    try:
        service.set(60)
        service.set(60)
        with pytest.raises(TimerLimitError, match="limit of 2 running timers"):
            service.set(60)
        service.cancel(1)
        service.set(60)  # room again
    finally:
        await service.aclose()


@pytest.mark.parametrize("seconds", [0, -5, math.nan, math.inf, 8 * 86400])
async def test_impossible_durations_are_refused(seconds: float) -> None:
    service = TimerService(clock=FakeClock())
    with pytest.raises(TimerLimitError):
        service.set(seconds)
    assert service.list() == ()


async def test_cancel_by_id_label_and_all() -> None:
    service = TimerService(clock=FakeClock())
    a = service.set(60, "tea")
    b = service.set(120, "pasta")
    c = service.set(180)
    try:
        assert service.cancel(99) == ()
        assert service.cancel(str(b.id)) == (b,)
        assert service.cancel("TEA ") == (a,)
        assert service.cancel("all") == (c,)
        assert service.list() == ()
        assert service.cancel("all") == ()
    finally:
        await service.aclose()


async def test_aclose_cancels_every_task() -> None:
    service = TimerService()
    service.set(0.05)
    service.set(0.05)
    await service.aclose()
    await asyncio.sleep(0.1)
    assert service.list() == ()
    assert service.events.empty()


def test_done_lines() -> None:
    service = TimerService(clock=FakeClock())

    async def make() -> list[str]:
        timers = [service.set(600), service.set(90), service.set(300, "tea"), service.set(5400)]
        lines = [t.done_line() for t in timers]
        await service.aclose()
        return lines

    assert asyncio.run(make()) == [
        "Your ten minute timer is done.",
        "Your ninety second timer is done.",
        "Your tea timer is done.",
        "Your ninety minute timer is done.",
    ]


async def test_spoken_timer_conversation_across_turns() -> None:
    clock = FakeClock()
    service = TimerService(clock=clock)
    skills = build_skills(UTC, service)

    def say(text: str) -> str:
        answer = skills.handle(text, NOW)
        assert answer is not None, text
        assert answer.skill == "timers"
        return answer.text

    try:
        assert say("what timers do I have") == "You have no timers running."
        assert say("how much time is left") == "You have no timers running."
        assert say("set a timer") == (
            "Certainly, for how long? Say, for instance, set a timer for ten minutes."
        )
        say("set a timer for 10 minutes")
        say("5 minute tea timer")
        clock.t += 48
        assert say("how much time is left on my tea timer?") == (
            "Your tea timer has four minutes and twelve seconds left."
        )
        assert say("How much time is left?") == (
            "Your tea timer has four minutes and twelve seconds left, "
            "and your ten minute timer has nine minutes and twelve seconds left."
        )
        assert say("list my timers") == (
            "You have two timers. Your tea timer has four minutes and twelve seconds left, "
            "and your ten minute timer has nine minutes and twelve seconds left."
        )
        assert say("how long until the pasta timer goes off") == (
            "I can't find a timer by that name."
        )
        assert say("cancel the timer") == "You have two timers running. Which one shall I cancel?"
        assert len(service.list()) == 2  # nothing cancelled on an ambiguous request
        assert say("cancel the tea timer") == "Your tea timer is cancelled."
        assert say("cancel the timer") == "Your ten minute timer is cancelled."
        assert say("cancel all timers") == "You have no timers running."
        say("set a timer for 1 minute")
        say("set a timer for 2 minutes")
        say("set a timer for 3 minutes")
        assert say("cancel the two minute timer") == "Your two minute timer is cancelled."
        assert say("cancel all my timers") == "All two timers cancelled."
    finally:
        await service.aclose()


async def test_spoken_request_over_the_limit_is_refused_courteously() -> None:
    service = TimerService(clock=FakeClock(), max_timers=1)
    skills = build_skills(UTC, service)
    try:
        skills.handle("set a timer for 1 minute", NOW)
        answer = skills.handle("set a timer for 2 minutes", NOW)
        assert answer is not None
        assert answer.data["action"] == "refused"
        assert answer.text == "I'm afraid I can keep only one timer at once."
        assert len(service.list()) == 1
    finally:
        await service.aclose()


async def test_agent_and_voice_share_the_timers() -> None:
    service = TimerService(clock=FakeClock())
    skills = build_skills(UTC, service)
    tools = {t.spec.name: t for t in skill_tools(skills, service, UTC, lambda: NOW)}
    try:
        await tools["set_timer"].run({"duration_seconds": 900, "label": "bread"})
        answer = skills.handle("cancel the bread timer", NOW)
        assert answer is not None
        assert answer.text == "Your bread timer is cancelled."
        assert await tools["list_timers"].run({}) == "No timers are running."
    finally:
        await service.aclose()
