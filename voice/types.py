"""The typed things that flow through the ears: frames, utterances, transcripts.

Every stage passes one of these frozen dataclasses to the next. Stream times
(`*_s`) are seconds since the source's first sample; `*_at` fields are
`time.monotonic()` readings, so latencies can be computed across stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
"""Every stage after the audio source works on 16 kHz mono float32."""

FRAME_SAMPLES = 512
"""One VAD frame: 512 samples = 32 ms at 16 kHz."""

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AudioFrame:
    """One 32 ms frame of 16 kHz mono float32 audio in [-1, 1]."""

    samples: Samples
    start_s: float
    """Stream time of the first sample."""
    captured_at: float
    """Monotonic time at which the frame became available to the pipeline."""

    @property
    def end_s(self) -> float:
        return self.start_s + len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True)
class SpeechStarted:
    """The endpointer decided speech has begun (after the start threshold)."""

    speech_start_s: float
    at: float


@dataclass(frozen=True)
class SpeechPaused:
    """Silence began after speech; the turn may or may not end here.

    Carries the audio so far so a transcriber can start speculatively while the
    hangover runs.
    """

    audio: Samples
    start_s: float
    last_voiced_s: float
    at: float


@dataclass(frozen=True)
class SpeechResumed:
    """Speech came back before the hangover ran out: the pause was not an end."""

    at_s: float
    at: float


@dataclass(frozen=True)
class Utterance:
    """One turn's audio, as cut by the endpointer."""

    audio: Samples
    """16 kHz mono float32, pre-roll included."""
    start_s: float
    """Stream time of audio[0] (pre-roll included)."""
    speech_start_s: float
    """Stream time at which voiced frames began."""
    last_voiced_s: float
    """Stream time of the end of the last voiced frame."""
    end_of_turn_s: float
    """Stream time of the frame on which the end of turn was decided."""
    decided_at: float
    """Monotonic time of the end-of-turn decision."""
    truncated: bool = False
    """True when the maximum utterance length cut it."""

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


EndpointEvent = SpeechStarted | SpeechPaused | SpeechResumed | Utterance


@dataclass(frozen=True)
class Segment:
    text: str
    start_s: float
    end_s: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


@dataclass(frozen=True)
class Transcript:
    """What the transcriber heard, after the hallucination gate."""

    text: str
    """Kept segments joined; empty when nothing was said."""
    segments: tuple[Segment, ...]
    stt_ms: float
    """Wall time spent in the STT engine (decode included)."""
    dropped: tuple[str, ...] = field(default_factory=tuple)
    """One reason per segment the gate dropped (for logs)."""

    @property
    def is_empty(self) -> bool:
        return not self.text.strip()
