"""The daemon's loop: audio frames -> VAD/endpointer -> (speculative) STT -> turns.

Half-duplex by default: while ATLAS speaks, utterances do not start turns. With
barge-in enabled, >= `barge_in_min_ms` of speech during playback stops playback, cancels
the turn (not a breaker failure) and the new utterance is handled.

Speculative STT: when a pause begins, transcription of the audio so far starts at once;
if the turn then ends without more speech, that result is used, so Whisper runs during
the end-of-turn hangover instead of after it.

End of turn (atlas.endofturn): that speculative transcript also decides how long the
pause must last. A complete request ends as soon as it is transcribed; "one ...", "set
a timer for ..." wait much longer. And if the person speaks again just after a turn
ended (continuation), the answer is stopped, the two pieces of audio are joined and the
whole is transcribed and answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import structlog

from atlas.app import Ears
from atlas.assistant import Assistant
from atlas.endofturn import Completeness, EndOfTurnPolicy, TurnTakingConfig, completeness
from atlas.heap import trim
from atlas.settings import AssistantConfig
from atlas.skills.timers import TimerEvents
from atlas.turn import Floor, TurnRecord
from voice.audio import AudioSource
from voice.listener import Heard
from voice.types import (
    SAMPLE_RATE,
    Samples,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    Transcript,
    Utterance,
)
from voice.vad import Endpointer

log = structlog.get_logger("atlas.conversation")


@dataclass
class _Speculation:
    last_voiced_s: float
    task: asyncio.Task[Transcript]
    judged: bool = False


@dataclass
class _Closed:
    """The last turn that ended, while it may still be continued."""

    utterance: Utterance
    turn: asyncio.Task[None] | None
    addressed: bool
    """Only a turn meant for ATLAS is continued (others stay ignored on their own)."""


class Listening(Protocol):
    """Told what the conversation hears as it hears it (a satellite shows it: Wyoming's
    voice-started, voice-stopped and transcript events). Must not block."""

    def voice_started(self) -> None: ...

    def voice_stopped(self) -> None: ...

    def transcript(self, text: str) -> None:
        """A turn for ATLAS was heard, before it is answered."""


class Conversation:
    def __init__(
        self,
        ears: Ears,
        assistant: Assistant,
        config: AssistantConfig,
        timers: TimerEvents | None,
        on_turn: Callable[[TurnRecord], None],
        turn_taking: TurnTakingConfig | None = None,
        listening: Listening | None = None,
        trim_heap: Callable[[], object] = trim,
    ) -> None:
        self._listening_to = listening
        self._trim_heap = trim_heap
        self._trimming: asyncio.Future[object] | None = None
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
        self._policy = EndOfTurnPolicy(turn_taking or TurnTakingConfig())
        self._closed: _Closed | None = None
        self._floor = Floor()
        assistant.share_floor(self._floor)
        self._continuing: Utterance | None = None
        """A turn being continued: its audio goes in front of the next utterance's."""

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
            threshold = self._ears.settings.vad.threshold
            async for frame in frames:
                prob = vad.prob(frame.samples)
                self._floor.heard(prob >= threshold)
                for event in endpointer.process(frame, prob):
                    await self._on_event(event, sequential)
                ended = self._judge_pause(endpointer)
                if ended is not None:
                    await self._on_event(ended, sequential)
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
            if self._listening_to is not None:
                self._listening_to.voice_started()
            self._check_continuation(event)
        elif isinstance(event, SpeechPaused):
            self._speech_started_s = None
            if self._config.speculative_stt and self._listening():
                self._drop_speculation()
                task = asyncio.create_task(self._speculate(self._joined(event.audio)))
                self._speculation = _Speculation(event.last_voiced_s, task)
                if sequential:
                    # A fast replay reads frames far ahead of real time: let the
                    # transcript be in within the pause, as it is live.
                    with contextlib.suppress(Exception):
                        await asyncio.shield(task)
        elif isinstance(event, SpeechResumed):
            self._drop_speculation()
        elif isinstance(event, Utterance):
            self._speech_started_s = None
            if self._listening_to is not None:
                self._listening_to.voice_stopped()
            await self._on_utterance(event, sequential)

    async def _speculate(self, audio: Samples) -> Transcript:
        """Transcribe the audio so far; if it is for ATLAS, warm the local model's prompt
        cache with it: during the rest of the pause when the words are not complete, or
        while the turn is being routed when they are (the turn then ends at once)."""
        transcript = await self._ears.transcriber.transcribe(audio)
        verdict = self._judge_text(transcript.text)
        if verdict is not None:
            ending = verdict == Completeness.COMPLETE
            self._prime = asyncio.create_task(self._assistant.prime(transcript.text, ending=ending))
        return transcript

    def _judge_pause(self, endpointer: Endpointer) -> Utterance | None:
        """Once the pause's speculative transcript is in, set how long this pause must
        last; end the turn at once when it already has. While the transcript is still
        being made, the pause waits for it (up to `transcript_wait_ms`)."""
        spec = self._speculation
        pause = endpointer.pause_ms
        if spec is None or pause is None:
            return None
        if not spec.task.done():
            endpointer.set_pause_hangover(self._policy.config.transcript_wait_ms)
            return None
        if not spec.judged:
            spec.judged = True
            verdict = self._verdict(spec.task)
            need = self._policy.silence_ms(verdict) if verdict else self._default_hangover_ms
            log.debug("end_of_turn.verdict", verdict=verdict and verdict.value, silence_ms=need)
            endpointer.set_pause_hangover(need)
            if pause >= need:
                return endpointer.close_pause()
        return None

    def _verdict(self, task: asyncio.Task[Transcript]) -> Completeness | None:
        """None: no judgement possible (STT failed, or heard nothing): default hangover."""
        if task.cancelled() or task.exception() is not None:
            return None
        return self._judge_text(task.result().text)

    def _judge_text(self, text: str) -> Completeness | None:
        if not text.strip():
            return None
        request = self._assistant.request_text(text)
        if not request.strip():
            return Completeness.INCOMPLETE  # "Atlas ...": the request is still to come
        return completeness(request)

    @property
    def _default_hangover_ms(self) -> int:
        return self._ears.settings.endpointer.hangover_ms

    def _check_continuation(self, started: SpeechStarted) -> None:
        """Speech soon after a turn ended continues it: stop that turn's answer (not a
        failure: nothing is charged but real usage) and join the audio."""
        closed = self._closed
        window = self._policy.config.continuation_window_ms / 1000
        if closed is None or window <= 0:
            return
        u = closed.utterance
        if started.speech_start_s - u.end_of_turn_s > window or not closed.addressed:
            self._closed = None
            return
        audible_at = self._assistant.answer_audible_at
        grace = self._policy.config.continuation_grace_ms / 1000
        if audible_at is not None and started.at - audible_at > grace:
            return  # ATLAS was already talking: an interruption, not a continuation
        self._closed = None
        self._continuing = u
        if closed.turn is not None and not closed.turn.done():
            log.info(
                "turn.continued", gap_ms=round((started.speech_start_s - u.end_of_turn_s) * 1000)
            )
            self._assistant.interrupt("continuation")

    def _joined(self, audio: Samples) -> Samples:
        """The continued turn's audio, a short gap, then `audio` (else `audio` alone)."""
        prev = self._continuing
        return audio if prev is None else _joined_audio(prev.audio, audio)

    def _listening(self) -> bool:
        # A fast replay finishes each turn before reading on: the simulated speaker's
        # playout lies in the future then, but no real person is talking over it.
        return self._sequential or self.idle or self._config.barge_in

    async def _on_utterance(self, u: Utterance, sequential: bool) -> None:
        if self._continuing is not None:
            await self.wait_idle()  # the continued turn is stopping (within ~a frame)
        if not self._listening():
            self._drop_speculation()
            log.info("utterance.ignored", why="ATLAS is speaking (half-duplex)")
            return
        if self._continuing is not None:
            u = _join(self._continuing, u)
            self._continuing = None
        transcript = await self._transcribe_in_time(u)
        if transcript is None:  # the STT deadline passed: say so, listen again
            self._turn = asyncio.create_task(self._handle_too_slow("stt"), name="turn")
            if sequential:
                await self.wait_idle()
            return
        heard = Heard(u, transcript, time.monotonic())
        if transcript.is_empty:
            return
        if not self._sequential and not self.idle:  # barge-in: the new turn replaces it
            self._assistant.interrupt("barge_in")
            await self.wait_idle()
        addressed = self._assistant.addresses(transcript.text)
        if addressed and self._listening_to is not None:
            self._listening_to.transcript(transcript.text)
        self._turn = asyncio.create_task(self._handle(heard), name="turn")
        self._closed = _Closed(u, self._turn, addressed)
        if sequential:
            await self.wait_idle()

    async def _transcribe_in_time(self, u: Utterance) -> Transcript | None:
        """The transcript, or None when it is not ready within the STT deadline (the
        worker thread is left to finish on its own; its result is dropped)."""
        deadlines = self._ears.settings.deadlines
        job = asyncio.create_task(self._transcribe(u), name="stt")
        if not deadlines.enabled:
            return await job
        try:
            done, _ = await asyncio.wait({job}, timeout=deadlines.stt_s)
        except asyncio.CancelledError:
            job.cancel()  # shutdown: the transcription goes with the conversation
            raise
        if done:
            return job.result()
        job.cancel()
        log.warning("turn.deadline_missed", stage="stt", limit_s=deadlines.stt_s)
        return None

    async def _handle_too_slow(self, stage: str) -> None:
        async with self._turn_lock:
            record = await self._assistant.say_too_slow(stage)
        self._on_turn(record)

    async def _transcribe(self, u: Utterance) -> Transcript:
        spec, self._speculation = self._speculation, None
        if spec is not None and abs(spec.last_voiced_s - u.last_voiced_s) < 1e-6:
            try:
                transcript = await spec.task
                log.info("stt", ms=round(transcript.stt_ms, 1), speculative=True)
                return transcript
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    raise  # this transcription was cancelled (the STT deadline)
        elif spec is not None:
            spec.task.cancel()
        transcript = await self._ears.transcriber.transcribe(u.audio)
        log.info("stt", ms=round(transcript.stt_ms, 1), speculative=False)
        return transcript

    async def _handle(self, heard: Heard) -> None:
        await self.answer(heard, live=not self._sequential)

    async def answer(self, heard: Heard, *, live: bool = True) -> TurnRecord:
        """One heard utterance answered the way every daemon turn is: under the turn lock,
        reported to `on_turn`, then the heap trimmed (atlas.heap) on a worker thread, so
        the loop never waits for it. `atlas bench soak` calls this too: a soak that went
        round it would measure memory the daemon never has."""
        async with self._turn_lock:
            record = await self._assistant.handle(heard, live=live)
        self._on_turn(record)
        self._trimming = asyncio.get_running_loop().run_in_executor(None, self._trim_heap)
        return record

    async def heap_trimmed(self) -> None:
        """Until the trim after the last answered turn is done. A daemon's next turn
        starts seconds later anyway; a soak waits here so that it measures memory at the
        same point after every turn."""
        if self._trimming is not None:
            await self._trimming

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


_JOIN_GAP_S = 0.2
"""Silence put between the pieces of a continued utterance (the real gap is not kept)."""


def _joined_audio(first: Samples, second: Samples) -> Samples:
    gap = np.zeros(round(_JOIN_GAP_S * SAMPLE_RATE), dtype=np.float32)
    return np.concatenate([first, gap, second]).astype(np.float32, copy=False)


def _join(first: Utterance, second: Utterance) -> Utterance:
    """One utterance from a turn and its continuation: Whisper hears the whole."""
    return Utterance(
        audio=_joined_audio(first.audio, second.audio),
        start_s=first.start_s,
        speech_start_s=first.speech_start_s,
        last_voiced_s=second.last_voiced_s,
        end_of_turn_s=second.end_of_turn_s,
        decided_at=second.decided_at,
        truncated=second.truncated,
    )
