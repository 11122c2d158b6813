"""The project's own replay fixtures through the real VAD + endpointer + Whisper."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from atlas.app import Ears, build_ears, build_store
from atlas.hearing import FileTranscript, transcribe_file
from atlas.settings import Settings
from tests.conftest import FIXTURES, fixture_rows
from voice.textnorm import word_error_rate

pytestmark = pytest.mark.slow

ROWS = fixture_rows()
SPEECH = [r for r in ROWS if r["text"]]
NON_SPEECH = [r for r in ROWS if not r["text"]]
SHORT_PAUSES = "pause_one_two_three.wav"
"""Its 0.3 s pauses are shorter than the endpointer's hangover."""


@pytest.fixture(scope="module")
def ears() -> Iterator[Ears]:
    e = build_ears(Settings(), build_store(Settings()))
    yield e
    e.close()


def heard(ears: Ears, name: str) -> list[FileTranscript]:
    async def collect() -> list[FileTranscript]:
        return [t async for t in transcribe_file(ears, FIXTURES / name)]

    return asyncio.run(collect())


def allowed_wer(row: dict[str, str]) -> float:
    # Piper's clean voice must come out (nearly) word for word; the robotic espeak
    # voices and 10 dB noise may cost a word in a short sentence.
    if row["voice"].startswith("espeak") or row["snr_db"]:
        return 0.25
    return 0.1


def test_fixtures_exist() -> None:
    assert len(SPEECH) >= 15 and len(NON_SPEECH) >= 4


@pytest.mark.parametrize("row", SPEECH, ids=[r["file"] for r in SPEECH])
def test_speech_fixture_turns_and_words(ears: Ears, row: dict[str, str]) -> None:
    texts = row["text"].split("|")
    starts = [float(x) for x in row["speech_start_s"].split("|")]
    ends = [float(x) for x in row["speech_end_s"].split("|")]
    got = heard(ears, row["file"])
    if row["kind"] == "pause" and " ... " in row["text"] and row["file"] != SHORT_PAUSES:
        # Pauses of 0.5-0.9 s: the plain endpointer (500 ms) may cut there; only the
        # conversation's end-of-turn rules keep them whole (tests/replay/test_turn_taking).
        # Here: the words are heard, in order, within the stated span (cut there, tiny.en
        # may add a word: "set a timer for it. 10 minutes.").
        said = " ".join(g.text for g in got)
        text = row["text"].replace(" ... ", " ")
        assert word_error_rate(text, said, numbers_to_words=True) <= 0.3, said
        assert abs(got[0].start_s - starts[0]) <= 0.2 and abs(got[-1].end_s - ends[0]) <= 0.3
        return
    # One utterance per turn: the 0.3 s pauses of "one ... two ... three" must not
    # end the turn, and the 2.5 s gap between two commands must.
    assert len(got) == len(texts), [g.text for g in got]
    for g, text, start, end in zip(got, texts, starts, ends, strict=True):
        assert word_error_rate(text, g.text, numbers_to_words=True) <= allowed_wer(row), g.text
        assert abs(g.start_s - start) <= 0.2, (g.start_s, start)
        assert abs(g.end_s - end) <= 0.3, (g.end_s, end)
        assert g.stt_ms > 0 and not g.truncated


@pytest.mark.parametrize("row", NON_SPEECH, ids=[r["file"] for r in NON_SPEECH])
def test_non_speech_fixture_gives_nothing(ears: Ears, row: dict[str, str]) -> None:
    assert heard(ears, row["file"]) == []


def test_long_turn_is_cut_at_max_length() -> None:
    """With max_utterance_s lowered, the 8.5 s query is cut into pieces, none lost."""
    from dataclasses import replace

    row = next(r for r in SPEECH if r["file"].startswith("long_"))
    s = Settings()
    s = replace(s, endpointer=replace(s.endpointer, max_utterance_s=4.0))
    e = build_ears(s, build_store(s), warm=False)
    try:
        got = heard(e, row["file"])
    finally:
        e.close()
    assert len(got) >= 2
    assert got[0].truncated
    joined = " ".join(g.text for g in got)
    assert word_error_rate(row["text"], joined, numbers_to_words=True) <= 0.3, joined
