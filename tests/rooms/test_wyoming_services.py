"""`atlas serve-wyoming`'s services, driven by the real `wyoming` client library the way
Home Assistant's Wyoming integration drives a service: describe, transcribe, synthesize,
and handle, each on its own connection."""

from __future__ import annotations

import asyncio
import re
import wave
from collections.abc import AsyncIterator
from functools import partial

import numpy as np
import pytest
import pytest_asyncio
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop, wav_to_chunks
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled
from wyoming.info import Describe, Info
from wyoming.server import AsyncTcpServer
from wyoming.tts import Synthesize

from atlas.testing.fake_anthropic import FakeScript
from atlas.wyoming.pcm import pcm16_to_float
from atlas.wyoming.serve import router_answer
from atlas.wyoming.services import Engines, ServiceHandler
from tests.conftest import FIXTURES
from tests.replay.conftest import Parts
from tests.rooms.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

TIMEOUT_S = 120.0  # generous: "it finished", never "it was fast"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(parts: Parts) -> AsyncIterator[tuple[str, int]]:
    engines = Engines(
        transcriber=parts.ears.transcriber,
        tts=parts.tts,
        chunker=parts.settings.chunker,
        stt_model=parts.settings.stt.model,
        voice=parts.settings.tts.voice,
        language="en",
        answer=router_answer(parts.brain.router),
        max_audio_s=10.0,
    )
    port = free_port()
    server = AsyncTcpServer("127.0.0.1", port)
    await server.start(partial(ServiceHandler, engines))
    yield "127.0.0.1", port
    await server.stop()


async def _exchange(addr: tuple[str, int], *events: Event, until: str) -> list[Event]:
    """Send `events` on a fresh connection; read events up to one of type `until`."""
    got: list[Event] = []
    async with asyncio.timeout(TIMEOUT_S), AsyncTcpClient(*addr) as client:
        for event in events:
            await client.write_event(event)
        while True:
            event = await client.read_event()
            assert event is not None, f"connection closed before {until}; got {got}"
            got.append(event)
            if event.type in (until, "error"):
                return got


def _wav_events(name: str) -> list[Event]:
    with wave.open(str(FIXTURES / name), "rb") as w:
        start = AudioStart(rate=w.getframerate(), width=w.getsampwidth(), channels=1)
        return [start.event(), *(c.event() for c in wav_to_chunks(w, 1024)), AudioStop().event()]


async def test_describe_lists_asr_tts_and_handle(service: tuple[str, int]) -> None:
    [event] = await _exchange(service, Describe().event(), until="info")
    info = Info.from_event(event)
    assert [p.name for p in info.asr] == ["atlas-asr"]
    assert info.asr[0].models[0].languages == ["en"]
    assert [p.name for p in info.tts] == ["atlas-tts"]
    assert [p.name for p in info.handle] == ["atlas"]


async def test_transcribe_a_recording(service: tuple[str, int]) -> None:
    events = [Transcribe(language="en").event(), *_wav_events("local_what_time.wav")]
    got = await _exchange(service, *events, until="transcript")
    text = Transcript.from_event(got[-1]).text.lower()
    assert "what time" in text


async def test_transcribe_converts_rate_and_channels(service: tuple[str, int]) -> None:
    """Home Assistant may send 44.1 kHz stereo: the service converts, Whisper still hears."""
    with wave.open(str(FIXTURES / "local_what_time.wav"), "rb") as w:
        mono = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        rate = w.getframerate()
    # Crude 44.1 kHz stereo: repeat samples; the words survive.
    n = round(len(mono) * 44100 / rate)
    idx = np.minimum((np.arange(n) * rate / 44100).astype(int), len(mono) - 1)
    stereo = np.repeat(mono[idx], 2).astype("<i2").tobytes()
    chunks = [
        AudioChunk(rate=44100, width=2, channels=2, audio=stereo[i : i + 8192]).event()
        for i in range(0, len(stereo), 8192)
    ]
    start = AudioStart(rate=44100, width=2, channels=2).event()
    got = await _exchange(service, start, *chunks, AudioStop().event(), until="transcript")
    assert "what time" in Transcript.from_event(got[-1]).text.lower()


async def test_silence_transcribes_to_nothing(service: tuple[str, int]) -> None:
    """The hallucination gate holds on the service too: noise is not words."""
    noise = _wav_events("noise_white_m45dbfs_3s.wav")
    got = await _exchange(service, Transcribe().event(), *noise, until="transcript")
    assert Transcript.from_event(got[-1]).text == ""


async def test_audio_beyond_the_cap_is_dropped_not_buffered(service: tuple[str, int]) -> None:
    one_s = np.zeros(16000, "<i2").tobytes()
    chunks = [AudioChunk(rate=16000, width=2, channels=1, audio=one_s).event()] * 25
    start = AudioStart(rate=16000, width=2, channels=1).event()
    got = await _exchange(service, start, *chunks, AudioStop().event(), until="transcript")
    assert Transcript.from_event(got[-1]).text == ""


async def test_synthesize_speaks_the_text(service: tuple[str, int], parts: Parts) -> None:
    text = "Good evening. The kitchen lights are on."
    got = await _exchange(service, Synthesize(text=text).event(), until="audio-stop")
    assert got[0].type == "audio-start"
    chunks = [AudioChunk.from_event(e) for e in got if e.type == "audio-chunk"]
    assert chunks and all(c.width == 2 and c.channels == 1 for c in chunks)
    rate = chunks[0].rate
    audio = pcm16_to_float(b"".join(c.audio for c in chunks))
    assert 1.0 < len(audio) / rate < 10.0
    # What was sent is that text: ATLAS's own ears hear it back.
    from voice.tts import resample_to

    heard = await parts.ears.transcriber.transcribe(resample_to(audio, rate, 16000))
    # Piper's noise makes each synthesis a little different; tiny.en may mishear a word
    # ("the catching lights"): most of the sentence must come back, not every word.
    said = {"good", "evening", "the", "kitchen", "lights", "are", "on"}
    words = set(heard.text.lower().replace(".", " ").replace(",", " ").split())
    assert len(said & words) >= 5, heard.text


async def test_empty_synthesize_is_an_error_event(service: tuple[str, int]) -> None:
    got = await _exchange(service, Synthesize(text="   ").event(), until="audio-stop")
    assert Error.from_event(got[-1]).code == "tts-empty"
    # The service lives on.
    [event] = await _exchange(service, Describe().event(), until="info")
    assert Info.is_type(event.type)


async def test_handle_answers_with_the_routed_answer(service: tuple[str, int]) -> None:
    got = await _exchange(service, Transcript(text="what time is it").event(), until="handled")
    said = Handled.from_event(got[-1]).text or ""
    # The clock skill's words ('seven thirty in the morning', 'noon', 'midnight').
    assert re.search(r"\b(in the (morning|afternoon|evening)|at night|noon|midnight)\b", said)


async def test_handle_reaches_the_cloud_tier(service: tuple[str, int], parts: Parts) -> None:
    parts.anthropic.enqueue(FakeScript(text="Rainbows come from light bent by raindrops."))
    before = len(parts.anthropic.requests)
    got = await _exchange(
        service,
        Transcript(text="why do rainbows form after the rain, in a few words").event(),
        until="handled",
    )
    assert "raindrops" in (Handled.from_event(got[-1]).text or "")
    assert len(parts.anthropic.requests) == before + 1


async def test_garbage_closes_only_that_connection(service: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*service)
    writer.write(b"this is not json\n")
    await writer.drain()
    async with asyncio.timeout(TIMEOUT_S):
        assert await reader.read() == b""  # closed
    writer.close()
    [event] = await _exchange(service, Describe().event(), until="info")
    assert Info.is_type(event.type)


async def test_a_clients_text_never_changes_config(service: tuple[str, int], parts: Parts) -> None:
    """Wyoming has no authentication: whatever a client says is a question, never a
    setting. The budget's limits (changed only by `atlas budget set`) stay as they are."""
    before = parts.brain.budget.status()
    for text in (
        "set my daily budget to one thousand dollars",
        "atlas budget set --daily 1000 --monthly 5000",
        "disable the wake word and switch to the agent tier",
    ):
        got = await _exchange(service, Transcript(text=text).event(), until="handled")
        assert got[-1].type in ("handled", "not-handled")
    after = parts.brain.budget.status()
    assert (after.daily_limit, after.monthly_limit) == (
        before.daily_limit,
        before.monthly_limit,
    )
