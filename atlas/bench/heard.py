"""What a person hears: latency measured from the audio, not from the pipeline's clocks.

The input recording says when the person stopped speaking (the fixture manifest's
stated end, or an energy end-point); the reply recording, time-aligned with the input
(sample 0 of both is the same moment), says when ATLAS first became audible. Their
difference is the voice-to-voice latency a person hears. It is negative when ATLAS
started before the person had finished, and is reported as such, never clipped.

Pure functions over sample arrays, so the arithmetic is tested without models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ENERGY_FRAME_MS = 10
ENERGY_BASIS = (
    "energy end-point (10 ms frames; voiced at >= max(noise p10 + 15 dB, peak - 35 dB); "
    "pauses under 1.0 s join one utterance)"
)
MANIFEST_BASIS = "the fixture manifest's stated speech end"
DEFAULT_LEVEL_DBFS = -40.0
"""A reply sample at or above this level counts as audible."""


@dataclass(frozen=True)
class SpeechSpan:
    """One utterance in the input: seconds from the file's first sample."""

    start_s: float
    end_s: float


@dataclass(frozen=True)
class InputSpeech:
    spans: tuple[SpeechSpan, ...]
    basis: str
    """How the spans were found (manifest or energy end-point): the report names it."""


@dataclass(frozen=True)
class HeardReply:
    """The reply to one utterance, as found in the reply recording."""

    utterance: int
    speech_end_s: float
    first_sound_s: float | None
    """First audible reply sample (filler or answer) after this utterance began."""
    first_answer_s: float | None
    """First audible sample inside the answer's own audio (not the filler)."""

    @property
    def first_sound_ms(self) -> float | None:
        """End of speech -> first audible sample; negative: ATLAS talked over the person."""
        return _ms(self.first_sound_s, self.speech_end_s)

    @property
    def first_answer_ms(self) -> float | None:
        return _ms(self.first_answer_s, self.speech_end_s)

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "utterance": self.utterance,
            "speech_end_s": round(self.speech_end_s, 4),
            "first_sound_ms": _round(self.first_sound_ms),
            "first_answer_ms": _round(self.first_answer_ms),
        }


def _ms(at: float | None, end: float) -> float | None:
    return None if at is None else (at - end) * 1000.0


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def level_amplitude(level_dbfs: float) -> float:
    if not math.isfinite(level_dbfs) or level_dbfs > 0:
        raise ValueError(f"audible level must be a finite dBFS value <= 0, got {level_dbfs}")
    return float(10 ** (level_dbfs / 20))


def energy_spans(
    samples: npt.NDArray[np.floating], rate: int, *, merge_gap_s: float = 1.0
) -> tuple[SpeechSpan, ...]:
    """Utterances by frame energy (10 ms frames): the noise floor and the peak set the
    threshold, so it works on clean synthetic speech and on noisy recordings alike."""
    hop = max(1, rate * ENERGY_FRAME_MS // 1000)
    n = len(samples) // hop
    if n == 0:
        return ()
    frames = np.asarray(samples[: n * hop], dtype=np.float64).reshape(n, hop)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    threshold = max(float(np.percentile(db, 10)) + 15.0, float(db.max()) - 35.0)
    voiced = np.flatnonzero(db >= threshold)
    if voiced.size == 0:
        return ()
    spans: list[list[int]] = [[int(voiced[0]), int(voiced[0])]]
    gap_frames = merge_gap_s * 1000 / ENERGY_FRAME_MS
    for i in voiced[1:]:
        if i - spans[-1][1] > gap_frames:
            spans.append([int(i), int(i)])
        else:
            spans[-1][1] = int(i)
    f = ENERGY_FRAME_MS / 1000
    # A single 10 ms blip (a click) is no utterance.
    return tuple(SpeechSpan(a * f, (b + 1) * f) for a, b in spans if (b - a + 1) * f >= 0.1)


def stated_spans(starts: str, ends: str) -> tuple[SpeechSpan, ...]:
    """The manifest's `speech_start_s` / `speech_end_s` cells ('|' between utterances)."""
    if not starts.strip() or not ends.strip():
        return ()
    a = [float(x) for x in starts.split("|")]
    b = [float(x) for x in ends.split("|")]
    if len(a) != len(b):
        raise ValueError(f"manifest has {len(a)} speech starts but {len(b)} ends")
    return tuple(SpeechSpan(s, e) for s, e in zip(a, b, strict=True))


def first_audible(
    samples: npt.NDArray[np.floating],
    rate: int,
    amplitude: float,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> float | None:
    """Time (s) of the first sample with |x| >= amplitude in [start_s, end_s)."""
    lo = max(0, math.ceil(start_s * rate))
    hi = len(samples) if end_s is None else min(len(samples), math.ceil(end_s * rate))
    if hi <= lo:
        return None
    hits = np.flatnonzero(np.abs(samples[lo:hi]) >= amplitude)
    return None if hits.size == 0 else (lo + int(hits[0])) / rate


def replies(
    speech: InputSpeech,
    reply: npt.NDArray[np.floating],
    rate: int,
    answer_segments: Sequence[tuple[float, float]],
    level_dbfs: float = DEFAULT_LEVEL_DBFS,
) -> list[HeardReply]:
    """For each utterance, the first audible reply after it began and before the next
    one began. `answer_segments` are (start_s, end_s) of the answer's audio on the same
    timeline (the filler's are left out), to tell the answer's first sound apart."""
    amp = level_amplitude(level_dbfs)
    out: list[HeardReply] = []
    spans = speech.spans
    for i, span in enumerate(spans):
        until = spans[i + 1].start_s if i + 1 < len(spans) else None
        sound = first_audible(reply, rate, amp, span.start_s, until)
        answer: float | None = None
        for a, b in sorted(answer_segments):
            lo = max(a, span.start_s)
            hi = b if until is None else min(b, until)
            if hi <= lo:
                continue
            answer = first_audible(reply, rate, amp, lo, hi)
            if answer is not None:
                break
        out.append(HeardReply(i, span.end_s, sound, answer))
    return out
