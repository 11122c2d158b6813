"""Decoding audio files and pacing them as frames (voice/audio.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voice.audio import AudioSource, DecodedAudio, FileSource, decode_audio, rms_dbfs
from voice.errors import AudioFileError
from voice.types import FRAME_S, FRAME_SAMPLES, SAMPLE_RATE, AudioFrame

SHARED_AUDIO = Path(__file__).resolve().parents[2] / ".." / "shared" / "audio"


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def assert_one_line_error(err: pytest.ExceptionInfo[AudioFileError], path: Path) -> str:
    text = str(err.value)
    assert "\n" not in text
    assert path.name in text
    return text


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("subtype", "tolerance"),
    [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-6), ("FLOAT", 0.0)],
)
def test_sample_widths_decode_to_the_same_signal(
    tmp_path: Path, subtype: str, tolerance: float
) -> None:
    signal = tone(440, SAMPLE_RATE, 0.5)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, signal, SAMPLE_RATE, subtype=subtype)
    decoded = decode_audio(path)
    assert decoded.samples.dtype == np.float32
    assert len(decoded.samples) == len(signal)
    assert decoded.source_rate == SAMPLE_RATE and decoded.channels == 1
    assert np.max(np.abs(decoded.samples - signal)) <= tolerance
    assert decoded.warnings == ()


def test_8bit_8khz_wav_made_by_sox(tmp_path: Path) -> None:
    if shutil.which("sox") is None:
        pytest.skip("sox not installed")
    path = tmp_path / "u8.wav"
    output = ["-r", "8000", "-b", "8", "-e", "unsigned", str(path)]
    subprocess.run(["sox", "-n", *output, "synth", "1", "sine", "440", "vol", "0.5"], check=True)
    assert sf.info(str(path)).subtype == "PCM_U8"
    decoded = decode_audio(path)
    assert decoded.source_rate == 8000
    assert decoded.duration_s == pytest.approx(1.0, abs=1e-3)
    assert len(decoded.samples) == pytest.approx(SAMPLE_RATE, abs=2)
    assert peak_hz(decoded.samples) == pytest.approx(440, abs=2)
    assert 0.4 < np.max(np.abs(decoded.samples)) <= 1.0


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_any_rate_is_resampled_keeping_duration_and_pitch(tmp_path: Path, rate: int) -> None:
    path = tmp_path / f"{rate}.wav"
    sf.write(path, tone(440, rate, 2.0), rate, subtype="PCM_16")
    decoded = decode_audio(path)
    assert decoded.source_rate == rate
    assert decoded.duration_s == pytest.approx(2.0, abs=1e-3)
    assert len(decoded.samples) == pytest.approx(2 * SAMPLE_RATE, abs=2)
    assert peak_hz(decoded.samples) == pytest.approx(440, abs=1)
    # The level survives resampling (0.5 amplitude sine = about -9 dBFS).
    assert rms_dbfs(decoded.samples[1000:-1000]) == pytest.approx(-9.03, abs=0.2)


def test_stereo_is_downmixed_by_averaging(tmp_path: Path) -> None:
    left = tone(440, SAMPLE_RATE, 0.5, amplitude=0.6)
    right = tone(1000, SAMPLE_RATE, 0.5, amplitude=0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    decoded = decode_audio(path)
    assert decoded.channels == 2
    np.testing.assert_allclose(decoded.samples, (left + right) / 2, atol=1e-6)


def test_flac_44k_stereo(tmp_path: Path) -> None:
    signal = tone(440, 44100, 1.5)
    path = tmp_path / "x.flac"
    sf.write(path, np.stack([signal, signal], axis=1), 44100, format="FLAC")
    decoded = decode_audio(path)
    assert (decoded.source_rate, decoded.channels) == (44100, 2)
    assert decoded.duration_s == pytest.approx(1.5, abs=1e-3)
    assert peak_hz(decoded.samples) == pytest.approx(440, abs=1)


def _encode_with_av(path: Path, codec: str, rate: int, seconds: float) -> None:
    av = pytest.importorskip("av")
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    signal = tone(440, rate, seconds)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame_size = 1152
        for start in range(0, len(signal), frame_size):
            chunk = signal[start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_mp3(tmp_path: Path) -> None:
    path = tmp_path / "x.mp3"
    _encode_with_av(path, "libmp3lame", 44100, 2.0)
    decoded = decode_audio(path)
    assert decoded.source_rate == 44100
    # MP3 frames add encoder delay/padding; the length stays within a few frames.
    assert decoded.duration_s == pytest.approx(2.0, abs=0.1)
    assert peak_hz(decoded.samples) == pytest.approx(440, abs=2)


def test_formats_libsndfile_refuses_go_through_ffmpeg(tmp_path: Path) -> None:
    path = tmp_path / "x.m4a"
    _encode_with_av(path, "aac", 48000, 1.0)
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(path))  # proves this file really takes the PyAV path
    decoded = decode_audio(path)
    assert decoded.source_rate == 48000 and decoded.channels == 1
    assert decoded.duration_s == pytest.approx(1.0, abs=0.1)
    assert peak_hz(decoded.samples) == pytest.approx(440, abs=2)
    with pytest.raises(AudioFileError, match="too long"):
        decode_audio(path, max_duration_s=0.5)


@pytest.mark.shared_audio
def test_shared_mp3_recording() -> None:
    path = SHARED_AUDIO / "fw_hotwords.mp3"
    if not path.exists():
        pytest.skip("../shared/audio is absent")
    decoded = decode_audio(path)
    assert (decoded.source_rate, decoded.channels) == (44100, 2)
    assert decoded.duration_s == pytest.approx(4.0, abs=0.1)
    assert rms_dbfs(decoded.samples) > -40


def test_ten_minute_file(tmp_path: Path) -> None:
    rate, seconds = 8000, 600
    rng = np.random.default_rng(1)
    signal = np.zeros(rate * seconds, np.float32)
    signal[::7] = rng.uniform(-0.1, 0.1, len(signal[::7]))
    path = tmp_path / "long.wav"
    sf.write(path, signal, rate, subtype="PCM_16")
    decoded = decode_audio(path)
    assert decoded.duration_s == pytest.approx(seconds)
    assert len(decoded.samples) == pytest.approx(seconds * SAMPLE_RATE, abs=2)
    assert np.all(np.isfinite(decoded.samples))


def test_too_long_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "two_seconds.wav"
    sf.write(path, np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    with pytest.raises(AudioFileError) as err:
        decode_audio(path, max_duration_s=1.0)
    assert "too long" in assert_one_line_error(err, path)


def test_nan_inf_and_overrange_samples_are_sanitised(tmp_path: Path) -> None:
    signal = tone(440, SAMPLE_RATE, 0.5, amplitude=0.3)
    signal[100] = np.nan
    signal[200] = np.inf
    signal[300] = -np.inf
    signal[400:410] = 3.0
    path = tmp_path / "bad_values.wav"
    sf.write(path, signal, SAMPLE_RATE, subtype="FLOAT")
    decoded = decode_audio(path)
    assert np.all(np.isfinite(decoded.samples))
    assert np.max(np.abs(decoded.samples)) <= 1.0
    assert decoded.samples[100] == 0.0 and decoded.samples[405] == 1.0
    joined = " | ".join(decoded.warnings)
    assert "3 NaN/inf" in joined
    assert "10 samples outside [-1, 1]" in joined


def test_nan_at_another_rate_does_not_poison_the_resampler(tmp_path: Path) -> None:
    signal = tone(440, 44100, 1.0, amplitude=0.3)
    signal[1000:1100] = np.nan
    path = tmp_path / "nan44.wav"
    sf.write(path, signal, 44100, subtype="DOUBLE")
    decoded = decode_audio(path)
    assert np.all(np.isfinite(decoded.samples))
    assert any("100 NaN/inf" in w for w in decoded.warnings)


def test_wav_with_data_cut_short_decodes_what_is_there(tmp_path: Path) -> None:
    full = tmp_path / "full.wav"
    sf.write(full, tone(440, SAMPLE_RATE, 1.0), SAMPLE_RATE, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[: 44 + 2 * 4000])
    decoded = decode_audio(cut)
    assert len(decoded.samples) == 4000
    assert any("truncated" in w for w in decoded.warnings)
    # An intact file of the same kind carries no such warning.
    assert decode_audio(full).warnings == ()


# --------------------------------------------------------------------------- bad input


def _write_wav_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "source.wav"
    sf.write(path, tone(440, SAMPLE_RATE, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return path.read_bytes()


def test_wav_header_only(tmp_path: Path) -> None:
    path = tmp_path / "header_only.wav"
    path.write_bytes(_write_wav_bytes(tmp_path)[:44])
    with pytest.raises(AudioFileError) as err:
        decode_audio(path)
    assert "truncated" in assert_one_line_error(err, path)


@pytest.mark.parametrize("keep", [12, 20, 30])
def test_wav_with_a_cut_header(tmp_path: Path, keep: int) -> None:
    path = tmp_path / f"cut_header_{keep}.wav"
    path.write_bytes(_write_wav_bytes(tmp_path)[:keep])
    with pytest.raises(AudioFileError) as err:
        decode_audio(path)
    assert_one_line_error(err, path)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("notes.txt", b"hello, this is not audio\n" * 20, "not an audio file"),
        ("noise.wav", bytes(range(256)) * 8, "not an audio file"),
        ("empty.wav", b"", "empty"),
    ],
)
def test_unusable_files(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioFileError) as err:
        decode_audio(path)
    assert expected in assert_one_line_error(err, path)
    assert err.value.path == path


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.wav"
    with pytest.raises(AudioFileError) as err:
        decode_audio(path)
    assert "no such file" in assert_one_line_error(err, path)


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "folder.wav"
    path.mkdir()
    with pytest.raises(AudioFileError) as err:
        decode_audio(path)
    assert "directory" in assert_one_line_error(err, path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    sf.write(path, np.zeros(1600, np.float32), SAMPLE_RATE)
    path.chmod(0)
    with pytest.raises(AudioFileError) as err:
        decode_audio(path)
    assert "permission denied" in assert_one_line_error(err, path)


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), ValueError("bad"), OSError(5, "I/O error"), MemoryError()]
)
def test_library_exceptions_become_audio_file_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    path = tmp_path / "fine.wav"
    sf.write(path, np.zeros(1600, np.float32), SAMPLE_RATE)

    def failing_read(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(sf.SoundFile, "read", failing_read)
    with pytest.raises(AudioFileError) as err:
        decode_audio(path)
    assert_one_line_error(err, path)


def test_ffmpeg_exceptions_become_audio_file_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "x.m4a"
    _encode_with_av(path, "aac", 16000, 0.5)

    def failing_open(*args: object, **kwargs: object) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(av, "open", failing_open)
    with pytest.raises(AudioFileError) as err:
        decode_audio(path)
    assert_one_line_error(err, path)


# --------------------------------------------------------------------------- rms


def test_rms_dbfs() -> None:
    assert rms_dbfs(np.zeros(512, np.float32)) == -120.0
    assert rms_dbfs(np.zeros(0, np.float32)) == -120.0
    assert rms_dbfs(tone(440, SAMPLE_RATE, 1.0, amplitude=1.0)) == pytest.approx(-3.01, abs=0.05)
    assert rms_dbfs(np.full(512, 0.1, np.float32)) == pytest.approx(-20.0, abs=0.01)


# --------------------------------------------------------------------------- FileSource


def decoded(samples: np.ndarray) -> DecodedAudio:
    samples = samples.astype(np.float32)
    return DecodedAudio(samples, SAMPLE_RATE, 1, len(samples) / SAMPLE_RATE)


async def collect(source: FileSource) -> list[AudioFrame]:
    return [frame async for frame in source.frames()]


async def test_file_source_frames_and_padding() -> None:
    samples = np.linspace(-0.5, 0.5, 1000).astype(np.float32)
    source = FileSource(decoded(samples))
    assert isinstance(source, AudioSource)
    frames = await collect(source)
    assert len(frames) == 2 == source.frame_count
    assert all(f.samples.shape == (FRAME_SAMPLES,) for f in frames)
    assert all(f.samples.dtype == np.float32 for f in frames)
    assert [f.start_s for f in frames] == [0.0, FRAME_S]
    joined = np.concatenate([f.samples for f in frames])
    np.testing.assert_array_equal(joined[:1000], samples)
    assert not joined[1000:].any()
    assert frames[0].captured_at <= frames[1].captured_at


async def test_file_source_lead_and_tail_silence() -> None:
    samples = np.full(1000, 0.25, np.float32)
    source = FileSource(decoded(samples), lead_silence_s=0.1, tail_silence_s=0.5)
    frames = await collect(source)
    joined = np.concatenate([f.samples for f in frames])
    assert len(frames) == -(-(1600 + 1000 + 8000) // FRAME_SAMPLES)
    assert not joined[:1600].any()
    np.testing.assert_array_equal(joined[1600:2600], samples)
    assert not joined[2600:].any()
    assert source.lead_silence_s == pytest.approx(0.1)
    assert [f.start_s for f in frames] == pytest.approx([i * FRAME_S for i in range(len(frames))])


async def test_fast_mode_does_not_starve_the_loop() -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    frames = await collect(FileSource(decoded(np.zeros(SAMPLE_RATE * 2))))
    during = ticks - before
    stop.set()
    await task
    assert len(frames) == 63
    assert during >= 5


class FakeClock:
    """Time that only moves when the source sleeps; every sleep overshoots a little."""

    def __init__(self, oversleep: float) -> None:
        self.now = 1000.0
        self.oversleep = oversleep
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay + self.oversleep


async def test_realtime_pacing_follows_an_absolute_schedule() -> None:
    clock = FakeClock(oversleep=0.005)
    source = FileSource(
        decoded(np.zeros(50 * FRAME_SAMPLES)), realtime=True, clock=clock, sleep=clock.sleep
    )
    frames = await collect(source)
    assert len(frames) == 50
    for index, frame in enumerate(frames):
        due = 1000.0 + (index + 1) * FRAME_S
        assert frame.captured_at >= due - 1e-9
        # Lateness never accumulates: each frame is at most one oversleep late.
        assert frame.captured_at - due <= 0.005 + 1e-9
    # Waits shrink to make up for the oversleeping instead of being a fixed 32 ms.
    assert all(delay < FRAME_S for delay in clock.sleeps[1:])


async def test_realtime_is_not_faster_than_real_time() -> None:
    source = FileSource(decoded(np.zeros(round(0.3 * SAMPLE_RATE))), realtime=True)
    started = time.monotonic()
    frames = await collect(source)
    elapsed = time.monotonic() - started
    assert len(frames) == 10
    assert elapsed >= 10 * FRAME_S - 0.002
    assert frames[-1].captured_at - started >= 10 * FRAME_S - 0.002


async def test_aclose_stops_the_stream() -> None:
    source = FileSource(decoded(np.zeros(SAMPLE_RATE)))
    got = []
    async for frame in source.frames():
        got.append(frame)
        if len(got) == 3:
            await source.aclose()
    assert len(got) == 3


async def test_open_decodes_and_reports_errors(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    sf.write(path, tone(440, 48000, 0.5), 48000)
    source = FileSource.open(path, lead_silence_s=0.064)
    frames = await collect(source)
    assert len(frames) == -(-(1024 + 8000) // FRAME_SAMPLES)
    with pytest.raises(AudioFileError):
        FileSource.open(tmp_path / "missing.wav")
