"""ATLAS's engines as Wyoming services: what Home Assistant's Wyoming integration talks to.

One `ServiceHandler` per client connection, one event at a time (as rhasspy/wyoming's
handlers do):

* describe -> info (asr, tts and, with a brain, handle)
* transcribe?, audio-start, audio-chunk*, audio-stop -> transcript (Whisper + the
  hallucination gate; audio beyond `max_audio_s` is dropped, never buffered)
* synthesize -> audio-start, audio-chunk*, audio-stop (Piper, sentence by sentence)
* transcript -> handled (ATLAS's routed answer) or not-handled

A client's text is only ever a question to answer: no event changes ATLAS's config.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import structlog
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
)
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize

from atlas import __version__
from atlas.wyoming.pcm import WIDTH, chunk_samples, ears_converter, float_to_pcm16
from voice.chunker import SentenceChunker, chunks
from voice.config import ChunkerConfig
from voice.stt import Transcriber
from voice.tts import Synthesizer
from voice.types import SAMPLE_RATE, Samples

log = structlog.get_logger("atlas.wyoming.services")

_ATTRIBUTION = Attribution(name="ATLAS", url="https://github.com/atlas-assistant/atlas")
_CHUNK_SAMPLES = 1024
"""Samples per audio-chunk event sent (what wyoming-piper sends)."""

Answer = Callable[[str], Awaitable[str]]
"""Transcript text in, ATLAS's spoken answer out."""


@dataclass(frozen=True)
class Engines:
    """What the services run on: loaded once, shared by every connection."""

    transcriber: Transcriber
    tts: Synthesizer
    chunker: ChunkerConfig
    stt_model: str
    voice: str
    language: str
    answer: Answer | None = None
    """None: no `handle` service (`--no-handle`)."""
    home_control: bool = False
    max_audio_s: float = 30.0

    def info(self) -> Info:
        languages = [self.language]
        asr = AsrProgram(
            name="atlas-asr",
            attribution=_ATTRIBUTION,
            installed=True,
            description="ATLAS's Whisper with its hallucination gate",
            version=__version__,
            models=[
                AsrModel(
                    name=self.stt_model,
                    attribution=_ATTRIBUTION,
                    installed=True,
                    description=self.stt_model,
                    version=None,
                    languages=languages,
                )
            ],
        )
        tts = TtsProgram(
            name="atlas-tts",
            attribution=_ATTRIBUTION,
            installed=True,
            description="ATLAS's Piper voice",
            version=__version__,
            voices=[
                TtsVoice(
                    name=self.voice,
                    attribution=_ATTRIBUTION,
                    installed=True,
                    description=self.voice,
                    version=None,
                    languages=languages,
                )
            ],
        )
        handle = []
        if self.answer is not None:
            handle.append(
                HandleProgram(
                    name="atlas",
                    attribution=_ATTRIBUTION,
                    installed=True,
                    description="ATLAS: routed answers in the Lethal Gentleman's voice",
                    version=__version__,
                    models=[
                        HandleModel(
                            name="atlas",
                            attribution=_ATTRIBUTION,
                            installed=True,
                            description="ATLAS",
                            version=__version__,
                            languages=languages,
                        )
                    ],
                    supports_home_control=self.home_control,
                )
            )
        return Info(asr=[asr], tts=[tts], handle=handle)


class _AudioBuffer:
    """One asr request's audio at 16 kHz, capped at `max_s` (the rest is dropped)."""

    def __init__(self, max_s: float) -> None:
        self._max = round(max_s * SAMPLE_RATE)
        self._parts: list[Samples] = []
        self._size = 0
        self.dropped = False
        self._converter: AudioChunkConverter = ears_converter()

    def add(self, chunk: AudioChunk) -> None:
        samples = chunk_samples(chunk, self._converter)
        room = self._max - self._size
        if len(samples) > room:
            if not self.dropped:
                log.warning("asr.audio_cut", max_s=self._max / SAMPLE_RATE)
            self.dropped = True
            samples = samples[: max(room, 0)]
        if len(samples):
            self._parts.append(samples)
            self._size += len(samples)

    def samples(self) -> Samples:
        if not self._parts:
            return np.zeros(0, np.float32)
        return np.concatenate(self._parts).astype(np.float32, copy=False)


class ServiceHandler(AsyncEventHandler):
    """One client connection (Home Assistant opens one per request)."""

    def __init__(self, engines: Engines, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._engines = engines
        self._audio: _AudioBuffer | None = None

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except (ConnectionError, OSError):
            return False  # the client went away: nothing to answer
        return True

    async def _dispatch(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self.write_event(self._engines.info().event())
        elif AudioStart.is_type(event.type):
            self._audio = _AudioBuffer(self._engines.max_audio_s)
        elif AudioChunk.is_type(event.type):
            if self._audio is None:  # a client that skipped audio-start
                self._audio = _AudioBuffer(self._engines.max_audio_s)
            self._audio.add(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            await self._transcribe()
        elif Synthesize.is_type(event.type):
            await self._synthesize(Synthesize.from_event(event).text)
        elif Transcript.is_type(event.type):
            await self._handle(Transcript.from_event(event).text)
        else:
            log.debug("wyoming.ignored", type=event.type)

    async def _transcribe(self) -> None:
        audio, self._audio = self._audio, None
        samples = audio.samples() if audio else np.zeros(0, np.float32)
        try:
            transcript = await self._engines.transcriber.transcribe(samples)
        except Exception as e:  # one line to the client, never a dead connection
            log.error("asr.failed", error=type(e).__name__)
            await self.write_event(Error(text="transcription failed", code="asr-failed").event())
            return
        log.info("asr", chars=len(transcript.text), stt_ms=round(transcript.stt_ms, 1))
        await self.write_event(Transcript(text=transcript.text).event())

    async def _synthesize(self, text: str) -> None:
        if not text.strip():
            await self.write_event(Error(text="nothing to synthesize", code="tts-empty").event())
            return
        tts = self._engines.tts
        rate = tts.sample_rate
        await self.write_event(AudioStart(rate=rate, width=WIDTH, channels=1).event())
        try:
            async for piece in tts.stream(_sentences(text, self._engines.chunker)):
                for i in range(0, len(piece.audio), _CHUNK_SAMPLES):
                    pcm = float_to_pcm16(piece.audio[i : i + _CHUNK_SAMPLES])
                    chunk = AudioChunk(rate=piece.sample_rate, width=WIDTH, channels=1, audio=pcm)
                    await self.write_event(chunk.event())
        except (ConnectionError, OSError):
            raise
        except Exception as e:
            log.error("tts.failed", error=type(e).__name__)
        await self.write_event(AudioStop().event())

    async def _handle(self, text: str) -> None:
        answer = self._engines.answer
        if answer is None:
            await self.write_event(NotHandled(text=None).event())
            return
        try:
            said = await answer(text)
        except Exception as e:
            log.error("handle.failed", error=type(e).__name__)
            await self.write_event(NotHandled(text=None).event())
            return
        await self.write_event(Handled(text=said).event())


async def _sentences(text: str, config: ChunkerConfig) -> AsyncIterator[str]:
    async def whole() -> AsyncIterator[str]:
        yield text

    async for chunk in chunks(whole(), SentenceChunker(config)):
        yield chunk
