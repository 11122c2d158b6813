"""The committed replay fixtures agree with their manifest (made by scripts/make_fixtures.py).

These checks read the files only; they never regenerate them (Piper output may differ
across CPUs, so bit-identity is reported by `make_fixtures.py --check`, not tested).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
MANIFEST = FIXTURES / "manifest.tsv"
COLUMNS = [
    "file",
    "text",
    "voice",
    "snr_db",
    "noise",
    "kind",
    "duration_s",
    "speech_start_s",
    "speech_end_s",
    "notes",
]
NON_SPEECH_KINDS = {"silence", "noise", "tone", "click"}
SPEECH_RMS_FLOOR = 10 ** (-35 / 20)  # speech is levelled to a -6 dBFS peak
MAX_FOLDER_BYTES = 7_000_000
"""40 fixtures of a few seconds at 16 kHz (turn-taking and home ones included) stay well
under this; a much larger folder means something long or wide slipped in."""


def read_manifest() -> list[dict[str, str]]:
    with MANIFEST.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        assert reader.fieldnames == COLUMNS
        return list(reader)


ROWS = read_manifest()
SPEECH = [r for r in ROWS if r["kind"] not in NON_SPEECH_KINDS]
NON_SPEECH = [r for r in ROWS if r["kind"] in NON_SPEECH_KINDS]


def load(row: dict[str, str]) -> npt.NDArray[np.float64]:
    data, rate = sf.read(FIXTURES / row["file"], dtype="float64")
    assert rate == 16000
    return np.asarray(data)


def rms(x: npt.NDArray[np.float64]) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def spans(row: dict[str, str]) -> list[tuple[float, float]]:
    starts = [float(v) for v in row["speech_start_s"].split("|")]
    ends = [float(v) for v in row["speech_end_s"].split("|")]
    assert len(starts) == len(ends) == len(row["text"].split("|")), row["file"]
    return list(zip(starts, ends, strict=True))


def test_manifest_has_the_promised_mix() -> None:
    kinds = {r["kind"] for r in ROWS}
    assert {"local", "haiku", "agent", "safety", "no_wake", "pause", "two_turns", "long"} <= kinds
    assert kinds >= NON_SPEECH_KINDS
    assert len(SPEECH) >= 20
    assert any(r["noise"] == "white" for r in SPEECH) and any(r["noise"] == "pink" for r in SPEECH)
    assert len({r["file"] for r in ROWS}) == len(ROWS), "duplicate file names"


def test_every_wav_in_the_folder_is_listed() -> None:
    assert {p.name for p in FIXTURES.glob("*.wav")} == {r["file"] for r in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["file"])
def test_file_is_16k_mono_pcm16_with_the_stated_duration(row: dict[str, str]) -> None:
    path = FIXTURES / row["file"]
    assert path.is_file()
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels) == (
        "WAV",
        "PCM_16",
        16000,
        1,
    )
    assert info.frames / 16000 == pytest.approx(float(row["duration_s"]), abs=0.001)


@pytest.mark.parametrize("row", SPEECH, ids=lambda r: r["file"])
def test_speech_row_is_consistent_and_audible(row: dict[str, str]) -> None:
    assert row["text"].strip() and row["voice"]
    assert bool(row["noise"]) == bool(row["snr_db"]), "noise type and SNR go together"
    x = load(row)
    duration = len(x) / 16000
    previous_end = 0.0
    for start, end in spans(row):
        assert previous_end <= start < end <= duration
        previous_end = end
        speech = x[round(start * 16000) : round(end * 16000)]
        assert rms(speech) > SPEECH_RMS_FLOOR
    # A trailing silence long enough for the endpointer to close the last turn.
    assert duration - previous_end >= 1.0


@pytest.mark.parametrize("row", [r for r in SPEECH if not r["noise"]], ids=lambda r: r["file"])
def test_clean_speech_is_surrounded_by_digital_silence(row: dict[str, str]) -> None:
    # This is what makes speech_start_s/speech_end_s exact for endpointer tests.
    x = load(row)
    bounds = spans(row)
    edges = [0.0] + [t for span in bounds for t in span] + [len(x) / 16000]
    for gap_start, gap_end in zip(edges[::2], edges[1::2], strict=True):
        gap = x[round(gap_start * 16000) : round(gap_end * 16000)]
        assert not np.any(gap), f"sound outside the speech spans in {gap_start}-{gap_end} s"
    for start, end in bounds:
        head = x[round(start * 16000) : round(start * 16000) + 160]
        tail = x[round(end * 16000) - 160 : round(end * 16000)]
        assert np.any(head) and np.any(tail), "speech span should start/end on sound"


@pytest.mark.parametrize("row", [r for r in SPEECH if r["noise"]], ids=lambda r: r["file"])
def test_noisy_speech_has_roughly_the_stated_snr(row: dict[str, str]) -> None:
    x = load(row)
    start, end = spans(row)[0]
    noise_only = x[: round(start * 16000)]
    speech = x[round(start * 16000) : round(end * 16000)]
    # speech+noise power over noise power: a little above the SNR itself.
    measured = 20 * np.log10(rms(speech) / rms(noise_only))
    assert float(row["snr_db"]) - 1.5 < measured < float(row["snr_db"]) + 1.5


def test_pause_fixture_has_short_inner_pauses_and_one_turn() -> None:
    (row,) = [r for r in ROWS if r["file"] == "pause_one_two_three.wav"]
    x = load(row)
    ((start, end),) = spans(row)
    inside = x[round(start * 16000) : round(end * 16000)]
    silent = np.concatenate([[False], inside == 0, [False]]).astype(np.int8)
    runs = np.flatnonzero(np.diff(silent) == -1) - np.flatnonzero(np.diff(silent) == 1)
    pauses = runs[runs >= 0.2 * 16000] / 16000
    assert len(pauses) == 2
    assert np.allclose(pauses, 0.3, atol=0.02)


def test_two_turn_fixture_has_two_turns_far_apart() -> None:
    (row,) = [r for r in ROWS if r["kind"] == "two_turns"]
    (_, end1), (start2, _) = spans(row)
    assert start2 - end1 >= 2.0


@pytest.mark.parametrize("row", NON_SPEECH, ids=lambda r: r["file"])
def test_non_speech_has_no_text_and_no_speech_span(row: dict[str, str]) -> None:
    assert row["text"] == ""
    assert row["speech_start_s"] == row["speech_end_s"] == ""


@pytest.mark.parametrize(
    ("file", "level_db", "measure"),
    [
        ("silence_3s.wav", None, "rms"),
        ("noise_white_m45dbfs_3s.wav", -45.0, "rms"),
        ("noise_pink_m30dbfs_3s.wav", -30.0, "rms"),
        ("tone_440hz_m12dbfs_2s.wav", -12.0, "peak"),
    ],
)
def test_non_speech_levels_match_their_names(
    file: str, level_db: float | None, measure: str
) -> None:
    (row,) = [r for r in ROWS if r["file"] == file]
    x = load(row)
    if level_db is None:
        assert not np.any(x)
        return
    value = rms(x) if measure == "rms" else float(np.max(np.abs(x)))
    assert 20 * np.log10(value) == pytest.approx(level_db, abs=0.5)


def test_click_is_a_short_burst_in_silence() -> None:
    (row,) = [r for r in ROWS if r["kind"] == "click"]
    sounding = np.flatnonzero(load(row))
    assert sounding.size
    assert (sounding[-1] - sounding[0]) / 16000 <= 0.055


def test_folder_is_small() -> None:
    total = sum(p.stat().st_size for p in FIXTURES.iterdir() if p.is_file())
    assert total < MAX_FOLDER_BYTES
