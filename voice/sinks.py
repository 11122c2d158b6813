"""Audio out: the AudioSink protocol, a WAV sink with real timing, the speaker, a null sink.

Every sink takes float32 mono at any rate (it resamples to its own), reports when each
write becomes audible (`PlaybackMark`), and can stop at once (`clear()`), saying how
much of what was written was actually heard. That last number is counted per
*playback run*: the audio written since the previous `clear()` or completed
`wait_for_playout()`, which is what one turn says.

`WavSink` and `NullSink` are simulated speakers driven by a clock, so a replay can
write a reply WAV whose sample k is the moment `start_at + k / rate`. `SpeakerSink`
plays through a sounddevice OutputStream (opened via voice/audio.py, the only module
that imports sounddevice).
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

import numpy as np
import soxr
import structlog

from voice.audio import NO_SPEAKER, DeviceInfo, find_output_device, open_output_stream
from voice.config import AudioConfig
from voice.decode import RESAMPLE_QUALITY, one_line
from voice.errors import AudioDeviceError, AudioFileError
from voice.types import Samples

log = structlog.get_logger("voice.sinks")

DEFAULT_SINK_RATE = 22_050
"""Piper's rate: replies written at it need no resampling."""
_MAX_SEGMENTS = 10_000
"""Segment records kept for inspection; older ones are forgotten (bounded memory)."""


@dataclass(frozen=True)
class PlaybackMark:
    """When one write() is heard. `*_at` are readings of the sink's (monotonic) clock."""

    first_sample_at: float
    """When the first sample of this write becomes audible."""
    end_at: float
    """When its last sample has been played (if nothing is cleared)."""
    start_s: float
    """Position of the first sample on the sink's output: seconds since `start_at` for
    the simulated sinks (= position in the WAV file), played-audio seconds for the speaker."""
    duration_s: float
    label: str | None = None


@dataclass(frozen=True)
class SinkSegment:
    """One write as it sits on a simulated sink's timeline (seconds since `start_at`)."""

    start_s: float
    end_s: float
    label: str | None = None
    cut: bool = False
    """clear() stopped it before its end."""


@runtime_checkable
class AudioSink(Protocol):
    """Where ATLAS's voice goes: the speaker, a WAV file, or nowhere."""

    @property
    def sample_rate(self) -> int:
        """The sink's own rate; write() accepts any rate and resamples to it."""
        ...

    @property
    def is_playing(self) -> bool: ...

    @property
    def played_s(self) -> float:
        """Seconds of written audio heard so far (gaps of silence not counted)."""
        ...

    @property
    def last_mark(self) -> PlaybackMark | None: ...

    async def write(
        self, samples: Samples, sample_rate: int, label: str | None = None
    ) -> PlaybackMark:
        """Queue float32 mono audio behind what is already playing; may wait (backpressure)."""
        ...

    async def flush(self) -> None:
        """End of a burst of writes: push out anything held back."""
        ...

    def clear(self) -> float | None:
        """Stop now, dropping everything queued. Returns the seconds heard of the current
        playback run, or None when nothing was written since the run ended."""
        ...

    async def wait_for_playout(self) -> None:
        """Return once everything written has been played (or cleared); ends the run."""
        ...

    async def aclose(self) -> None: ...


def to_sink_rate(samples: Samples, sample_rate: int, target_rate: int) -> Samples:
    """Validated float32 mono in [-1, 1] at `target_rate` (NaN/inf become silence)."""
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"sinks take mono 1-D samples, got shape {audio.shape}")
    if not np.isfinite(audio).all():
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    if sample_rate != target_rate and len(audio):
        audio = np.asarray(
            soxr.resample(audio, sample_rate, target_rate, quality=RESAMPLE_QUALITY), np.float32
        )
    # The resampling filter can overshoot full-scale input by a hair.
    return np.clip(audio, -1.0, 1.0).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- simulated


class _Seg:
    """A mutable timeline entry (frames); clear() may shorten the last ones."""

    __slots__ = ("cut", "end", "label", "start")

    def __init__(self, start: int, end: int, label: str | None) -> None:
        self.start, self.end, self.label, self.cut = start, end, label, False


class _Timeline:
    """A simulated speaker: where each write lands and what has been heard by `clock()`.

    Frame k of the output is heard at `start_at + k / rate`. Audio written while the
    speaker is idle starts now (the gap before it is silence); audio written while it
    plays is appended right after the scheduled end.
    """

    def __init__(self, rate: int, clock: Callable[[], float], start_at: float) -> None:
        self.rate = rate
        self.start_at = start_at
        self._clock = clock
        self.end_frame = 0
        """Frames scheduled so far, silence included (= the WAV's length)."""
        self.content_frames = 0
        """Frames of written audio, silence excluded."""
        self._run_base = 0
        self._run_active = False
        self.segments: deque[_Seg] = deque(maxlen=_MAX_SEGMENTS)

    def now_frame(self) -> int:
        return max(0, round((self._clock() - self.start_at) * self.rate))

    def at(self, frame: int) -> float:
        return self.start_at + frame / self.rate

    def place(self, frames: int, label: str | None) -> tuple[int, PlaybackMark]:
        """Schedule `frames` frames; returns (silent frames to insert first, the mark)."""
        self._run_active = True
        if frames == 0:
            at = max(self.at(self.now_frame()), self.at(self.end_frame))
            return 0, PlaybackMark(at, at, (at - self.start_at), 0.0, label)
        start = max(self.now_frame(), self.end_frame)
        gap = start - self.end_frame
        self.end_frame = start + frames
        self.content_frames += frames
        self.segments.append(_Seg(start, start + frames, label))
        mark = PlaybackMark(
            first_sample_at=self.at(start),
            end_at=self.at(start + frames),
            start_s=start / self.rate,
            duration_s=frames / self.rate,
            label=label,
        )
        return gap, mark

    def _unheard(self, now: int) -> int:
        unheard = 0
        for seg in reversed(self.segments):  # only the tail can lie in the future
            if seg.end <= now:
                break
            unheard += seg.end - max(seg.start, now)
        return unheard

    def played_frames(self) -> int:
        return self.content_frames - self._unheard(self.now_frame())

    def is_playing(self) -> bool:
        return self.now_frame() < self.end_frame

    def cut(self) -> tuple[float | None, int | None]:
        """Drop what is not heard yet: (heard seconds of the run, new length or None)."""
        now = self.now_frame()
        heard = self._run_heard_s(now)
        new_end: int | None = None
        if now < self.end_frame:
            while self.segments and self.segments[-1].start >= now:
                dropped = self.segments.pop()
                self.content_frames -= dropped.end - dropped.start
            if self.segments and self.segments[-1].end > now:
                last = self.segments[-1]
                self.content_frames -= last.end - now
                last.end, last.cut = now, True
            self.end_frame = new_end = now
        self.end_run()
        return heard, new_end

    def _run_heard_s(self, now: int) -> float | None:
        if not self._run_active:
            return None
        heard = self.content_frames - self._unheard(now) - self._run_base
        return max(0, heard) / self.rate

    def end_run(self) -> None:
        # Content is heard in order, so the run is "content index >= base".
        self._run_base, self._run_active = self.content_frames, False

    def records(self) -> tuple[SinkSegment, ...]:
        r = self.rate
        return tuple(SinkSegment(s.start / r, s.end / r, s.label, s.cut) for s in self.segments)


class _SimulatedSink:
    """A clock-driven speaker; subclasses decide where the audio goes."""

    def __init__(
        self,
        sample_rate: int,
        *,
        clock: Callable[[], float],
        start_at: float | None,
        realtime: bool,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        self._clock = clock
        self._timeline = _Timeline(sample_rate, clock, clock() if start_at is None else start_at)
        self.realtime = realtime
        self._changed = asyncio.Event()
        self._last_mark: PlaybackMark | None = None
        self._closed = False

    @property
    def sample_rate(self) -> int:
        return self._timeline.rate

    @property
    def start_at(self) -> float:
        return self._timeline.start_at

    @property
    def is_playing(self) -> bool:
        return self._timeline.is_playing()

    @property
    def played_s(self) -> float:
        return self._timeline.played_frames() / self.sample_rate

    @property
    def written_s(self) -> float:
        return self._timeline.content_frames / self.sample_rate

    @property
    def playout_end_at(self) -> float:
        """Clock time at which everything scheduled has been played."""
        return self._timeline.at(self._timeline.end_frame)

    @property
    def last_mark(self) -> PlaybackMark | None:
        return self._last_mark

    @property
    def segments(self) -> tuple[SinkSegment, ...]:
        return self._timeline.records()

    async def write(
        self, samples: Samples, sample_rate: int, label: str | None = None
    ) -> PlaybackMark:
        if self._closed:
            raise RuntimeError("write() on a closed sink")
        audio = to_sink_rate(samples, sample_rate, self.sample_rate)
        gap, mark = self._timeline.place(len(audio), label)
        self._emit(gap, audio)
        self._last_mark = mark
        self._notify()
        return mark

    async def flush(self) -> None:
        return None

    def clear(self) -> float | None:
        heard, new_end = self._timeline.cut()
        if new_end is not None:
            self._truncate(new_end)
        self._notify()
        return heard

    async def wait_for_playout(self) -> None:
        while self.realtime:
            before = self._clock()
            remaining = self.playout_end_at - before
            if remaining <= 0:
                break
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                if self._clock() == before:
                    break  # an injected clock that does not move: do not spin
        self._timeline.end_run()

    async def aclose(self) -> None:
        self._closed = True
        self._notify()

    def _notify(self) -> None:
        # Waiters hold the old event; a fresh one is armed for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    def _emit(self, silent_frames: int, audio: Samples) -> None:
        """Subclass hook: `silent_frames` of silence, then `audio`, at the end of the output."""

    def _truncate(self, frames: int) -> None:
        """Subclass hook: the output now ends after `frames` frames."""


class NullSink(_SimulatedSink):
    """Discards audio but keeps a speaker's timing (benchmarks, tests)."""

    def __init__(
        self,
        sample_rate: int = DEFAULT_SINK_RATE,
        *,
        clock: Callable[[], float] = time.monotonic,
        start_at: float | None = None,
        realtime: bool = True,
    ) -> None:
        super().__init__(sample_rate, clock=clock, start_at=start_at, realtime=realtime)


class WavSink(_SimulatedSink):
    """A 16-bit mono WAV that keeps real timing: sample k is heard at `start_at + k/rate`.

    With `realtime=False`, wait_for_playout() returns at once (fast replay), but audio is
    still placed by the injected clock.
    """

    def __init__(
        self,
        path: Path,
        sample_rate: int = DEFAULT_SINK_RATE,
        *,
        clock: Callable[[], float] = time.monotonic,
        start_at: float | None = None,
        realtime: bool = True,
    ) -> None:
        super().__init__(sample_rate, clock=clock, start_at=start_at, realtime=realtime)
        self.path = Path(path)
        self._file = _Pcm16Wav(self.path, sample_rate)

    async def flush(self) -> None:
        """Make the file on disk a valid WAV of everything scheduled so far."""
        self._file.sync()

    async def aclose(self) -> None:
        if not self._closed:
            self._file.close()
        await super().aclose()

    def _emit(self, silent_frames: int, audio: Samples) -> None:
        self._file.append_silence(silent_frames)
        self._file.append(audio)

    def _truncate(self, frames: int) -> None:
        self._file.truncate(frames)


class _Pcm16Wav:
    """A growable, truncatable 16-bit mono WAV; the header is rewritten on sync/close.

    Until then the sizes read 0, which readers (decode_audio too) take as "streamed".
    """

    _HEADER_BYTES = 44
    _SILENCE_BLOCK = np.zeros(1 << 16, "<i2").tobytes()

    def __init__(self, path: Path, rate: int) -> None:
        self.rate = rate
        self.frames = 0
        try:
            self._fh: BinaryIO = path.open("w+b")
        except OSError as exc:
            raise AudioFileError(
                path, f"cannot write: {one_line(exc.strerror or str(exc))}"
            ) from None
        self._write_header()

    def _write_header(self) -> None:
        data = self.frames * 2
        header = struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            *(b"RIFF", 36 + data, b"WAVE", b"fmt ", 16, 1, 1, self.rate, self.rate * 2, 2, 16),
            *(b"data", data),
        )
        self._fh.seek(0)
        self._fh.write(header)
        self._fh.seek(0, os.SEEK_END)

    def append(self, audio: Samples) -> None:
        if len(audio):
            pcm = np.round(audio * 32767.0).astype("<i2")
            self._fh.write(pcm.tobytes())
            self.frames += len(audio)

    def append_silence(self, frames: int) -> None:
        left = frames * 2
        while left > 0:
            block = self._SILENCE_BLOCK[: min(left, len(self._SILENCE_BLOCK))]
            self._fh.write(block)
            left -= len(block)
        self.frames += frames

    def truncate(self, frames: int) -> None:
        self.frames = min(self.frames, frames)
        self._fh.truncate(self._HEADER_BYTES + self.frames * 2)
        self._fh.seek(0, os.SEEK_END)

    def sync(self) -> None:
        self._write_header()
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()


# --------------------------------------------------------------------------- speaker


class _RingBuffer:
    """Fixed-size float32 FIFO between the event loop (writer) and the audio callback.

    The lock is held only for a memcpy, so the callback never waits on Python work.
    """

    def __init__(self, capacity: int) -> None:
        self._buf = np.zeros(max(1, capacity), np.float32)
        self._read = 0
        self._count = 0
        self._lock = threading.Lock()
        self.consumed = 0
        """Frames ever handed to the device."""

    @property
    def capacity(self) -> int:
        return len(self._buf)

    @property
    def available(self) -> int:
        return self._count

    def push(self, samples: Samples) -> int:
        with self._lock:
            n = min(len(samples), self.capacity - self._count)
            first = (self._read + self._count) % self.capacity
            head = min(n, self.capacity - first)
            self._buf[first : first + head] = samples[:head]
            self._buf[: n - head] = samples[head:n]
            self._count += n
        return n

    def pull_into(self, out: Samples) -> int:
        with self._lock:
            n = min(len(out), self._count)
            head = min(n, self.capacity - self._read)
            out[:head] = self._buf[self._read : self._read + head]
            out[head:n] = self._buf[: n - head]
            self._read = (self._read + n) % self.capacity
            self._count -= n
            self.consumed += n
        return n

    def drop(self) -> int:
        with self._lock:
            dropped, self._count = self._count, 0
        return dropped


@dataclass
class _Output:
    """One open stream and the buffer only its callback reads."""

    stream: Any
    ring: _RingBuffer
    rate: int
    finished: threading.Event
    latency_s: float


class SpeakerSink:
    """The speaker: a sounddevice OutputStream at the device's native rate.

    A small callback block (default 10 ms) makes clear() audible within one callback
    period. The ring buffer holds at most `max_buffer_s`; write() waits for room. A
    device that vanishes makes write()/wait_for_playout() raise AudioDeviceError and
    closes the stream; the next write() opens a stream again (the daemon retries).
    """

    def __init__(
        self,
        config: AudioConfig,
        *,
        stream_factory: Callable[..., Any] | None = None,
        device: DeviceInfo | None = None,
        clock: Callable[[], float] = time.monotonic,
        block_ms: float = 10.0,
        max_buffer_s: float = 2.0,
        stall_timeout_s: float = 2.0,
    ) -> None:
        if block_ms <= 0 or max_buffer_s <= 0 or stall_timeout_s <= 0:
            raise ValueError("block_ms, max_buffer_s and stall_timeout_s must be positive")
        self.config = config
        self._factory = stream_factory or open_output_stream
        self._device = device
        self._clock = clock
        self._block_s = block_ms / 1000
        self._max_buffer_s = max_buffer_s
        self._stall_timeout_s = stall_timeout_s
        self._out: _Output | None = None
        self._rate = 0
        self._last_callback_at = 0.0  # written by the audio thread
        self._played_before_s = 0.0  # played on streams closed since
        self._run_base_s = 0.0
        self._run_active = False
        self._generation = 0  # bumped by clear(): a write in progress stops pushing
        self._last_mark: PlaybackMark | None = None
        self._closed = False
        self.underflows = 0
        """Callbacks whose status reported an output underflow (we were late)."""

    # -- properties -------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """The device's native rate (0 before the stream is open)."""
        return self._rate

    @property
    def is_playing(self) -> bool:
        return self._out is not None and self._out.ring.available > 0

    @property
    def played_s(self) -> float:
        out = self._out
        return self._played_before_s + (out.ring.consumed / out.rate if out else 0.0)

    @property
    def buffered_s(self) -> float:
        out = self._out
        return out.ring.available / out.rate if out else 0.0

    @property
    def last_mark(self) -> PlaybackMark | None:
        return self._last_mark

    # -- opening --------------------------------------------------------------------

    async def start(self) -> None:
        """Open and start the stream; AudioDeviceError (one line) if there is no speaker."""
        if self._closed:
            raise AudioDeviceError("speaker sink is closed")
        if self._out is not None:
            return
        device = self._device or find_output_device(self.config.output_device)
        rate = round(device.default_samplerate) or DEFAULT_SINK_RATE
        out, problem = self._open(device, rate, 1)
        if out is None and device.max_output_channels > 1:
            # Some hardware refuses mono playback: open it wider and copy to every channel.
            out, problem = self._open(device, rate, device.max_output_channels)
        if out is None:
            raise AudioDeviceError(f"cannot open speaker {device.name!r}: {problem}")
        self._last_callback_at = self._clock()
        try:
            out.stream.start()
        except Exception as exc:
            await asyncio.to_thread(_close_quietly, out.stream)
            raise AudioDeviceError(
                f"cannot start speaker {device.name!r}: {one_line(str(exc))}"
            ) from None
        self._out, self._rate = out, rate
        log.info("speaker.started", device=device.name, rate=rate, latency_s=out.latency_s)

    def _open(self, device: DeviceInfo, rate: int, channels: int) -> tuple[_Output | None, str]:
        ring = _RingBuffer(round(self._max_buffer_s * rate))
        finished = threading.Event()
        blocksize = max(1, round(rate * self._block_s))
        scratch = np.zeros(blocksize, np.float32)

        def callback(outdata: Any, frames: int, time_info: Any, status: Any) -> None:
            nonlocal scratch
            self._last_callback_at = self._clock()
            if getattr(status, "output_underflow", False):
                self.underflows += 1
            if len(scratch) < frames:
                scratch = np.zeros(frames, np.float32)
            mono = scratch[:frames]
            got = ring.pull_into(mono)
            mono[got:] = 0.0
            outdata[:] = mono[:, None]

        try:
            stream = self._factory(
                device=device.index,
                samplerate=rate,
                channels=channels,
                dtype="float32",
                blocksize=blocksize,
                latency="low",
                callback=callback,
                finished_callback=finished.set,
            )
        except AudioDeviceError as exc:
            return None, str(exc)
        except Exception as exc:  # PortAudioError, OSError, ValueError from the driver
            reason = one_line(str(exc)) or type(exc).__name__
            if "querying device -1" in reason:
                reason = NO_SPEAKER
            elif "querying device" in reason:
                reason = f"the device is not available (disconnected?): {reason}"
            return None, reason
        latency = getattr(stream, "latency", 0.0)
        latency_s = float(latency) if isinstance(latency, int | float) else 0.0
        return _Output(stream, ring, rate, finished, latency_s), ""

    async def _live_output(self) -> _Output:
        """The open stream, after checking it still plays; AudioDeviceError if it died."""
        out = self._out
        if out is None:
            await self.start()
            out = self._out
            assert out is not None
        problem = ""
        if out.finished.is_set():
            problem = "speaker stream stopped (device disconnected?)"
        elif out.ring.available and self._clock() - self._last_callback_at > self._stall_timeout_s:
            problem = (
                f"speaker took no audio for {self._stall_timeout_s:.1f} s (device disconnected?)"
            )
        if problem:
            await self._drop_output()
            log.warning("speaker.lost", problem=problem)
            raise AudioDeviceError(problem)
        return out

    async def _drop_output(self) -> None:
        out, self._out = self._out, None
        if out is None:
            return
        self._played_before_s += out.ring.consumed / out.rate
        out.ring.drop()
        self._run_active = False
        await asyncio.to_thread(_close_quietly, out.stream)

    # -- the sink -------------------------------------------------------------------

    async def write(
        self, samples: Samples, sample_rate: int, label: str | None = None
    ) -> PlaybackMark:
        out = await self._live_output()
        audio = to_sink_rate(samples, sample_rate, out.rate)
        ring = out.ring
        if not self._run_active:
            self._run_base_s = self.played_s + ring.available / out.rate
            self._run_active = True
        queued_s = ring.available / out.rate
        first = self._clock() + queued_s + out.latency_s
        duration = len(audio) / out.rate
        mark = PlaybackMark(first, first + duration, self.played_s + queued_s, duration, label)
        self._last_mark = mark
        generation, offset = self._generation, 0
        while offset < len(audio) and generation == self._generation:
            offset += ring.push(audio[offset:])
            if offset < len(audio):
                await asyncio.sleep(self._block_s)  # backpressure: wait for the callback
                await self._live_output()
        return mark

    async def flush(self) -> None:
        return None  # nothing is held back: every write goes straight to the ring

    def clear(self) -> float | None:
        self._generation += 1
        if self._out is not None:
            self._out.ring.drop()  # the next callback already plays silence
        heard = max(0.0, self.played_s - self._run_base_s) if self._run_active else None
        self._run_active = False
        return heard

    async def wait_for_playout(self) -> None:
        generation = self._generation
        while self._out is not None and generation == self._generation:
            out = await self._live_output()
            if not out.ring.available:
                # The last block is in the device buffer: let it reach the air.
                await asyncio.sleep(out.latency_s + self._block_s)
                break
            await asyncio.sleep(self._block_s)
        if generation == self._generation:
            self._run_active = False

    async def aclose(self) -> None:
        self._closed = True
        self._generation += 1
        await self._drop_output()
        if self.underflows:
            log.info("speaker.closed", underflows=self.underflows)


def _close_quietly(stream: Any) -> None:
    for action in ("stop", "close"):
        try:
            getattr(stream, action)()
        except Exception as exc:  # a vanished device may fail to stop; we are done anyway
            log.debug("speaker.close_failed", action=action, error=one_line(str(exc)))
