"""The daemon's loop: audio frames -> VAD/endpointer -> (speculative) STT -> turns.

Half-duplex by default: while ATLAS speaks, utterances do not start turns. With
barge-in enabled, >= `barge_in_min_ms` of speech during playback stops playback, cancels
the turn (not a breaker failure) and the new utterance is handled.

Speculative STT: when a pause begins, transcription of the audio so far starts at once;
if the turn then ends without more speech, that result is used, so Whisper runs during
the end-of-turn hangover instead of after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from atlas.app import Ears
from atlas.assistant import Assistant
from atlas.settings import AssistantConfig
from atlas.skills import TimerService
from atlas.turn import TurnRecord
from voice.audio import AudioSource
from voice.listener import Heard
from voice.types import Samples, SpeechPaused, SpeechResumed, SpeechStarted, Transcript, Utterance

log = structlog.get_logger("atlas.conversation")


@dataclass
class _Speculation:
    last_voiced_s: float
    task: asyncio.Task[Transcript]


class Conversation:
    def __init__(
        self,
        ears: Ears,
        assistant: Assistant,
        config: AssistantConfig,
        timers: TimerService | None,
        on_turn: Callable[[TurnRecord], None],
    ) -> None:
        self._ears = ears
        self._assistant = assistant
        self._config = config
        self._timers = timers
        self._on_turn = on_turn
        self._turn: asyncio.Task[None] | None = None
        self._speculation: _Speculation | None = None
        self._prime: asyncio.Task[None] | None = None
        self._speech_started_s: float | None = None
        self._turn_lock = asyncio.Lock()
        self._sequential = False

    @property
    def idle(self) -> bool:
        return (self._turn is None or self._turn.done()) and not self._assistant.busy

    async def serve(self, source: AudioSource, *, sequential: bool = False) -> None:
        """Consume `source` until it ends. `sequential` (fast file replay) runs each turn
        to completion before reading on; otherwise turns run beside the listening."""
        self._sequential = sequential
        vad, endpointer = self._ears.vad, self._ears.endpointer()
        frames = source.frames()
        try:
            async for frame in frames:
                for event in endpointer.process(frame, vad.prob(frame.samples)):
                    await self._on_event(event, sequential)
                self._check_barge_in(frame.end_s)
            for event in endpointer.flush():
                await self._on_event(event, sequential)
        finally:
            self._drop_speculation()
        await self.wait_idle()

    async def wait_idle(self) -> None:
        """Until the current turn and any timer announcement under way are over."""
        await self._wait_turn()
        # An announcement holds the turn lock while it speaks; a caller that stops the
        # announcer right after this (a replay's end) must not cut it mid-synthesis.
        async with self._turn_lock:
            pass

    async def _wait_turn(self) -> None:
        if self._turn is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._turn

    async def announce_timers(self) -> None:
        """Announce each finished timer once ATLAS is free (runs for the daemon's life)."""
        if self._timers is None:
            return
        while True:
            fired = await self._timers.events.get()
            async with self._turn_lock:
                await self._wait_turn()
                record = await self._assistant.say(fired.timer.done_line())
            self._on_turn(record)

    async def shutdown(self, grace_s: float) -> None:
        """Let the current answer go on for `grace_s`, then cut it."""
        if self._turn is None or self._turn.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._turn), grace_s)
        except TimeoutError:
            self._assistant.interrupt("shutdown")
            await self.wait_idle()

    # ---------------------------------------------------------------- events

    async def _on_event(self, event: object, sequential: bool) -> None:
        if isinstance(event, SpeechStarted):
            self._speech_started_s = event.speech_start_s
        elif isinstance(event, SpeechPaused):
            self._speech_started_s = None
            if self._config.speculative_stt and self._listening():
                self._drop_speculation()
                task = asyncio.create_task(self._speculate(event.audio))
                self._speculation = _Speculation(event.last_voiced_s, task)
        elif isinstance(event, SpeechResumed):
            self._drop_speculation()
        elif isinstance(event, Utterance):
            self._speech_started_s = None
            await self._on_utterance(event, sequential)

    async def _speculate(self, audio: Samples) -> Transcript:
        """Transcribe the audio so far; if it is for ATLAS, warm the local model's prompt
        cache with it while the hangover still runs (the turn may yet go on)."""
        transcript = await self._ears.transcriber.transcribe(audio)
        if not transcript.is_empty:
            self._prime = asyncio.create_task(self._assistant.prime(transcript.text))
        return transcript

    def _listening(self) -> bool:
        # A fast replay finishes each turn before reading on: the simulated speaker's
        # playout lies in the future then, but no real person is talking over it.
        return self._sequential or self.idle or self._config.barge_in

    async def _on_utterance(self, u: Utterance, sequential: bool) -> None:
        if not self._listening():
            self._drop_speculation()
            log.info("utterance.ignored", why="ATLAS is speaking (half-duplex)")
            return
        transcript = await self._transcribe(u)
        heard = Heard(u, transcript, time.monotonic())
        if transcript.is_empty:
            return
        if not self._sequential and not self.idle:  # barge-in: the new turn replaces it
            self._assistant.interrupt("barge_in")
            await self.wait_idle()
        self._turn = asyncio.create_task(self._handle(heard), name="turn")
        if sequential:
            await self.wait_idle()

    async def _transcribe(self, u: Utterance) -> Transcript:
        spec, self._speculation = self._speculation, None
        if spec is not None and abs(spec.last_voiced_s - u.last_voiced_s) < 1e-6:
            try:
                transcript = await spec.task
                log.info("stt", ms=round(transcript.stt_ms, 1), speculative=True)
                return transcript
            except asyncio.CancelledError:
                pass
        elif spec is not None:
            spec.task.cancel()
        transcript = await self._ears.transcriber.transcribe(u.audio)
        log.info("stt", ms=round(transcript.stt_ms, 1), speculative=False)
        return transcript

    async def _handle(self, heard: Heard) -> None:
        async with self._turn_lock:
            record = await self._assistant.handle(heard)
        self._on_turn(record)

    def _drop_speculation(self) -> None:
        if self._speculation is not None:
            self._speculation.task.cancel()
            self._speculation = None

    def _check_barge_in(self, now_s: float) -> None:
        if not self._config.barge_in or self._speech_started_s is None or self.idle:
            return
        if (now_s - self._speech_started_s) * 1000 >= self._config.barge_in_min_ms:
            log.info("barge_in", speech_ms=round((now_s - self._speech_started_s) * 1000))
            self._speech_started_s = None
            self._assistant.interrupt("barge_in")
