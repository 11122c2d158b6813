"""Audio in: decode files, pace them as a source, capture the microphone; resampling.

Everything leaves this module as 16 kHz mono float32 in [-1, 1], cut into
`FRAME_SAMPLES`-sample `AudioFrame`s. This is the ONLY module that imports
sounddevice, and it does so lazily so that a machine without PortAudio can still
decode files; a missing library or sound card becomes an `AudioDeviceError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import soundfile as sf
import soxr
import structlog

from voice.config import AudioConfig
from voice.errors import AudioDeviceError, AudioFileError
from voice.types import FRAME_S, FRAME_SAMPLES, SAMPLE_RATE, AudioFrame, Samples

log = structlog.get_logger("voice.audio")

DEFAULT_MAX_DURATION_S = 4 * 3600.0
RESAMPLE_QUALITY = "HQ"
_READ_BLOCK_FRAMES = 1 << 16
"""Decode in blocks so a long 48 kHz stereo file never sits in memory at full width."""
_FAST_YIELD_EVERY = 8
"""Fast mode hands control back to the loop this often so other tasks still run."""
_NO_MIC = "no microphone found (no audio input devices); connect one or set audio.input_device"
_NO_PORTAUDIO = "PortAudio library not found; install it (Debian: apt-get install libportaudio2)"


# --------------------------------------------------------------------------- helpers


def rms_dbfs(samples: Samples) -> float:
    """RMS level in dBFS (full-scale sine = -3 dB); -120.0 for silence or no samples."""
    if len(samples) == 0:
        return -120.0
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    if rms <= 1e-6:
        return -120.0
    return max(-120.0, 20.0 * math.log10(rms))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _MonoResampler:
    """Downmixes, sanitises and resamples blocks to 16 kHz mono, keeping counts for warnings.

    soxr.ResampleStream keeps filter state across blocks, so block edges leave no clicks
    and the result matches a one-shot resample of the whole signal.
    """

    def __init__(self, source_rate: int) -> None:
        self._stream = (
            None
            if source_rate == SAMPLE_RATE
            else soxr.ResampleStream(source_rate, SAMPLE_RATE, 1, "float32", RESAMPLE_QUALITY)
        )
        self.nonfinite = 0
        self.clipped = 0
        self.source_frames = 0

    def push(self, block: np.ndarray[Any, Any], *, last: bool = False) -> Samples:
        """`block` is (frames, channels) float; returns the 16 kHz mono samples ready so far."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 1:
            block = block[:, None]
        self.source_frames += block.shape[0]
        if block.size:
            finite = np.isfinite(block)
            if not finite.all():
                self.nonfinite += int(block.size - np.count_nonzero(finite))
                block = np.where(finite, block, np.float32(0.0))
            over = np.abs(block) > 1.0
            if over.any():
                self.clipped += int(np.count_nonzero(over))
                block = np.clip(block, -1.0, 1.0)
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        if self._stream is None:
            return np.ascontiguousarray(mono, dtype=np.float32)
        out = self._stream.resample_chunk(np.ascontiguousarray(mono), last=last)
        return np.asarray(out, dtype=np.float32)

    def warnings(self) -> list[str]:
        found = []
        if self.nonfinite:
            found.append(f"{self.nonfinite} NaN/inf samples replaced with silence")
        if self.clipped:
            found.append(f"{self.clipped} samples outside [-1, 1] clipped")
        return found


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class DecodedAudio:
    """A whole file as 16 kHz mono float32, plus what it was and what was wrong with it."""

    samples: Samples
    source_rate: int
    channels: int
    duration_s: float
    """Duration of the decoded source audio (before resampling)."""
    warnings: tuple[str, ...] = ()


def decode_audio(path: Path, max_duration_s: float = DEFAULT_MAX_DURATION_S) -> DecodedAudio:
    """Decode any audio file to 16 kHz mono float32; every problem is an AudioFileError.

    libsndfile (soundfile) reads WAV/FLAC/OGG/MP3 and every PCM width; anything it
    refuses goes to FFmpeg (PyAV), which covers M4A, Opus, WMA and odd WAV codecs.
    """
    path = Path(path)
    head = _check_readable(path)
    soundfile_problem: str | None = None
    if _soundfile_container(head):
        try:
            return _decode_with_soundfile(path, head, max_duration_s)
        except _NotForSoundfile as refused:
            soundfile_problem = refused.problem
        except Exception as exc:
            raise _as_file_error(path, exc) from None
    try:
        return _decode_with_av(path, max_duration_s)
    except _NotForAv as refused:
        raise AudioFileError(path, soundfile_problem or refused.problem) from None
    except Exception as exc:
        raise _as_file_error(path, exc) from None


def _as_file_error(path: Path, exc: Exception) -> AudioFileError:
    """Whatever a decoder library threw, as one line naming the file."""
    if isinstance(exc, AudioFileError):
        return exc
    if isinstance(exc, MemoryError):
        return AudioFileError(path, "too large to decode in memory")
    if isinstance(exc, PermissionError):
        return AudioFileError(path, "permission denied")
    return AudioFileError(path, f"cannot decode: {_one_line(str(exc)) or type(exc).__name__}")


class _NotForSoundfile(Exception):
    """libsndfile could not open the file; `problem` is set when it is clearly corrupt."""

    def __init__(self, problem: str | None) -> None:
        super().__init__(problem)
        self.problem = problem


class _NotForAv(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _check_readable(path: Path) -> bytes:
    """The file-system problems, each with its own message; returns the first 64 bytes."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioFileError(path, "no such file") from None
    except PermissionError:
        raise AudioFileError(path, "permission denied") from None
    except OSError as exc:
        raise AudioFileError(path, f"cannot read: {_one_line(exc.strerror or str(exc))}") from None
    if path.is_dir():
        raise AudioFileError(path, "is a directory, not an audio file")
    if st.st_size == 0:
        raise AudioFileError(path, "empty file (0 bytes)")
    try:
        with path.open("rb") as fh:
            return fh.read(64)
    except PermissionError:
        raise AudioFileError(path, "permission denied") from None
    except OSError as exc:
        raise AudioFileError(path, f"cannot read: {_one_line(exc.strerror or str(exc))}") from None


# Containers libsndfile recognises by their magic bytes. Everything else (MP3 among
# them) goes to FFmpeg: libsndfile's MP3 probe prints "Note: Illegal Audio-MPEG-Header"
# lines straight to fd 2 on a bad file, which a one-line error must not be buried in.
_SOUNDFILE_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM", b".snd", b"caff")


def _soundfile_container(head: bytes) -> bool:
    return head[:4] in _SOUNDFILE_MAGIC


def _is_riff_wave(head: bytes) -> bool:
    return head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE"


def _wav_data_shortfall(path: Path) -> tuple[int, int] | None:
    """(declared, present) byte counts of the data chunk when the file ends before it does.

    libsndfile silently reads a cut-short data chunk; we still want to say so. A size
    of 0 or 0xFFFFFFFF is what streaming writers leave behind, not truncation.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            if fh.read(12)[:4] != b"RIFF":
                return None
            while True:
                header = fh.read(8)
                if len(header) < 8:
                    return None
                chunk_id, chunk_size = header[:4], struct.unpack("<I", header[4:])[0]
                if chunk_id == b"data":
                    present = size - fh.tell()
                    if chunk_size in (0, 0xFFFFFFFF) or present >= chunk_size:
                        return None
                    return chunk_size, present
                fh.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)
    except OSError:
        return None


def _decode_with_soundfile(path: Path, head: bytes, max_duration_s: float) -> DecodedAudio:
    try:
        snd = sf.SoundFile(str(path))
    except sf.LibsndfileError as exc:
        reason = _one_line(getattr(exc, "error_string", "") or str(exc))
        # A RIFF file libsndfile cannot parse is a broken WAV; let FFmpeg try anyway in
        # case it is a WAV codec libsndfile lacks, but keep libsndfile's diagnosis.
        raise _NotForSoundfile(
            f"corrupt or truncated WAV header ({reason})" if _is_riff_wave(head) else None
        ) from None
    except (RuntimeError, ValueError, TypeError) as exc:
        raise _NotForSoundfile(None) from exc
    with snd:
        rate, channels, frames = int(snd.samplerate), int(snd.channels), int(snd.frames)
        if rate <= 0 or channels <= 0:
            raise AudioFileError(path, f"invalid header ({rate} Hz, {channels} channels)")
        _check_duration(path, frames / rate, max_duration_s)
        warnings: list[str] = []
        shortfall = _wav_data_shortfall(path) if _is_riff_wave(head) else None
        if shortfall is not None and frames == 0:
            declared_s = shortfall[0] / max(1, _bytes_per_frame(snd)) / rate
            raise AudioFileError(
                path,
                f"truncated WAV: the header declares {declared_s:.2f} s of audio "
                "but the file ends after the header",
            )
        if frames == 0:
            raise AudioFileError(path, "no audio frames")
        if shortfall is not None:
            declared_s = shortfall[0] / max(1, _bytes_per_frame(snd)) / rate
            warnings.append(
                f"truncated WAV: header declares {declared_s:.2f} s, "
                f"decoded the {frames / rate:.2f} s present"
            )
        mono = _MonoResampler(rate)
        chunks: list[Samples] = []
        try:
            while True:
                block = snd.read(_READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                chunks.append(mono.push(block))
        except (sf.LibsndfileError, RuntimeError) as exc:
            if mono.source_frames == 0:
                raise AudioFileError(path, f"corrupt audio data ({_one_line(str(exc))})") from None
            warnings.append(
                f"decoding stopped at {mono.source_frames / rate:.2f} s: {_one_line(str(exc))}"
            )
        chunks.append(mono.push(np.zeros((0, channels), np.float32), last=True))
    if mono.source_frames == 0:
        raise AudioFileError(path, "no audio frames")
    return _finish(mono, chunks, rate, channels, warnings)


def _bytes_per_frame(snd: sf.SoundFile) -> int:
    widths = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4}
    widths |= {"FLOAT": 4, "DOUBLE": 8, "ULAW": 1, "ALAW": 1}
    return widths.get(str(snd.subtype), 2) * int(snd.channels)


def _decode_with_av(path: Path, max_duration_s: float) -> DecodedAudio:
    import av  # FFmpeg is the fallback; only load it when libsndfile gave up

    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError:
        raise _NotForAv("not an audio file (format not recognised)") from None
    with container:
        if not container.streams.audio:
            raise AudioFileError(path, "not an audio file (no audio stream)")
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or stream.rate or 0)
        channels = int(stream.codec_context.channels or 0)
        if rate <= 0:
            raise AudioFileError(path, "invalid audio stream (no sample rate)")
        if stream.duration is not None and stream.time_base is not None:
            _check_duration(path, float(stream.duration * stream.time_base), max_duration_s)
        elif container.duration is not None:
            _check_duration(path, container.duration / 1_000_000, max_duration_s)
        # Converts only the sample format (and a rate change mid-stream): planar float.
        converter = av.AudioResampler(format="fltp", rate=rate)
        mono = _MonoResampler(rate)
        chunks: list[Samples] = []
        warnings: list[str] = []
        max_frames = max_duration_s * rate
        channels_seen: set[int] = set()

        def take(frames: list[Any]) -> None:
            for out in frames:
                planar = out.to_ndarray()  # (channels, samples)
                channels_seen.add(planar.shape[0])
                chunks.append(mono.push(planar.T))
                if mono.source_frames > max_frames:
                    _check_duration(path, mono.source_frames / rate, max_duration_s)

        try:
            for frame in container.decode(stream):
                take(converter.resample(frame))
            take(converter.resample(None))
        except av.error.FFmpegError as exc:
            if mono.source_frames == 0:
                raise AudioFileError(path, f"corrupt audio data ({_one_line(str(exc))})") from None
            warnings.append(
                f"decoding stopped at {mono.source_frames / rate:.2f} s: {_one_line(str(exc))}"
            )
        chunks.append(mono.push(np.zeros((0, 1), np.float32), last=True))
    if mono.source_frames == 0:
        raise AudioFileError(path, "no audio frames")
    return _finish(mono, chunks, rate, channels or max(channels_seen, default=1), warnings)


def _check_duration(path: Path, duration_s: float, max_duration_s: float) -> None:
    if duration_s > max_duration_s:
        raise AudioFileError(
            path, f"too long: {duration_s:.1f} s exceeds the {max_duration_s:.1f} s limit"
        )


def _finish(
    mono: _MonoResampler, chunks: list[Samples], rate: int, channels: int, warnings: list[str]
) -> DecodedAudio:
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    # The resampler's filter may overshoot full-scale input by a hair; that is no
    # defect of the file, so clip it silently.
    np.clip(samples, -1.0, 1.0, out=samples)
    for warning in mono.warnings():
        warnings.append(warning)
    return DecodedAudio(
        samples=samples.astype(np.float32, copy=False),
        source_rate=rate,
        channels=channels,
        duration_s=mono.source_frames / rate,
        warnings=tuple(warnings),
    )


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
    ) -> None:
        if lead_silence_s < 0 or tail_silence_s < 0:
            raise ValueError("silence padding cannot be negative")
        self.audio = audio
        self.realtime = realtime
        self._clock = clock
        self._sleep = sleep
        self._lead = round(lead_silence_s * SAMPLE_RATE)
        self._tail = round(tail_silence_s * SAMPLE_RATE)
        self._closed = False

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
        started = self._clock()
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
        raise AudioDeviceError(f"cannot list audio devices: {_one_line(str(exc))}") from None
    default_in, default_out = _default_index(sd, "input"), _default_index(sd, "output")
    return [_device_info(entry, default_in, default_out) for entry in entries]


def find_input_device(name_or_index: str | None) -> DeviceInfo:
    """The configured (or default) input device; AudioDeviceError with one line if none."""
    sd = _import_sounddevice()
    wanted: int | str | None = name_or_index
    if isinstance(name_or_index, str) and name_or_index.strip().isdigit():
        wanted = int(name_or_index)
    try:
        entry = sd.query_devices(wanted, kind="input")
    except sd.PortAudioError as exc:
        if wanted is None or not list(sd.query_devices()):
            raise AudioDeviceError(_NO_MIC) from None
        raise AudioDeviceError(
            f"audio input device {name_or_index!r} unusable: {_one_line(str(exc))}"
        ) from None
    except ValueError as exc:  # "No input device matching ...", "Not an input device"
        raise AudioDeviceError(
            f"audio input device {name_or_index!r} not found ({_one_line(str(exc))}); "
            "run `atlas devices` to list them"
        ) from None
    return _device_info(entry, _default_index(sd, "input"), None)


def _real_stream_factory(**kwargs: Any) -> Any:
    sd = _import_sounddevice()
    return sd.InputStream(**kwargs)


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
                f"cannot start microphone {device.name!r}: {_one_line(str(exc))}"
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
            reason = _one_line(str(exc)) or type(exc).__name__
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
        mono = _MonoResampler(rate)
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
                mono = _MonoResampler(rate)
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
                log.debug("mic.close_failed", action=action, error=_one_line(str(exc)))
