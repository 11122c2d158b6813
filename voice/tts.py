"""Text to speech: the Piper synthesizer, streaming and pipelined.

Piper (onnxruntime) is loaded once and runs in ONE worker thread owned by the
synthesizer: onnxruntime already uses every core for one call, so two synth calls side by
side would only slow each other down. `stream()` keeps exactly one chunk in preparation
ahead of the consumer, so while chunk n plays, chunk n+1 is being synthesized.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soxr
import structlog

from voice.config import TtsConfig
from voice.errors import ModelLoadError
from voice.types import Samples

log = structlog.get_logger("voice.tts")

_WARM_TEXT = "Ready."


@dataclass(frozen=True)
class SpeechChunk:
    """One synthesized chunk of an answer, in the order it is to be played."""

    text: str
    audio: Samples
    """float32 mono in [-1, 1] at `sample_rate` (the voice's rate)."""
    sample_rate: int
    synth_ms: float
    """Wall time the engine spent on this chunk (queueing excluded)."""
    index: int
    """0 for the first chunk of a stream, then 1, 2, ..."""

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


class Synthesizer(Protocol):
    """Turns text into speech audio."""

    @property
    def sample_rate(self) -> int: ...

    def synthesize(self, text: str) -> Samples:
        """The whole text as one float32 mono array (blocks; not for the event loop)."""
        ...

    def stream(self, chunks: AsyncIterator[str]) -> AsyncIterator[SpeechChunk]:
        """Speech for each text chunk, in order, prepared one chunk ahead."""
        ...

    def warm(self) -> None: ...

    def close(self) -> None: ...


def resample_to(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    """float32 mono audio at another sample rate (one-shot; for whole chunks)."""
    audio = np.asarray(samples, dtype=np.float32)
    if from_rate == to_rate or audio.size == 0:
        return audio
    out = soxr.resample(audio, from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype=np.float32)


def trim_silence(
    audio: Samples, sample_rate: int, threshold: float, lead_ms: float, tail_ms: float
) -> Samples:
    """Audio with leading near-silence cut to `lead_ms` and the tail set to `tail_ms`.

    Piper's output starts with 40-300 ms before anything is audible, which is pure
    latency; the tail is cut (or padded) to a fixed pause so consecutive chunks neither
    run together nor leave long gaps. All-quiet audio gives an empty array.
    """
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return np.zeros(0, dtype=np.float32)
    lead = int(sample_rate * lead_ms / 1000.0)
    tail = int(sample_rate * tail_ms / 1000.0)
    start = max(0, int(loud[0]) - lead)
    stop = int(loud[-1]) + 1
    voiced = audio[start:stop].astype(np.float32, copy=True)
    ramp = int(loud[0]) - start
    if ramp > 0:
        # A short fade-in over the kept lead, so the cut cannot click.
        voiced[:ramp] *= np.linspace(0.0, 1.0, ramp, endpoint=False, dtype=np.float32)
    kept_tail = audio[stop : stop + tail].astype(np.float32, copy=False)
    pad = np.zeros(tail - kept_tail.size, dtype=np.float32)
    return np.concatenate([voiced, kept_tail, pad])


@dataclass
class _Job:
    """One chunk on its way through the worker; owned by one `stream()` call."""

    text: str
    result: asyncio.Future[tuple[Samples, float]]
    abandoned: threading.Event


@dataclass(frozen=True)
class _End:
    error: BaseException | None = None


class PiperSynthesizer:
    """Piper on the CPU, one synthesis at a time in its own thread."""

    def __init__(self, model_path: Path, config_path: Path | None, config: TtsConfig) -> None:
        started = time.monotonic()
        voice = self._load(model_path, config_path)
        self._setup(voice, config)
        self.load_ms = (time.monotonic() - started) * 1000.0
        log.info(
            "tts.loaded",
            model=str(model_path),
            sample_rate=self._rate,
            load_ms=round(self.load_ms, 1),
        )

    @classmethod
    def from_voice(cls, voice: Any, config: TtsConfig) -> PiperSynthesizer:
        """Wrap an already loaded `PiperVoice` (or anything with its `config.sample_rate`
        and `synthesize(text, syn_config=...)`), e.g. to share one loaded voice."""
        self = cls.__new__(cls)
        self._setup(voice, config)
        self.load_ms = 0.0
        return self

    @staticmethod
    def _load(model_path: Path, config_path: Path | None) -> Any:
        json_path = config_path or model_path.with_name(model_path.name + ".json")
        for path in (model_path, json_path):
            if not path.is_file():
                raise ModelLoadError(f"Piper voice file {path} does not exist")
        try:
            from piper import PiperVoice

            voice = PiperVoice.load(model_path, config_path=json_path)
            return replace(voice, session=_session_without_arena(model_path))
        except Exception as exc:  # onnxruntime/json raise many kinds
            problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelLoadError(f"cannot load the Piper voice {model_path}: {problem}") from exc

    def _setup(self, voice: Any, config: TtsConfig) -> None:
        from piper import SynthesisConfig

        self._config = config
        self._closed = False
        self._voice = voice
        self._rate = int(voice.config.sample_rate)
        self._syn_config = SynthesisConfig(
            speaker_id=config.speaker_id,
            length_scale=config.length_scale,
            volume=config.volume,
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")

    @property
    def sample_rate(self) -> int:
        return self._rate

    def warm(self) -> None:
        """One throwaway synthesis so the first real chunk does not pay for lazy setup
        (espeak-ng data, onnxruntime arenas)."""
        audio, synth_ms = self._submit(_WARM_TEXT, threading.Event()).result()
        log.info("tts.warmed", warm_ms=round(synth_ms, 1), samples=len(audio))

    def synthesize(self, text: str) -> Samples:
        """Blocking: the whole text, trimmed. Waits behind any queued stream work."""
        audio, _ = self._submit(text, threading.Event()).result()
        return audio

    async def synthesize_async(self, text: str) -> SpeechChunk:
        """One chunk without blocking the event loop; cancelling abandons it."""
        abandoned = threading.Event()
        try:
            audio, synth_ms = await asyncio.wrap_future(self._submit(text, abandoned))
        except asyncio.CancelledError:
            abandoned.set()
            raise
        return SpeechChunk(text, audio, self._rate, synth_ms, 0)

    async def stream(self, chunks: AsyncIterator[str]) -> AsyncGenerator[SpeechChunk, None]:
        """Speech for each chunk, in order. The chunk after the one being consumed is
        already in synthesis (pipelining); cancelling or closing the consumer abandons
        what was queued, so the worker is free for the next call after at most one
        sentence. An error from `chunks` reaches the consumer after the chunks before it.
        """
        queue: asyncio.Queue[_Job | _End] = asyncio.Queue(maxsize=1)
        producer = asyncio.create_task(self._produce(chunks, queue), name="tts-produce")
        current: _Job | None = None
        index = 0
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                current = item
                audio, synth_ms = await item.result
                current = None
                if audio.size == 0:
                    log.info("tts.silent_chunk", text=item.text)
                    continue
                yield SpeechChunk(item.text, audio, self._rate, synth_ms, index)
                index += 1
        finally:
            producer.cancel()
            if current is not None:
                current.abandoned.set()
            while not queue.empty():
                leftover = queue.get_nowait()
                if isinstance(leftover, _Job):
                    leftover.abandoned.set()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def _produce(self, chunks: AsyncIterator[str], queue: asyncio.Queue[_Job | _End]) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for text in chunks:
                if not text.strip():
                    continue
                job = _Job(text, loop.create_future(), threading.Event())
                # Queue first, synthesize second: a job only enters the worker once the
                # queue has room, which bounds the lookahead to one chunk.
                await queue.put(job)
                self._start(job)
        except Exception as exc:  # upstream (LLM/chunker) failure: hand it to the consumer
            await queue.put(_End(exc))
            return
        await queue.put(_End())

    def _start(self, job: _Job) -> None:
        loop = job.result.get_loop()

        def deliver(done: Future[tuple[Samples, float]]) -> None:
            if job.result.done() or job.abandoned.is_set():
                return
            if done.cancelled():
                job.result.cancel()
            elif (error := done.exception()) is not None:
                job.result.set_exception(error)
            else:
                job.result.set_result(done.result())

        def hand_over(done: Future[tuple[Samples, float]]) -> None:
            # RuntimeError: the loop is gone, so nobody is waiting for this chunk any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, done)

        self._submit(job.text, job.abandoned).add_done_callback(hand_over)

    def close(self) -> None:
        """Wait for a running synthesis, drop queued ones, stop the worker. Idempotent."""
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _submit(self, text: str, abandoned: threading.Event) -> Future[tuple[Samples, float]]:
        if self._closed:
            raise RuntimeError("PiperSynthesizer is closed")
        return self._executor.submit(self._run, text, abandoned)

    def _run(self, text: str, abandoned: threading.Event) -> tuple[Samples, float]:
        """Runs in the worker thread: (trimmed audio, synth ms)."""
        if abandoned.is_set():
            return np.zeros(0, dtype=np.float32), 0.0
        started = time.monotonic()
        cfg = self._config
        parts: list[Samples] = []
        sentences: Iterable[Any] = self._voice.synthesize(text, syn_config=self._syn_config)
        for sentence in sentences:
            parts.append(
                trim_silence(
                    np.asarray(sentence.audio_float_array, dtype=np.float32),
                    self._rate,
                    cfg.silence_threshold,
                    cfg.lead_silence_ms,
                    cfg.sentence_silence_ms,
                )
            )
            if abandoned.is_set():
                break  # Piper works sentence by sentence: stop at the next boundary
        synth_ms = (time.monotonic() - started) * 1000.0
        audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        log.debug("tts.synthesized", chars=len(text), synth_ms=round(synth_ms, 1))
        return audio, synth_ms


def _session_without_arena(model_path: Path) -> Any:
    """Piper's onnxruntime session without the CPU memory arena. The arena keeps the
    memory of the largest synthesis so far for good, so a daemon's RSS steps up with
    every longer answer (measured: 303 -> 533 MB over 120 texts of growing length; 224
    -> 229 MB without it, see atlas.heap). The cost is an allocation per run."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
