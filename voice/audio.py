"""Audio in: pace decoded files as a source, capture the microphone; sound devices.

Everything leaves the sources as 16 kHz mono float32 in [-1, 1], cut into
`FRAME_SAMPLES`-sample `AudioFrame`s. This is the ONLY module that imports
sounddevice, and it does so lazily so that a machine without PortAudio can still
decode files; a missing library or sound card becomes an `AudioDeviceError`.
File decoding lives in voice/decode.py (re-exported here); sinks in voice/sinks.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import structlog

from voice.config import AudioConfig
from voice.decode import (
    DEFAULT_MAX_DURATION_S,
    DecodedAudio,
    MonoResampler,
    decode_audio,
    one_line,
    rms_dbfs,
)
from voice.errors import AudioDeviceError
from voice.types import FRAME_S, FRAME_SAMPLES, SAMPLE_RATE, AudioFrame, Samples

__all__ = [
    "DEFAULT_MAX_DURATION_S",
    "NO_SPEAKER",
    "AudioSource",
    "DecodedAudio",
    "DeviceInfo",
    "FileSource",
    "MicrophoneSource",
    "decode_audio",
    "find_input_device",
    "find_output_device",
    "list_devices",
    "open_output_stream",
    "rms_dbfs",
]

log = structlog.get_logger("voice.audio")

_FAST_YIELD_EVERY = 8
"""Fast mode hands control back to the loop this often so other tasks still run."""
_NO_MIC = "no microphone found (no audio input devices); connect one or set audio.input_device"
NO_SPEAKER = "no speaker found (no audio output devices); connect one or set audio.output_device"
_NO_PORTAUDIO = "PortAudio library not found; install it (Debian: apt-get install libportaudio2)"


# --------------------------------------------------------------------------- sources


@runtime_checkable
class AudioSource(Protocol):
    """Anything that yields 512-sample 16 kHz mono frames: the mic or a file."""

    def frames(self) -> AsyncIterator[AudioFrame]: ...

    async def aclose(self) -> None: ...


class FileSource:
    """Hands out a decoded file as frames, as fast as possible or at real-time pace.

    Stream time (`start_s`) starts at 0 with the first sample handed out, lead
    silence included; subtract `lead_silence_s` to get a position in the file.
    """

    def __init__(
        self,
        audio: DecodedAudio,
        *,
        realtime: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        lead_silence_s: float = 0.0,
        tail_silence_s: float = 0.0,
        start_at: float | None = None,
    ) -> None:
        if lead_silence_s < 0 or tail_silence_s < 0:
            raise ValueError("silence padding cannot be negative")
        self.audio = audio
        self.realtime = realtime
        self.start_at = start_at
        """Monotonic time of stream time 0 (realtime); None: when frames() is first read.
        Lets a reply recording be time-aligned with the input."""
        self._clock = clock
        self._sleep = sleep
        self._lead = round(lead_silence_s * SAMPLE_RATE)
        self._tail = round(tail_silence_s * SAMPLE_RATE)
        self._closed = False
        self.frames_read = 0
        """Frames handed out so far (how far a replay got)."""

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        realtime: bool = False,
        max_duration_s: float = DEFAULT_MAX_DURATION_S,
        lead_silence_s: float = 0.0,
        tail_silence_s: float = 0.0,
    ) -> FileSource:
        return cls(
            decode_audio(path, max_duration_s),
            realtime=realtime,
            lead_silence_s=lead_silence_s,
            tail_silence_s=tail_silence_s,
        )

    @property
    def lead_silence_s(self) -> float:
        return self._lead / SAMPLE_RATE

    @property
    def position_s(self) -> float:
        """Seconds of the file's own audio read so far (padding not counted)."""
        read = self.frames_read * FRAME_SAMPLES - self._lead
        return min(max(0, read), len(self.audio.samples)) / SAMPLE_RATE

    @property
    def frame_count(self) -> int:
        total = self._lead + len(self.audio.samples) + self._tail
        return -(-total // FRAME_SAMPLES)

    def _frame_samples(self) -> Iterator[Samples]:
        """Frames of lead silence + audio + tail silence, without copying the whole file."""
        audio = self.audio.samples
        for index in range(self.frame_count):
            frame = np.zeros(FRAME_SAMPLES, np.float32)
            first = index * FRAME_SAMPLES - self._lead
            lo, hi = max(first, 0), min(first + FRAME_SAMPLES, len(audio))
            if hi > lo:
                frame[lo - first : hi - first] = audio[lo:hi]
            yield frame

    async def frames(self) -> AsyncIterator[AudioFrame]:
        started = self._clock() if self.start_at is None else self.start_at
        self.start_at = started
        for index, samples in enumerate(self._frame_samples()):
            if self._closed:
                return
            if self.realtime:
                # Absolute schedule: frame k is complete at start + (k+1)*32 ms, as from a
                # mic. Oversleeping on one frame shortens the next wait, so no drift.
                delay = started + (index + 1) * FRAME_S - self._clock()
                if delay > 0:
                    await self._sleep(delay)
            elif index % _FAST_YIELD_EVERY == _FAST_YIELD_EVERY - 1:
                await self._sleep(0)
            self.frames_read = index + 1
            yield AudioFrame(samples=samples, start_s=index * FRAME_S, captured_at=self._clock())

    async def aclose(self) -> None:
        self._closed = True


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool = False
    is_default_output: bool = False


def _import_sounddevice() -> Any:
    try:
        import sounddevice
    except OSError:
        raise AudioDeviceError(_NO_PORTAUDIO) from None
    return sounddevice


def _default_index(sd: Any, kind: str) -> int | None:
    try:
        return int(sd.query_devices(kind=kind)["index"])
    except Exception:  # no such default (e.g. no sound card): not an error for a listing
        return None


def _device_info(entry: Any, default_in: int | None, default_out: int | None) -> DeviceInfo:
    index = int(entry["index"])
    return DeviceInfo(
        index=index,
        name=str(entry["name"]),
        max_input_channels=int(entry["max_input_channels"]),
        max_output_channels=int(entry["max_output_channels"]),
        default_samplerate=float(entry["default_samplerate"]),
        is_default_input=index == default_in,
        is_default_output=index == default_out,
    )


def list_devices() -> list[DeviceInfo]:
    """Every PortAudio device; [] when there are none (no sound card)."""
    sd = _import_sounddevice()
    try:
        entries = list(sd.query_devices())
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"cannot list audio devices: {one_line(str(exc))}") from None
    default_in, default_out = _default_index(sd, "input"), _default_index(sd, "output")
    return [_device_info(entry, default_in, default_out) for entry in entries]


def find_input_device(name_or_index: str | None) -> DeviceInfo:
    """The configured (or default) input device; AudioDeviceError with one line if none."""
    return _find_device(name_or_index, "input", _NO_MIC)


def find_output_device(name_or_index: str | None) -> DeviceInfo:
    """The configured (or default) output device; AudioDeviceError with one line if none."""
    return _find_device(name_or_index, "output", NO_SPEAKER)


def _find_device(name_or_index: str | None, kind: str, none_found: str) -> DeviceInfo:
    sd = _import_sounddevice()
    wanted: int | str | None = name_or_index
    if isinstance(name_or_index, str) and name_or_index.strip().isdigit():
        wanted = int(name_or_index)
    try:
        entry = sd.query_devices(wanted, kind=kind)
    except sd.PortAudioError as exc:
        if wanted is None or not list(sd.query_devices()):
            raise AudioDeviceError(none_found) from None
        raise AudioDeviceError(
            f"audio {kind} device {name_or_index!r} unusable: {one_line(str(exc))}"
        ) from None
    except ValueError as exc:  # "No input device matching ...", "Not an output device"
        raise AudioDeviceError(
            f"audio {kind} device {name_or_index!r} not found ({one_line(str(exc))}); "
            "run `atlas devices` to list them"
        ) from None
    default = _default_index(sd, kind)
    return _device_info(
        entry, default if kind == "input" else None, default if kind == "output" else None
    )


def _real_stream_factory(**kwargs: Any) -> Any:
    sd = _import_sounddevice()
    return sd.InputStream(**kwargs)


def open_output_stream(**kwargs: Any) -> Any:
    """A sounddevice.OutputStream (the speaker sink's default stream factory)."""
    sd = _import_sounddevice()
    return sd.OutputStream(**kwargs)


# --------------------------------------------------------------------------- microphone

_CLOSED = object()
_FINISHED = object()


@dataclass(frozen=True)
class _Block:
    samples: Samples
    """Mono, device rate."""
    offset: int
    """Device-rate sample index of samples[0]: a jump means blocks were dropped."""
    at: float


class MicrophoneSource:
    """Live input through sounddevice, resampled to 16 kHz mono 512-sample frames.

    The PortAudio callback (another thread) only copies the block and schedules it
    onto the event loop; the bounded queue drops the OLDEST block when the pipeline
    falls behind, so memory never grows and the freshest audio wins.
    """

    def __init__(
        self,
        config: AudioConfig,
        *,
        stream_factory: Callable[..., Any] | None = None,
        device: DeviceInfo | None = None,
        stall_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._factory = stream_factory or _real_stream_factory
        self._device = device
        self._stall_timeout_s = stall_timeout_s
        self._clock = clock
        block_frames = config.queue_frames * FRAME_S * 1000 / config.block_ms
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(2, round(block_frames)))
        self._stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rate = 0
        self._offset = 0  # audio thread only
        self._closing = False
        self._open_error = ""
        self._channels = 1
        self.dropped_blocks = 0
        """Blocks dropped because the pipeline fell behind (queue overflow)."""
        self.overflows = 0
        """Callbacks whose status reported an input overflow (the driver lost audio)."""
        self._drops_logged = 0
        self._last_drop_log = -math.inf

    @property
    def sample_rate(self) -> int:
        """The device's native rate (0 before start)."""
        return self._rate

    @property
    def queue_maxsize(self) -> int:
        """Blocks the hand-off queue holds before the oldest is dropped."""
        return self._queue.maxsize

    @property
    def queued_blocks(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        """Open and start the stream; AudioDeviceError if there is no usable microphone."""
        if self._stream is not None:
            return
        if self._closing:
            raise AudioDeviceError("microphone source is closed")
        self._loop = asyncio.get_running_loop()
        device = self._device or find_input_device(self.config.input_device)
        self._rate = round(device.default_samplerate) or SAMPLE_RATE
        stream = self._open(device, 1)
        if stream is None and device.max_input_channels > 1:
            # Some hardware refuses mono capture: take what it has and downmix.
            stream = self._open(device, device.max_input_channels)
        if stream is None:
            raise AudioDeviceError(f"cannot open microphone {device.name!r}: {self._open_error}")
        try:
            stream.start()
        except Exception as exc:
            self._safe_close(stream)
            raise AudioDeviceError(
                f"cannot start microphone {device.name!r}: {one_line(str(exc))}"
            ) from None
        self._stream = stream
        log.info("mic.started", device=device.name, rate=self._rate, channels=self._channels)

    def _open(self, device: DeviceInfo, channels: int) -> Any:
        try:
            stream = self._factory(
                device=device.index,
                samplerate=self._rate,
                channels=channels,
                dtype="float32",
                blocksize=max(1, round(self._rate * self.config.block_ms / 1000)),
                callback=self._callback,
                finished_callback=self._finished_callback,
            )
        except AudioDeviceError as exc:
            self._open_error = str(exc)
            return None
        except Exception as exc:  # PortAudioError, OSError, ValueError from the driver
            reason = one_line(str(exc)) or type(exc).__name__
            if "querying device -1" in reason:
                reason = _NO_MIC
            elif "querying device" in reason:  # listed a moment ago, gone now
                reason = f"the device is not available (disconnected?): {reason}"
            self._open_error = reason
            return None
        self._channels = channels
        return stream

    # -- audio thread ---------------------------------------------------------------

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        at = self._clock()
        data = np.asarray(indata, dtype=np.float32)
        if data.ndim == 1:
            block = data.copy()
        elif data.shape[1] == 1:
            block = data[:, 0].copy()  # PortAudio reuses its buffer after we return
        else:
            block = data.mean(axis=1, dtype=np.float32)
        offset = self._offset
        self._offset += len(block)
        overflow = bool(getattr(status, "input_overflow", False))
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are shutting down
            loop.call_soon_threadsafe(self._enqueue, _Block(block, offset, at), overflow)

    def _finished_callback(self) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._enqueue, _FINISHED, False)

    # -- event loop -----------------------------------------------------------------

    def _enqueue(self, item: Any, overflow: bool) -> None:
        if self._closing and item is not _CLOSED:
            return
        if overflow:
            self.overflows += 1
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped_blocks += 1
            now = self._clock()
            if now - self._last_drop_log >= 1.0:
                log.warning(
                    "mic.queue_overflow",
                    dropped=self.dropped_blocks - self._drops_logged,
                    dropped_total=self.dropped_blocks,
                    overflows=self.overflows,
                )
                self._last_drop_log, self._drops_logged = now, self.dropped_blocks
        self._queue.put_nowait(item)

    async def _next_block(self) -> _Block | None:
        try:
            async with asyncio.timeout(self._stall_timeout_s):
                item = await self._queue.get()
        except TimeoutError:
            if self._closing:
                return None
            raise AudioDeviceError(
                f"microphone delivered no audio for {self._stall_timeout_s:.1f} s "
                "(device disconnected?)"
            ) from None
        if item is _CLOSED or self._closing:
            return None
        if item is _FINISHED:
            raise AudioDeviceError("microphone stream stopped (device disconnected?)")
        assert isinstance(item, _Block)
        return item

    async def frames(self) -> AsyncIterator[AudioFrame]:
        await self.start()
        rate = self._rate
        mono = MonoResampler(rate)
        pending = np.zeros(0, np.float32)
        emitted = 0  # 16 kHz samples handed out, including the gaps of dropped blocks
        expected = 0
        while True:
            block = await self._next_block()
            if block is None:
                return
            if block.offset != expected:
                # Blocks were dropped: restart the resampler at the new position so the
                # stream time keeps following the wall clock instead of lagging.
                mono = MonoResampler(rate)
                pending = np.zeros(0, np.float32)
                emitted = round(block.offset * SAMPLE_RATE / rate)
            expected = block.offset + len(block.samples)
            pending = np.concatenate((pending, mono.push(block.samples[:, None])))
            while len(pending) >= FRAME_SAMPLES:
                frame, pending = pending[:FRAME_SAMPLES], pending[FRAME_SAMPLES:]
                yield AudioFrame(
                    samples=np.clip(frame, -1.0, 1.0),
                    start_s=emitted / SAMPLE_RATE,
                    captured_at=block.at,
                )
                emitted += FRAME_SAMPLES

    async def aclose(self) -> None:
        self._closing = True
        stream, self._stream = self._stream, None
        if stream is not None:
            await asyncio.to_thread(self._safe_close, stream)
        if self._queue.full():
            self._queue.get_nowait()  # the consumer must see the end; old audio can go
        self._queue.put_nowait(_CLOSED)
        if self.dropped_blocks or self.overflows:
            log.info("mic.closed", dropped_total=self.dropped_blocks, overflows=self.overflows)

    @staticmethod
    def _safe_close(stream: Any) -> None:
        for action in ("stop", "close"):
            try:
                getattr(stream, action)()
            except Exception as exc:  # a vanished device may fail to stop; we are done anyway
                log.debug("mic.close_failed", action=action, error=one_line(str(exc)))
