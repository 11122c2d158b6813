"""`atlas transcribe` and `atlas listen`: the ears without the brain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import structlog

from atlas.app import Ears
from voice.audio import AudioSource, MicrophoneSource, decode_audio
from voice.errors import AudioFileError
from voice.listener import Heard, hear
from voice.vad import endpoint_stream

log = structlog.get_logger("atlas.hearing")


@dataclass(frozen=True)
class FileTranscript:
    """One utterance heard in a file; times are seconds into the file itself."""

    file: str
    start_s: float
    end_s: float
    text: str
    stt_ms: float
    truncated: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def as_line(self) -> str:
        cut = " [cut at max length]" if self.truncated else ""
        return (
            f"{self.file}\t{self.start_s:7.2f}-{self.end_s:7.2f}s\t{self.text}{cut}"
            f"\t({self.stt_ms:.0f} ms)"
        )


async def heard_in(ears: Ears, source: AudioSource) -> AsyncIterator[Heard]:
    """Every non-empty transcript in `source`, in order."""
    events = endpoint_stream(source.frames(), ears.vad, ears.endpointer())
    try:
        async for heard in hear(events, ears.transcriber):
            if not heard.transcript.is_empty:
                yield heard
    finally:
        await source.aclose()


async def transcribe_file(ears: Ears, path: Path) -> AsyncIterator[FileTranscript]:
    """Transcribe one file; raises AudioFileError (one line) for a bad file."""
    audio = decode_audio(path, max_duration_s=ears.settings.file_input.max_duration_s)
    for warning in audio.warnings:
        log.warning("audio.input", file=str(path), problem=warning)
    lead = ears.settings.file_input.lead_silence_ms / 1000
    source = ears.file_source(audio)

    def to_file_time(t: float) -> float:
        return round(min(max(t - lead, 0.0), audio.duration_s), 3)

    async for heard in heard_in(ears, source):
        u = heard.utterance
        yield FileTranscript(
            file=str(path),
            start_s=to_file_time(u.speech_start_s),
            end_s=to_file_time(u.last_voiced_s),
            text=heard.transcript.text,
            stt_ms=round(heard.transcript.stt_ms, 1),
            truncated=u.truncated,
        )


async def transcribe_files(
    ears: Ears,
    paths: list[Path],
    emit: Callable[[FileTranscript], None],
    report_error: Callable[[str], None],
) -> int:
    """Transcribe each file in turn; returns the number of files that failed."""
    failed = 0
    for path in paths:
        try:
            async for item in transcribe_file(ears, path):
                emit(item)
        except AudioFileError as e:
            failed += 1
            report_error(str(e))
    return failed


async def listen(ears: Ears, emit: Callable[[Heard], None]) -> None:
    """Print live transcripts from the microphone until cancelled."""
    source = MicrophoneSource(ears.settings.audio)
    await source.start()  # a missing microphone fails here, before anything is printed
    log.info(
        "listen.ready",
        device=ears.settings.audio.input_device or "default",
        rate=source.sample_rate,
    )
    async for heard in heard_in(ears, source):
        emit(heard)
