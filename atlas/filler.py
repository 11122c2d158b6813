"""The Poker Face Protocol's filler phrases, synthesized once at start and kept as PCM.

A cloud turn must make a sound within ~50 ms of the route decision; synthesizing then
would cost 100+ ms, so every filler is rendered at start-up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from atlas.persona import Persona
from voice.tts import Synthesizer
from voice.types import Samples

log = structlog.get_logger("atlas.filler")


@dataclass(frozen=True)
class Filler:
    text: str
    audio: Samples
    sample_rate: int


class FillerCache:
    def __init__(self, persona: Persona, tts: Synthesizer, phrases: tuple[str, ...]) -> None:
        t0 = time.perf_counter()
        self._persona = persona
        self._audio = {text: tts.synthesize(text) for text in phrases}
        self._rate = tts.sample_rate
        log.info(
            "fillers.ready",
            count=len(self._audio),
            ms=round((time.perf_counter() - t0) * 1000, 1),
        )

    def pick(self) -> Filler:
        """A filler (never the same one twice in a row, via the persona)."""
        text = self._persona.filler()
        audio = self._audio.get(text)
        if audio is None:  # a phrase added after start: still never silent
            text, audio = next(iter(self._audio.items()))
        return Filler(text, audio, self._rate)

    def __len__(self) -> int:
        return len(self._audio)
