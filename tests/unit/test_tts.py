"""The Piper synthesizer with the real joe voice: audio, trimming, pipelined streaming,
cancellation. Order and overlap are checked with timestamps, never speed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atlas.modelstore import ModelStore, load_manifest
from voice.config import TtsConfig
from voice.errors import ModelLoadError
from voice.tts import PiperSynthesizer, SpeechChunk, Synthesizer, resample_to, trim_silence

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RATE = 22050
THRESHOLD = TtsConfig().silence_threshold
SENTENCES = [
    "Good evening.",
    "The living room lights are now off.",
    "The front door is locked.",
    "Shall I lower the heating as well?",
    "I will wait for your answer.",
]


@pytest.fixture(scope="module")
def voice_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    store = ModelStore(
        load_manifest(PROJECT_ROOT / "models" / "manifest.yaml"),
        cache_dir=tmp_path_factory.mktemp("models"),
    )
    model = store.resolve("piper-joe-medium", "piper", "tts.voice").path
    return model, model.with_name(model.name + ".json")


@pytest.fixture(scope="module")
def synth(voice_files: tuple[Path, Path]) -> Iterator[PiperSynthesizer]:
    s = PiperSynthesizer(voice_files[0], voice_files[1], TtsConfig())
    s.warm()
    yield s
    s.close()


class RecordingVoice:
    """A real PiperVoice whose synthesis start and end times are recorded."""

    def __init__(self, voice: Any) -> None:
        self._voice = voice
        self.config = voice.config
        self.events: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()

    def synthesize(self, text: str, syn_config: Any = None) -> Iterable[Any]:
        self._note("start", text)
        yield from self._voice.synthesize(text, syn_config=syn_config)
        self._note("end", text)

    def _note(self, what: str, text: str) -> None:
        with self._lock:
            self.events.append((what, text, time.monotonic()))

    def time_of(self, what: str, text: str) -> float:
        return next(t for w, x, t in self.events if w == what and x == text)

    def started(self) -> list[str]:
        return [x for w, x, _ in self.events if w == "start"]


@pytest.fixture(scope="module")
def loaded_voice(voice_files: tuple[Path, Path]) -> Any:
    from piper import PiperVoice

    return PiperVoice.load(voice_files[0], config_path=voice_files[1])


@pytest.fixture
def recorded(loaded_voice: Any) -> Iterator[tuple[PiperSynthesizer, RecordingVoice]]:
    voice = RecordingVoice(loaded_voice)
    s = PiperSynthesizer.from_voice(voice, TtsConfig())
    yield s, voice
    s.close()


async def texts(items: list[str], pulled: list[str] | None = None) -> AsyncIterator[str]:
    for item in items:
        if pulled is not None:
            pulled.append(item)
        yield item


def first_audible_ms(audio: np.ndarray[Any, Any], threshold: float = THRESHOLD) -> float:
    return float(np.flatnonzero(np.abs(audio) > threshold)[0]) * 1000.0 / RATE


def trailing_quiet_ms(audio: np.ndarray[Any, Any], threshold: float = THRESHOLD) -> float:
    last = int(np.flatnonzero(np.abs(audio) > threshold)[-1])
    return (len(audio) - 1 - last) * 1000.0 / RATE


# --- synthesize --------------------------------------------------------------------


def test_synthesize_gives_audible_float32_at_the_voice_rate(synth: PiperSynthesizer) -> None:
    audio = synth.synthesize("The kitchen timer has finished.")
    assert synth.sample_rate == RATE
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) > RATE // 2  # a sentence, not a blip
    assert np.all(np.isfinite(audio)) and float(np.max(np.abs(audio))) <= 1.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.02


def test_leading_silence_is_trimmed(synth: PiperSynthesizer, loaded_voice: Any) -> None:
    text = "Right away, sir."
    raw = np.concatenate([c.audio_float_array for c in loaded_voice.synthesize(text)])
    assert first_audible_ms(raw) > 20.0  # Piper's own lead-in, which is pure latency
    audio = synth.synthesize(text)
    assert first_audible_ms(audio) <= 15.0
    assert abs(audio[0]) <= THRESHOLD  # starts from quiet (faded in), no click


def test_trailing_silence_is_set_to_the_sentence_pause(loaded_voice: Any) -> None:
    for pause_ms in (60, 250):
        s = PiperSynthesizer.from_voice(loaded_voice, TtsConfig(sentence_silence_ms=pause_ms))
        try:
            audio = s.synthesize("It is seven o'clock.")
        finally:
            s.close()
        assert trailing_quiet_ms(audio) == pytest.approx(pause_ms, abs=1.0)


def test_volume_and_speed_settings_apply(loaded_voice: Any) -> None:
    text = "The weather will be mild tomorrow."
    base = PiperSynthesizer.from_voice(loaded_voice, TtsConfig())
    quiet_slow = PiperSynthesizer.from_voice(loaded_voice, TtsConfig(volume=0.5, length_scale=1.6))
    try:
        normal, slower = base.synthesize(text), quiet_slow.synthesize(text)
    finally:
        base.close()
        quiet_slow.close()
    assert float(np.max(np.abs(normal))) > 0.9  # Piper peak-normalises
    assert 0.3 < float(np.max(np.abs(slower))) <= 0.5 + 1e-6
    assert len(slower) > 1.3 * len(normal)


def test_text_without_speech_gives_empty_audio(synth: PiperSynthesizer) -> None:
    assert synth.synthesize("").size == 0


# --- stream ------------------------------------------------------------------------


async def test_stream_yields_chunks_in_order(synth: PiperSynthesizer) -> None:
    got: list[SpeechChunk] = [c async for c in synth.stream(texts(SENTENCES[:3]))]
    assert [c.text for c in got] == SENTENCES[:3]
    assert [c.index for c in got] == [0, 1, 2]
    for chunk in got:
        assert chunk.sample_rate == RATE
        assert chunk.audio.dtype == np.float32 and chunk.audio.size > RATE // 4
        assert chunk.synth_ms > 0
        assert first_audible_ms(chunk.audio) <= 15.0


async def test_stream_skips_blank_chunks(synth: PiperSynthesizer) -> None:
    got = [c async for c in synth.stream(texts(["", "  ", "Done.", "\n"]))]
    assert [(c.text, c.index) for c in got] == [("Done.", 0)]


async def test_stream_is_pipelined_one_chunk_ahead(
    recorded: tuple[PiperSynthesizer, RecordingVoice],
) -> None:
    synth, voice = recorded
    received: dict[int, float] = {}
    finished: dict[int, float] = {}
    async for chunk in synth.stream(texts(SENTENCES[:4])):
        received[chunk.index] = time.monotonic()
        await asyncio.sleep(0.25)  # "playing" the chunk
        finished[chunk.index] = time.monotonic()
    assert voice.started() == SENTENCES[:4]  # one at a time, in order
    for n in range(3):
        # chunk n+1 was synthesized while chunk n was still being played...
        assert voice.time_of("start", SENTENCES[n + 1]) < finished[n]
        assert voice.time_of("end", SENTENCES[n + 1]) <= received[n + 1]
    for n in range(2):
        # ...but never more than one chunk ahead of the consumer.
        assert voice.time_of("start", SENTENCES[n + 2]) >= finished[n]


async def test_breaking_out_of_the_stream_stops_synthesis(
    recorded: tuple[PiperSynthesizer, RecordingVoice],
) -> None:
    synth, voice = recorded
    pulled: list[str] = []
    stream = synth.stream(texts(SENTENCES, pulled))
    async for chunk in stream:
        assert chunk.index == 0
        break
    await stream.aclose()  # what `async with aclosing(...)` or the GC hook would do
    after = await asyncio.to_thread(synth.synthesize, "Still here.")
    assert after.size > 0
    # Chunk 1 was prefetched (it may or may not have started before the break); the
    # rest never reached the worker.
    assert voice.started() in (
        [SENTENCES[0], SENTENCES[1], "Still here."],
        [SENTENCES[0], "Still here."],
    )
    assert len(pulled) <= 3


async def test_cancelling_the_consumer_stops_synthesis(
    recorded: tuple[PiperSynthesizer, RecordingVoice],
) -> None:
    synth, voice = recorded
    first = asyncio.Event()
    got: list[int] = []

    async def consume() -> None:
        async for chunk in synth.stream(texts(SENTENCES)):
            got.append(chunk.index)
            first.set()
            await asyncio.sleep(30)  # a long "playback" that gets interrupted

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), timeout=20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    chunk = await synth.synthesize_async("Yes, sir.")
    assert chunk.audio.size > 0
    assert got == [0]
    started = voice.started()
    assert started[-1] == "Yes, sir."
    # The playing chunk and (if the worker got to it first) the prefetched one.
    assert started[:-1] in (SENTENCES[:1], SENTENCES[:2])


async def test_cancel_while_waiting_for_synthesis_abandons_queued_work(
    recorded: tuple[PiperSynthesizer, RecordingVoice],
) -> None:
    synth, voice = recorded
    long_text = " ".join(SENTENCES)

    async def consume() -> None:
        async for _ in synth.stream(texts([long_text, *SENTENCES])):
            pass

    task = asyncio.create_task(consume())
    while not voice.started():
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await synth.synthesize_async("Done.")).audio.size > 0
    # The long chunk was cut short at a sentence boundary or finished; the queued one
    # never started.
    assert voice.started() in ([long_text, "Done."], [long_text, SENTENCES[0], "Done."])


async def test_upstream_error_reaches_the_consumer_after_earlier_chunks(
    synth: PiperSynthesizer,
) -> None:
    async def failing() -> AsyncIterator[str]:
        yield "First."
        raise RuntimeError("llm stream broke")

    got: list[str] = []
    with pytest.raises(RuntimeError, match="llm stream broke"):
        async for chunk in synth.stream(failing()):
            got.append(chunk.text)
    assert got == ["First."]


def test_closed_synthesizer_refuses_work(loaded_voice: Any) -> None:
    s = PiperSynthesizer.from_voice(loaded_voice, TtsConfig())
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        s.synthesize("Hello.")


def test_missing_voice_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        PiperSynthesizer(tmp_path / "nope.onnx", None, TtsConfig())


def test_broken_voice_file_is_a_clear_error(tmp_path: Path, voice_files: tuple[Path, Path]) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not an onnx model")
    with pytest.raises(ModelLoadError, match="cannot load the Piper voice"):
        PiperSynthesizer(model, voice_files[1], TtsConfig())


# --- helpers -----------------------------------------------------------------------


def test_trim_silence_cuts_the_lead_and_sets_the_tail() -> None:
    tone = (0.5 * np.sin(np.arange(RATE // 2) * 0.1)).astype(np.float32)
    audio = np.concatenate([np.zeros(RATE // 3, np.float32), tone, np.zeros(RATE, np.float32)])
    out = trim_silence(audio, RATE, 0.01, lead_ms=10, tail_ms=80)
    assert first_audible_ms(out, 0.01) == pytest.approx(10.0, abs=0.1)
    assert trailing_quiet_ms(out, 0.01) == pytest.approx(80.0, abs=1.0)
    assert out.dtype == np.float32


def test_trim_silence_pads_a_short_tail_and_keeps_a_short_lead() -> None:
    audio = np.full(1000, 0.3, dtype=np.float32)
    out = trim_silence(audio, RATE, 0.01, lead_ms=10, tail_ms=50)
    assert len(out) == 1000 + int(RATE * 0.05)
    assert np.all(out[1000:] == 0.0)
    np.testing.assert_array_equal(out[:1000], audio)


def test_trim_silence_of_silence_is_empty() -> None:
    assert trim_silence(np.zeros(5000, np.float32), RATE, 0.01, 10, 80).size == 0


def test_resample_to() -> None:
    audio = np.sin(np.arange(RATE) * 0.05).astype(np.float32)
    out = resample_to(audio, RATE, 16_000)
    assert out.dtype == np.float32
    assert abs(len(out) - 16_000) <= 2
    assert resample_to(audio, RATE, RATE) is not None
    assert len(resample_to(audio, RATE, RATE)) == RATE


def test_piper_synthesizer_meets_the_protocol(synth: PiperSynthesizer) -> None:
    seam: Synthesizer = synth  # checked by mypy; the runtime check is the attributes
    assert seam.sample_rate == RATE
    assert callable(seam.stream) and callable(seam.warm) and callable(seam.close)
