"""Replay tests of the assembled assistant: recorded WAV fixtures through the real VAD,
Whisper tiny.en, the MiniLM router, embedded SmolLM2 and Piper, with the fake Anthropic
server (real SDK, 127.0.0.1) for the cloud tiers. What ATLAS says goes to a WavSink with
real timing; the assertions read the turn records, the sink's labelled segments and the
written WAV. Most replays run at full speed; barge-in and the follow-up window run at
real-time pace because there timing is the behaviour under test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from atlas.llm.router import AnswerResult, RouteDecision
from atlas.testing.fake_anthropic import FakeScript
from atlas.turn import STAGES, TurnRecord
from tests.conftest import ROOT
from tests.replay.conftest import (
    REPLY_RATE,
    Do,
    Parts,
    Pause,
    ReplaySession,
    ScriptedSource,
    Speak,
    Until,
    fixture_row,
    read_wav,
    segment_rms,
    silence,
    speech,
    synthesize_16k,
    write_wav_16k,
)
from voice.stt import Transcriber
from voice.textnorm import word_error_rate
from voice.types import Samples, Transcript

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ANSWER_RMS_FLOOR = 0.01  # -40 dBFS: Piper's speech is far above, digital silence is 0
HEAT_PUMP = "A heat pump moves warmth rather than making it."
LONG_ANSWER = (
    "A heat pump moves warmth rather than making it, drawing heat out of the cold air "
    "outside and carrying it indoors. In summer the same machine simply runs in reverse "
    "and cools the rooms instead."
)


def assert_ordered_without_overlap(session: ReplaySession) -> None:
    segs = session.segments
    for a, b in itertools.pairwise(segs):
        assert b.start_s >= a.end_s - 1e-6, segs


def assert_answer_audible(session: ReplaySession) -> None:
    reply, rate = read_wav(session.out)
    assert rate == REPLY_RATE
    answers = [s for s in session.segments if s.label == "answer"]
    assert answers
    for seg in answers:
        assert segment_rms(reply, seg) > ANSWER_RMS_FLOOR, seg


def close_enough(expected: str, got: str, allowed: float = 0.25) -> bool:
    return word_error_rate(expected, got, numbers_to_words=True) <= allowed


# ------------------------------------------------------------------ every fixture

LOCAL = [
    "local_what_time.wav",
    "local_timer_ten_seconds.wav",
    "local_living_room_lights.wav",
    "local_date_today.wav",
    "local_good_morning.wav",
]
HAIKU = ["haiku_heat_pump.wav", "haiku_recipe_dinner.wav", "haiku_sky_blue.wav"]
NON_SPEECH = [
    "silence_3s.wav",
    "noise_white_m45dbfs_3s.wav",
    "noise_pink_m30dbfs_3s.wav",
    "tone_440hz_m12dbfs_2s.wav",
    "click_burst_50ms.wav",
]


@pytest.mark.parametrize("name", LOCAL)
async def test_local_command_is_answered_locally_without_filler(
    parts: Parts, tmp_path: Path, name: str
) -> None:
    before = len(parts.anthropic.requests)
    session = ReplaySession(parts, tmp_path / "reply.wav", realtime=False)
    records = await session.run(session.file_source(name))
    assert len(records) == 1, [r.transcript for r in records]
    rec = records[0]
    assert close_enough(fixture_row(name)["text"], rec.transcript), rec.transcript
    assert rec.addressed and rec.interrupted is None
    assert rec.tier in ("local", "skill", "home", "persona") and rec.wanted == "local"
    assert rec.answer.strip() and rec.heard == " ".join(rec.heard.split())
    # No Poker Face for local turns: not a single filler sample.
    assert rec.filler is None and "filler_first_sample" not in rec.timestamps
    assert {s.label for s in session.segments} == {"answer"}
    assert_answer_audible(session)
    assert_ordered_without_overlap(session)
    assert len(parts.anthropic.requests) == before  # the cloud was never asked


@pytest.mark.parametrize("name", HAIKU)
async def test_cloud_question_goes_to_haiku_with_the_filler_first(
    parts: Parts, tmp_path: Path, name: str
) -> None:
    parts.anthropic.enqueue(FakeScript(text=HEAT_PUMP, token_delay_s=0.01))
    before = len(parts.anthropic.requests)
    session = ReplaySession(parts, tmp_path / "reply.wav", realtime=False)
    records = await session.run(session.file_source(name))
    assert len(records) == 1
    rec = records[0]
    assert close_enough(fixture_row(name)["text"], rec.transcript), rec.transcript
    assert rec.tier == "haiku" and rec.wanted == "haiku" and rec.fallback_reason is None
    assert rec.answer == HEAT_PUMP and rec.heard == HEAT_PUMP
    assert len(parts.anthropic.requests) == before + 1
    asked = parts.anthropic.requests[-1].body["messages"][-1]["content"]
    assert "atlas" not in asked.lower()  # the wake phrase is not part of the question
    # The filler is the first thing said, then the answer, end to end without overlap.
    assert rec.filler in parts.settings.persona.fillers
    labels = [s.label for s in session.segments]
    assert labels[0] == "filler" and labels.count("filler") == 1
    assert set(labels[1:]) == {"answer"}
    assert rec.timestamps["filler_first_sample"] <= rec.timestamps["first_answer_sample"]
    assert_answer_audible(session)
    assert_ordered_without_overlap(session)


async def test_two_turns_in_one_file(parts: Parts, tmp_path: Path) -> None:
    session = ReplaySession(parts, tmp_path / "reply.wav", realtime=False)
    records = await session.run(session.file_source("two_turns_time_then_lights.wav"))
    assert [r.addressed for r in records] == [True, True]
    assert close_enough("what time is it", records[0].transcript.split(",", 1)[-1])
    assert "lights" in records[1].transcript.lower()
    assert all(
        r.tier in ("local", "skill", "home", "persona") and r.filler is None for r in records
    )
    assert_answer_audible(session)
    assert_ordered_without_overlap(session)


@pytest.mark.parametrize("name", NON_SPEECH)
async def test_silence_noise_and_tone_produce_no_turn(
    parts: Parts, tmp_path: Path, name: str
) -> None:
    session = ReplaySession(parts, tmp_path / "reply.wav", realtime=False)
    records = await session.run(session.file_source(name))
    assert records == []
    assert session.segments == ()
    assert len(session.reply()) == 0  # not even silence was written


# -------------------------------------------------------------------------- timers


async def test_timer_is_announced_when_it_ends(parts: Parts, tmp_path: Path) -> None:
    command = synthesize_16k(parts.tts, "Atlas, set a timer for three seconds.")
    wav = write_wav_16k(tmp_path / "timer.wav", silence(0.7), command, silence(1.0))
    session = ReplaySession(parts, tmp_path / "reply.wav", realtime=False)
    records = await session.run(
        session.file_source(wav), until=lambda rs: len(rs) >= 2, timeout_s=30
    )
    assert len(records) == 2, [r.answer for r in records]
    set_it, done = records
    assert set_it.tier == "skill" and "three seconds" in set_it.answer.lower()
    assert done.answer == "Your three second timer is done."
    assert done.heard == done.answer and done.filler is None
    # It rang 3 s after it was set, never early.
    rang_after = done.timestamps["first_answer_sample"] - set_it.timestamps["route"]
    assert 2.95 <= rang_after <= 10.0, rang_after
    # In the WAV: the confirmation, a gap, then the announcement.
    answers = [s for s in session.segments if s.label == "answer"]
    confirmation_end = max(s.end_s for s in answers if s.start_s < answers[-1].start_s)
    set_at_s = set_it.timestamps["route"] - session.sink.start_at
    announcement = answers[-1]
    assert announcement.start_s >= confirmation_end
    assert announcement.start_s >= set_at_s + 2.95
    assert segment_rms(session.reply(), announcement) > ANSWER_RMS_FLOOR
    assert_ordered_without_overlap(session)


# ---------------------------------------------------------------- cloud failure


async def test_cloud_failure_is_answered_locally_in_persona(parts: Parts, tmp_path: Path) -> None:
    # retries=1: the first attempt and its retry both fail before any token.
    parts.anthropic.enqueue(FakeScript.error(500), FakeScript.error(529))
    before = len(parts.anthropic.requests)
    session = ReplaySession(parts, tmp_path / "reply.wav", realtime=False)
    records = await session.run(session.file_source("haiku_sky_blue.wav"))
    assert len(parts.anthropic.requests) == before + 2
    assert len(records) == 1
    rec = records[0]
    assert rec.addressed and rec.interrupted is None
    assert rec.wanted == "haiku" and rec.tier == "local"
    assert rec.fallback_reason is not None
    # In persona: a failure line of the Lethal Gentleman, then the local answer.
    lines = parts.settings.persona.api_error
    assert any(rec.answer.startswith(line) for line in lines), rec.answer
    assert len(rec.answer) > max(len(line) for line in lines if rec.answer.startswith(line))
    line = next(x for x in lines if rec.answer.startswith(x))
    assert parts.persona.violations(line) == [] and parts.persona.never_said(rec.answer) == []
    # The filler still came first: it was played before the cloud failed.
    assert rec.filler in parts.settings.persona.fillers
    labels = [s.label for s in session.segments]
    assert labels[0] == "filler" and set(labels[1:]) == {"answer"}
    assert_answer_audible(session)
    assert_ordered_without_overlap(session)
    # The breaker opened (one counted failure) and lets a trial through after its
    # reset timeout; a success closes it again for the tests that follow.
    await _recover_haiku(parts)


async def _recover_haiku(parts: Parts) -> None:
    await asyncio.sleep(parts.settings.breaker.reset_timeout_s + 0.1)
    parts.anthropic.enqueue(FakeScript(text="Certainly."))
    result: AnswerResult | None = None
    async for item in parts.brain.router.ask("how does a heat pump work"):
        if isinstance(item, AnswerResult):
            result = item
    assert result is not None and result.answered_by == "haiku"


# --------------------------------------------------------------------- echo guard


NO_ANSWER = "No, it will not rain tomorrow. No umbrella needed."


async def test_a_short_no_after_a_reply_that_said_no_is_heard(parts: Parts, tmp_path: Path) -> None:
    """The old echo guard dropped "no" as an echo of any recent reply containing it; it
    is a follow-up when ATLAS had stopped speaking before it began."""
    parts.anthropic.enqueue(FakeScript(text=NO_ANSWER))
    session = ReplaySession(parts, tmp_path / "reply.wav", realtime=True)
    source = ScriptedSource(
        [
            Speak(speech("haiku_heat_pump.wav")),
            Until(
                lambda: bool(session.records) and not session.sink.is_playing,
                "ATLAS has finished its reply",
            ),
            Pause(0.4),
            Speak(synthesize_16k(parts.tts, "No.")),
            Pause(1.5),
        ],
        start_at=session.started,
    )
    records = await session.run(source, until=lambda rs: len(rs) >= 2, timeout_s=60)
    assert source.timed_out == []
    first, no = records
    assert first.answer == NO_ANSWER
    assert no.addressed and no.ignored_reason is None, no
    assert "no" in no.transcript.lower()


# ----------------------------------------------------------------------- barge-in


def _answer_playing_for(session: ReplaySession, seconds: float) -> bool:
    now = session.now_s()
    return any(s.label == "answer" and now - s.start_s >= seconds for s in session.segments)


def _barge_in_script(session: ReplaySession) -> ScriptedSource:
    return ScriptedSource(
        [
            Speak(speech("haiku_heat_pump.wav")),
            Until(lambda: _answer_playing_for(session, 1.0), "the answer has played 1 s"),
            Speak(speech("local_what_time.wav")),
            Until(
                lambda: session.conversation.idle and bool(session.records),
                "ATLAS is quiet again",
                timeout_s=40,
            ),
        ],
        start_at=session.started,
    )


async def test_barge_in_cuts_playback_and_the_new_utterance_is_a_turn(
    parts: Parts, tmp_path: Path
) -> None:
    parts.anthropic.enqueue(FakeScript(text=LONG_ANSWER, token_delay_s=0.02))
    router = parts.brain.router
    decisions: list[RouteDecision] = []

    def right_after(record: TurnRecord) -> None:
        # At once, well inside the breaker's 1 s reset timeout: had the cut counted as a
        # failure (fail_max=1), the tier would now be off.
        if not decisions:
            decisions.append(router.decide("how does a heat pump work"))

    session = ReplaySession(
        parts, tmp_path / "reply.wav", realtime=True, barge_in=True, on_turn=right_after
    )
    source = _barge_in_script(session)
    records = await session.run(source, until=lambda rs: len(rs) >= 2, timeout_s=90)
    assert source.timed_out == []
    assert len(records) == 2, [(r.transcript, r.interrupted) for r in records]
    cut, new = records
    assert cut.tier == "haiku" and cut.interrupted == "barge_in"
    assert cut.answer == LONG_ANSWER
    assert 0 < len(cut.heard) < len(cut.answer) and LONG_ANSWER.startswith(cut.heard)
    # The new utterance became a turn of its own.
    assert new.addressed and new.interrupted is None and new.tier == "skill"
    assert close_enough("what time is it", new.transcript.split(",", 1)[-1])
    # The answer in the WAV stops soon after the barge-in speech began (>= 300 ms of it).
    answers = [s for s in session.segments if s.label == "answer"]
    cut_seg = next(s for s in answers if s.cut)
    barge_start_s = source.spoke_at_s[1][0] + 0.2 - session.lead_s  # speech after 0.2 s lead
    assert cut_seg.end_s < barge_start_s + 1.5
    assert cut_seg.end_s - answers[0].start_s < 4.0  # far less than the whole answer
    second = [s for s in answers if s.start_s >= cut_seg.end_s]
    assert second and second[0].start_s > cut_seg.end_s
    assert_ordered_without_overlap(session)
    # A barge-in is not an upstream failure: the cloud tier is still on.
    assert decisions and decisions[0].tier == "haiku" and decisions[0].downgrade is None


async def test_half_duplex_ignores_speech_while_atlas_speaks(parts: Parts, tmp_path: Path) -> None:
    parts.anthropic.enqueue(FakeScript(text=LONG_ANSWER, token_delay_s=0.02))
    session = ReplaySession(parts, tmp_path / "reply.wav", realtime=True, barge_in=False)
    source = _barge_in_script(session)
    with capture_logs() as logs:
        records = await session.run(source, timeout_s=90)
    assert source.timed_out == []
    assert len(records) == 1
    rec = records[0]
    assert rec.interrupted is None and rec.heard == rec.answer == LONG_ANSWER
    assert not any(s.cut for s in session.segments)
    assert any(e.get("event") == "utterance.ignored" for e in logs)
    assert_ordered_without_overlap(session)


# -------------------------------------------------------- wake phrase and follow-up


async def test_follow_up_window_after_atlas_stops_speaking(parts: Parts, tmp_path: Path) -> None:
    skew = [0.0]
    session = ReplaySession(
        parts, tmp_path / "reply.wav", realtime=True, wake_clock=lambda: time.monotonic() + skew[0]
    )
    follow_up = speech("nowake_fifteen_percent.wav")

    def quiet_after(n: int) -> Until:
        return Until(
            lambda: len(session.records) >= n and session.conversation.idle,
            f"turn {n} done and ATLAS quiet",
        )

    def jump_past_window() -> None:
        skew[0] = parts.settings.wake.followup_window_s + 1.0

    source = ScriptedSource(
        [
            Speak(follow_up),  # 1: no wake phrase, nothing said before: ignored
            quiet_after(1),
            Speak(speech("local_what_time.wav")),  # 2: the wake phrase
            quiet_after(2),
            Speak(follow_up),  # 3: within 8 s after ATLAS stopped: a follow-up
            quiet_after(3),
            Do(jump_past_window),
            Speak(follow_up),  # 4: 9 s later (on the gate's clock): ignored again
        ],
        start_at=session.started,
    )
    records = await session.run(source, until=lambda rs: len(rs) >= 4, timeout_s=90)
    assert source.timed_out == []
    assert [r.addressed for r in records] == [False, True, True, False], records
    assert records[0].ignored_reason == "no wake phrase"
    assert records[1].tier == "skill"
    # The follow-up was answered, and it came after ATLAS had stopped speaking.
    follow = records[2]
    assert follow.tier in ("local", "skill") and follow.answer
    assert follow.timestamps["speech_start"] >= records[1].timestamps["last_sample"]
    assert follow.timestamps["speech_start"] - records[1].timestamps["last_sample"] < 8.0
    assert records[3].ignored_reason == "no wake phrase"
    answered = [s for s in session.segments if s.label == "answer"]
    assert answered and not any(s.label == "filler" for s in session.segments)
    assert_ordered_without_overlap(session)


# ---------------------------------------------------------------- the CLI itself


def _cli_env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "atlas.yaml"
    config.write_text(f"budget:\n  db_path: {tmp_path / 'ledger.sqlite3'}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["ATLAS_CONFIG"] = str(config)
    return env


def _atlas(
    *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atlas.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def test_cli_replay_json_and_out(parts: Parts, tmp_path: Path) -> None:
    # Two commands, the second sets a 3 s timer: three JSON lines (the last one is the
    # announcement, which `atlas replay` waits for after the input ends).
    timer = synthesize_16k(parts.tts, "Atlas, set a timer for three seconds.")
    wav = write_wav_16k(
        tmp_path / "in.wav", speech("local_what_time.wav"), silence(0.8), timer, silence(1.0)
    )
    out = tmp_path / "reply.wav"
    done = await asyncio.to_thread(
        _atlas, "replay", str(wav), "--json", "--out", str(out), env=_cli_env(tmp_path)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(ln) for ln in done.stdout.splitlines() if ln.strip()]
    assert len(lines) == 3, done.stdout
    for obj in lines:
        for key in ("transcript", "tier", "reason", "filler", "answer", "timestamps"):
            assert key in obj
        assert obj["filler"] is None and obj["answer"]
        assert set(obj["timestamps"]) <= set(STAGES)
    for obj in lines[:2]:
        assert obj["tier"] == "skill" and obj["reason"]
        assert set(STAGES) - {"filler_first_sample", "home"} == set(obj["timestamps"])
        stamps = [obj["timestamps"][s] for s in STAGES if s in obj["timestamps"]]
        assert stamps[:3] == sorted(stamps[:3])  # speech start, end, end of turn
    assert "time" in lines[0]["transcript"].lower()
    assert "timer" in lines[1]["transcript"].lower()
    assert lines[2]["answer"] == "Your three second timer is done."
    reply, rate = read_wav(out)
    assert rate == REPLY_RATE and len(reply) > 3 * rate  # a valid WAV with the answers in it
    assert float(abs(reply).max()) > 0.05
    rang_at = lines[2]["timestamps"]["first_answer_sample"]
    set_at = lines[1]["timestamps"]["route"]
    assert rang_at - set_at >= 2.95  # it rang after 3 s, not before
    assert float(abs(reply[-rate:]).max()) > 0.05  # the announcement closes the WAV


@pytest.mark.parametrize("bad", ["missing.wav", "text.wav"])
async def test_cli_replay_bad_input_is_one_line_and_exit_1(tmp_path: Path, bad: str) -> None:
    path = tmp_path / bad
    if bad == "text.wav":
        path.write_text("this is not audio\n", encoding="utf-8")
    args = ("--log-level", "info", "replay", str(path), "--json")
    done = await asyncio.to_thread(_atlas, *args, env=_cli_env(tmp_path))
    assert done.returncode == 1
    assert done.stdout == ""
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and str(path.name) in err[0], done.stderr
    assert "Traceback" not in done.stderr
    # It failed before loading anything: no model was even resolved.
    assert "loaded" not in done.stderr and "model.verified" not in done.stderr


class SlowTranscriber:
    """Whisper behind a delay: a box too busy to transcribe in time."""

    def __init__(self, inner: Transcriber, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s

    async def transcribe(self, audio: Samples) -> Transcript:
        await asyncio.sleep(self.delay_s)
        return await self.inner.transcribe(audio)

    def warm(self) -> None:
        self.inner.warm()


async def test_a_transcript_later_than_its_deadline_gets_the_line(
    parts: Parts, tmp_path: Path
) -> None:
    s = parts.settings
    settings = replace(
        s,
        deadlines=replace(s.deadlines, stt_s=0.5),
        assistant=replace(s.assistant, speculative_stt=False),  # one transcription per turn
    )
    slow_ears = SlowTranscriber(parts.ears.transcriber, 3.0)
    ears = replace(parts.ears, settings=settings, transcriber=slow_ears)
    slow = replace(parts, settings=settings, ears=ears)
    session = ReplaySession(slow, tmp_path / "reply.wav", realtime=False)
    records = await session.run(session.file_source("local_what_time.wav"))
    assert [r.deadline_missed for r in records] == ["stt"], records
    assert records[0].heard in s.persona.too_slow
    assert_answer_audible(session)


async def test_cli_replay_cut_short_by_sigterm_says_how_far_it_got(tmp_path: Path) -> None:
    wav = write_wav_16k(
        tmp_path / "in.wav",
        *itertools.chain.from_iterable(
            (speech("local_what_time.wav"), silence(4.0)) for _ in range(4)
        ),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "atlas.cli", "replay", str(wav), "--json", "--realtime"],
        cwd=ROOT,
        env=_cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = await asyncio.to_thread(proc.stdout.readline)  # one turn done, more to come
    assert json.loads(first)["answer"]
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.to_thread(proc.communicate, timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("atlas: replay cut short by SIGTERM: "), err[-2000:]
    records = [json.loads(first)] + [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    turns, answered = len(records), sum(r["addressed"] for r in records)
    done = f": {turns} turn{'' if turns == 1 else 's'} done"
    assert f"{done} ({answered} answered), " in last or f"{done} of the 4 in the file " in last
    read_s, total_s = (float(x) for x in re.findall(r"([\d.]+) s", last))
    assert 0 < read_s < total_s
    assert abs(total_s - len(read_wav(wav)[0]) / 16000) < 0.1
