"""Shared pieces for replay tests of the assembled assistant.

The expensive parts (Whisper, Silero, MiniLM router, embedded SmolLM2, Piper, the filler
cache) are loaded once per module by `load_assistant_parts`; each test builds its own
cheap `Assistant` + `Conversation` + `WavSink` on top of them (`ReplaySession`), exactly
as `atlas.daemon.build_stack` wires them. Cloud tiers talk to a `FakeAnthropic` on
127.0.0.1 through the real SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import wave
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from atlas.app import Ears, build_ears, build_store
from atlas.assistant import Assistant
from atlas.brain import Brain, build_brain
from atlas.conversation import Conversation
from atlas.daemon import build_tts
from atlas.filler import FillerCache
from atlas.persona import Persona
from atlas.settings import Secrets, Settings, load_settings
from atlas.testing.fake_anthropic import FakeAnthropic
from atlas.turn import TurnRecord
from atlas.wake import WakeConfig, WakeGate
from tests.conftest import FIXTURES, fixture_rows
from voice.audio import AudioSource, decode_audio
from voice.sinks import SinkSegment, WavSink
from voice.tts import PiperSynthesizer, resample_to
from voice.types import AudioFrame, Samples

RATE_IN = 16_000
REPLY_RATE = 22_050
FRAME = 512
FRAME_S = FRAME / RATE_IN
FAKE_KEY = "sk-ant-test-replay-0000"


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeAnthropic]:
    """A fake Anthropic API on 127.0.0.1, one per test module."""
    with FakeAnthropic() as fake:
        yield fake


def replay_settings(tmp: Path, anthropic_url: str) -> Settings:
    """The shipped config, with the ledger in `tmp`, the cloud at the fake, quick retries,
    and a breaker that opens on ONE counted failure (so a wrongly counted barge-in shows)."""
    s = load_settings()
    anth = replace(
        s.llm.anthropic, base_url=anthropic_url, retries=1, retry_initial_s=0.05, retry_max_s=0.1
    )
    return replace(
        s,
        # Short local answers keep the suite quick; they are spoken all the same.
        llm=replace(
            s.llm,
            anthropic=anth,
            local=replace(s.llm.local, backend="embedded", max_tokens=60),
        ),
        budget=replace(s.budget, db_path=str(tmp / "ledger.sqlite3")),
        breaker=replace(s.breaker, fail_max=1, reset_timeout_s=1.0),
    )


@dataclass
class Parts:
    settings: Settings
    ears: Ears
    brain: Brain
    tts: PiperSynthesizer
    fillers: FillerCache
    persona: Persona
    anthropic: FakeAnthropic

    async def aclose(self) -> None:
        await self.brain.aclose()
        self.ears.close()
        self.tts.close()


async def load_parts(tmp: Path, anthropic: FakeAnthropic) -> Parts:
    settings = replay_settings(tmp, anthropic.base_url)
    store = build_store(settings)
    ears = build_ears(settings, store)
    brain = await build_brain(settings, store, Secrets(anthropic_api_key=FAKE_KEY))
    tts = build_tts(settings, store)
    persona = Persona(settings.persona)
    fillers = FillerCache(persona, tts, settings.persona.fillers)
    return Parts(settings, ears, brain, tts, fillers, persona, anthropic)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def parts(
    anthropic: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Parts]:
    """The models, loaded once per test module (each module has its own event loop)."""
    loaded = await load_parts(tmp_path_factory.mktemp("replay"), anthropic)
    yield loaded
    await loaded.aclose()


# ------------------------------------------------------------------------ a session


class ReplaySession:
    """One replay: a fresh sink, assistant and conversation over the shared parts."""

    def __init__(
        self,
        parts: Parts,
        out: Path,
        *,
        realtime: bool,
        barge_in: bool = False,
        wake: WakeConfig | None = None,
        wake_clock: Callable[[], float] = time.monotonic,
        on_turn: Callable[[TurnRecord], None] | None = None,
    ) -> None:
        s = parts.settings
        self.parts = parts
        self.out = out
        self.realtime = realtime
        self.records: list[TurnRecord] = []
        self._on_turn = on_turn
        # Stream time 0 of the input; the file source's lead silence comes first.
        self.started = time.monotonic() + 0.05
        self.lead_s = s.file_input.lead_silence_ms / 1000
        self.sink = WavSink(out, REPLY_RATE, start_at=self.started + self.lead_s, realtime=realtime)
        self.wake = WakeGate(wake or s.wake, wake_clock)
        self.assistant = Assistant(
            router=parts.brain.router,
            tts=parts.tts,
            sink=self.sink,
            fillers=parts.fillers,
            wake=self.wake,
            persona=parts.persona,
            chunker=s.chunker,
        )
        config = replace(s.assistant, barge_in=barge_in)
        self.conversation = Conversation(
            parts.ears, self.assistant, config, parts.brain.timers, self._record, s.turn_taking
        )

    def _record(self, record: TurnRecord) -> None:
        self.records.append(record)
        if self._on_turn is not None:
            self._on_turn(record)

    def file_source(self, name_or_path: str | Path) -> AudioSource:
        path = name_or_path if isinstance(name_or_path, Path) else FIXTURES / name_or_path
        source = self.parts.ears.file_source(decode_audio(path), realtime=self.realtime)
        source.start_at = self.started
        return source

    async def run(
        self,
        source: AudioSource,
        *,
        until: Callable[[list[TurnRecord]], bool] | None = None,
        timeout_s: float = 60.0,
    ) -> list[TurnRecord]:
        """Serve `source` to its end, then (optionally) wait until `until(records)`."""
        announcer = asyncio.create_task(self.conversation.announce_timers())
        try:
            async with asyncio.timeout(timeout_s):
                await self.conversation.serve(source, sequential=not self.realtime)
                while until is not None and not until(self.records):
                    await asyncio.sleep(0.02)
                await self.conversation.wait_idle()
        finally:
            announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcer
            self.parts.brain.timers.cancel("all")  # nothing may ring in a later test
            await self.sink.aclose()
        return self.records

    # -- reading the result -----------------------------------------------------

    @property
    def segments(self) -> tuple[SinkSegment, ...]:
        return self.sink.segments

    def now_s(self) -> float:
        """Now, as a position in the reply WAV."""
        return time.monotonic() - self.sink.start_at

    def reply(self) -> Samples:
        return read_wav(self.out)[0]


def read_wav(path: Path) -> tuple[Samples, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    return data.astype(np.float32) / 32767.0, rate


def rms(samples: Samples) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


def segment_rms(reply: Samples, seg: SinkSegment, rate: int = REPLY_RATE) -> float:
    return rms(reply[round(seg.start_s * rate) : round(seg.end_s * rate)])


# ------------------------------------------------------------------- input audio


def fixture_row(name: str) -> dict[str, str]:
    return next(r for r in fixture_rows() if r["file"] == name)


def speech(name: str, lead_s: float = 0.2) -> Samples:
    """A fixture's audio from `lead_s` before its speech starts (trailing silence kept)."""
    samples = decode_audio(FIXTURES / name).samples
    start = float(fixture_row(name)["speech_start_s"].split("|")[0])
    return samples[max(0, round((start - lead_s) * RATE_IN)) :]


def synthesize_16k(tts: PiperSynthesizer, text: str) -> Samples:
    """Piper (22.05 kHz) -> 16 kHz, as a microphone would hear ATLAS's voice."""
    return resample_to(tts.synthesize(text), tts.sample_rate, RATE_IN)


def write_wav_16k(path: Path, *parts: Samples) -> Path:
    audio = np.concatenate([np.asarray(p, np.float32) for p in parts])
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE_IN)
        w.writeframes(pcm.tobytes())
    return path


def silence(seconds: float) -> Samples:
    return np.zeros(round(seconds * RATE_IN), np.float32)


# ----------------------------------------------------------- a reactive live input


@dataclass(frozen=True)
class Speak:
    samples: Samples


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Until:
    """Feed silence until `condition()` holds (like a person waiting for ATLAS)."""

    condition: Callable[[], bool]
    what: str
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Do:
    action: Callable[[], None]


Step = Speak | Pause | Until | Do


@dataclass
class ScriptedSource:
    """A microphone stand-in at real-time pace whose script can wait on ATLAS's state.

    Frame k is handed out at `start_at + (k + 1) * 32 ms` (an absolute schedule, like
    `FileSource`), so stream time and the reply WAV stay aligned.
    """

    steps: Sequence[Step]
    start_at: float
    timed_out: list[str] = field(default_factory=list)
    spoke_at_s: list[tuple[float, float]] = field(default_factory=list)
    """(start, end) stream time of each Speak step."""
    _index: int = 0
    _closed: bool = False

    async def _frame(self, samples: Samples) -> AudioFrame:
        due = self.start_at + (self._index + 1) * FRAME_S
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = AudioFrame(samples=samples, start_s=self._index * FRAME_S, captured_at=due)
        self._index += 1
        return frame

    async def frames(self) -> AsyncIterator[AudioFrame]:
        quiet = np.zeros(FRAME, np.float32)
        for step in self.steps:
            if self._closed:
                return
            if isinstance(step, Speak):
                begin = self._index * FRAME_S
                n = -(-len(step.samples) // FRAME)
                padded = np.zeros(n * FRAME, np.float32)
                padded[: len(step.samples)] = step.samples
                for i in range(n):
                    yield await self._frame(padded[i * FRAME : (i + 1) * FRAME])
                self.spoke_at_s.append((begin, self._index * FRAME_S))
            elif isinstance(step, Pause):
                for _ in range(round(step.seconds / FRAME_S)):
                    yield await self._frame(quiet)
            elif isinstance(step, Until):
                deadline = time.monotonic() + step.timeout_s
                while not step.condition():
                    if time.monotonic() > deadline:
                        self.timed_out.append(step.what)
                        break
                    yield await self._frame(quiet)
            else:
                step.action()

    async def aclose(self) -> None:
        self._closed = True
