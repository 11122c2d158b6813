"""One connection to a Wyoming satellite, as Home Assistant makes it, seen as ATLAS's
audio source and sink.

ATLAS is the client (the satellite is the server): describe -> info, run-satellite, then
the satellite streams audio-chunk events for as long as the connection lives. Its audio
goes through ATLAS's own endpointing, STT, router and TTS; the reply goes back as
audio-start, audio-chunk*, audio-stop, and the transcript as a transcript event.

Backpressure, not buffering: frames are read from the socket only as fast as the room's
conversation takes them, so a slow room pushes back on its satellite through TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import structlog
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.satellite import RunSatellite

from atlas.wyoming.pcm import WIDTH, chunk_samples, ears_converter, float_to_pcm16
from voice.sinks import NullSink, PlaybackMark, to_sink_rate
from voice.types import FRAME_SAMPLES, SAMPLE_RATE, AudioFrame, Samples

log = structlog.get_logger("atlas.wyoming.link")

REPLY_RATE = 22_050
"""Piper's rate, and what wyoming-satellite's --snd-command expects by default."""
_CHUNK_SAMPLES = 1024
_SEND_TIMEOUT_S = 5.0
"""A satellite that takes no data for this long is gone (its socket buffer is full)."""
_DESCRIBE_TIMEOUT_S = 10.0


class SatelliteGone(ConnectionError):
    """The satellite closed the connection, or stopped reading it."""


@dataclass(frozen=True)
class SatelliteInfo:
    name: str
    area: str | None


class SatelliteLink:
    """An open connection: events both ways. Sending after it is gone is a no-op."""

    def __init__(self, client: AsyncTcpClient, label: str) -> None:
        self._client = client
        self.label = label
        self.gone = asyncio.Event()

    @classmethod
    async def open(cls, host: str, port: int, label: str) -> tuple[SatelliteLink, SatelliteInfo]:
        """Connect, describe, run-satellite. OSError/TimeoutError/SatelliteGone if not."""
        client = AsyncTcpClient(host, port)
        async with asyncio.timeout(_DESCRIBE_TIMEOUT_S):
            await client.connect()
            link = cls(client, label)
            try:
                await client.write_event(Describe().event())
                info = await link._read_info()
                await client.write_event(RunSatellite().event())
            except BaseException:
                await link.close()
                raise
        return link, info

    async def _read_info(self) -> SatelliteInfo:
        while True:
            event = await self.read()
            if event is None:
                raise SatelliteGone("closed before answering describe")
            if Info.is_type(event.type):
                sat = Info.from_event(event).satellite
                return SatelliteInfo(sat.name if sat else self.label, sat.area if sat else None)

    async def read(self) -> Event | None:
        """The next event, or None once the connection is gone."""
        if self.gone.is_set():
            return None
        try:
            event = await self._client.read_event()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            event = None
        if event is None:
            self.gone.set()
        return event

    async def send(self, event: Event) -> bool:
        """False (and the link is gone) when the satellite does not take it."""
        if self.gone.is_set():
            return False
        try:
            async with asyncio.timeout(_SEND_TIMEOUT_S):
                await self._client.write_event(event)
            return True
        except (ConnectionError, OSError, TimeoutError):
            log.warning("satellite.send_failed", satellite=self.label, type=event.type)
            self.gone.set()
            return False

    async def close(self) -> None:
        self.gone.set()
        with contextlib.suppress(Exception):
            await self._client.disconnect()


class SatelliteSource:
    """The satellite's microphone as 32 ms frames of 16 kHz float32 (an AudioSource)."""

    def __init__(self, link: SatelliteLink) -> None:
        self._link = link

    async def frames(self) -> AsyncIterator[AudioFrame]:
        converter = ears_converter()
        pending = np.zeros(0, np.float32)
        emitted = 0
        while (event := await self._link.read()) is not None:
            if not AudioChunk.is_type(event.type):
                log.debug("satellite.event", satellite=self._link.label, type=event.type)
                continue
            samples = chunk_samples(AudioChunk.from_event(event), converter)
            pending = np.concatenate((pending, samples))
            now = time.monotonic()
            while len(pending) >= FRAME_SAMPLES:
                frame, pending = pending[:FRAME_SAMPLES], pending[FRAME_SAMPLES:]
                yield AudioFrame(samples=frame, start_s=emitted / SAMPLE_RATE, captured_at=now)
                emitted += FRAME_SAMPLES

    async def aclose(self) -> None:
        await self._link.close()


class SatelliteSink:
    """ATLAS's voice, sent to the satellite that asked (an AudioSink).

    Timing is a simulated speaker's (the satellite plays in real time), so the room's
    echo guard and barge-in know when ATLAS is audible there. One playback run is
    audio-start, chunks, audio-stop; a link that is gone swallows the audio."""

    def __init__(self, link: SatelliteLink, rate: int = REPLY_RATE) -> None:
        self._link = link
        self._timing = NullSink(rate, realtime=True)
        self._in_run = False
        self._stopping: set[asyncio.Task[bool]] = set()

    @property
    def sample_rate(self) -> int:
        return self._timing.sample_rate

    @property
    def is_playing(self) -> bool:
        return self._timing.is_playing

    @property
    def played_s(self) -> float:
        return self._timing.played_s

    @property
    def last_mark(self) -> PlaybackMark | None:
        return self._timing.last_mark

    async def write(
        self, samples: Samples, sample_rate: int, label: str | None = None
    ) -> PlaybackMark:
        mark = await self._timing.write(samples, sample_rate, label)
        audio = to_sink_rate(samples, sample_rate, self.sample_rate)
        if not self._in_run:
            self._in_run = True
            start = AudioStart(rate=self.sample_rate, width=WIDTH, channels=1)
            await self._link.send(start.event())
        for i in range(0, len(audio), _CHUNK_SAMPLES):
            pcm = float_to_pcm16(audio[i : i + _CHUNK_SAMPLES])
            chunk = AudioChunk(rate=self.sample_rate, width=WIDTH, channels=1, audio=pcm)
            if not await self._link.send(chunk.event()):
                break
        return mark

    async def flush(self) -> None:
        return None

    def clear(self) -> float | None:
        heard = self._timing.clear()
        if self._in_run:
            # clear() is synchronous; the stop goes out right after.
            task = asyncio.get_running_loop().create_task(self._end_run())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        return heard

    async def wait_for_playout(self) -> None:
        await self._timing.wait_for_playout()
        await self._end_run()

    async def _end_run(self) -> bool:
        if not self._in_run:
            return True
        self._in_run = False
        return await self._link.send(AudioStop().event())

    async def aclose(self) -> None:
        await self._end_run()
        await asyncio.gather(*self._stopping, return_exceptions=True)
        await self._timing.aclose()
