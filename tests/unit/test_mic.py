"""MicrophoneSource: callback thread -> bounded queue -> resample -> 512-sample frames.

A fake stream stands in for sounddevice.InputStream: it calls the real callback from
its own thread, exactly as PortAudio would, so the whole path runs without hardware.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from voice.audio import AudioSource, DeviceInfo, MicrophoneSource, list_devices
from voice.config import AudioConfig
from voice.errors import AudioDeviceError
from voice.types import FRAME_S, FRAME_SAMPLES, SAMPLE_RATE, AudioFrame

Signal = Callable[[int, int, int], np.ndarray]
"""(start sample, block frames, channels) -> (frames, channels) float32 block."""


def sine(freq: float, rate: int, amplitudes: tuple[float, ...] = (0.5,)) -> Signal:
    def make(start: int, frames: int, channels: int) -> np.ndarray:
        t = (start + np.arange(frames)) / rate
        mono = np.sin(2 * np.pi * freq * t).astype(np.float32)
        return np.stack([mono * a for a in amplitudes[:channels]], axis=1)

    return make


def block_index(start: int, frames: int, channels: int) -> np.ndarray:
    """Each block holds its own number (/1000), so dropped blocks can be identified."""
    return np.full((frames, channels), (start // frames) / 1000, np.float32)


class FakeStream:
    """Delivers `blocks` blocks from a thread, then idles, vanishes or stalls."""

    def __init__(
        self,
        kwargs: dict[str, Any],
        signal: Signal,
        blocks: int,
        *,
        pace_s: float = 0.0,
        vanish: bool = False,
        overflow_every: int = 0,
    ) -> None:
        self.kwargs = kwargs
        self.signal, self.blocks, self.pace_s = signal, blocks, pace_s
        self.vanish, self.overflow_every = vanish, overflow_every
        self.started = self.stopped = self.closed = False
        self.delivered = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.started = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        size, channels = self.kwargs["blocksize"], self.kwargs["channels"]
        for index in range(self.blocks):
            if self._halt.is_set():
                return
            overflow = bool(self.overflow_every) and index % self.overflow_every == 0
            status = SimpleNamespace(input_overflow=overflow)
            self.kwargs["callback"](self.signal(index * size, size, channels), size, None, status)
            if self.pace_s:
                self._halt.wait(self.pace_s)
        self.delivered.set()
        if self.vanish:
            self.kwargs["finished_callback"]()

    def stop(self) -> None:
        self.stopped = True
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        self.closed = True


class FakeFactory:
    def __init__(self, signal: Signal, blocks: int, refuse_mono: bool = False, **options: Any):
        self.signal, self.blocks, self.refuse_mono, self.options = (
            signal,
            blocks,
            refuse_mono,
            options,
        )
        self.calls: list[dict[str, Any]] = []
        self.streams: list[FakeStream] = []

    def __call__(self, **kwargs: Any) -> FakeStream:
        self.calls.append(kwargs)
        if self.refuse_mono and kwargs["channels"] == 1:
            raise RuntimeError("Invalid number of channels [PaErrorCode -9998]")
        stream = FakeStream(kwargs, self.signal, self.blocks, **self.options)
        self.streams.append(stream)
        return stream


def device(rate: float, channels: int = 1) -> DeviceInfo:
    return DeviceInfo(3, "fake mic", channels, 0, rate, is_default_input=True)


async def take(source: MicrophoneSource, count: int) -> list[AudioFrame]:
    frames: list[AudioFrame] = []
    async for frame in source.frames():
        frames.append(frame)
        if len(frames) == count:
            break
    return frames


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[int(np.argmax(spectrum))])


async def test_48k_mono_mic_gives_16k_frames_with_continuous_times() -> None:
    factory = FakeFactory(sine(440, 48000), blocks=40, pace_s=0.002)
    source = MicrophoneSource(AudioConfig(), stream_factory=factory, device=device(48000))
    assert isinstance(source, AudioSource)
    frames = await take(source, 30)
    await source.aclose()

    call = factory.calls[0]
    assert call["samplerate"] == 48000 and call["channels"] == 1
    assert call["dtype"] == "float32" and call["blocksize"] == 1536 and call["device"] == 3
    assert source.sample_rate == 48000
    assert all(f.samples.shape == (FRAME_SAMPLES,) for f in frames)
    assert all(f.samples.dtype == np.float32 for f in frames)
    assert [f.start_s for f in frames] == pytest.approx([i * FRAME_S for i in range(30)])
    audio = np.concatenate([f.samples for f in frames])
    assert peak_hz(audio) == pytest.approx(440, abs=2)
    # Streaming resampling leaves no clicks at block edges: the tone stays a clean sine.
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(len(audio)) / SAMPLE_RATE)
    assert np.max(np.abs(audio[2000:] - expected[2000:])) < 0.01
    assert source.dropped_blocks == 0
    assert factory.streams[0].stopped and factory.streams[0].closed


async def test_stereo_only_device_is_downmixed() -> None:
    factory = FakeFactory(sine(1000, 44100, (0.6, 0.0)), blocks=30, refuse_mono=True)
    source = MicrophoneSource(AudioConfig(), stream_factory=factory, device=device(44100, 2))
    frames = await take(source, 20)
    await source.aclose()
    assert [c["channels"] for c in factory.calls] == [1, 2]
    audio = np.concatenate([f.samples for f in frames])[2000:]
    assert peak_hz(audio) == pytest.approx(1000, abs=2)
    assert np.max(np.abs(audio)) == pytest.approx(0.3, abs=0.01)


async def test_overflow_drops_the_oldest_blocks_and_stays_bounded() -> None:
    factory = FakeFactory(block_index, blocks=500)
    config = AudioConfig(queue_frames=4, block_ms=32)
    source = MicrophoneSource(config, stream_factory=factory, device=device(16000))
    await source.start()
    stream = factory.streams[0]
    assert await asyncio.to_thread(stream.delivered.wait, 5)
    for _ in range(100):  # let every scheduled hand-off run on the loop
        await asyncio.sleep(0)
    assert source.queue_maxsize == 4
    assert source.queued_blocks <= 4
    assert source.dropped_blocks == 496

    frames = await take(source, 4)
    await source.aclose()
    # The newest audio survived: blocks 496..499, stamped at their true stream time.
    assert [float(f.samples[0]) for f in frames] == pytest.approx([0.496, 0.497, 0.498, 0.499])
    assert [f.start_s for f in frames] == pytest.approx([(496 + i) * FRAME_S for i in range(4)])


async def test_driver_overflow_flags_are_counted() -> None:
    factory = FakeFactory(sine(440, 16000), blocks=10, overflow_every=5)
    source = MicrophoneSource(AudioConfig(), stream_factory=factory, device=device(16000))
    frames = await take(source, 10)
    await source.aclose()
    assert len(frames) == 10
    assert source.overflows == 2


async def test_device_that_vanishes_raises_after_the_audio_it_delivered() -> None:
    factory = FakeFactory(sine(440, 16000), blocks=5, vanish=True)
    source = MicrophoneSource(AudioConfig(), stream_factory=factory, device=device(16000))
    frames: list[AudioFrame] = []
    with pytest.raises(AudioDeviceError, match="stopped"):
        async for frame in source.frames():
            frames.append(frame)
    assert len(frames) == 5
    await source.aclose()


async def test_a_stalled_device_raises() -> None:
    factory = FakeFactory(sine(440, 16000), blocks=0)
    source = MicrophoneSource(
        AudioConfig(), stream_factory=factory, device=device(16000), stall_timeout_s=0.2
    )
    with pytest.raises(AudioDeviceError, match="no audio"):
        await take(source, 1)
    await source.aclose()


async def test_aclose_ends_the_frames_iterator() -> None:
    factory = FakeFactory(sine(440, 16000), blocks=3)
    source = MicrophoneSource(AudioConfig(), stream_factory=factory, device=device(16000))
    got: list[AudioFrame] = []

    async def consume() -> None:
        async for frame in source.frames():
            got.append(frame)

    task = asyncio.create_task(consume())
    for _ in range(100):
        if len(got) == 3:
            break
        await asyncio.sleep(0.01)
    await source.aclose()
    await asyncio.wait_for(task, 5)
    assert len(got) == 3
    assert factory.streams[0].stopped and factory.streams[0].closed


async def test_a_factory_that_finds_no_device_gives_one_clear_line() -> None:
    def no_device(**kwargs: Any) -> None:
        raise RuntimeError("Error querying device -1")

    source = MicrophoneSource(AudioConfig(), stream_factory=no_device, device=device(16000))
    with pytest.raises(AudioDeviceError) as err:
        await source.start()
    assert "no microphone found" in str(err.value)
    assert "\n" not in str(err.value)


async def test_real_sounddevice_without_a_sound_card() -> None:
    try:
        devices = list_devices()
    except AudioDeviceError as exc:  # PortAudio itself missing: also one clear line
        assert "PortAudio" in str(exc)
        devices = []
    if any(d.max_input_channels > 0 for d in devices):
        pytest.skip("this machine has a microphone")
    source = MicrophoneSource(AudioConfig())
    with pytest.raises(AudioDeviceError) as err:
        await source.start()
    assert "\n" not in str(err.value)
    assert "no microphone found" in str(err.value) or "PortAudio" in str(err.value)
    await source.aclose()
    # A device named explicitly goes through sounddevice.InputStream itself.
    source = MicrophoneSource(AudioConfig(), device=device(16000))
    with pytest.raises(AudioDeviceError) as err:
        await source.start()
    assert "fake mic" in str(err.value) or "PortAudio" in str(err.value)
    await source.aclose()
