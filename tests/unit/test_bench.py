"""The latency benchmark's own logic, on synthetic turn records (never on its speed)."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import anthropic
import numpy as np
import pytest

from atlas.app import Ears
from atlas.bench.cli import EXIT_MISSED, EXIT_USAGE, finish, main
from atlas.bench.compare import hangover_sweep, run_ratio
from atlas.bench.heard import (
    HeardReply,
    InputSpeech,
    SpeechSpan,
    energy_spans,
    first_audible,
    level_amplitude,
    replies,
    stated_spans,
)
from atlas.bench.pipeline import (
    FIXTURES,
    MeasuredSynthesizer,
    MeasuredTranscriber,
    Slowest,
    default_files,
    expand_paths,
    manifest_fixtures,
)
from atlas.bench.plots import representative, write_plots
from atlas.bench.report import (
    SCHEMA,
    PipelineReport,
    TurnSample,
    check_targets,
    tier_summary,
)
from atlas.bench.stats import METRICS, Dist, percentile, ratio, rtf, stage_deltas
from atlas.settings import LatencyTargets, Settings, load_settings
from atlas.testing.fake_anthropic import FakeAnthropic, LatencyProfile
from atlas.turn import STAGES, TurnRecord
from voice.tts import SpeechChunk
from voice.types import Transcript

T0 = 1000.0  # a monotonic reading; only differences matter


def stamps(**ms_after_speech_end: float) -> dict[str, float]:
    """Monotonic stamps (s) from ms offsets relative to the end of speech at T0."""
    return {k: T0 + v / 1000 for k, v in ms_after_speech_end.items()} | {"speech_end": T0}


def record(tier: str | None, ts: dict[str, float], *, addressed: bool = True) -> TurnRecord:
    end = ts.get("speech_end", T0)
    return TurnRecord(
        turn=1,
        transcript="Atlas, what time is it?",
        addressed=addressed,
        ignored_reason=None if addressed else "no wake phrase",
        tier=tier,
        wanted=tier,
        stage="pattern",
        reason="test",
        filler="One moment." if tier in ("haiku", "agent") else None,
        answer="It is noon.",
        heard="It is noon.",
        interrupted=None,
        cost_usd=0.0004 if tier == "haiku" else 0.0,
        fallback_reason=None,
        timestamps=ts,
        since_speech_end_ms={k: (v - end) * 1000 for k, v in ts.items()},
    )


LOCAL_TS = stamps(
    speech_start=-1500,
    end_of_turn=500,
    transcript=560,
    route=570,
    first_token=700,
    first_chunk=760,
    first_answer_sample=900,
    last_sample=2500,
)
CLOUD_TS = stamps(
    speech_start=-2000,
    end_of_turn=500,
    transcript=600,
    route=610,
    filler_first_sample=640,
    first_token=1200,
    first_chunk=1300,
    first_answer_sample=1800,
    last_sample=6000,
)


AUDIO_LAG_S = 0.1
"""In these samples the audio says the speech ended 100 ms before the VAD did, and the
first audible sample comes as scheduled: "from the audio" reads 100 ms more."""


def sample(
    tier: str, ts: dict[str, float], v2v_shift_ms: float = 0.0, run: str = "main", **kw: Any
) -> TurnSample:
    shifted = dict(ts)
    for k in ("first_answer_sample", "last_sample"):
        shifted[k] = ts[k] + v2v_shift_ms / 1000
    audio: tuple[tuple[str, float, float], ...] = (
        ("answer", shifted["first_answer_sample"], shifted["last_sample"]),
    )
    if "filler_first_sample" in ts:
        audio = (("filler", ts["filler_first_sample"], ts["filler_first_sample"] + 0.8), *audio)
    zero = 990.0  # the input file's sample 0, monotonic
    end = T0 - AUDIO_LAG_S - zero
    sounds = ("filler_first_sample", "first_answer_sample")
    first = min(v for k, v in shifted.items() if k in sounds)
    heard = HeardReply(0, end, first - zero, shifted["first_answer_sample"] - zero)
    rec = record(tier, shifted, **kw)
    found = heard if rec.addressed else None  # as the runner: only replies are measured
    return TurnSample("f.wav", 0, rec, 420.0, 2.0, audio, found, "test", run, zero)


def small_report() -> PipelineReport:
    r = PipelineReport(machine={"cpus": 2}, setup={"repeats": 1, "files": ["f.wav"]})
    r.turns = [
        sample("local", LOCAL_TS, 0),
        sample("local", LOCAL_TS, 100),
        sample("local", LOCAL_TS, 300),
        sample("haiku", CLOUD_TS, 0),
        sample("haiku", CLOUD_TS, 200),
        sample("local", LOCAL_TS, 5000, addressed=False),
    ]
    r.tts_rtf = 0.05
    return r


# ------------------------------------------------------------------- bookkeeping


def test_stage_deltas_of_a_local_turn() -> None:
    m = stage_deltas(LOCAL_TS)
    assert m["end_of_turn"] == pytest.approx(500)
    assert m["stt_wait"] == pytest.approx(60)
    assert m["routing"] == pytest.approx(10)
    assert m["first_token"] == pytest.approx(700)
    assert m["first_answer_sample"] == pytest.approx(900)
    assert m["first_sound"] == pytest.approx(900)  # no filler: the answer is the first sound
    assert m["last_sample"] == pytest.approx(2500)
    assert "filler_first_sample" not in m  # a stage that did not happen is absent, not 0


def test_stage_deltas_of_a_cloud_turn_count_the_filler_as_first_sound() -> None:
    m = stage_deltas(CLOUD_TS)
    assert m["filler_first_sample"] == pytest.approx(640)
    assert m["first_sound"] == pytest.approx(640)
    assert m["first_answer_sample"] == pytest.approx(1800)


def test_stage_deltas_without_end_of_speech_is_empty() -> None:
    assert stage_deltas({"route": T0}) == {}


def test_stage_deltas_keys_are_the_documented_metrics_and_stages_exist() -> None:
    clocks = {k for k, _ in METRICS if not k.startswith("heard_")} - {"home_call"}
    assert set(stage_deltas(CLOUD_TS)) == clocks
    assert set(sample("haiku", CLOUD_TS).metrics) == {k for k, _ in METRICS} - {"home_call"}
    assert stage_deltas({**CLOUD_TS, "home": CLOUD_TS["route"] + 0.05})["home_call"] == (
        pytest.approx(50.0)
    )
    assert set(CLOUD_TS) <= set(STAGES)


def test_turn_sample_metrics_match_the_records_own_since_speech_end() -> None:
    s = sample("haiku", CLOUD_TS)
    assert s.metrics["first_answer_sample"] == pytest.approx(
        s.record.since_speech_end_ms["first_answer_sample"]
    )


# ------------------------------------------------------------------- statistics


def test_percentiles_interpolate_and_ignore_nan() -> None:
    values = [10.0, 20.0, 30.0, 40.0, float("nan")]
    assert percentile(values, 50) == pytest.approx(25.0)
    assert percentile(values, 100) == pytest.approx(40.0)
    assert math.isnan(percentile([], 50))
    d = Dist.of(values)
    assert (d.n, d.max) == (4, 40.0)
    assert d.p50 == pytest.approx(25.0)
    assert d.p95 == pytest.approx(38.5)
    assert Dist.of([]).as_dict() == {"n": 0, "p50": None, "p95": None, "max": None}


def test_ratio_and_rtf() -> None:
    assert ratio(1000, 250) == 4.0
    assert math.isnan(ratio(1, 0))
    assert math.isnan(ratio(float("nan"), 2))
    assert rtf([0.5, 0.5], [5.0, 5.0]) == pytest.approx(0.1)
    assert math.isnan(rtf([], []))


def test_tier_summary_groups_addressed_turns_by_tier() -> None:
    summary = tier_summary(small_report().turns)
    assert list(summary) == ["local", "haiku"]
    local = summary["local"]["first_answer_sample"]
    assert local.n == 3  # the unaddressed turn is left out
    assert local.p50 == pytest.approx(1000)
    assert local.max == pytest.approx(1200)
    assert summary["local"]["filler_first_sample"].n == 0
    assert summary["haiku"]["filler_first_sample"].p50 == pytest.approx(640)


def test_a_comparison_is_the_ratio_of_two_runs_on_the_same_files() -> None:
    main_run = [t for t in small_report().turns if t.tier == "haiku"]
    off = [sample("haiku", CLOUD_TS | {"filler_first_sample": CLOUD_TS["first_answer_sample"]})]
    c = run_ratio(main_run, off, "heard_first_sound", "filler off / on")
    assert c["main_ms"]["p50"] == pytest.approx(740)  # the filler at 640 ms + 100 ms lag
    assert c["other_ms"]["p50"] == pytest.approx(1900)
    assert c["ratio"] == pytest.approx(1900 / 740, abs=0.01)
    assert run_ratio(main_run, [], "heard_first_sound", "x")["skipped"] is True


# ------------------------------------------------------------------- from the audio


def test_first_audible_sample_and_level() -> None:
    rate = 1000
    x = np.zeros(3000, np.float32)
    x[1500] = 0.005  # -46 dBFS: below -40
    x[2000] = 0.02
    amp = level_amplitude(-40.0)
    assert first_audible(x, rate, amp) == pytest.approx(2.0)
    assert first_audible(x, rate, amp, start_s=2.5) is None
    assert first_audible(x, rate, level_amplitude(-50.0)) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        level_amplitude(float("nan"))


def test_energy_spans_join_short_pauses_and_skip_clicks() -> None:
    rate = 16000
    rng = np.random.default_rng(1)
    x = (rng.normal(0, 1e-4, rate * 6)).astype(np.float32)
    for a, b in ((1.0, 1.5), (1.9, 2.4), (4.0, 4.6)):  # 0.4 s pause joins; 1.6 s does not
        i, j = round(a * rate), round(b * rate)
        x[i:j] += np.sin(np.arange(j - i) * 0.3).astype(np.float32) * 0.3
    x[int(5.8 * rate) : int(5.8 * rate) + 80] = 0.5  # a 5 ms click, 1.2 s later
    spans = energy_spans(x, rate)
    assert len(spans) == 2
    assert spans[0].start_s == pytest.approx(1.0, abs=0.02)
    assert spans[0].end_s == pytest.approx(2.4, abs=0.02)
    assert spans[1].end_s == pytest.approx(4.6, abs=0.02)


def test_replies_are_found_per_utterance_and_early_ones_are_negative() -> None:
    rate = 1000
    speech = InputSpeech((SpeechSpan(0.5, 2.0), SpeechSpan(4.0, 5.0)), "test")
    reply = np.zeros(8000, np.float32)
    reply[1500:1700] = 0.5  # starts 500 ms BEFORE the first utterance ended ...
    reply[3900:4300] = 0.5  # ... and goes on past the second's start
    reply[5600:6000] = 0.5  # the second's reply: 600 ms after it ended
    played = [("answer", 1.5, 1.7), ("answer", 3.8, 4.3), ("filler", 5.6, 5.8)]
    played += [("answer", 5.8, 6.0)]
    got = replies(speech, reply, rate, played)
    assert got[0].first_sound_ms == pytest.approx(-500)  # never clipped to 0
    assert got[1].first_sound_ms == pytest.approx(600)  # not the first reply's tail
    assert got[1].first_answer_ms == pytest.approx(800)
    silent = replies(speech, np.zeros(8000, np.float32), rate, [])
    assert silent[0].first_sound_ms is None


def test_stated_spans_read_the_manifest_cells() -> None:
    assert stated_spans("0.7|4.64", "2.14|6.64") == (SpeechSpan(0.7, 2.14), SpeechSpan(4.64, 6.64))
    assert stated_spans("", "") == ()
    with pytest.raises(ValueError):
        stated_spans("0.7|4.6", "2.1")


def test_clock_disagreement_is_flagged_beyond_50_ms() -> None:
    report = small_report()
    flagged = report.clock_disagreements()
    assert len(flagged) == 5  # every addressed sample: clocks 100 ms kinder than the audio
    assert all(t.clock_gap_ms == pytest.approx(-100) for t in flagged)
    assert report.talked_over() == []


# ------------------------------------------------------------------- JSON schema


def test_json_document_has_the_documented_keys_and_types() -> None:
    report = small_report()
    report.comparisons["x"] = {"ratio": 2.5, "note": "n"}
    doc = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert doc["schema"] == SCHEMA and doc["mode"] == "pipeline"
    assert {"machine", "setup", "turns", "summary", "comparisons", "measured", "check"} <= set(doc)
    assert len(doc["turns"]) == 6
    turn = doc["turns"][0]
    for key, typ in {
        "file": str,
        "repeat": int,
        "turn": int,
        "tier": str,
        "transcript": str,
        "addressed": bool,
        "answer": str,
        "cost_usd": float,
        "stt_ms": float,
        "stt_audio_s": float,
        "timestamps": dict,
        "since_speech_end_ms": dict,
        "metrics": dict,
        "audio": list,
    }.items():
        assert isinstance(turn[key], typ), key
    assert set(turn["timestamps"]) <= set(STAGES)
    assert turn["metrics"]["first_answer_sample"] == pytest.approx(900)
    assert turn["audio"][0]["label"] == "answer"
    tiers = doc["summary"]["tiers"]
    assert tiers["local"]["turns"] == 3
    assert set(tiers["haiku"]["first_answer_sample"]) == {"n", "p50", "p95", "max"}
    assert tiers["local"]["filler_first_sample"]["p50"] is None  # null, never NaN
    assert doc["summary"]["rtf"]["tts"] == pytest.approx(0.05)
    assert doc["summary"]["rtf"]["stt"] == pytest.approx(0.21)
    assert doc["measured"]["local_voice_to_voice_p50"] == pytest.approx(1100)  # from the audio
    assert doc["measured"]["cloud_filler_p50"] == pytest.approx(740)
    assert turn["heard"]["first_sound_ms"] == pytest.approx(1000)
    assert len(doc["clock_disagreements"]) == 5 and doc["talked_over"] == []


# ------------------------------------------------------------------- plots


def test_plots_are_written_and_not_empty(tmp_path: Path) -> None:
    turns = small_report().turns
    assert representative(turns, "local") is turns[1]  # closest to the tier's median
    reply = np.zeros(22050 * 3, np.float32)
    reply[22050 * 2 :] = 0.3
    slowest = Slowest(
        turns[2],
        InputSpeech((SpeechSpan(0.2, 0.9),), "test"),
        np.full(16000, 0.1, np.float32),
        reply,
        22050,
    )
    paths = write_plots(turns, tmp_path / "plots", slowest)
    names = sorted(p.name for p in paths)
    assert names == [
        "cdf_voice_to_voice.png",
        "waterfall_haiku.png",
        "waterfall_local.png",
        "waveforms_slowest.png",
    ]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 2000


# ------------------------------------------------------------------- --check


def settings_with(tmp_path: Path, targets: str) -> Settings:
    p = tmp_path / "atlas.yaml"
    p.write_text(f"bench:\n  latency_targets_ms:\n{targets}", encoding="utf-8")
    return load_settings(p, env={})


def test_check_passes_with_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_with(
        tmp_path,
        "    local_voice_to_voice_p50: 1500\n    local_voice_to_voice_p95: 1500\n"
        "    cloud_filler_p50: 1000\n",
    )
    measured = small_report().measured()
    code = finish("pipeline", "table", {}, measured, settings, json_path=None, check=True)
    out = capsys.readouterr()
    assert code == 0
    assert "local_voice_to_voice_p50" in out.out and "MISSED" not in out.out


def test_check_fails_naming_each_missed_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_with(
        tmp_path,
        "    local_voice_to_voice_p50: 800\n    cloud_filler_p50: 600\n"
        "    local_voice_to_voice_p95: 5000\n",
    )
    measured = small_report().measured()
    json_path = tmp_path / "out.json"
    code = finish("pipeline", "t", {}, measured, settings, json_path=json_path, check=True)
    err = capsys.readouterr().err
    assert code == EXIT_MISSED
    assert "local_voice_to_voice_p50" in err and "cloud_filler_p50" in err
    assert "stt_2s_command" not in err  # 420 ms <= 600: met
    doc = json.loads(json_path.read_text())
    failed = {c["target"] for c in doc["check"] if c["ok"] is False}
    assert failed == {"local_voice_to_voice_p50", "cloud_filler_p50"}


def test_without_check_a_miss_does_not_change_the_exit_code(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, "    local_voice_to_voice_p50: 1\n")
    measured = small_report().measured()
    assert finish("pipeline", "t", {}, measured, settings, json_path=None, check=False) == 0


def test_derived_cloud_filler_target_is_hangover_plus_stt_plus_margin() -> None:
    targets = LatencyTargets(cloud_filler_p50=None)
    results = check_targets(targets, {"stt_p50": 400.0, "cloud_filler_p50": 960.0}, 500)
    filler = next(r for r in results if r.target == "cloud_filler_p50")
    assert filler.limit_ms == pytest.approx(950.0)
    assert filler.ok is False
    unmeasured = next(r for r in results if r.target == "classify_p99")
    assert unmeasured.ok is None  # another mode measures it: not a failure


def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["router", "some.wav"]) == EXIT_USAGE
    assert main(["/nonexistent/file.wav", "--no-progress"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("atlas bench: no such file or folder")


# ------------------------------------------------------------------- inputs


def test_default_fixtures_are_the_speech_rows_that_address_atlas() -> None:
    names = {p.name for p in default_files()}
    assert "local_what_time.wav" in names and "two_turns_time_then_lights.wav" in names
    assert not names & {
        "pause_one_two_three.wav",
        "silence_3s.wav",
        "nowake_what_about_tomorrow.wav",
    }
    expected = {f.path.name: f.expected_turns for f in manifest_fixtures()}
    assert expected["pause_one_two_three.wav"] == 1
    assert expected["two_turns_time_then_lights.wav"] == 2
    assert expected["silence_3s.wav"] == 0


def test_folders_expand_to_their_audio_files(tmp_path: Path) -> None:
    (tmp_path / "b.wav").write_bytes(b"x")
    (tmp_path / "a.flac").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in expand_paths([tmp_path])] == ["a.flac", "b.wav"]
    with pytest.raises(ValueError):
        expand_paths([tmp_path / "missing.wav"])


async def test_measured_transcriber_remembers_the_turns_stt_time() -> None:
    class Inner:
        async def transcribe(self, audio: Any) -> Transcript:
            return Transcript("hello", (), 123.0)

    t = MeasuredTranscriber(Inner())
    await t.transcribe(np.zeros(32000, np.float32))
    assert t.lookup("hello") == (123.0, 2.0)
    assert t.lookup("other") is None


async def test_measured_synthesizer_gives_the_answers_tts_real_time_factor() -> None:
    class Inner:
        sample_rate = 1000

        async def stream(self, chunks: AsyncIterator[str]) -> AsyncIterator[SpeechChunk]:
            index = 0
            async for text in chunks:
                audio = np.zeros(1000 * len(text), np.float32)  # 1 s per character
                yield SpeechChunk(text, audio, 1000, synth_ms=100.0 * len(text), index=index)
                index += 1

    async def texts() -> AsyncIterator[str]:
        for t in ("ab", "cde", ""):
            yield t

    t = MeasuredSynthesizer(cast(Any, Inner()))
    got = [c.text async for c in t.stream(texts())]
    assert got == ["ab", "cde", ""]  # passed through unchanged, empty chunk included
    assert t.rtf() == pytest.approx(0.1)  # 0.5 s of work for 5 s of speech
    assert math.isnan(MeasuredSynthesizer(cast(Any, Inner())).rtf())


# ------------------------------------------------------------------- hangover sweep


class EnergyVad:
    """A stand-in for Silero: voiced when the frame has energy (fixtures use digital silence)."""

    def reset(self) -> None:
        return None

    def prob(self, samples: Any) -> float:
        return 1.0 if float(np.sqrt(np.mean(np.square(samples)))) > 0.01 else 0.0


def test_hangover_sweep_counts_utterances_per_fixture() -> None:
    settings = Settings()
    ears = Ears(settings, cast(Any, EnergyVad()), cast(Any, None))
    fixtures = [
        f
        for f in manifest_fixtures()
        if f.path.name in ("pause_one_two_three.wav", "two_turns_time_then_lights.wav")
    ]
    sweep = hangover_sweep(ears, settings, fixtures, (100, 300, 700))
    counts = {h: sweep["hangovers"][str(h)]["counts"] for h in (100, 300, 700)}
    # One ... two ... three has 0.3 s gaps: a 100 ms hangover cuts it, 700 ms does not.
    assert counts[100]["pause_one_two_three.wav"] > 1
    assert counts[700]["pause_one_two_three.wav"] == 1
    assert "pause_one_two_three.wav" in sweep["hangovers"]["100"]["cut_too_early"]
    assert counts[700]["two_turns_time_then_lights.wav"] == 2
    for name in counts[100]:  # a longer hangover never makes more turns
        assert counts[100][name] >= counts[300][name] >= counts[700][name]


# ------------------------------------------------------------------- the fake cloud


def test_fake_anthropic_answers_each_model_from_its_own_profile() -> None:
    with FakeAnthropic(LatencyProfile(answer="default")) as fake:
        fake.set_model_profile("model-a", LatencyProfile(answer="from a"))
        client = anthropic.Anthropic(api_key="sk-ant-test", base_url=fake.base_url, max_retries=0)
        texts = []
        for model in ("model-a", "model-b"):
            msg = client.messages.create(
                model=model, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
            texts.append("".join(b.text for b in msg.content if b.type == "text"))
        client.close()
    assert texts == ["from a", "default"]


def test_fixture_folder_exists() -> None:
    assert (FIXTURES / "manifest.tsv").is_file()
