"""Audio files in: decode anything to 16 kHz mono float32, and the resampler that does it.

libsndfile (soundfile) handles the common containers; FFmpeg (PyAV) is the fallback.
Every problem with a file becomes a one-line `AudioFileError` naming it. Nothing here
touches sound hardware.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from voice.errors import AudioFileError
from voice.types import SAMPLE_RATE, Samples

DEFAULT_MAX_DURATION_S = 4 * 3600.0
RESAMPLE_QUALITY = "HQ"
_READ_BLOCK_FRAMES = 1 << 16
"""Decode in blocks so a long 48 kHz stereo file never sits in memory at full width."""

# --------------------------------------------------------------------------- helpers


def rms_dbfs(samples: Samples) -> float:
    """RMS level in dBFS (full-scale sine = -3 dB); -120.0 for silence or no samples."""
    if len(samples) == 0:
        return -120.0
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    if rms <= 1e-6:
        return -120.0
    return max(-120.0, 20.0 * math.log10(rms))


def one_line(text: str) -> str:
    """Library error text squeezed onto one line (user-facing errors are one line)."""
    return " ".join(str(text).split())


class MonoResampler:
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
    return AudioFileError(path, f"cannot decode: {one_line(str(exc)) or type(exc).__name__}")


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
        raise AudioFileError(path, f"cannot read: {one_line(exc.strerror or str(exc))}") from None
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
        raise AudioFileError(path, f"cannot read: {one_line(exc.strerror or str(exc))}") from None


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
        reason = one_line(getattr(exc, "error_string", "") or str(exc))
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
        mono = MonoResampler(rate)
        chunks: list[Samples] = []
        try:
            while True:
                block = snd.read(_READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                chunks.append(mono.push(block))
        except (sf.LibsndfileError, RuntimeError) as exc:
            if mono.source_frames == 0:
                raise AudioFileError(path, f"corrupt audio data ({one_line(str(exc))})") from None
            warnings.append(
                f"decoding stopped at {mono.source_frames / rate:.2f} s: {one_line(str(exc))}"
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
        mono = MonoResampler(rate)
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
                raise AudioFileError(path, f"corrupt audio data ({one_line(str(exc))})") from None
            warnings.append(
                f"decoding stopped at {mono.source_frames / rate:.2f} s: {one_line(str(exc))}"
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
    mono: MonoResampler, chunks: list[Samples], rate: int, channels: int, warnings: list[str]
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
