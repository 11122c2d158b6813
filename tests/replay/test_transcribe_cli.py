"""`atlas transcribe` end to end: real VAD + Whisper, real files, bad files."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from atlas.cli import main
from tests.conftest import shared_audio
from voice.textnorm import normalize_text

pytestmark = pytest.mark.slow


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], list[str]]:
    code = main(["transcribe", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def espeak(tmp_path: Path, text: str, name: str) -> Path:
    out = tmp_path / name
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(out), text], check=True)
    return out


def test_json_output_per_utterance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = espeak(tmp_path, "what time is it", "time.wav")
    code, out, err = run_cli(capsys, "--json", str(wav))
    assert code == 0, err
    assert len(out) == 1
    rec = json.loads(out[0])
    assert set(rec) >= {"file", "start_s", "end_s", "text", "stt_ms"}
    assert rec["file"] == str(wav)
    assert normalize_text(rec["text"]) == "what time is it"
    duration = sf.info(str(wav)).duration
    assert 0.0 <= rec["start_s"] < rec["end_s"] <= duration
    assert rec["stt_ms"] > 0


def test_timestamps_are_file_relative(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two commands 3 s apart: two utterances, times measured from the file's start."""
    a = espeak(tmp_path, "turn on the lights", "a.wav")
    b = espeak(tmp_path, "what is the weather tomorrow", "b.wav")
    xa, sr = sf.read(str(a), dtype="float32")
    xb, _ = sf.read(str(b), dtype="float32")
    gap = np.zeros(int(3.0 * sr), dtype=np.float32)
    lead = np.zeros(int(1.0 * sr), dtype=np.float32)
    both = tmp_path / "both.wav"
    sf.write(str(both), np.concatenate([lead, xa, gap, xb]), sr)
    code, out, err = run_cli(capsys, "--json", str(both))
    assert code == 0, err
    recs = [json.loads(line) for line in out]
    assert [normalize_text(r["text"]) for r in recs] == [
        "turn on the lights",
        "what is the weather tomorrow",
    ]
    start_b = 1.0 + len(xa) / sr + 3.0
    assert abs(recs[0]["start_s"] - 1.0) < 0.25
    assert abs(recs[1]["start_s"] - start_b) < 0.25


def test_text_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = espeak(tmp_path, "set a timer for five minutes", "timer.wav")
    code, out, _ = run_cli(capsys, str(wav))
    assert code == 0
    assert len(out) == 1 and out[0].startswith(str(wav))
    assert "timer" in out[0].lower()


def _write_pcm(path: Path, x: np.ndarray, rate: int, subtype: str) -> Path:
    sf.write(str(path), x, rate, subtype=subtype)
    return path


def test_bad_and_odd_inputs_in_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every bad file gets one stderr line naming it; the good ones are still transcribed."""
    speech, rate = sf.read(str(espeak(tmp_path, "open the garage door", "s.wav")), dtype="float32")
    pad = np.zeros(rate // 2, dtype=np.float32)
    speech = np.concatenate([pad, speech, pad])
    odd = {
        "u8.wav": _write_pcm(tmp_path / "u8.wav", speech, rate, "PCM_U8"),
        "s24.wav": _write_pcm(tmp_path / "s24.wav", speech, rate, "PCM_24"),
        "float.wav": _write_pcm(tmp_path / "float.wav", speech, rate, "FLOAT"),
        "stereo.wav": _write_pcm(
            tmp_path / "stereo.wav", np.stack([speech, speech * 0.5], axis=1), rate, "PCM_16"
        ),
    }
    import soxr

    sf.write(str(tmp_path / "8k.wav"), soxr.resample(speech, rate, 8000), 8000, subtype="PCM_16")
    odd["8k.wav"] = tmp_path / "8k.wav"
    nan = speech.copy()
    nan[1000:1010] = np.nan
    nan[2000] = np.inf
    odd["nan.wav"] = _write_pcm(tmp_path / "nan.wav", nan, rate, "FLOAT")

    bad = {
        "notaudio.wav": tmp_path / "notaudio.wav",
        "empty.wav": tmp_path / "empty.wav",
        "header_cut.wav": tmp_path / "header_cut.wav",
        "missing.wav": tmp_path / "missing.wav",
        "adir": tmp_path / "adir",
    }
    bad["notaudio.wav"].write_text("this is not audio\n" * 50)
    bad["empty.wav"].write_bytes(b"")
    bad["header_cut.wav"].write_bytes(odd["s24.wav"].read_bytes()[:30])
    bad["adir"].mkdir()

    code, out, err = run_cli(capsys, "--json", *map(str, [*odd.values(), *bad.values()]))
    assert code == 1
    heard = {Path(json.loads(line)["file"]).name: json.loads(line)["text"] for line in out}
    for name in odd:
        assert name in heard, f"{name} was not transcribed"
        assert "garage" in normalize_text(heard[name]), (name, heard[name])
    errors = [line for line in err if line.startswith("atlas: ")]
    warnings = [json.loads(line) for line in err if line.startswith("{")]
    assert len(errors) == len(bad), err
    assert any("nan.wav" in w["file"] and "NaN" in w["problem"] for w in warnings)
    for name, line in zip(bad, errors, strict=True):
        assert line.startswith("atlas: ") and name in line
        assert "Traceback" not in line


def test_truncated_data_chunk_is_decoded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A WAV cut mid-data (e.g. a recorder killed) is still transcribed as far as it goes."""
    wav = espeak(tmp_path, "good night everyone", "gn.wav")
    data = wav.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) - len(data) // 5])
    code, out, err = run_cli(capsys, "--json", str(cut))
    assert code == 0, err
    assert "good night" in normalize_text(json.loads(out[0])["text"])


def test_silence_noise_and_tone_give_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    rate = 16000
    files = {
        "silence.wav": np.zeros(3 * rate),
        "white.wav": rng.standard_normal(3 * rate) * 10 ** (-40 / 20),
        "tone.wav": 0.25 * np.sin(2 * np.pi * 440 * np.arange(2 * rate) / rate),
    }
    paths = []
    for name, x in files.items():
        sf.write(str(tmp_path / name), x.astype(np.float32), rate, subtype="PCM_16")
        paths.append(str(tmp_path / name))
    code, out, err = run_cli(capsys, *paths)
    assert code == 0, err
    assert out == []


def test_ten_minute_file_is_cut_and_transcribed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """10 minutes of audio: quiet noise with two commands far apart; nothing else heard."""
    rate = 16000
    speech, sr = sf.read(
        str(espeak(tmp_path, "turn off the kitchen lights", "k.wav")), dtype="float32"
    )
    import soxr

    speech = soxr.resample(speech, sr, rate).astype(np.float32)
    x = (np.random.default_rng(2).standard_normal(600 * rate) * 1e-3).astype(np.float32)
    for at in (30, 570):
        x[at * rate : at * rate + len(speech)] += speech
    path = tmp_path / "ten_minutes.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    code, out, err = run_cli(capsys, "--json", str(path))
    assert code == 0, err
    recs = [json.loads(line) for line in out]
    assert [round(r["start_s"]) for r in recs] == [30, 570]
    assert all("kitchen" in normalize_text(r["text"]) for r in recs)


def test_no_traceback_from_a_real_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    proc = subprocess.run(
        [sys.executable, "-m", "atlas.cli", "transcribe", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.mp3" in lines[0]


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "atlas.yaml"
    cfg.write_text("endpointer:\n  hangover_ms: fast\n")
    proc = subprocess.run(
        [sys.executable, "-m", "atlas.cli", "--config", str(cfg), "transcribe", "x.wav"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "endpointer.hangover_ms" in proc.stderr and str(cfg) in proc.stderr


# --- real third-party recordings (skipped when ../shared/audio is absent) -----------------

STATED = [  # (file, stated transcript, WER allowed for tiny.en)
    ("rhasspy_what_time_is_it.wav", "what time is it", 0.0),
    ("ps_goforward.wav", "go forward ten meters", 0.0),
    ("rhasspy_turn_on_living_room_lamp.wav", "turn on the living room lamp", 0.0),
    ("ps_librivox_0880.wav", "he was not an ill disposed young man", 0.3),
]


@pytest.mark.parametrize(("name", "expected", "max_wer"), STATED)
def test_real_recordings(
    name: str, expected: str, max_wer: float, capsys: pytest.CaptureFixture[str]
) -> None:
    from voice.textnorm import word_error_rate

    path = shared_audio(name)
    code, out, err = run_cli(capsys, "--json", str(path))
    assert code == 0, err
    text = " ".join(json.loads(line)["text"] for line in out)
    assert word_error_rate(expected, text, numbers_to_words=True) <= max_wer, text


def test_jfk_flac_stereo_44k(capsys: pytest.CaptureFixture[str]) -> None:
    from voice.textnorm import word_error_rate

    path = shared_audio("fw_jfk.flac")
    code, out, _ = run_cli(capsys, "--json", str(path))
    assert code == 0
    text = " ".join(json.loads(line)["text"] for line in out)
    ref = (
        "and so my fellow americans ask not what your country can do for you "
        "ask what you can do for your country"
    )
    assert word_error_rate(ref, text) <= 0.1


@pytest.mark.parametrize("name", ["fw_stereo_diarization.wav", "fw_hotwords.mp3", "sr_english.wav"])
def test_other_formats_and_rates(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_audio(name)
    code, out, err = run_cli(capsys, "--json", str(path))
    assert code == 0, err
    assert out, f"nothing heard in {name}"
