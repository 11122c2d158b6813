"""Speech to text: the faster-whisper transcriber and the hallucination gate.

Whisper was trained on subtitled video, so given silence, noise or a tone it happily
"hears" "Thank you.", "you" or "Thanks for watching!". faster-whisper's own filters
are switched off at decode time and every segment is judged here instead, where the
rules are visible, logged (one reason per dropped segment) and tested.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from voice.config import SttConfig
from voice.errors import ModelLoadError
from voice.textnorm import normalize_text
from voice.types import FRAME_SAMPLES, SAMPLE_RATE, Samples, Segment, Transcript

log = structlog.get_logger("voice.stt")

MIN_AUDIO_S = 0.1
"""Shorter audio is not worth a decode (Whisper would only invent something)."""

_WARM_S = 1.0
_SILENT_DBFS = -200.0

# Well-known Whisper hallucinations (openai/whisper discussions #679 and #928, the
# "Careless Whisper" paper, whisper.cpp's suppression lists), after normalize_text().
_STOCK_PHRASES = frozenset(
    {
        "you",
        "i",
        "so",
        "oh",
        "ah",
        "uh",
        "um",
        "hmm",
        "mm",
        "huh",
        "okay",
        "ok",
        "bye",
        "bye bye",
        "goodbye",
        "thanks",
        "thank you",
        "thank you very much",
        "thank you so much",
        "thank you all",
        "thanks everyone",
        "thank you for your attention",
        "the end",
        "music",
        "applause",
        "laughter",
        "silence",
        "im sorry",
    }
)
_STOCK_PREFIXES = (
    "thanks for watching",
    "thank you for watching",
    "thanks for listening",
    "thank you for listening",
    "please subscribe",
    "subscribe to",
    "like and subscribe",
    "dont forget to like",
    "dont forget to subscribe",
    "see you next time",
    "see you in the next",
    "ill see you",
    "subtitles by",
    "subtitled by",
    "captions by",
    "captioned by",
    "transcribed by",
    "transcription by",
    "translated by",
    "translation by",
    "amara org",
    "www ",
    "copyright",
)

# "[BLANK_AUDIO]", "(silence)", "*music*": Whisper's way of writing non-speech.
_MARKERS = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*")
_SPOKEN_CHAR = re.compile(r"[^\W_]")

# A loop is the same n-gram repeated back to back: a single word needs more repeats
# than a phrase, because people do say "no no no" but not "the end. the end. the end.".
_MAX_LOOP_N = 4
_LOOP_REPEATS_UNIGRAM = 4
_LOOP_REPEATS_PHRASE = 3


def audio_level_dbfs(audio: Samples) -> float:
    """Speech level of an utterance: RMS (dBFS) over the louder half of its 32 ms frames.

    The endpointer's pre-roll and hangover are silence; averaging over them would make
    a short loud word look quiet, so only the louder half of the frames counts.
    """
    samples = np.asarray(audio, dtype=np.float64)
    if samples.size == 0:
        return _SILENT_DBFS
    n_frames = samples.size // FRAME_SAMPLES
    if n_frames < 2:
        power = float(np.mean(samples**2))
    else:
        frames = samples[: n_frames * FRAME_SAMPLES].reshape(n_frames, FRAME_SAMPLES)
        frame_power = np.sort(np.mean(frames**2, axis=1))
        power = float(np.mean(frame_power[n_frames // 2 :]))
    return max(_SILENT_DBFS, 10.0 * float(np.log10(power))) if power > 0 else _SILENT_DBFS


def has_ngram_loop(words: Sequence[str]) -> bool:
    """True when some 1-4 word n-gram repeats back to back ("you you you you")."""
    for n in range(1, _MAX_LOOP_N + 1):
        needed = _LOOP_REPEATS_UNIGRAM if n == 1 else _LOOP_REPEATS_PHRASE
        for start in range(len(words) - n * needed + 1):
            gram = words[start : start + n]
            repeats = 1
            pos = start + n
            while repeats < needed and words[pos : pos + n] == gram:
                repeats += 1
                pos += n
            if repeats >= needed:
                return True
    return False


def is_stock_phrase(text: str) -> bool:
    """A phrase Whisper is known to produce from silence or noise."""
    norm = normalize_text(text)
    return norm in _STOCK_PHRASES or any(norm.startswith(p) for p in _STOCK_PREFIXES)


def strip_markers(text: str) -> str:
    """Text without "[Music]"-style markers, whitespace collapsed."""
    return " ".join(_MARKERS.sub(" ", text).split())


class HallucinationGate:
    """Decides which Whisper segments were really said."""

    def __init__(self, config: SttConfig) -> None:
        self._config = config

    def filter(
        self, segments: Sequence[Segment], audio: Samples
    ) -> tuple[list[Segment], list[str]]:
        """(kept segments, one reason per dropped segment).

        Kept segments have markers and surrounding whitespace removed from their text.
        """
        kept: list[Segment] = []
        dropped: list[str] = []
        level: float | None = None  # computed only when a stock phrase needs it
        for segment in segments:
            reason = self._content_reason(segment)
            if reason is None and is_stock_phrase(segment.text):
                if level is None:
                    level = audio_level_dbfs(audio)
                reason = self._stock_reason(segment, level)
            if reason is None:
                kept.append(replace(segment, text=strip_markers(segment.text)))
            else:
                dropped.append(f"{reason}: {segment.text.strip()!r}")
        return kept, dropped

    def _content_reason(self, seg: Segment) -> str | None:
        """Why a segment is dropped whatever the audio level, or None."""
        cfg = self._config
        if not _SPOKEN_CHAR.search(strip_markers(seg.text)):
            return "non-speech marker"
        if seg.no_speech_prob > cfg.no_speech_threshold and seg.avg_logprob < cfg.logprob_threshold:
            return (
                f"no speech (no_speech_prob {seg.no_speech_prob:.2f} > "
                f"{cfg.no_speech_threshold:.2f}, avg_logprob {seg.avg_logprob:.2f} < "
                f"{cfg.logprob_threshold:.2f})"
            )
        if seg.avg_logprob < cfg.min_logprob:
            return f"low confidence (avg_logprob {seg.avg_logprob:.2f} < {cfg.min_logprob:.2f})"
        if seg.compression_ratio > cfg.compression_ratio_threshold:
            return (
                f"repetition (compression ratio {seg.compression_ratio:.2f} > "
                f"{cfg.compression_ratio_threshold:.2f})"
            )
        if has_ngram_loop(normalize_text(seg.text).split()):
            return "repetition (n-gram loop)"
        return None

    def _stock_reason(self, seg: Segment, level_dbfs: float) -> str | None:
        """A stock phrase survives only when loud, confident and not flagged as no-speech."""
        cfg = self._config
        if level_dbfs < cfg.quiet_rms_dbfs:
            return f"stock phrase in quiet audio ({level_dbfs:.1f} < {cfg.quiet_rms_dbfs:.1f} dBFS)"
        if seg.no_speech_prob > cfg.no_speech_threshold:
            return f"stock phrase with no_speech_prob {seg.no_speech_prob:.2f}"
        if seg.avg_logprob < cfg.logprob_threshold:
            return f"stock phrase with avg_logprob {seg.avg_logprob:.2f}"
        return None


class Transcriber(Protocol):
    """Turns one utterance's 16 kHz mono audio into a gated transcript."""

    async def transcribe(self, audio: Samples) -> Transcript: ...

    def warm(self) -> None: ...

    async def aclose(self) -> None: ...


def _empty_transcript() -> Transcript:
    return Transcript(text="", segments=(), stt_ms=0.0)


def _as_samples(audio: Samples) -> Samples:
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {samples.shape}")
    if not np.isfinite(samples).all():
        # One NaN would turn Whisper's log-mel features into NaN and the output to junk.
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    return samples


class WhisperTranscriber:
    """faster-whisper (CTranslate2) on the CPU, one decode at a time in its own thread."""

    def __init__(self, model_dir: Path, config: SttConfig, gate: HallucinationGate | None = None):
        self._config = config
        self._gate = gate or HallucinationGate(config)
        self._closed = False
        started = time.monotonic()
        self._model = self._load(model_dir, config)
        self.load_ms = (time.monotonic() - started) * 1000.0
        # CTranslate2 decodes one request at a time anyway; a single worker keeps memory
        # bounded and queues requests instead of running them side by side.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")
        log.info("stt.loaded", model_dir=str(model_dir), load_ms=round(self.load_ms, 1))

    @staticmethod
    def _load(model_dir: Path, config: SttConfig) -> Any:
        if not model_dir.is_dir():
            raise ModelLoadError(f"Whisper model folder {model_dir} does not exist")
        if not (model_dir / "model.bin").is_file():
            raise ModelLoadError(f"Whisper model folder {model_dir} has no model.bin")
        try:
            from faster_whisper import WhisperModel

            return WhisperModel(
                str(model_dir),
                device="cpu",
                compute_type=config.compute_type,
                cpu_threads=config.cpu_threads,
                num_workers=1,
                local_files_only=True,
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError/OSError
            problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelLoadError(
                f"cannot load the Whisper model in {model_dir}: {problem}"
            ) from exc

    def warm(self) -> None:
        """One throwaway decode so the first real request does not pay for lazy setup."""
        noise = np.random.default_rng(0).normal(0.0, 1e-3, int(_WARM_S * SAMPLE_RATE))
        _, warm_ms = self._submit(noise.astype(np.float32), threading.Event()).result()
        log.info("stt.warmed", warm_ms=round(warm_ms, 1))

    async def transcribe(self, audio: Samples) -> Transcript:
        """Decode in the worker thread. Cancelling the caller abandons the result; a
        decode already running finishes in the background before the next one starts."""
        samples = _as_samples(audio)
        if samples.size < MIN_AUDIO_S * SAMPLE_RATE:
            return _empty_transcript()
        abandon = threading.Event()
        future = asyncio.wrap_future(self._submit(samples, abandon))
        try:
            segments, stt_ms = await future
        except asyncio.CancelledError:
            abandon.set()
            raise
        return self._gated(segments, samples, stt_ms)

    def transcribe_sync(self, audio: Samples) -> Transcript:
        """The blocking variant, for scripts and benchmarks."""
        samples = _as_samples(audio)
        if samples.size < MIN_AUDIO_S * SAMPLE_RATE:
            return _empty_transcript()
        segments, stt_ms = self._submit(samples, threading.Event()).result()
        return self._gated(segments, samples, stt_ms)

    def close(self) -> None:
        """Wait for a running decode, then stop the worker. Idempotent."""
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._model = None

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def _submit(self, samples: Samples, abandon: threading.Event) -> Any:
        if self._closed:
            raise RuntimeError("WhisperTranscriber is closed")
        return self._executor.submit(self._decode, samples, abandon)

    def _decode(self, samples: Samples, abandon: threading.Event) -> tuple[list[Segment], float]:
        """Runs in the worker thread; returns (all segments, decode ms)."""
        segments: list[Segment] = []
        if abandon.is_set():
            return segments, 0.0
        cfg = self._config
        started = time.monotonic()
        # Thresholds are None so faster-whisper hands over every segment (the gate
        # decides); a single temperature means no fallback re-decodes, which cost seconds.
        results, _info = self._model.transcribe(
            samples,
            language=cfg.language,
            beam_size=cfg.beam_size,
            best_of=1,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
            without_timestamps=True,
            word_timestamps=False,
            no_speech_threshold=None,
            log_prob_threshold=None,
            compression_ratio_threshold=None,
        )
        # `results` is a lazy generator: the decoding happens while it is consumed.
        for result in results:
            segments.append(
                Segment(
                    text=result.text.strip(),
                    start_s=float(result.start),
                    end_s=float(result.end),
                    avg_logprob=float(result.avg_logprob),
                    no_speech_prob=float(result.no_speech_prob),
                    compression_ratio=float(result.compression_ratio),
                )
            )
            if abandon.is_set():
                break
        return segments, (time.monotonic() - started) * 1000.0

    def _gated(self, segments: list[Segment], samples: Samples, stt_ms: float) -> Transcript:
        kept, dropped = self._gate.filter(segments, samples)
        text = " ".join(s.text for s in kept if s.text)
        log.info(
            "stt.transcribed",
            stt_ms=round(stt_ms, 1),
            audio_s=round(samples.size / SAMPLE_RATE, 2),
            kept=len(kept),
            dropped=dropped,
        )
        return Transcript(text=text, segments=tuple(kept), stt_ms=stt_ms, dropped=tuple(dropped))
