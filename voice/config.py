"""Settings of the voice engines.

Plain frozen dataclasses with defaults; `atlas.settings` fills them from YAML and
validates them against the `min`/`max`/`choices` metadata declared here, so the
valid range of a setting lives next to the setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def bounded(default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    """A dataclass field with an inclusive valid range."""
    return field(default=default, metadata={"min": lo, "max": hi})


def choice(default: str, *choices: str) -> Any:
    """A dataclass field restricted to a set of strings."""
    return field(default=default, metadata={"choices": choices})


@dataclass(frozen=True)
class VadConfig:
    threshold: float = bounded(0.5, 0.05, 0.95)
    """Speech probability at or above which a frame counts as voiced."""
    neg_threshold: float = bounded(0.35, 0.01, 0.95)
    """Once in speech, a frame only counts as silence below this (hysteresis)."""


@dataclass(frozen=True)
class EndpointerConfig:
    start_ms: int = bounded(96, 32, 2000)
    """Voiced audio needed (within the start window) before a turn begins."""
    preroll_ms: int = bounded(300, 0, 2000)
    """Audio kept from before speech start so first syllables are not clipped."""
    hangover_ms: int = bounded(500, 64, 5000)
    """Silence after speech that ends the turn."""
    min_utterance_ms: int = bounded(250, 32, 5000)
    """Voiced speech shorter than this is discarded as a click or a cough."""
    max_utterance_s: float = bounded(15.0, 1.0, 120.0)
    """A turn is cut (and processed) once it gets this long."""


@dataclass(frozen=True)
class SttConfig:
    model: str = "whisper-tiny.en"
    """A name from models/manifest.yaml, a local folder, or (downloads allowed) a hub name."""
    language: str = "en"
    compute_type: str = choice("int8", "int8", "int8_float32", "float32")
    cpu_threads: int = bounded(2, 1, 64)
    beam_size: int = bounded(1, 1, 10)
    no_speech_threshold: float = bounded(0.6, 0.0, 1.0)
    """Gate: a segment with no_speech_prob above this AND a low avg_logprob is dropped."""
    logprob_threshold: float = bounded(-1.0, -10.0, 0.0)
    """Gate: a segment whose avg_logprob is below this is suspicious."""
    min_logprob: float = bounded(-1.6, -10.0, 0.0)
    """Gate: a segment whose avg_logprob is below this is dropped whatever else."""
    compression_ratio_threshold: float = bounded(2.4, 1.0, 10.0)
    """Gate: repetitive (highly compressible) text is dropped."""
    quiet_rms_dbfs: float = bounded(-45.0, -100.0, 0.0)
    """Gate: below this RMS level, stock Whisper phrases are treated as hallucinations."""


@dataclass(frozen=True)
class AudioConfig:
    input_device: str | None = None
    """sounddevice device name or index (as text); None = system default."""
    output_device: str | None = None
    block_ms: int = bounded(32, 10, 200)
    """Microphone callback block size."""
    queue_frames: int = bounded(64, 4, 4096)
    """Bound of the mic -> pipeline queue (64 frames = 2 s); overflow drops the oldest."""


@dataclass(frozen=True)
class ChunkerConfig:
    first_chunk_min_words: int = bounded(4, 1, 50)
    """The first chunk of an answer may end at a comma/colon/dash once it has this many
    words, so speech starts before the first sentence is complete."""
    first_chunk_max_words: int = bounded(4, 0, 100)
    """The first chunk ends at a word boundary after this many words even without
    punctuation (0: never), so the first sound does not wait for a whole sentence."""
    max_chars: int = bounded(200, 40, 2000)
    """A chunk without a sentence end is cut (at the last comma or space) at this length."""
    url_style: str = choice("domain", "domain", "link")
    """How a bare URL is said: its domain ("example dot com") or just "a link"."""
    code_block_text: str = "I'll skip reading out the code."
    """Said once in place of a fenced code block; empty = skip code blocks silently."""


@dataclass(frozen=True)
class TtsConfig:
    voice: str = "piper-joe-medium"
    """A Piper voice: a name from models/manifest.yaml or a path to a voice .onnx file."""
    length_scale: float = bounded(1.0, 0.5, 2.0)
    """Speaking pace: < 1 is faster, > 1 is slower."""
    volume: float = bounded(1.0, 0.05, 1.0)
    """Gain on Piper's peak-normalised output (above 1.0 would clip)."""
    speaker_id: int = bounded(0, 0, 10_000)
    """Speaker of a multi-speaker voice (ignored by single-speaker voices)."""
    sentence_silence_ms: int = bounded(80, 0, 2000)
    """Silence kept after each sentence, so consecutive chunks do not run together."""
    lead_silence_ms: int = bounded(10, 0, 500)
    """Silence kept before the first audible sample (Piper starts with 40-300 ms)."""
    silence_threshold: float = bounded(0.01, 0.0, 0.5)
    """Samples below this absolute level count as silence when trimming."""
