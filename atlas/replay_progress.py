"""How far a replay got, for the line `atlas replay` prints when it is cut short.

Turns done and seconds of the file read come from the running replay. How many turns
the file holds is only known by listening to all of it, so a background thread counts
the utterances with the VAD and the endpointer alone (about 0.1 ms of CPU per 32 ms
frame, a few seconds for an hour of audio) while the replay runs.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import numpy as np
import structlog

from atlas.settings import Settings
from voice.audio import DecodedAudio, FileSource
from voice.types import FRAME_S, FRAME_SAMPLES, AudioFrame, Utterance
from voice.vad import Endpointer, SileroVad

log = structlog.get_logger("atlas.replay")


class ReplayProgress:
    """Turns done, seconds read, and (once counted) the utterances in the whole file."""

    def __init__(self, duration_s: float) -> None:
        self.duration_s = duration_s
        self.turns = 0
        self.answered = 0
        self.source: FileSource | None = None
        self.utterances: int | None = None
        """None until the background count has finished."""
        self._stop = threading.Event()
        self._counter: threading.Thread | None = None

    def count_utterances(self, audio: DecodedAudio, settings: Settings, vad_model: Path) -> None:
        """Start counting the file's utterances in a background thread."""

        def run() -> None:
            try:
                self.utterances = _count(audio, settings, vad_model, self._stop)
            except Exception as e:  # a count is a nicety: never let it hurt the replay
                log.debug("replay.count_failed", error=repr(e))

        self._counter = threading.Thread(target=run, name="atlas-replay-count", daemon=True)
        self._counter.start()

    def stop_counting(self) -> None:
        self._stop.set()
        if self._counter is not None:
            self._counter.join(timeout=5.0)

    def cut_short(self, signum: int, out: Path | None) -> str:
        read = self.source.position_s if self.source is not None else 0.0
        total = "" if self.utterances is None else f" of the {self.utterances} in the file"
        wrote = f"; the reply so far is in {out}" if out else ""
        return (
            f"replay cut short by {signal.Signals(signum).name}: {self.turns} "
            f"turn{'' if self.turns == 1 else 's'} done{total} ({self.answered} answered), "
            f"{read:.1f} s of {self.duration_s:.1f} s of audio read{wrote}"
        )


def _count(
    audio: DecodedAudio, settings: Settings, vad_model: Path, stop: threading.Event
) -> int | None:
    """Utterances the endpointer finds in the file, padded as the replay pads it."""
    fi = settings.file_input
    lead = np.zeros(round(fi.lead_silence_ms * 16), np.float32)
    tail = np.zeros(round(fi.tail_silence_ms * 16), np.float32)
    samples = np.concatenate([lead, audio.samples, tail])
    vad = SileroVad(vad_model, settings.vad)
    endpointer = Endpointer(settings.endpointer, settings.vad)
    count = 0
    for i in range(0, len(samples) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        if stop.is_set():
            return None
        start = i // FRAME_SAMPLES * FRAME_S
        frame = AudioFrame(samples=samples[i : i + FRAME_SAMPLES], start_s=start, captured_at=0.0)
        events = endpointer.process(frame, vad.prob(frame.samples))
        count += sum(isinstance(e, Utterance) for e in events)
    count += sum(isinstance(e, Utterance) for e in endpointer.flush())
    return count
