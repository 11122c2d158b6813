"""Turn-taking on recordings with pauses inside a sentence: ATLAS waits for the whole
utterance, never starts before the person has finished (judged from the audio), and a
person who goes on after a turn ended is heard as one utterance (continuation).

Real-time replays: the reply WAV is time-aligned with the input, so "the reply began
before the speech ended" is read off the two recordings, not off internal clocks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from atlas.bench.heard import energy_spans, first_audible, level_amplitude
from atlas.llm.base import Message
from tests.conftest import FIXTURES, shared_audio
from tests.replay.conftest import (
    RATE_IN,
    Parts,
    ReplaySession,
    fixture_row,
    read_wav,
    silence,
    speech,
    write_wav_16k,
)
from voice.audio import decode_audio

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

AUDIBLE = level_amplitude(-40.0)

PAUSED = [
    # (fixture, words the single transcript must hold, says "Atlas")
    ("pause_timer_for_ten_minutes.wav", ("timer", "minutes"), True),
    ("pause_percent_of_eighty.wav", ("15", "80"), True),
    ("pause_wake_then_time.wav", ("time",), True),
    ("pause_lights_the_kitchen.wav", ("turn", "kitchen"), True),
    ("pause_counting_slow.wav", ("1", "3"), False),
    ("pause_one_two_three.wav", ("1", "3"), False),
]


def _norm(text: str) -> str:
    words = {"one": "1", "two": "2", "three": "3", "eighty": "80", "ten": "10"}
    out = text.lower()
    for w, d in words.items():
        out = out.replace(w, d)
    return out


def _first_reply_s(session: ReplaySession) -> float | None:
    reply, rate = read_wav(session.out)
    return first_audible(reply, rate, AUDIBLE)


def _session(parts: Parts, tmp_path: Path, wake: bool) -> ReplaySession:
    s = parts.settings
    config = s.wake if wake else replace(s.wake, enabled=False)
    return ReplaySession(parts, tmp_path / "reply.wav", realtime=True, wake=config)


@pytest.mark.parametrize(("name", "words", "wake"), PAUSED, ids=[p[0] for p in PAUSED])
async def test_pauses_inside_a_sentence_make_one_turn_answered_after_it(
    parts: Parts, tmp_path: Path, name: str, words: tuple[str, ...], wake: bool
) -> None:
    session = _session(parts, tmp_path, wake)
    records = await session.run(session.file_source(name))
    answered = [r for r in records if r.addressed and r.interrupted is None]
    assert len(answered) == 1, [(r.transcript, r.interrupted) for r in records]
    heard = _norm(answered[0].transcript)
    assert all(w in heard for w in words), answered[0].transcript
    speech_end = float(fixture_row(name)["speech_end_s"])
    first = _first_reply_s(session)
    assert first is not None, "no audible reply"
    assert first > speech_end, f"reply began {speech_end - first:.3f} s before the speech ended"


@pytest.mark.shared_audio
async def test_real_recording_one_two_three_is_one_turn(parts: Parts, tmp_path: Path) -> None:
    """../shared/audio/sr_english.wav, padded as in the issue (0.5 s before, 2.5 s after)."""
    samples = decode_audio(shared_audio("sr_english.wav")).samples
    wav = write_wav_16k(tmp_path / "sr.wav", silence(0.5), samples, silence(2.5))
    session = _session(parts, tmp_path, wake=False)
    records = await session.run(session.file_source(wav))
    answered = [r for r in records if r.addressed and r.interrupted is None]
    assert len(answered) == 1, [r.transcript for r in records]
    assert "3" in _norm(answered[0].transcript), answered[0].transcript
    padded = decode_audio(wav).samples
    spans = energy_spans(padded, RATE_IN)
    assert spans
    first = _first_reply_s(session)
    assert first is not None and first > spans[-1].end_s


async def test_speech_resumed_after_the_turn_ended_is_joined_and_answered_whole(
    parts: Parts, tmp_path: Path
) -> None:
    """A complete-sounding request ("what time is it") ends its turn at once; the person
    goes on ("... what's the date today?") 0.55 s later, as the answer starts: the answer
    is stopped and the whole utterance is transcribed and answered (or, when the pause
    had not yet ended the turn, it simply goes on: one turn either way)."""
    row = fixture_row("local_what_time.wav")
    lead = 0.3
    said = float(row["speech_end_s"]) - float(row["speech_start_s"]) + lead
    first = speech("local_what_time.wav", lead_s=lead)[: round(said * RATE_IN)]
    rest = speech("local_date_today.wav", lead_s=0.0)
    wav = write_wav_16k(tmp_path / "cont.wav", first, silence(0.55), rest, silence(1.0))
    session = _session(parts, tmp_path, wake=True)
    records = await session.run(session.file_source(wav))
    final = [r for r in records if r.addressed and r.interrupted is None]
    assert final, [(r.transcript, r.interrupted) for r in records]
    whole = final[-1].transcript.lower()
    assert "time" in whole and "date" in whole, [(r.transcript, r.interrupted) for r in records]
    cut = [r for r in records if r.interrupted is not None]
    assert all(r.interrupted == "continuation" for r in cut)
    assert all(r.cost_usd == 0.0 for r in cut)


def test_fixture_speech_ends_are_stated() -> None:
    for name, _, _ in PAUSED:
        row = fixture_row(name)
        assert float(row["speech_end_s"]) > float(row["speech_start_s"]) > 0
        assert (FIXTURES / name).is_file()


async def test_a_complete_request_primes_the_local_model_before_it_is_routed(
    parts: Parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn ends at once on a complete request; the local model's prompt is evaluated
    meanwhile (while the turn is routed), not only after the route is known."""
    client = parts.brain.clients["local"]
    original = client.prime  # type: ignore[attr-defined]
    primed: list[tuple[float, str]] = []

    async def spy(messages: Sequence[Message], system: str) -> None:
        primed.append((time.monotonic(), messages[-1].content))
        await original(messages, system)

    monkeypatch.setattr(client, "prime", spy)
    session = _session(parts, tmp_path, wake=True)
    records = await session.run(session.file_source("chat_im_bored.wav"))
    (turn,) = [r for r in records if r.addressed]
    assert turn.tier == "local" and turn.interrupted is None
    assert "bored" in turn.transcript.lower()
    assert any("bored" in text.lower() for _, text in primed), primed
    first_prime = min(at for at, text in primed if "bored" in text.lower())
    assert first_prime <= turn.timestamps["route"]
