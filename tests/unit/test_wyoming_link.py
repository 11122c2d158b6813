"""The satellite link over a real socket, against a minimal satellite written with the
`wyoming` library's own event functions: describe/info, run-satellite, audio in (any
format, converted to 16 kHz frames), the reply out as one audio-start/chunk/stop run,
and a satellite that vanishes: sends become no-ops, nothing raises."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest_asyncio
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Attribution, Describe, Info, Satellite
from wyoming.satellite import RunSatellite

from atlas.wyoming.link import SatelliteLink, SatelliteSink, SatelliteSource
from atlas.wyoming.pcm import pcm16_to_float
from voice.types import FRAME_SAMPLES

TIMEOUT_S = 30.0
_ATTR = Attribution(name="test", url="http://127.0.0.1/")


@dataclass
class FakeSatellite:
    """Streams `seconds` of 22.05 kHz stereo after run-satellite; records what it gets."""

    seconds: float = 1.0
    received: list[Event] = field(default_factory=list)
    writer: asyncio.StreamWriter | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        with contextlib.suppress(ConnectionError):  # ATLAS hung up first: fine
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (event := await async_read_event(reader)) is not None:
            self.received.append(event)
            if Describe.is_type(event.type):
                sat = Satellite("kitchen", _ATTR, True, None, None, area="Kitchen")
                await async_write_event(Info(satellite=sat).event(), writer)
            elif RunSatellite.is_type(event.type):
                tone = (np.sin(np.arange(round(22050 * self.seconds)) / 5) * 8000).astype("<i2")
                stereo = np.repeat(tone, 2).tobytes()
                for i in range(0, len(stereo), 4096):
                    chunk = AudioChunk(rate=22050, width=2, channels=2, audio=stereo[i : i + 4096])
                    await async_write_event(chunk.event(), writer)

    def types(self) -> list[str]:
        return [e.type for e in self.received]

    def vanish(self) -> None:
        assert self.writer is not None
        self.writer.transport.abort()


@pytest_asyncio.fixture
async def satellite() -> AsyncIterator[tuple[FakeSatellite, int]]:
    fake = FakeSatellite()
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield fake, port
    server.close()


async def until(check: object, timeout_s: float = TIMEOUT_S) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_describe_run_and_audio_in(satellite: tuple[FakeSatellite, int]) -> None:
    fake, port = satellite
    link, info = await SatelliteLink.open("127.0.0.1", port, "tcp://127.0.0.1")
    try:
        assert (info.name, info.area) == ("kitchen", "Kitchen")
        await until(lambda: fake.types() == ["describe", "run-satellite"])
        frames = []
        async with asyncio.timeout(TIMEOUT_S):
            async for frame in SatelliteSource(link).frames():
                frames.append(frame)
                if len(frames) == 16000 // FRAME_SAMPLES - 1:
                    break
        assert all(len(f.samples) == FRAME_SAMPLES for f in frames)
        assert frames[1].start_s == FRAME_SAMPLES / 16000  # stream time, 16 kHz
        assert max(float(np.abs(f.samples).max()) for f in frames) > 0.1  # the tone
    finally:
        await link.close()


async def test_reply_is_one_run_to_the_satellite(satellite: tuple[FakeSatellite, int]) -> None:
    fake, port = satellite
    fake.seconds = 0.0
    link, _ = await SatelliteLink.open("127.0.0.1", port, "kitchen")
    sink = SatelliteSink(link)
    try:
        reply = (np.sin(np.arange(11025) / 7) * 0.5).astype(np.float32)
        await sink.write(reply[:5000], 22050)
        await sink.write(reply[5000:], 22050)
        assert sink.is_playing  # a speaker's timing: half a second of audio is playing
        await sink.wait_for_playout()
        await until(lambda: "audio-stop" in fake.types())
        kinds = [t for t in fake.types() if t.startswith("audio")]
        assert kinds[0] == "audio-start" and kinds[-1] == "audio-stop"
        assert kinds.count("audio-start") == 1 and kinds.count("audio-stop") == 1
        sent = b"".join(e.payload or b"" for e in fake.received if e.type == "audio-chunk")
        assert np.allclose(pcm16_to_float(sent), reply, atol=1e-3)
    finally:
        await sink.aclose()
        await link.close()


async def test_clear_ends_the_run(satellite: tuple[FakeSatellite, int]) -> None:
    fake, port = satellite
    fake.seconds = 0.0
    link, _ = await SatelliteLink.open("127.0.0.1", port, "kitchen")
    sink = SatelliteSink(link)
    try:
        await sink.write(np.zeros(22050 * 3, np.float32), 22050)
        sink.clear()  # barge-in: stop now
        await until(lambda: "audio-stop" in fake.types())
        assert not sink.is_playing
    finally:
        await sink.aclose()
        await link.close()


async def test_a_vanished_satellite_is_no_error(satellite: tuple[FakeSatellite, int]) -> None:
    fake, port = satellite
    fake.seconds = 0.0
    link, _ = await SatelliteLink.open("127.0.0.1", port, "kitchen")
    sink = SatelliteSink(link)
    source = SatelliteSource(link).frames()
    reading = asyncio.create_task(anext(source, None))
    await until(lambda: fake.writer is not None)
    fake.vanish()
    async with asyncio.timeout(TIMEOUT_S):
        assert await reading is None  # the source just ends
    assert link.gone.is_set()
    for _ in range(3):  # a reply under way goes nowhere, quietly
        await sink.write(np.ones(2205, np.float32) * 0.1, 22050)
    assert await link.send(AudioStop().event()) is False
    assert await link.send(AudioStart(rate=22050, width=2, channels=1).event()) is False
    await sink.aclose()
    await link.close()
