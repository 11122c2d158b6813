"""Frames -> utterances -> transcripts: the ears as one async stage.

The endpointer runs as a producer task and hands finished utterances to the
transcriber through a bounded queue, so the VAD keeps consuming audio while Whisper
works; when Whisper falls behind, the queue fills and pushes back on the source
(whose own bounded queue then drops the oldest audio, with a log line).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from voice.stt import Transcriber
from voice.types import EndpointEvent, Transcript, Utterance

log = structlog.get_logger("voice.listener")

_DONE = object()


@dataclass(frozen=True)
class Heard:
    """An utterance and what was heard in it."""

    utterance: Utterance
    transcript: Transcript
    transcript_at: float
    """Monotonic time the transcript was ready."""


async def hear(
    events: AsyncIterator[EndpointEvent],
    transcriber: Transcriber,
    max_pending: int = 4,
) -> AsyncIterator[Heard]:
    """Transcribe each Utterance from `events`, in order; other events are skipped."""
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=max_pending)

    async def produce() -> None:
        try:
            async for event in events:
                if isinstance(event, Utterance):
                    log.info(
                        "vad.utterance",
                        speech_start_s=round(event.speech_start_s, 3),
                        last_voiced_s=round(event.last_voiced_s, 3),
                        hangover_ms=round((event.end_of_turn_s - event.last_voiced_s) * 1000),
                        duration_s=round(event.duration_s, 2),
                        truncated=event.truncated,
                    )
                    await queue.put(event)
        finally:
            await queue.put(_DONE)

    producer = asyncio.create_task(produce(), name="endpointer")
    try:
        while (item := await queue.get()) is not _DONE:
            assert isinstance(item, Utterance)
            transcript = await transcriber.transcribe(item.audio)
            log.info(
                "stt",
                ms=round(transcript.stt_ms, 1),
                chars=len(transcript.text),
                dropped=list(transcript.dropped),
            )
            yield Heard(item, transcript, time.monotonic())
        await producer  # re-raise a source error (e.g. the microphone vanished)
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
