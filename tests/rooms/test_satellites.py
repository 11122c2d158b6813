"""ATLAS serving the real wyoming-satellite 1.0.0, the way Home Assistant connects to it.

The satellite runs in its own venv with a paced fixture WAV as its microphone and a
recorder as its speaker; ATLAS's rooms (the daemon's own code) connect to it over
loopback. Checked: the transcript and tier, that what the satellite played is ATLAS's
reply, the transcript event reaching the satellite, two rooms at once with one
satellite pulled out mid-reply (no breaker trip, the other room unharmed, the lost one
retried and serving again), and an unreachable satellite that never disturbs the rest.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from atlas.app import build_store
from atlas.assistant import Assistant
from atlas.testing.fake_anthropic import FakeScript
from atlas.testing.satellite import SND_RATE, RealSatellite
from atlas.turn import TurnRecord
from atlas.wake import WakeGate
from atlas.wyoming.announce import TimerRouter
from atlas.wyoming.rooms import Room, RoomParts, SatelliteSpec
from tests.replay.conftest import Parts
from tests.rooms.conftest import free_port
from voice.sinks import NullSink
from voice.tts import resample_to
from voice.types import Samples

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

TIMEOUT_S = 180.0  # "it finished", on a loaded 2-core machine; never "it was fast"


def room_parts(parts: Parts) -> RoomParts:
    s = parts.settings
    template = Assistant(
        router=parts.brain.router,
        tts=parts.tts,
        sink=NullSink(SND_RATE),
        fillers=parts.fillers,
        wake=WakeGate(s.wake),
        persona=parts.persona,
        chunker=s.chunker,
    )
    vad_model = build_store(s).resolve("silero-vad", "vad", "vad.model").path
    return RoomParts(
        parts.ears, vad_model, template, s.assistant, s.turn_taking, s.wake, retry_max_s=2.0
    )


class Rooms:
    """Rooms running in the test's loop; every finished turn recorded with its room."""

    def __init__(self, parts: Parts) -> None:
        self.parts = room_parts(parts)
        self.records: list[tuple[str, TurnRecord]] = []
        self.timers = TimerRouter()
        self.tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(self.timers.run(parts.brain.timers))
        ]

    def add(self, port: int) -> Room:
        room = Room(SatelliteSpec("127.0.0.1", port), self.parts, self._record, self.timers)
        self.tasks.append(asyncio.create_task(room.run()))
        return room

    def _record(self, room: str, record: TurnRecord) -> None:
        self.records.append((room, record))

    def turns(self, room: str) -> list[TurnRecord]:
        return [r for name, r in self.records if name == room]

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest_asyncio.fixture(loop_scope="module")
async def rooms(parts: Parts) -> AsyncIterator[Rooms]:
    r = Rooms(parts)
    yield r
    await r.aclose()


async def until(check: Callable[[], object], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def _heard(parts: Parts, audio: Samples) -> str:
    """What ATLAS's own ears hear in a playback (22.05 kHz) -- Whisper as the judge."""
    transcript = await parts.ears.transcriber.transcribe(resample_to(audio, SND_RATE, 16000))
    return transcript.text


def _satellite(
    python: str, tmp: Path, name: str, wav: str, area: str | None = None
) -> RealSatellite:
    sat = RealSatellite(python, tmp, name=name, port=free_port(), wav=wav, area=area)
    sat.wait_listening()
    return sat


async def test_one_satellite_speaks_and_hears_atlas(
    parts: Parts, rooms: Rooms, satellite_python: str, tmp_path: Path
) -> None:
    sat = await asyncio.to_thread(
        _satellite, satellite_python, tmp_path, "kitchen", "local_good_morning.wav", "Kitchen"
    )
    try:
        room = rooms.add(sat.port)
        await asyncio.wait_for(room.connected.wait(), TIMEOUT_S)
        assert (room.name, room.area) == ("kitchen", "Kitchen")  # from the satellite's info
        sat.go()
        await until(lambda: rooms.turns("kitchen") and sat.playbacks(), "a turn and a playback")
        [record] = rooms.turns("kitchen")
        assert "good morning" in record.transcript.lower()
        assert record.addressed and record.tier in ("skill", "local")
        assert record.interrupted is None
        # What the satellite played is ATLAS's answer (heard back by ATLAS's Whisper).
        heard = await _heard(parts, sat.playbacks()[0].audio)
        answer = _words(record.answer)
        assert len(answer & _words(heard)) >= max(1, len(answer) // 2), (record.answer, heard)

        # The pipeline events reached the satellite as Home Assistant sends them: voice
        # started and stopped, then the transcript, and only then the reply's audio.
        def kinds() -> list[str]:
            return [line.split(" ", 1)[0] for line in sat.pipeline_events()]

        await until(lambda: "tts-start" in kinds(), "the pipeline events", 30)
        seen = kinds()
        assert seen.index("stt-start") < seen.index("stt-stop") < seen.index("transcript")
        assert seen.index("transcript") < seen.index("tts-start"), seen
        said = next(line for line in sat.pipeline_events() if line.startswith("transcript"))
        assert "good morning" in said.lower()
    finally:
        sat.stop()


async def test_two_rooms_one_pulled_out_mid_reply(
    parts: Parts, rooms: Rooms, satellite_python: str, tmp_path: Path
) -> None:
    # The study asks a cloud question answered slowly; the kitchen asks the time.
    long_answer = " ".join(["The sky scatters blue light more than red light."] * 6)
    parts.anthropic.enqueue(FakeScript(text=long_answer, token_delay_s=0.15))
    kitchen = await asyncio.to_thread(
        _satellite, satellite_python, tmp_path, "kitchen", "local_what_time.wav"
    )
    study = await asyncio.to_thread(
        _satellite, satellite_python, tmp_path, "study", "haiku_sky_blue.wav"
    )
    nowhere = free_port()  # a satellite that is not there: retried, harms nobody
    again: RealSatellite | None = None
    try:
        kitchen_room, study_room, lost = (rooms.add(p) for p in (kitchen.port, study.port, nowhere))
        await asyncio.wait_for(kitchen_room.connected.wait(), TIMEOUT_S)
        await asyncio.wait_for(study_room.connected.wait(), TIMEOUT_S)
        kitchen.go()
        study.go()
        # The study starts to speak (filler or answer): pull its satellite out.
        await until(study.playing, "the study's reply to start")
        await asyncio.to_thread(study.stop)
        await until(lambda: rooms.turns("study"), "the study's turn to end")
        [cut] = rooms.turns("study")
        assert cut.interrupted == "satellite_gone"
        # The kitchen is served in full.
        await until(lambda: rooms.turns("kitchen") and kitchen.playbacks(), "the kitchen's turn")
        [served] = rooms.turns("kitchen")
        assert "what time" in served.transcript.lower()
        assert served.interrupted is None and kitchen.playbacks()[0].audio.size > SND_RATE // 2
        # A pulled plug is not a failure of the model: the cloud tier still answers
        # (these tests' breaker opens on ONE counted failure).
        decision = parts.brain.router.decide("explain in detail why the sky is blue")
        assert decision.tier == "haiku"
        # The study's satellite comes back on its port: the room reconnects, serves again.
        again = await asyncio.to_thread(
            RealSatellite,
            satellite_python,
            tmp_path / "again",
            name="study",
            port=study.port,
            wav="local_what_time.wav",
        )
        await until(lambda: study_room.sessions >= 2 and study_room.connected.is_set(), "retry")
        again.go()
        await until(lambda: len(rooms.turns("study")) >= 2, "the study's next turn")
        assert "what time" in rooms.turns("study")[1].transcript.lower()
        assert not lost.connected.is_set() and lost.sessions == 0
    finally:
        for sat in (kitchen, study, again):
            if sat is not None:
                sat.stop()


async def test_a_timer_rings_in_the_room_where_it_was_set(
    parts: Parts, rooms: Rooms, satellite_python: str, tmp_path: Path
) -> None:
    kitchen = await asyncio.to_thread(
        _satellite, satellite_python, tmp_path, "kitchen", "local_timer_ten_seconds.wav"
    )
    study = await asyncio.to_thread(
        _satellite, satellite_python, tmp_path, "study", "silence_3s.wav"
    )
    try:
        kitchen_room, study_room = rooms.add(kitchen.port), rooms.add(study.port)
        await asyncio.wait_for(kitchen_room.connected.wait(), TIMEOUT_S)
        await asyncio.wait_for(study_room.connected.wait(), TIMEOUT_S)
        kitchen.go()
        study.go()
        # The acknowledgement, then (ten seconds on) the announcement: both in the kitchen.
        await until(lambda: len(rooms.turns("kitchen")) >= 2, "the timer's announcement")
        set_turn, rang = rooms.turns("kitchen")[:2]
        assert "timer" in set_turn.transcript.lower()
        assert "done" in rang.answer.lower()
        await until(lambda: len(kitchen.playbacks()) >= 2, "the announcement's playback")
        assert "done" in (await _heard(parts, kitchen.playbacks()[-1].audio)).lower()
        assert rooms.turns("study") == [] and study.playbacks() == []
    finally:
        kitchen.stop()
        study.stop()
