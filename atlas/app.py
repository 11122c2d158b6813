"""Builds ATLAS's components from settings. The only place things get constructed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from atlas.modelstore import ModelStore, load_manifest
from atlas.settings import Settings
from voice.audio import DecodedAudio, FileSource
from voice.stt import WhisperTranscriber
from voice.vad import Endpointer, SileroVad

log = structlog.get_logger("atlas.app")


def build_store(settings: Settings) -> ModelStore:
    manifest = load_manifest(settings.project_path(settings.models.manifest))
    return ModelStore(
        manifest,
        cache_dir=settings.project_path(settings.models.cache_dir),
        allow_downloads=settings.models.allow_downloads,
        downloaders={"whisper": _download_whisper},
    )


def _download_whisper(name: str, target: Path) -> Path:
    # Only reached when models.allow_downloads is true (a home box with internet).
    from faster_whisper.utils import download_model

    return Path(download_model(name, output_dir=str(target)))


@dataclass
class Ears:
    """VAD + endpointer factory + transcriber, loaded once and shared by turns."""

    settings: Settings
    vad: SileroVad
    transcriber: WhisperTranscriber

    def endpointer(self) -> Endpointer:
        """A fresh endpointer (one per audio stream); the VAD state is reset too."""
        self.vad.reset()
        return Endpointer(self.settings.endpointer, self.settings.vad)

    def file_source(self, audio: DecodedAudio, realtime: bool = False) -> FileSource:
        fi = self.settings.file_input
        return FileSource(
            audio,
            realtime=realtime,
            lead_silence_s=fi.lead_silence_ms / 1000,
            tail_silence_s=fi.tail_silence_ms / 1000,
        )

    def close(self) -> None:
        self.transcriber.close()


def build_ears(settings: Settings, store: ModelStore, warm: bool = True) -> Ears:
    t0 = time.perf_counter()
    vad_model = store.resolve("silero-vad", "vad", "vad.model")
    stt_model = store.resolve(settings.stt.model, "whisper", "stt.model")
    vad = SileroVad(vad_model.path, settings.vad)
    transcriber = WhisperTranscriber(stt_model.path, settings.stt)
    if warm:
        transcriber.warm()
    log.info(
        "ears.ready",
        stt_model=stt_model.name,
        ms=round((time.perf_counter() - t0) * 1000, 1),
        warmed=warm,
    )
    return Ears(settings, vad, transcriber)
