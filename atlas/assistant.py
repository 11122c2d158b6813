"""One turn: transcript -> wake check -> route -> filler -> stream -> speak.

The answer's text deltas go through the chunker into Piper (pipelined: chunk n+1 is
synthesized while chunk n plays) and out to the sink. For cloud tiers a cached filler
starts playing right after the route decision; the answer is queued behind it, so it
follows without overlap and without cutting the filler mid-word.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import structlog

from atlas.deadlines import Deadline, DeadlineConfig, let_stop, next_deadline, watch
from atlas.filler import FillerCache
from atlas.llm.router import AnswerResult, RouteDecision, Router
from atlas.persona import Persona
from atlas.turn import Floor, TurnHandle, TurnRecord
from atlas.wake import WakeGate
from voice.chunker import SentenceChunker, chunks
from voice.config import ChunkerConfig
from voice.listener import Heard
from voice.sinks import AudioSink, PlaybackMark
from voice.tts import Synthesizer
from voice.types import Samples

log = structlog.get_logger("atlas.assistant")


@dataclass
class _Spoken:
    """What a turn put on the sink, in order, with when each piece plays."""

    filler: str | None = None
    pieces: list[tuple[str, PlaybackMark]] = field(default_factory=list)
    result: AnswerResult | None = None
    generated: list[str] = field(default_factory=list)
    """Answer text received so far: the record's answer when the turn is cut."""
    waiting_s: float = 0.0
    """Time spent waiting for the speaker (backpressure, the person talking): not slowness."""
    sounding: bool = False
    """The answer's first sound, or a floor-holding filler, has been sent to the sink."""
    holding: asyncio.Event | None = None
    """Set once the floor-holding filler is on the sink (the answer waits for it)."""

    def heard_at(self, now: float) -> str:
        """The answer text a person had heard by `now` (a partly played chunk by words)."""
        out: list[str] = []
        for text, mark in self.pieces:
            if mark.end_at <= now:
                out.append(text)
            elif mark.first_sample_at < now:
                words = text.split()
                frac = (now - mark.first_sample_at) / max(mark.end_at - mark.first_sample_at, 1e-6)
                out.append(" ".join(words[: int(len(words) * frac)]))
                break
            else:
                break
        return " ".join(x for x in out if x)


class Assistant:
    def __init__(
        self,
        *,
        router: Router,
        tts: Synthesizer,
        sink: AudioSink,
        fillers: FillerCache,
        wake: WakeGate,
        persona: Persona,
        chunker: ChunkerConfig,
        clock: Callable[[], float] = time.monotonic,
        filler: bool = True,
        wait_line_s: float = 0.0,
        stream_tts: bool = True,
        deadlines: DeadlineConfig | None = None,
    ) -> None:
        self._router = router
        self._tts = tts
        self._sink = sink
        self._fillers = fillers
        self._wake = wake
        self._persona = persona
        self._chunker = chunker
        self._clock = clock
        self._filler_on = filler
        self._wait_line_s = wait_line_s
        self._stream_tts = stream_tts
        self._turns = 0
        self._current: TurnHandle | None = None
        self._audible_at: float | None = None
        self._floor = Floor()
        self._deadlines = deadlines or DeadlineConfig()
        self._stragglers: set[asyncio.Task[None]] = set()
        """Cancelled turns' tasks still stopping (a starved worker): kept until done."""

    def with_sink(self, sink: AudioSink, wake: WakeGate) -> Assistant:
        """The same assistant (router, voice, cached fillers) speaking into another sink,
        with its own wake gate: one conversation per replayed file, nothing reloaded."""
        return Assistant(
            router=self._router,
            tts=self._tts,
            sink=sink,
            fillers=self._fillers,
            wake=wake,
            persona=self._persona,
            chunker=self._chunker,
            clock=self._clock,
            filler=self._filler_on,
            wait_line_s=self._wait_line_s,
            stream_tts=self._stream_tts,
            deadlines=self._deadlines,
        )

    def variant(
        self, *, filler: bool, stream_tts: bool, tts: Synthesizer | None = None
    ) -> Assistant:
        """The same assistant with the filler off, or the whole answer synthesized before
        the first sound: the benchmark's side-by-side comparisons. `tts`: another voice
        engine (the benchmark's measuring wrapper around the same one)."""
        other = self.with_sink(self._sink, self._wake)
        other._filler_on = filler
        other._stream_tts = stream_tts
        if tts is not None:
            other._tts = tts
        return other

    @property
    def answer_audible_at(self) -> float | None:
        """When the latest turn's first sound (filler or answer) was heard, if it was."""
        return self._audible_at

    def share_floor(self, floor: Floor) -> None:
        """The conversation's view of whether the person is talking right now."""
        self._floor = floor

    def addresses(self, transcript: str) -> bool:
        """Would this transcript be for ATLAS now (wake phrase, follow-up window)?"""
        return self._wake.check(transcript).addressed

    def request_text(self, transcript: str) -> str:
        """What was asked, without the wake phrase (empty when only the phrase was said)."""
        return self._wake.request_text(transcript)

    @property
    def busy(self) -> bool:
        """A turn is under way or ATLAS is still audible (half-duplex: don't listen)."""
        return self._current is not None or self._sink.is_playing

    def interrupt(self, reason: str) -> None:
        """Barge-in or shutdown: stop the current turn and its audio now."""
        if self._current is not None:
            self._current.cancel(reason)
        self._sink.clear()

    async def handle(self, heard: Heard, *, live: bool = True) -> TurnRecord:
        """One turn. `live`: the input runs in real time, so when the speech began can be
        set against when ATLAS was audible (the echo guard); a fast replay cannot."""
        h = self._new_turn(heard.transcript.text)
        u = heard.utterance
        hang = u.end_of_turn_s - u.last_voiced_s
        h.stamp("speech_start", u.decided_at - (u.end_of_turn_s - u.speech_start_s))
        h.stamp("speech_end", u.decided_at - hang)
        h.stamp("end_of_turn", u.decided_at)
        h.stamp("transcript", heard.transcript_at)
        started = h.stamps["speech_start"] if live else None
        addressed = self._wake.check(heard.transcript.text, started_at=started)
        if not addressed.addressed:
            log.info(
                "turn.ignored", turn=h.number, why=addressed.reason, text=heard.transcript.text
            )
            return self._record(h, _Spoken(), ignored=addressed.reason)
        if not addressed.text.strip():
            return await self.say(self._persona.line("acknowledge"), h)
        decided = self._clock()
        decision = self._router.decide(addressed.text)
        h.stamp("route")
        if self._deadlines.enabled and h.stamps["route"] - decided > self._deadlines.route_s:
            # decide() is CPU work that cannot be interrupted: recorded, then answered.
            h.missed_deadline = "route"
            log.warning("turn.deadline_missed", turn=h.number, stage="route")
        log.info("route", turn=h.number, tier=decision.tier, reason=decision.reason)
        return await self._run(h, decision)

    async def prime(self, transcript: str, *, ending: bool = False) -> None:
        """Prepare for a probable turn (see Router.prime); never raises, never speaks.
        `ending`: the turn ends now, so the router must not take the time to classify."""
        addressed = self._wake.check(transcript)  # pure: no state changes
        if addressed.addressed and addressed.text.strip():
            try:
                await self._router.prime(addressed.text, classify=not ending)
            except Exception as e:  # a failed warm-up must never disturb listening
                log.debug("prime_failed", error=type(e).__name__)

    async def say(self, text: str, h: TurnHandle | None = None) -> TurnRecord:
        """Speak a line of ATLAS's own (timer done, acknowledgement) as a turn."""
        h = h or self._new_turn("")
        spoken = _Spoken()
        task = h.spawn(self._speak_text(h, _one(text), spoken), "say")
        await self._await_turn(h, task)
        return self._finish(h, spoken, answer=text)

    async def say_too_slow(self, stage: str) -> TurnRecord:
        """A stage before the turn began (STT) passed its deadline: say so in persona."""
        h = self._new_turn("")
        h.missed_deadline = stage
        return await self.say(self._persona.line("too_slow"), h)

    # ------------------------------------------------------------------ inside

    def _new_turn(self, transcript: str) -> TurnHandle:
        self._turns += 1
        self._audible_at = None
        return TurnHandle(self._turns, transcript, self._clock)

    async def _run(self, h: TurnHandle, decision: RouteDecision) -> TurnRecord:
        spoken = _Spoken()
        task = h.spawn(self._speak_answer(h, decision, spoken), "answer")

        def pending() -> Deadline | None:
            return next_deadline(
                self._deadlines,
                h.stamps,
                local=decision.tier == "local",
                home=decision.home is not None,
                answered=spoken.result is not None,
                speaking_s=spoken.waiting_s,
            )

        missed = await self._await_turn(h, task, pending)
        # A cut turn has no final result; its answer is what had been generated.
        answer = spoken.result.text if spoken.result else "".join(spoken.generated).strip()
        if missed is not None:
            return await self._too_slow(h, spoken, answer, decision)
        return self._finish(h, spoken, answer=answer, decision=decision)

    async def _await_turn(
        self,
        h: TurnHandle,
        task: asyncio.Task[None],
        pending: Callable[[], Deadline | None] | None = None,
    ) -> Deadline | None:
        """Until the turn's task ends, or (with `pending`) until a deadline passes: then
        the turn is cancelled through its handle and the missed deadline returned."""
        self._current = h
        try:
            missed = None
            if pending is not None and self._deadlines.enabled:
                missed = await self._watch(h, task, pending)
            if missed is None:
                await task
            return missed
        except asyncio.CancelledError:
            if not h.cancelled:  # our caller was cancelled, not the turn
                task.cancel()
                raise
            return None
        finally:
            self._current = None

    async def _watch(
        self, h: TurnHandle, task: asyncio.Task[None], pending: Callable[[], Deadline | None]
    ) -> Deadline | None:
        d = await watch(task, pending, self._clock, lambda: h.cancelled)
        if d is not None:
            log.warning("turn.deadline_missed", turn=h.number, stage=d.stage, limit_s=d.limit_s)
            h.missed_deadline = d.stage
            h.cancel("deadline")
            if not await let_stop(task, self._deadlines.cancel_grace_s, self._stragglers):
                log.warning("turn.cancel_slow", turn=h.number)
        return d

    async def _too_slow(
        self, h: TurnHandle, spoken: _Spoken, answer: str, decision: RouteDecision
    ) -> TurnRecord:
        """A deadline passed and the turn was cancelled: stop what was queued, say so in
        persona (bounded too: the line's synthesis may be starved as well), listen again."""
        heard = spoken.heard_at(self._clock())
        self._sink.clear()
        line = self._persona.line("too_slow")
        said = _Spoken()
        limit = self._deadlines.tts_s + self._deadlines.cancel_grace_s
        try:
            await asyncio.wait_for(self._speak_text(h, _one(line), said), limit)
            heard = f"{heard} {line}".strip()
        except TimeoutError:
            log.warning("turn.line_unsaid", turn=h.number, kind="too_slow")
            self._sink.clear()
        spoken.pieces.extend(said.pieces)
        return self._finish(h, spoken, answer=answer, decision=decision, heard=heard)

    async def _speak_answer(self, h: TurnHandle, d: RouteDecision, spoken: _Spoken) -> None:
        hold = None
        if d.wants_filler and self._filler_on:
            await self._say_filler(h, spoken)
        elif self._wait_line_s > 0 and self._filler_on:
            hold = h.spawn(self._hold_floor(h, spoken), "hold")
        try:
            await self._speak_text(h, self._answer_deltas(h, d, spoken), spoken)
        finally:
            if hold is not None:
                hold.cancel()

    async def _say_filler(self, h: TurnHandle, spoken: _Spoken) -> None:
        filler = self._fillers.pick()
        mark = await self._first_write(filler.audio, filler.sample_rate, "filler", spoken)
        h.stamp("filler_first_sample", mark.first_sample_at)
        spoken.filler = filler.text
        self._wake.remember_played(filler.text, mark.first_sample_at, mark.end_at)

    async def _hold_floor(self, h: TurnHandle, spoken: _Spoken) -> None:
        """Nothing audible `wait_line_s` after the end of speech (a busy box, or rooms
        served in turn): a filler holds the floor, in persona, and the answer follows."""
        due = h.stamps.get("speech_end", self._clock()) + self._wait_line_s
        await asyncio.sleep(max(0.0, due - self._clock()))
        if spoken.sounding:
            return
        spoken.sounding = True
        spoken.holding = asyncio.Event()
        try:
            log.info("turn.hold_floor", turn=h.number, after_s=self._wait_line_s)
            await self._say_filler(h, spoken)
        finally:
            spoken.holding.set()

    async def _answer_deltas(
        self, h: TurnHandle, d: RouteDecision, spoken: _Spoken
    ) -> AsyncIterator[str]:
        async for item in self._router.respond(d):
            if isinstance(item, AnswerResult):
                spoken.result = item
                if item.home_at is not None:
                    h.stamp("home", item.home_at)
            elif item:
                h.stamp("first_token")
                spoken.generated.append(item)
                yield item

    async def _speak_text(self, h: TurnHandle, deltas: AsyncIterator[str], spoken: _Spoken) -> None:
        async def stamped() -> AsyncIterator[str]:
            async for chunk in chunks(deltas, SentenceChunker(self._chunker)):
                if self._persona.never_said(chunk):  # "As an AI, ..." is never spoken
                    log.info("chunk.scrubbed", turn=h.number, chunk=chunk)
                    continue
                h.stamp("first_chunk")
                yield chunk

        async def whole() -> AsyncIterator[str]:
            text = " ".join([c async for c in stamped()])
            if text:
                yield text

        async for piece in self._tts.stream(stamped() if self._stream_tts else whole()):
            if not spoken.sounding:
                spoken.sounding = True  # from here on, no filler may jump in first
            elif spoken.holding is not None:
                await spoken.holding.wait()  # the floor-holding filler goes first
            mark = await self._first_write(piece.audio, piece.sample_rate, "answer", spoken)
            h.stamp("first_answer_sample", mark.first_sample_at)
            spoken.pieces.append((piece.text, mark))
            self._wake.remember_played(piece.text, mark.first_sample_at, mark.end_at)
        await self._sink.wait_for_playout()
        if spoken.pieces:
            h.stamp("last_sample", spoken.pieces[-1][1].end_at)

    async def _first_write(
        self, audio: Samples, rate: int, label: str, spoken: _Spoken
    ) -> PlaybackMark:
        """Write to the sink; the turn's first sound waits while the person is talking,
        and its time is what continuation and barge-in judge by."""
        started = time.monotonic()
        try:
            return await self._write(audio, rate, label)
        finally:
            spoken.waiting_s += time.monotonic() - started

    async def _write(self, audio: Samples, rate: int, label: str) -> PlaybackMark:
        first = self._audible_at is None
        if first and not self._floor.quiet:
            log.info("floor.wait", label=label)
            await self._floor.wait_quiet()
        mark = await self._sink.write(audio, rate, label=label)
        if first:
            self._audible_at = mark.first_sample_at
        return mark

    def _finish(
        self,
        h: TurnHandle,
        spoken: _Spoken,
        *,
        answer: str,
        decision: RouteDecision | None = None,
        heard: str | None = None,
    ) -> TurnRecord:
        """`heard`: given when the turn ended with a line of its own (a missed deadline)."""
        now = self._clock()
        cut = h.cancelled and heard is None
        if cut:
            self._sink.clear()
            heard = spoken.heard_at(now)
        elif heard is None:
            heard = " ".join(t for t, _ in spoken.pieces)
        end = spoken.pieces[-1][1].end_at if spoken.pieces and not cut else now
        self._wake.open_followup(end)
        rec = self._record(h, spoken, decision=decision, answer=answer, heard=heard)
        log.info(
            "turn",
            turn=h.number,
            tier=rec.tier,
            interrupted=rec.interrupted,
            **{f"{k}_ms": round(v) for k, v in rec.since_speech_end_ms.items() if v >= 0},
        )
        return rec

    def _record(
        self,
        h: TurnHandle,
        spoken: _Spoken,
        *,
        ignored: str | None = None,
        decision: RouteDecision | None = None,
        answer: str = "",
        heard: str = "",
    ) -> TurnRecord:
        result = spoken.result
        return TurnRecord(
            turn=h.number,
            transcript=h.transcript,
            addressed=ignored is None,
            ignored_reason=ignored,
            tier=result.answered_by if result else (decision.tier if decision else None),
            wanted=decision.wanted if decision else None,
            stage=decision.stage if decision else None,
            reason=decision.reason if decision else None,
            filler=spoken.filler,
            answer=answer,
            heard=heard,
            interrupted=h.interrupted,
            deadline_missed=h.missed_deadline,
            cost_usd=result.cost_usd if result else 0.0,
            fallback_reason=result.fallback_reason if result else None,
            timestamps=dict(h.stamps),
            since_speech_end_ms=h.since_speech_end_ms(),
        )


async def _one(text: str) -> AsyncIterator[str]:
    yield text
