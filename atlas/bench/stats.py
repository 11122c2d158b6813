"""Numbers from turn records: stage deltas, percentiles, ratios.

Pure functions over plain data, so the benchmark's arithmetic is tested without models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

METRICS: tuple[tuple[str, str], ...] = (
    ("heard_first_sound", "FROM THE AUDIO: end of speech -> first audible sample"),
    ("heard_first_answer", "FROM THE AUDIO: end of speech -> first audible answer sample"),
    ("end_of_turn", "end of speech -> end-of-turn decision"),
    ("stt_wait", "end-of-turn -> transcript (STT not hidden by the hangover)"),
    ("routing", "transcript -> route decided"),
    ("home_call", "route decided -> Home Assistant answered (device requests)"),
    ("filler_first_sample", "end of speech -> first filler sample"),
    ("first_token", "end of speech -> first LLM token"),
    ("first_chunk", "end of speech -> first speakable chunk"),
    ("first_answer_sample", "end of speech -> first answer sample (voice-to-voice)"),
    ("first_sound", "end of speech -> first sound (filler or answer)"),
    ("last_sample", "end of speech -> last sample"),
)
"""(metric key, meaning); every value is in milliseconds. The `heard_*` metrics come
from the input and reply recordings (atlas.bench.heard); the others from the pipeline's
own stage stamps, whose end of speech is the VAD's: they show where the time goes."""


def stage_deltas(timestamps: Mapping[str, float]) -> dict[str, float]:
    """The benchmark's metrics (ms) from a turn's monotonic stage stamps (seconds).

    Most metrics count from the end of speech, the moment a person starts waiting;
    `stt_wait` and `routing` are the durations of those steps. A stage that did not
    happen (no filler on a local turn) is absent, never zero.
    """
    end = timestamps.get("speech_end")
    out: dict[str, float] = {}
    if end is None:
        return out

    def since(stage: str) -> float | None:
        t = timestamps.get(stage)
        return None if t is None else (t - end) * 1000.0

    for key in (
        "end_of_turn",
        "filler_first_sample",
        "first_token",
        "first_chunk",
        "first_answer_sample",
        "last_sample",
    ):
        v = since(key)
        if v is not None:
            out[key] = v
    eot, tr, route = (timestamps.get(k) for k in ("end_of_turn", "transcript", "route"))
    if eot is not None and tr is not None:
        out["stt_wait"] = max(0.0, (tr - eot) * 1000.0)
    if tr is not None and route is not None:
        out["routing"] = (route - tr) * 1000.0
    if route is not None and "home" in timestamps:
        out["home_call"] = (timestamps["home"] - route) * 1000.0
    sounds = [
        v for v in (since("filler_first_sample"), since("first_answer_sample")) if v is not None
    ]
    if sounds:
        out["first_sound"] = min(sounds)
    return out


def percentile(values: Iterable[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); NaN for no values."""
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return float("nan")
    return float(np.percentile(arr, q))


@dataclass(frozen=True)
class Dist:
    """p50/p95/max of one metric over n samples (ms unless said otherwise)."""

    n: int
    p50: float
    p95: float
    max: float

    @staticmethod
    def of(values: Sequence[float]) -> Dist:
        clean = [v for v in values if not math.isnan(v)]
        if not clean:
            return Dist(0, float("nan"), float("nan"), float("nan"))
        return Dist(len(clean), percentile(clean, 50), percentile(clean, 95), max(clean))

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "n": self.n,
            "p50": _r(self.p50),
            "p95": _r(self.p95),
            "max": _r(self.max),
        }


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; NaN when either is missing or the denominator is 0."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return float("nan")
    return numerator / denominator


def rtf(work_s: Sequence[float], audio_s: Sequence[float]) -> float:
    """Real-time factor: total processing time over total audio time (lower is faster)."""
    total = sum(audio_s)
    return sum(work_s) / total if total > 0 else float("nan")


def _r(v: float) -> float | None:
    """JSON has no NaN: a missing figure is null."""
    return None if math.isnan(v) else round(v, 1)
