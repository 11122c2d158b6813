"""Silero VAD on onnxruntime, and the endpointer that turns speech probabilities into turns.

`SileroVad` scores one 32 ms frame at a time. `Endpointer` is a pure state machine fed
(frame, probability) pairs: it decides when a turn starts, pauses, resumes and ends, and
cuts the turn's audio (with pre-roll) into an `Utterance`. Keeping the model out of the
state machine lets the endpointing rules be tested on synthetic probability sequences.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import onnxruntime as ort
import structlog

from voice.config import EndpointerConfig, VadConfig
from voice.errors import ModelLoadError
from voice.types import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioFrame,
    EndpointEvent,
    Samples,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    Utterance,
)

log = structlog.get_logger("voice.vad")

CONTEXT_SAMPLES = 64
"""Silero v5 looks at the last 64 samples of the previous frame in front of each new one."""

_STATE_SHAPE = (2, 1, 128)
_EXPECTED_INPUTS = frozenset({"input", "state", "sr"})

MAX_INNER_PAUSE_MS = 300
"""Longest pause inside a turn's speech that is handed to the transcriber as it was."""

TRAILING_SILENCE_MS = 200
"""Silence kept after the last voiced frame. Whisper transcribes the last word more
reliably with a little trailing silence, but the full hangover (500 ms) only costs
decode time and invites hallucinated endings."""

START_SLACK_FRAMES = 1
"""The start window is the start amount plus this many frames, so one unvoiced frame in
the middle of an onset (a plosive, a dip in the model) does not delay the start."""


def _ms_to_samples(ms: float) -> int:
    return round(ms * SAMPLE_RATE / 1000)


class SileroVad:
    """The upstream silero_vad.onnx (v5: inputs input/state/sr) run with onnxruntime.

    Stateful across frames: feed consecutive 512-sample frames of one stream and call
    `reset()` before a new stream.
    """

    def __init__(self, model_path: Path, config: VadConfig) -> None:
        self.config = config
        if not model_path.is_file():
            raise ModelLoadError(f"Silero VAD model not found: {model_path}")
        options = ort.SessionOptions()
        # One call per 32 ms frame on a tiny graph: thread hand-offs cost more than they save.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"Silero VAD model {model_path} could not be loaded: {problem}"
            ) from exc
        inputs = {i.name for i in self._session.get_inputs()}
        if inputs != _EXPECTED_INPUTS:
            raise ModelLoadError(
                f"Silero VAD model {model_path} has inputs {sorted(inputs)}, expected "
                f"{sorted(_EXPECTED_INPUTS)} (the v5 silero_vad.onnx)"
            )
        self._outputs = [o.name for o in self._session.get_outputs()]
        # The context lives in the first 64 slots of this reused input buffer.
        self._input = np.zeros((1, CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    def reset(self) -> None:
        """Forget the previous stream: recurrent state and context back to zeros."""
        self._input[:] = 0.0
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)

    def prob(self, samples: Samples) -> float:
        """Speech probability of one frame of 512 samples (a shorter last frame is zero-padded)."""
        n = samples.shape[0]
        if samples.ndim != 1 or n > FRAME_SAMPLES:
            raise ValueError(f"SileroVad.prob takes at most {FRAME_SAMPLES} mono samples, got {n}")
        buf = self._input
        buf[0, :CONTEXT_SAMPLES] = buf[0, -CONTEXT_SAMPLES:]
        buf[0, CONTEXT_SAMPLES : CONTEXT_SAMPLES + n] = samples
        if n < FRAME_SAMPLES:
            buf[0, CONTEXT_SAMPLES + n :] = 0.0
        out, state = self._session.run(
            self._outputs, {"input": buf, "state": self._state, "sr": self._sr}
        )
        p = float(out[0, 0])
        if not math.isfinite(p):
            # A NaN would stick in the recurrent state and silence the VAD for good.
            log.warning("vad_non_finite_probability", prob=p)
            self.reset()
            return 0.0
        self._state = state
        return p


@dataclass
class _Turn:
    """The open turn. Offsets are sample positions in the turn's audio (after the trim)."""

    frames: list[AudioFrame]
    trim: int
    """Samples dropped from the front of frames[0] so pre-roll is exact."""
    start_s: float
    speech_start_s: float
    speech_offset: int
    total: int
    voiced: int
    voiced_end: int
    last_voiced_s: float
    in_voice: bool = True
    """Schmitt-trigger state: True until a frame falls below neg_threshold."""
    silence: int = 0
    """Unvoiced samples since the last voiced frame."""
    pause_hangover: int | None = None
    """Silence that ends this pause, when a caller set one (None: the configured hangover)."""
    voiced_flags: list[bool] = field(default_factory=list)
    """Per frame of `frames`: voiced or not (pre-roll frames are not)."""

    def audio(self, end: int) -> Samples:
        """The turn's audio up to `end`, with pauses inside the speech squeezed to
        MAX_INNER_PAUSE_MS: Whisper (tiny) drops the words after a long silence ("what is
        fifteen percent of ... eighty" -> "what is 15% of?"), as faster-whisper's own
        VAD filter avoids by joining the speech chunks."""
        joined = np.concatenate([f.samples for f in self.frames])[self.trim : self.trim + end]
        keep = _ms_to_samples(MAX_INNER_PAUSE_MS)
        pieces: list[Samples] = []
        pos, gap_start, seen_voice = 0, -1, False
        offset = -self.trim
        for frame, voiced in zip(self.frames, self.voiced_flags, strict=True):
            a, b = max(0, offset), max(0, offset + len(frame.samples))
            offset += len(frame.samples)
            if voiced:
                if seen_voice and gap_start >= 0 and a - gap_start > keep:
                    # Keep the pause's edges (word endings, onsets), drop its middle.
                    pieces.append(joined[pos : gap_start + keep // 2])
                    pos = a - keep // 2
                seen_voice, gap_start = True, -1
            elif seen_voice and gap_start < 0:
                gap_start = a
            if b >= end:
                break
        pieces.append(joined[pos:])
        return np.concatenate(pieces).astype(np.float32, copy=False)


class Endpointer:
    """Speech probabilities -> SpeechStarted / SpeechPaused / SpeechResumed / Utterance.

    Not thread-safe; one instance per audio stream. Voicing uses hysteresis: outside
    speech a frame is voiced at prob >= threshold; once voiced, frames stay voiced until
    prob < neg_threshold. A max-length cut while speech continues starts the next turn at
    once on the frame after the cut, without pre-roll (the audio would overlap).
    """

    def __init__(
        self,
        config: EndpointerConfig,
        vad: VadConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = vad.threshold
        self._neg_threshold = min(vad.neg_threshold, vad.threshold)
        self._clock = clock
        self._start_samples = _ms_to_samples(config.start_ms)
        self._preroll_samples = _ms_to_samples(config.preroll_ms)
        self._hangover_samples = _ms_to_samples(config.hangover_ms)
        self._min_samples = _ms_to_samples(config.min_utterance_ms)
        self._max_samples = round(config.max_utterance_s * SAMPLE_RATE)
        self._tail_samples = _ms_to_samples(min(config.hangover_ms, TRAILING_SILENCE_MS))
        self._window = math.ceil(self._start_samples / FRAME_SAMPLES) + START_SLACK_FRAMES
        preroll_frames = math.ceil(self._preroll_samples / FRAME_SAMPLES)
        # Frames seen while idle: the start window plus enough history for the pre-roll.
        self._recent: deque[tuple[AudioFrame, bool]] = deque(maxlen=self._window + preroll_frames)
        self._turn: _Turn | None = None
        self._continue_after_cut = False
        self._last_end_s: float | None = None

    def process(self, frame: AudioFrame, prob: float) -> list[EndpointEvent]:
        """Feed one frame and its speech probability; returns the events it caused."""
        events: list[EndpointEvent] = []
        self._last_end_s = frame.end_s
        turn = self._turn
        if turn is not None and turn.total - turn.speech_offset + len(frame.samples) > (
            self._max_samples
        ):
            # Cut before this frame so no turn's audio ever exceeds max + pre-roll.
            still_speaking = turn.in_voice
            utterance = self._close(end_of_turn_s=frame.start_s, truncated=still_speaking)
            if utterance is not None:
                events.append(utterance)
            self._continue_after_cut = still_speaking
            turn = None
        if turn is None:
            events.extend(self._idle(frame, prob))
        else:
            events.extend(self._in_turn(turn, frame, prob))
        return events

    def flush(self, at: float | None = None) -> list[EndpointEvent]:
        """End of stream: close an open turn (if long enough) and reset.

        `at` is the monotonic time to record as the decision time (default: now).
        """
        events: list[EndpointEvent] = []
        if self._turn is not None and self._last_end_s is not None:
            utterance = self._close(end_of_turn_s=self._last_end_s, truncated=False, at=at)
            if utterance is not None:
                events.append(utterance)
        self._turn = None
        self._recent.clear()
        self._continue_after_cut = False
        self._last_end_s = None
        return events

    @property
    def pause_ms(self) -> float | None:
        """Silence so far in the open turn's current pause (None: no pause under way)."""
        turn = self._turn
        if turn is None or turn.in_voice:
            return None
        return turn.silence * 1000 / SAMPLE_RATE

    def set_pause_hangover(self, ms: float) -> None:
        """Make the current pause end the turn after `ms` of silence instead of the
        configured hangover (the caller judged what was said so far). A pause that
        speech interrupts forgets it; the next pause starts from the default again."""
        turn = self._turn
        if turn is not None and not turn.in_voice:
            turn.pause_hangover = _ms_to_samples(ms)

    def close_pause(self, at: float | None = None) -> Utterance | None:
        """End the open turn now, if it is in a pause (None otherwise, or too short)."""
        turn = self._turn
        if turn is None or turn.in_voice or self._last_end_s is None:
            return None
        return self._close(end_of_turn_s=self._last_end_s, truncated=False, at=at)

    def _idle(self, frame: AudioFrame, prob: float) -> list[EndpointEvent]:
        if self._continue_after_cut:
            self._continue_after_cut = False
            if prob >= self._neg_threshold:  # still in voice: hysteresis carries over the cut
                return [self._open([(frame, True)], [])]
        recent = self._recent
        recent.append((frame, prob >= self._threshold))
        if not recent[-1][1]:
            return []
        window = list(islice(reversed(recent), self._window))[::-1]
        voiced = sum(len(f.samples) for f, v in window if v)
        if voiced < self._start_samples:
            return []
        first = next(i for i, (_, v) in enumerate(window) if v)
        onset = window[first:]
        history = list(recent)[: len(recent) - len(window) + first]
        return [self._open(onset, [f for f, _ in history])]

    def _open(
        self, onset: list[tuple[AudioFrame, bool]], history: list[AudioFrame]
    ) -> SpeechStarted:
        """Start a turn at onset[0] (voiced), with up to preroll_ms taken from history."""
        preroll: list[AudioFrame] = []
        have = 0
        for f in reversed(history):
            if have >= self._preroll_samples:
                break
            preroll.append(f)
            have += len(f.samples)
        preroll.reverse()
        trim = max(0, have - self._preroll_samples)
        speech_start_s = onset[0][0].start_s
        start_s = preroll[0].start_s + trim / SAMPLE_RATE if preroll else speech_start_s
        speech_offset = have - trim
        total = speech_offset
        voiced = 0
        voiced_end = speech_offset
        last_voiced_s = speech_start_s
        for f, v in onset:
            total += len(f.samples)
            if v:
                voiced += len(f.samples)
                voiced_end = total
                last_voiced_s = f.end_s
        self._turn = _Turn(
            voiced_flags=[False] * len(preroll) + [v for _, v in onset],
            frames=preroll + [f for f, _ in onset],
            trim=trim,
            start_s=start_s,
            speech_start_s=speech_start_s,
            speech_offset=speech_offset,
            total=total,
            voiced=voiced,
            voiced_end=voiced_end,
            last_voiced_s=last_voiced_s,
        )
        self._recent.clear()
        return SpeechStarted(speech_start_s=speech_start_s, at=self._clock())

    def _in_turn(self, turn: _Turn, frame: AudioFrame, prob: float) -> list[EndpointEvent]:
        n = len(frame.samples)
        turn.frames.append(frame)
        turn.total += n
        voiced = prob >= (self._neg_threshold if turn.in_voice else self._threshold)
        turn.voiced_flags.append(voiced)
        if voiced:
            resumed = not turn.in_voice
            turn.in_voice = True
            turn.voiced += n
            turn.voiced_end = turn.total
            turn.last_voiced_s = frame.end_s
            turn.silence = 0
            turn.pause_hangover = None
            if resumed:
                return [SpeechResumed(at_s=frame.start_s, at=self._clock())]
            return []
        was_in_voice = turn.in_voice
        turn.in_voice = False
        turn.silence += n
        hangover = self._hangover_samples if turn.pause_hangover is None else turn.pause_hangover
        if turn.silence >= hangover:
            utterance = self._close(end_of_turn_s=frame.end_s, truncated=False)
            return [] if utterance is None else [utterance]
        if was_in_voice:
            # Hand over the audio so far so a transcriber can start while the hangover runs.
            return [
                SpeechPaused(
                    audio=turn.audio(min(turn.total, turn.voiced_end + self._tail_samples)),
                    start_s=turn.start_s,
                    last_voiced_s=turn.last_voiced_s,
                    at=self._clock(),
                )
            ]
        return []

    def _close(
        self, end_of_turn_s: float, truncated: bool, at: float | None = None
    ) -> Utterance | None:
        """End the open turn; returns its Utterance, or None when it was too short."""
        turn = self._turn
        assert turn is not None
        self._turn = None
        end = turn.total if truncated else min(turn.total, turn.voiced_end + self._tail_samples)
        # Frames wholly after the cut may serve as pre-roll for the next turn.
        cut_s = turn.start_s + end / SAMPLE_RATE
        self._recent.extend((f, False) for f in turn.frames if f.start_s >= cut_s - 1e-9)
        if turn.voiced < self._min_samples:
            log.debug(
                "vad_turn_dropped",
                reason="too_short",
                voiced_ms=round(turn.voiced * 1000 / SAMPLE_RATE),
                speech_start_s=round(turn.speech_start_s, 3),
            )
            return None
        return Utterance(
            audio=turn.audio(end),
            start_s=turn.start_s,
            speech_start_s=turn.speech_start_s,
            last_voiced_s=turn.last_voiced_s,
            end_of_turn_s=end_of_turn_s,
            decided_at=self._clock() if at is None else at,
            truncated=truncated,
        )


async def endpoint_stream(
    frames: AsyncIterator[AudioFrame], vad: SileroVad, endpointer: Endpointer
) -> AsyncIterator[EndpointEvent]:
    """Run the VAD and the endpointer over a stream of frames; flushes at end of stream."""
    vad.reset()  # a previous stream's recurrent state must not colour this one
    async for frame in frames:
        # Silero costs ~0.1 ms per 32 ms frame: calling it inline on the event loop is
        # cheaper than a hop to a worker thread and never blocks the loop noticeably.
        for event in endpointer.process(frame, vad.prob(frame.samples)):
            yield event
    for event in endpointer.flush():
        yield event
