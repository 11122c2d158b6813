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

import numpy as np
import soundfile as sf
import structlog

from atlas.app import Ears
from atlas.bench.ears import FIXTURES, SHARED_AUDIO
from atlas.bench.heard import (
    DEFAULT_LEVEL_DBFS,
    ENERGY_BASIS,
    MANIFEST_BASIS,
    HeardReply,
    InputSpeech,
    SpeechSpan,
    energy_spans,
    replies,
    stated_spans,
)
from atlas.bench.report import PipelineReport, TurnSample
from atlas.daemon import Stack, build_stack, serve_recording
from atlas.settings import Secrets, Settings
from atlas.testing.fake_anthropic import FakeAnthropic, LatencyProfile
from atlas.turn import TurnRecord
from atlas.wake import WakeConfig
from voice.audio import DecodedAudio, decode_audio
from voice.sinks import AudioSink, NullSink, WavSink
from voice.tts import SpeechChunk, Synthesizer
from voice.types import SAMPLE_RATE, Samples, Transcript

log = structlog.get_logger("atlas.bench.pipeline")

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
_REPLY_RATE = 22050
WARMUP_FILES = 3
"""Files replayed once before measuring (models' first calls are slow)."""
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
    repeats: int = 2
    warmup: bool = True
    live: bool = False
    no_wake: bool = False
    profile: CloudProfile = CloudProfile()
    out_dir: Path | None = None
    level_dbfs: float = DEFAULT_LEVEL_DBFS


@dataclass(frozen=True)
class Fixture:
    path: Path
    expected_turns: int
    """Turns the manifest says the file holds (0 for silence, noise, tones)."""
    addresses_atlas: bool
    spans: tuple[SpeechSpan, ...] = ()
    """The manifest's stated speech start/end per utterance (seconds into the file)."""
    kind: str = ""


def manifest_fixtures(folder: Path = FIXTURES) -> list[Fixture]:
    """Every row of the fixtures' manifest.tsv, with its expected number of turns."""
    with (folder / "manifest.tsv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = []
    for r in rows:
        text = (r.get("text") or "").strip()
        turns = len(text.split("|")) if text else 0
        spans = stated_spans(r.get("speech_start_s") or "", r.get("speech_end_s") or "")
        out.append(
            Fixture(folder / r["file"], turns, "atlas" in text.lower(), spans, r.get("kind", ""))
        )
    return out


SHARED_RECORDINGS = (
    "rhasspy_what_time_is_it.wav",
    "ps_goforward.wav",
    "ps_librivox_0880.wav",
    "sr_english.wav",
)
"""Real recordings (../shared/audio, when present) measured by default beside the fixtures:
real voices, real noise floors; they do not say "Atlas", so they are replayed without
the wake phrase."""

QUICK_KINDS = ("local", "chat", "haiku", "agent", "pause")


def default_files(quick: bool = False) -> tuple[Path, ...]:
    """The speech fixtures that address ATLAS (so every one of them makes a turn), and
    the shared real recordings when present. `quick`: one fixture per kind, and the
    first two recordings."""
    fixtures = [f for f in manifest_fixtures() if f.expected_turns and f.addresses_atlas]
    if quick:
        seen: set[str] = set()
        picked = []
        for f in fixtures:
            if f.kind in QUICK_KINDS and f.kind not in seen:
                seen.add(f.kind)
                picked.append(f)
        fixtures = picked
    shared = [SHARED_AUDIO / n for n in SHARED_RECORDINGS[: 2 if quick else None]]
    return tuple(f.path for f in fixtures) + tuple(p for p in shared if p.is_file())


def input_speech(path: Path, samples: Samples, known: dict[Path, Fixture]) -> InputSpeech:
    """Where the person spoke: the manifest's stated times, else the energy end-point."""
    fx = known.get(path.resolve())
    if fx is not None and fx.spans:
        return InputSpeech(fx.spans, MANIFEST_BASIS)
    return InputSpeech(energy_spans(samples, SAMPLE_RATE), ENERGY_BASIS)


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


class MeasuredSynthesizer:
    """Forwards to the real voice and remembers (synth ms, audio s) of each answer chunk,
    for the report's TTS real-time factor (fillers are synthesized once, at start)."""

    def __init__(self, inner: Synthesizer) -> None:
        self._inner = inner
        self.chunks: deque[tuple[float, float]] = deque(maxlen=4096)

    @property
    def sample_rate(self) -> int:
        return self._inner.sample_rate

    def synthesize(self, text: str) -> Samples:
        return self._inner.synthesize(text)

    async def stream(self, chunks: AsyncIterator[str]) -> AsyncIterator[SpeechChunk]:
        async for piece in self._inner.stream(chunks):
            if piece.duration_s > 0:
                self.chunks.append((piece.synth_ms, piece.duration_s))
            yield piece

    def rtf(self) -> float:
        audio = sum(a for _, a in self.chunks)
        return sum(ms / 1000 for ms, _ in self.chunks) / audio if audio else float("nan")

    def warm(self) -> None:
        self._inner.warm()

    def close(self) -> None:
        self._inner.close()


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


@dataclass(frozen=True)
class Variant:
    """One run of the pipeline benchmark: the daemon as configured ("main"), or with one
    thing changed for a side-by-side comparison."""

    name: str = "main"
    filler: bool = True
    stream_tts: bool = True


@dataclass
class Slowest:
    """The slowest turn seen so far, with both recordings, for the waveform plot."""

    sample: TurnSample
    speech: InputSpeech
    input: Samples
    reply: Samples
    reply_rate: int


class PipelineRunner:
    """Replays files through one built stack, each through `atlas replay`'s own code
    (`daemon.serve_recording`), and measures every reply from its recording."""

    def __init__(
        self,
        stack: Stack,
        settings: Settings,
        *,
        no_wake: bool = False,
        level_dbfs: float = DEFAULT_LEVEL_DBFS,
        workdir: Path,
    ) -> None:
        self.stack = stack
        self.settings = settings
        self.transcriber = MeasuredTranscriber(stack.ears.transcriber)
        self.synthesizer = MeasuredSynthesizer(stack.tts)
        self.ears = Ears(settings, stack.ears.vad, cast(Any, self.transcriber))
        self.no_wake = no_wake
        self.level_dbfs = level_dbfs
        self.workdir = workdir
        self.known = {f.path.resolve(): f for f in manifest_fixtures()}
        self.slowest: Slowest | None = None

    def wake_for(self, path: Path) -> WakeConfig:
        """Fixtures that say "Atlas" keep the wake phrase; other recordings don't need it."""
        fx = self.known.get(path.resolve())
        if self.no_wake or fx is None or not fx.addresses_atlas:
            return replace(self.settings.wake, enabled=False)
        return self.settings.wake

    async def run_file(
        self,
        path: Path,
        audio: DecodedAudio,
        repeat: int,
        out: Path | None = None,
        variant: Variant = Variant(),
    ) -> list[TurnSample]:
        self.stack.brain.router.forget()  # each file is a conversation of its own
        lead = self.settings.file_input.lead_silence_ms / 1000
        start = time.monotonic() + 0.05  # a moment to set up, so no frame is late
        reply_path = out or self.workdir / "reply.wav"
        # The input is paced like a microphone; the reply WAV's sample 0 is the input
        # file's sample 0. It does not wait for playout (the turn's audio is placed on
        # the clock all the same), so long answers do not stretch the run.
        sink = WavSink(reply_path, _REPLY_RATE, start_at=start + lead, realtime=False)
        records: list[TurnRecord] = []
        stack = replace(
            self.stack,
            ears=self.ears,
            assistant=self.stack.assistant.variant(
                filler=variant.filler, stream_tts=variant.stream_tts, tts=self.synthesizer
            ),
        )
        try:
            await serve_recording(
                stack,
                audio,
                sink=cast(AudioSink, sink),
                start_at=start,
                realtime=True,
                wake=self.wake_for(path),
                on_turn=records.append,
                wait_for_timers=False,
            )
        finally:
            played = [(s.label or "audio", s.start_s, s.end_s) for s in sink.segments]
            await sink.aclose()
        self.stack.brain.timers.cancel("all")  # the next file must not hear them ring
        reply, rate = _read_reply(reply_path)
        speech = input_speech(path, audio.samples, self.known)
        heard = replies(speech, reply, rate, played, self.level_dbfs)
        samples = self._samples(path, repeat, records, start + lead, speech, heard, variant)
        if variant.name == "main" and repeat >= 0:
            self._keep_if_slowest(samples, speech, audio.samples, reply, rate)
        return samples

    def _keep_if_slowest(
        self,
        samples: list[TurnSample],
        speech: InputSpeech,
        audio: Samples,
        reply: Samples,
        rate: int,
    ) -> None:
        for s in samples:
            v = s.heard_ms
            if v is None:
                continue
            worst = self.slowest.sample.heard_ms if self.slowest else None
            if worst is None or v > worst:
                self.slowest = Slowest(s, speech, audio, reply, rate)

    def _samples(
        self,
        path: Path,
        repeat: int,
        records: list[TurnRecord],
        zero_at: float,
        speech: InputSpeech,
        heard: list[HeardReply],
        variant: Variant,
    ) -> list[TurnSample]:
        """One sample per turn; each utterance's reply (from the audio) goes to the first
        turn whose end of speech falls inside that utterance's window."""
        out: list[TurnSample] = []
        claimed: set[int] = set()
        for rec in records:
            end = rec.timestamps.get("speech_end")
            u = None if end is None else _utterance_at(speech, end - zero_at)
            reply = None
            if u is not None and u not in claimed and rec.addressed:
                claimed.add(u)
                reply = heard[u]
            stt = self.transcriber.lookup(rec.transcript)
            out.append(
                TurnSample(
                    file=path.name,
                    repeat=repeat,
                    record=rec,
                    stt_ms=stt[0] if stt else None,
                    stt_audio_s=stt[1] if stt else None,
                    heard=reply,
                    speech_basis=speech.basis,
                    run=variant.name,
                    zero_at=zero_at,
                )
            )
        return out


IDLE_S = 20.0
"""Seconds of near-silence replayed through the whole daemon to measure its idle cost."""


async def measure_idle(runner: PipelineRunner, seconds: float = IDLE_S) -> dict[str, float]:
    """The warm daemon listening to a quiet room (real-time pace, through the same loop):
    CPU as % of one core (the whole process: model threads included) and its RSS."""
    rng = np.random.default_rng(0)
    quiet = (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 1e-4).astype(np.float32)
    audio = DecodedAudio(quiet, SAMPLE_RATE, 1, seconds, ())
    c0, w0 = time.process_time(), time.perf_counter()
    await runner.run_file(Path("idle.wav"), audio, -1)
    cpu = 100 * (time.process_time() - c0) / (time.perf_counter() - w0)
    return {"seconds": seconds, "cpu_percent_of_a_core": round(cpu, 2), "rss_mb": _rss_mb()}


def _rss_mb() -> float:
    """Resident memory of this process now (MB), from /proc; 0 where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _utterance_at(speech: InputSpeech, t: float) -> int | None:
    """The utterance whose window [its start, the next one's start) holds file time t."""
    found = None
    for i, span in enumerate(speech.spans):
        if t >= span.start_s - 0.5:  # a VAD stamp may lead the stated start a little
            found = i
    return found


def _read_reply(path: Path) -> tuple[Samples, int]:
    data, rate = sf.read(str(path), dtype="float32", always_2d=False)
    return np.asarray(data, dtype=np.float32), int(rate)


async def run_variant(
    runner: PipelineRunner,
    files: Sequence[Path],
    audios: dict[Path, DecodedAudio],
    repeats: int,
    variant: Variant,
    progress: Callable[[str], None],
    out_dir: Path | None = None,
) -> list[TurnSample]:
    """`repeats` passes over `files` (repeat -1 is a warm-up whose turns are dropped)."""
    turns: list[TurnSample] = []
    for repeat in range(repeats):
        for path in files:
            out = None
            if out_dir is not None and repeat == repeats - 1:
                out_dir.mkdir(parents=True, exist_ok=True)
                out = out_dir / f"{path.stem}.reply.wav"
            turns.extend(await runner.run_file(path, audios[path], repeat, out, variant))
            progress(path.name)
    return turns


async def run_pipeline(
    settings: Settings,
    secrets: Secrets,
    options: PipelineOptions,
    report: PipelineReport,
    progress: Callable[[str], None] = lambda _: None,
    extras: Callable[[PipelineRunner, dict[Path, DecodedAudio]], Any] | None = None,
) -> PipelineReport:
    """A short warm-up, then `repeats` passes over the files; turns go into `report`.

    `extras` (the side-by-side comparisons) runs with the same built stack afterwards."""
    # A bad file is one line before any model is loaded.
    limit = settings.file_input.max_duration_s
    audios = {p: decode_audio(p, limit) for p in options.files}
    with (
        cloud_backend(settings, secrets, options.live, options.profile) as (s, sec, cloud),
        tempfile.TemporaryDirectory(prefix="atlas-bench-replies-") as tmp,
    ):
        report.setup["cloud"] = cloud
        stack = await build_stack(
            s, sec, lambda: NullSink(_REPLY_RATE, realtime=False), lambda _: None
        )
        try:
            runner = PipelineRunner(
                stack,
                s,
                no_wake=options.no_wake,
                level_dbfs=options.level_dbfs,
                workdir=Path(tmp),
            )
            if options.warmup:
                for path in options.files[:WARMUP_FILES]:
                    await runner.run_file(path, audios[path], -1)
                    progress(path.name)
            report.turns.extend(
                await run_variant(
                    runner,
                    options.files,
                    audios,
                    options.repeats,
                    Variant(),
                    progress,
                    options.out_dir,
                )
            )
            report.tts_rtf = runner.synthesizer.rtf()
            report.idle = await measure_idle(runner)
            if extras is not None:
                await extras(runner, audios)
            report.slowest = runner.slowest
        finally:
            await stack.aclose()
    return report


async def aiter_once(text: str) -> AsyncIterator[str]:
    yield text
