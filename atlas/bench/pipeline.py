"""`atlas bench pipeline`: WAV fixtures through the daemon's real pipeline, timed per stage.

The stack (STT, embedder, local LLM, Piper, filler cache) is built ONCE with
`atlas.daemon.build_stack`; each file then gets a fresh Assistant/Conversation on its
own simulated speaker, fed by a real-time FileSource whose clock is shared with the
speaker, so "end of speech -> first sample" is exactly what a person would hear.
Cloud tiers answer from the fake Anthropic server (a real HTTP server on 127.0.0.1 with
a latency profile per model) unless `live` is set and a key is present.
"""

from __future__ import annotations

import contextlib
import csv
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import structlog

from atlas.app import Ears
from atlas.bench.ears import FIXTURES
from atlas.bench.report import PipelineReport, TurnSample
from atlas.conversation import Conversation
from atlas.daemon import Stack, build_stack
from atlas.settings import Secrets, Settings
from atlas.testing.fake_anthropic import FakeAnthropic, LatencyProfile
from atlas.turn import TurnRecord
from atlas.wake import WakeGate
from voice.audio import DecodedAudio, decode_audio
from voice.sinks import AudioSink, NullSink, WavSink
from voice.types import Samples, Transcript

log = structlog.get_logger("atlas.bench.pipeline")

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
_REPLY_RATE = 22050
_FAKE_KEY = "sk-ant-bench-fake"  # only ever sent to the loopback fake
_CLOUD_ANSWER = (
    "Certainly. A heat pump moves warmth rather than making it, much as a refrigerator "
    "does in reverse. On a cold day it still finds heat outside and carries it indoors. "
    "That is why it costs so little to run."
)


@dataclass(frozen=True)
class CloudProfile:
    """How the fake Anthropic server answers (ignored with `live`)."""

    haiku_first_token_ms: float = 500.0
    agent_first_token_ms: float = 6000.0
    tokens_per_s: float = 50.0
    answer: str = _CLOUD_ANSWER

    def as_dict(self) -> dict[str, Any]:
        return {
            "haiku_first_token_ms": self.haiku_first_token_ms,
            "agent_first_token_ms": self.agent_first_token_ms,
            "tokens_per_s": self.tokens_per_s,
        }


@dataclass(frozen=True)
class PipelineOptions:
    files: tuple[Path, ...]
    repeats: int = 3
    warmup: bool = True
    live: bool = False
    no_wake: bool = False
    profile: CloudProfile = CloudProfile()
    out_dir: Path | None = None


@dataclass(frozen=True)
class Fixture:
    path: Path
    expected_turns: int
    """Turns the manifest says the file holds (0 for silence, noise, tones)."""
    addresses_atlas: bool


def manifest_fixtures(folder: Path = FIXTURES) -> list[Fixture]:
    """Every row of the fixtures' manifest.tsv, with its expected number of turns."""
    with (folder / "manifest.tsv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = []
    for r in rows:
        text = (r.get("text") or "").strip()
        turns = len(text.split("|")) if text else 0
        out.append(Fixture(folder / r["file"], turns, "atlas" in text.lower()))
    return out


def default_files() -> tuple[Path, ...]:
    """The speech fixtures that address ATLAS (so every one of them makes a turn)."""
    return tuple(f.path for f in manifest_fixtures() if f.expected_turns and f.addresses_atlas)


def expand_paths(paths: Sequence[Path]) -> tuple[Path, ...]:
    """Files as given; folders become their audio files (sorted). Missing: ValueError."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in AUDIO_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise ValueError(f"no such file or folder: {p}")
    if not out:
        raise ValueError("no audio files to replay")
    return tuple(out)


class MeasuredTranscriber:
    """Forwards to the real transcriber and remembers (text, stt ms, audio s) per call.

    The conversation may transcribe speculatively during the hangover; the turn's STT
    time is that of the last finished call whose text is the turn's transcript."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: deque[tuple[str, float, float]] = deque(maxlen=64)

    async def transcribe(self, audio: Samples) -> Transcript:
        t: Transcript = await self._inner.transcribe(audio)
        self.calls.append((t.text, t.stt_ms, len(audio) / 16000))
        return t

    def transcribe_sync(self, audio: Samples) -> Transcript:
        t: Transcript = self._inner.transcribe_sync(audio)
        self.calls.append((t.text, t.stt_ms, len(audio) / 16000))
        return t

    def lookup(self, text: str) -> tuple[float, float] | None:
        for heard, ms, audio_s in reversed(self.calls):
            if heard == text:
                return ms, audio_s
        return None

    def warm(self) -> None:
        self._inner.warm()

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()


@contextlib.contextmanager
def cloud_backend(
    settings: Settings, secrets: Secrets, live: bool, profile: CloudProfile
) -> Iterator[tuple[Settings, Secrets, str]]:
    """Settings/secrets pointing the cloud tiers at the fake (or the real API with `live`).

    With the fake, the cost ledger is a temporary file: made-up spend must never reach
    the user's real budget."""
    if live and secrets.anthropic_api_key:
        yield settings, secrets, "live"
        return
    anth = settings.llm.anthropic
    tps = profile.tokens_per_s
    with FakeAnthropic(LatencyProfile(profile.haiku_first_token_ms, tps, profile.answer)) as fake:
        fake.set_model_profile(
            anth.haiku.model, LatencyProfile(profile.haiku_first_token_ms, tps, profile.answer)
        )
        fake.set_model_profile(
            anth.agent.model, LatencyProfile(profile.agent_first_token_ms, tps, profile.answer)
        )
        with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
            llm = replace(settings.llm, anthropic=replace(anth, base_url=fake.base_url))
            budget = replace(settings.budget, db_path=str(Path(tmp) / "ledger.sqlite3"))
            yield replace(settings, llm=llm, budget=budget), Secrets(_FAKE_KEY), "fake"


class PipelineRunner:
    """Replays files through one built stack; one fresh conversation per file."""

    def __init__(self, stack: Stack, settings: Settings, *, no_wake: bool = False) -> None:
        self.stack = stack
        self.settings = settings
        self.transcriber = MeasuredTranscriber(stack.ears.transcriber)
        self.ears = Ears(settings, stack.ears.vad, cast(Any, self.transcriber))
        self.wake = replace(settings.wake, enabled=False) if no_wake else settings.wake

    async def run_file(
        self, path: Path, audio: DecodedAudio, repeat: int, out: Path | None = None
    ) -> list[TurnSample]:
        self.stack.brain.router.forget()  # each file is a conversation of its own
        lead = self.settings.file_input.lead_silence_ms / 1000
        start = time.monotonic() + 0.05  # a moment to set up, so no frame is late
        # The sink does not wait for playout (realtime=False) but places every sample on
        # the same clock as the input, so the stamps are what a person would hear.
        sink: NullSink | WavSink = (
            WavSink(out, _REPLY_RATE, start_at=start + lead, realtime=False)
            if out is not None
            else NullSink(_REPLY_RATE, start_at=start + lead, realtime=False)
        )
        records: list[TurnRecord] = []
        assistant = self.stack.assistant.with_sink(cast(AudioSink, sink), WakeGate(self.wake))
        conversation = Conversation(
            self.ears, assistant, self.settings.assistant, None, records.append
        )
        source = self.ears.file_source(audio, realtime=True)
        source.start_at = start
        try:
            await conversation.serve(source, sequential=False)
            await conversation.wait_idle()
        finally:
            segments = [
                (s.label or "audio", sink.start_at + s.start_s, sink.start_at + s.end_s)
                for s in sink.segments
            ]
            await sink.aclose()
        return self._samples(path, repeat, records, segments)

    def _samples(
        self,
        path: Path,
        repeat: int,
        records: list[TurnRecord],
        segments: list[tuple[str, float, float]],
    ) -> list[TurnSample]:
        out: list[TurnSample] = []
        for i, rec in enumerate(records):
            begin = rec.timestamps.get("speech_end", 0.0)
            nxt = records[i + 1].timestamps.get("speech_end") if i + 1 < len(records) else None
            audio = tuple(s for s in segments if s[1] >= begin and (nxt is None or s[1] < nxt))
            stt = self.transcriber.lookup(rec.transcript)
            out.append(
                TurnSample(
                    file=path.name,
                    repeat=repeat,
                    record=rec,
                    stt_ms=stt[0] if stt else None,
                    stt_audio_s=stt[1] if stt else None,
                    audio=audio,
                )
            )
        return out


async def run_pipeline(
    settings: Settings,
    secrets: Secrets,
    options: PipelineOptions,
    report: PipelineReport,
    progress: Callable[[str], None] = lambda _: None,
    extras: Callable[[PipelineRunner], Any] | None = None,
) -> PipelineReport:
    """Warm-up pass, then `repeats` passes over the files; turns go into `report`.

    `extras` (the side-by-side comparisons) runs with the same built stack afterwards."""
    with cloud_backend(settings, secrets, options.live, options.profile) as (s, sec, cloud):
        report.setup["cloud"] = cloud
        stack = await build_stack(
            s, sec, lambda: NullSink(_REPLY_RATE, realtime=False), lambda _: None
        )
        try:
            runner = PipelineRunner(stack, s, no_wake=options.no_wake)
            audios = {p: decode_audio(p, s.file_input.max_duration_s) for p in options.files}
            first = -1 if options.warmup else 0
            for repeat in range(first, options.repeats):
                for path in options.files:
                    out = None
                    if options.out_dir is not None and repeat == options.repeats - 1:
                        options.out_dir.mkdir(parents=True, exist_ok=True)
                        out = options.out_dir / f"{path.stem}.reply.wav"
                    samples = await runner.run_file(path, audios[path], repeat, out)
                    if repeat >= 0:
                        report.turns.extend(samples)
                    progress(path.name)
            if extras is not None:
                await extras(runner)
        finally:
            await stack.aclose()
    return report


async def aiter_once(text: str) -> AsyncIterator[str]:
    yield text
