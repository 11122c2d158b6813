"""The endpointer state machine on synthetic frames and probability sequences.

Frame i is 512 samples all equal to i and starts at i * 32 ms, so the values in an
utterance's audio say exactly which frames (and which part of a frame) ended up in it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voice.config import EndpointerConfig, VadConfig
from voice.types import (
    FRAME_S,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioFrame,
    EndpointEvent,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    Utterance,
)
from voice.vad import TRAILING_SILENCE_MS, Endpointer

V = 0.95  # clearly voiced
S = 0.02  # clearly silent
MID = 0.4  # between neg_threshold (0.35) and threshold (0.5)
EPS = 1e-9


class FakeClock:
    """Monotonic clock that advances 1 ms per reading."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def frame(i: int) -> AudioFrame:
    return AudioFrame(
        samples=np.full(FRAME_SAMPLES, i, dtype=np.float32),
        start_s=i * FRAME_S,
        captured_at=i * FRAME_S,
    )


def make(config: EndpointerConfig | None = None, vad: VadConfig | None = None) -> Endpointer:
    return Endpointer(config or EndpointerConfig(), vad or VadConfig(), clock=FakeClock())


def feed(
    probs: Sequence[float], endpointer: Endpointer | None = None, first: int = 0
) -> list[tuple[int, EndpointEvent]]:
    """Events with the index of the frame that caused them (no flush)."""
    ep = endpointer or make()
    out: list[tuple[int, EndpointEvent]] = []
    for k, p in enumerate(probs):
        out.extend((first + k, e) for e in ep.process(frame(first + k), p))
    return out


def run(
    probs: Sequence[float],
    config: EndpointerConfig | None = None,
    vad: VadConfig | None = None,
) -> list[EndpointEvent]:
    ep = make(config, vad)
    events = [e for _, e in feed(probs, ep)]
    return events + ep.flush()


def kinds(events: Sequence[EndpointEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def utterances(events: Sequence[EndpointEvent]) -> list[Utterance]:
    return [e for e in events if isinstance(e, Utterance)]


def frames_in(audio: np.ndarray) -> list[int]:
    return sorted({int(v) for v in np.unique(audio)})


def audio_end_s(u: Utterance) -> float:
    return u.start_s + u.duration_s


# --- start ------------------------------------------------------------------------------


def test_a_single_voiced_blip_does_not_start_a_turn() -> None:
    assert run([S] * 10 + [V] + [S] * 30) == []


def test_less_than_start_ms_of_speech_does_not_start_a_turn() -> None:
    assert run([S] * 10 + [V, V] + [S] * 30) == []  # 64 ms < 96 ms


def test_start_ms_of_speech_starts_a_turn_at_the_first_voiced_frame() -> None:
    events = feed([S] * 10 + [V] * 3 + [S] * 3)
    index, started = events[0]
    assert isinstance(started, SpeechStarted)
    assert index == 12  # decided on the third voiced frame
    assert started.speech_start_s == pytest.approx(10 * FRAME_S)


def test_one_unvoiced_frame_inside_an_onset_is_tolerated() -> None:
    events = feed([S] * 10 + [V, S, V, V] + [V] * 10)
    index, started = events[0]
    assert isinstance(started, SpeechStarted)
    assert index == 13
    assert started.speech_start_s == pytest.approx(10 * FRAME_S)


def test_two_unvoiced_frames_split_the_onset() -> None:
    events = feed([S] * 10 + [V, S, S, V, V, V] + [V] * 10)
    index, started = events[0]
    assert isinstance(started, SpeechStarted)
    assert index == 15
    assert started.speech_start_s == pytest.approx(13 * FRAME_S)  # the blip is not the start


# --- pre-roll ---------------------------------------------------------------------------


def test_preroll_is_exactly_preroll_ms_before_the_first_voiced_frame() -> None:
    (u,) = utterances(run([S] * 40 + [V] * 20 + [S] * 30))
    assert u.speech_start_s == pytest.approx(40 * FRAME_S)
    assert u.start_s == pytest.approx(40 * FRAME_S - 0.3)
    # 1.28 s - 0.3 s = 0.98 s = sample 15680 = frame 30 + 320 samples
    assert u.audio[0] == 30
    assert np.all(u.audio[: FRAME_SAMPLES - 320] == 30)
    assert u.audio[FRAME_SAMPLES - 320] == 31
    speech_offset = round((u.speech_start_s - u.start_s) * SAMPLE_RATE)
    assert speech_offset == 4800
    assert u.audio[speech_offset] == 40 and u.audio[speech_offset - 1] == 39


def test_preroll_is_clamped_at_stream_start() -> None:
    (u,) = utterances(run([S] * 3 + [V] * 20 + [S] * 30))
    assert u.start_s == 0.0
    assert u.audio[0] == 0
    assert u.speech_start_s == pytest.approx(3 * FRAME_S)


def test_speech_from_the_first_frame_has_no_preroll() -> None:
    (u,) = utterances(run([V] * 20 + [S] * 30))
    assert u.start_s == u.speech_start_s == 0.0


def test_zero_preroll() -> None:
    (u,) = utterances(run([S] * 20 + [V] * 20 + [S] * 30, EndpointerConfig(preroll_ms=0)))
    assert u.start_s == pytest.approx(u.speech_start_s)
    assert u.audio[0] == 20


# --- pause, hangover, end ---------------------------------------------------------------


def test_pause_shorter_than_hangover_continues_the_turn() -> None:
    # 15 silent frames = 480 ms < 500 ms
    events = run([S] * 5 + [V] * 20 + [S] * 15 + [V] * 20 + [S] * 30)
    assert kinds(events) == [
        "SpeechStarted",
        "SpeechPaused",
        "SpeechResumed",
        "SpeechPaused",
        "Utterance",
    ]
    resumed = events[2]
    assert isinstance(resumed, SpeechResumed)
    assert resumed.at_s == pytest.approx(40 * FRAME_S)
    (u,) = utterances(events)
    heard = set(frames_in(u.audio))
    assert set(range(5, 25)) <= heard and set(range(40, 60)) <= heard
    # The 480 ms pause inside the speech reaches the transcriber as 300 ms.
    assert not set(range(31, 34)) & heard


def test_long_inner_pause_is_squeezed_but_keeps_its_edges() -> None:
    config = EndpointerConfig(hangover_ms=2000)
    (u,) = utterances(run([S] * 5 + [V] * 20 + [S] * 20 + [V] * 20 + [S] * 70, config))
    heard = frames_in(u.audio)
    assert 25 in heard and 44 in heard  # the pause's edges
    assert 35 not in heard  # its middle
    assert np.all(np.diff(u.audio) >= 0)  # in order


def test_pause_reaching_hangover_ends_the_turn() -> None:
    # 16 silent frames = 512 ms >= 500 ms
    events = run([S] * 5 + [V] * 20 + [S] * 16 + [V] * 20 + [S] * 30)
    assert kinds(events) == ["SpeechStarted", "SpeechPaused", "Utterance"] * 2
    first, second = utterances(events)
    assert first.last_voiced_s == pytest.approx(25 * FRAME_S)
    assert second.speech_start_s == pytest.approx(41 * FRAME_S)


def test_end_of_turn_comes_one_hangover_after_the_last_voiced_frame() -> None:
    # the first frame on which the silence adds up to the hangover decides
    for hangover_ms, silent_frames in ((100, 4), (500, 16), (512, 16), (513, 17), (1000, 32)):
        config = EndpointerConfig(hangover_ms=hangover_ms)
        events = feed([S] * 5 + [V] * 20 + [S] * 60, make(config))
        (index, u), *_ = [(i, e) for i, e in events if isinstance(e, Utterance)]
        assert u.last_voiced_s == pytest.approx(25 * FRAME_S)
        assert u.end_of_turn_s - u.last_voiced_s == pytest.approx(silent_frames * FRAME_S)
        assert u.end_of_turn_s == pytest.approx(frame(index).end_s)


def test_utterance_keeps_a_short_tail_of_trailing_silence() -> None:
    (u,) = utterances(run([S] * 5 + [V] * 20 + [S] * 30))
    assert audio_end_s(u) == pytest.approx(u.last_voiced_s + TRAILING_SILENCE_MS / 1000)
    (short,) = utterances(run([S] * 5 + [V] * 20 + [S] * 30, EndpointerConfig(hangover_ms=100)))
    assert audio_end_s(short) == pytest.approx(short.last_voiced_s + 0.1)


def test_paused_event_carries_the_audio_so_far() -> None:
    events = run([S] * 15 + [V] * 20 + [S] * 30)
    paused = events[1]
    assert isinstance(paused, SpeechPaused)
    assert paused.last_voiced_s == pytest.approx(35 * FRAME_S)
    assert paused.start_s == pytest.approx(35 * FRAME_S - 20 * FRAME_S - 0.3)
    assert paused.audio[-1] == 35  # through the first silent frame
    (u,) = utterances(events)
    assert np.array_equal(u.audio[: len(paused.audio)], paused.audio)


def test_one_two_three_with_short_pauses_stays_one_utterance() -> None:
    word, pause = [V] * 12, [S] * 10  # 384 ms words, 320 ms pauses; default 500 ms hangover
    events = run([S] * 20 + word + pause + word + pause + word + [S] * 40)
    assert kinds(events) == ["SpeechStarted"] + ["SpeechPaused", "SpeechResumed"] * 2 + [
        "SpeechPaused",
        "Utterance",
    ]
    (u,) = utterances(events)
    assert u.speech_start_s == pytest.approx(20 * FRAME_S)
    assert u.last_voiced_s == pytest.approx((20 + 3 * 12 + 2 * 10) * FRAME_S)
    assert not u.truncated


# --- minimum and maximum ----------------------------------------------------------------


def test_turn_with_too_little_voiced_audio_is_dropped() -> None:
    events = run([S] * 5 + [V] * 7 + [S] * 30)  # 224 ms < 250 ms
    assert kinds(events) == ["SpeechStarted", "SpeechPaused"]
    assert utterances(run([S] * 5 + [V] * 8 + [S] * 30))  # 256 ms


def test_minimum_counts_voiced_frames_not_the_span() -> None:
    assert not utterances(run([S] * 5 + [V] * 4 + [S] * 12 + [V] * 3 + [S] * 30))  # 224 ms
    assert utterances(run([S] * 5 + [V] * 4 + [S] * 12 + [V] * 4 + [S] * 30))  # 256 ms


def test_maximum_cuts_with_truncated_and_continues_without_overlap() -> None:
    config = EndpointerConfig(max_utterance_s=1.0)  # 31 whole frames of speech per turn
    indexed = feed([S] * 20 + [V] * 80 + [S] * 30, make(config))
    # the cut and the next turn's start happen on the same frame, with no new onset wait
    cuts = [i for i, e in indexed if isinstance(e, Utterance) and e.truncated]
    starts = [i for i, e in indexed if isinstance(e, SpeechStarted)]
    assert cuts == [51, 82] and starts == [22, 51, 82]
    events = [e for _, e in indexed]
    assert kinds(events).count("SpeechStarted") == 3
    first, second, third = utterances(events)
    assert [u.truncated for u in (first, second, third)] == [True, True, False]
    assert first.speech_start_s == pytest.approx(20 * FRAME_S)
    assert first.start_s == pytest.approx(20 * FRAME_S - 0.3)
    assert first.end_of_turn_s == pytest.approx(51 * FRAME_S)
    # the next turn starts where the cut was: no pre-roll, no gap, no overlap
    assert second.start_s == second.speech_start_s == pytest.approx(audio_end_s(first))
    assert frames_in(second.audio) == list(range(51, 82))
    assert third.start_s == pytest.approx(audio_end_s(second))
    assert frames_in(third.audio)[0] == 82
    for u in (first, second, third):
        assert u.duration_s <= config.max_utterance_s + config.preroll_ms / 1000 + EPS


def test_maximum_reached_during_a_pause_ends_the_turn_normally() -> None:
    config = EndpointerConfig(max_utterance_s=1.0)
    events = run([V] * 25 + [S] * 12 + [V] * 20 + [S] * 30, config)
    first = utterances(events)[0]
    assert not first.truncated
    assert first.last_voiced_s == pytest.approx(25 * FRAME_S)
    assert audio_end_s(first) == pytest.approx(31 * FRAME_S)  # the cut, before the full tail


# --- hysteresis -------------------------------------------------------------------------


def test_probabilities_between_thresholds_keep_speech_going() -> None:
    events = run([S] * 5 + [V] * 10 + [MID] * 20 + [S] * 30)
    assert kinds(events) == ["SpeechStarted", "SpeechPaused", "Utterance"]
    (u,) = utterances(events)
    assert u.last_voiced_s == pytest.approx(35 * FRAME_S)


def test_probabilities_between_thresholds_never_start_a_turn() -> None:
    assert run([S] * 5 + [MID] * 50 + [S] * 30) == []


def test_probabilities_between_thresholds_do_not_resume_a_pause() -> None:
    events = run([S] * 5 + [V] * 10 + [S] + [MID] * 30 + [S] * 10)
    assert kinds(events) == ["SpeechStarted", "SpeechPaused", "Utterance"]
    (u,) = utterances(events)
    assert u.last_voiced_s == pytest.approx(15 * FRAME_S)
    assert u.end_of_turn_s - u.last_voiced_s == pytest.approx(16 * FRAME_S)


# --- flush and resets -------------------------------------------------------------------


def test_flush_closes_an_open_turn() -> None:
    ep = make()
    feed([S] * 5 + [V] * 20, ep)
    (u,) = ep.flush(at=123.0)
    assert isinstance(u, Utterance)
    assert u.end_of_turn_s == u.last_voiced_s == pytest.approx(25 * FRAME_S)
    assert u.decided_at == 123.0
    assert not u.truncated
    assert ep.flush() == []


def test_flush_during_a_pause_keeps_only_the_available_tail() -> None:
    ep = make()
    feed([V] * 20 + [S] * 3, ep)
    (u,) = ep.flush()
    assert isinstance(u, Utterance)
    assert u.last_voiced_s == pytest.approx(20 * FRAME_S)
    assert audio_end_s(u) == pytest.approx(23 * FRAME_S)


def test_flush_drops_a_turn_that_is_too_short() -> None:
    ep = make()
    feed([S] * 5 + [V] * 4, ep)
    assert ep.flush() == []


def test_flush_starts_a_fresh_stream() -> None:
    ep = make()
    feed([S] * 30 + [V] * 2, ep)  # a half onset and pre-roll history from the old stream
    assert ep.flush() == []
    events = feed([V] * 20 + [S] * 30, ep)
    (u,) = utterances([e for _, e in events])
    assert u.start_s == 0.0 and frames_in(u.audio)[0] == 0


def test_turns_are_reset_cleanly() -> None:
    pattern = [S] * 30 + [V] * 15 + [S] * 5 + [V] * 10 + [S] * 40
    first, second = utterances(run(pattern * 2))
    offset = len(pattern) * FRAME_S
    assert second.start_s == pytest.approx(first.start_s + offset)
    assert second.speech_start_s == pytest.approx(first.speech_start_s + offset)
    assert second.last_voiced_s == pytest.approx(first.last_voiced_s + offset)
    assert second.end_of_turn_s == pytest.approx(first.end_of_turn_s + offset)
    assert np.array_equal(second.audio - len(pattern), first.audio)


def test_preroll_never_reaches_into_the_previous_utterance() -> None:
    first, second = utterances(run([S] * 5 + [V] * 20 + [S] * 16 + [V] * 20 + [S] * 30))
    assert second.start_s >= audio_end_s(first) - EPS
    assert second.start_s < second.speech_start_s  # still some pre-roll from the silence
    assert not set(frames_in(first.audio)) & set(frames_in(second.audio))


def test_timestamps_are_ordered_and_consistent() -> None:
    probs = [S] * 10 + [V] * 20 + [S] * 8 + [V] * 10 + [S] * 20 + [V] * 30 + [MID] * 5 + [S] * 30
    events = run(probs)
    stamps = [e.decided_at if isinstance(e, Utterance) else e.at for e in events]
    assert stamps == sorted(stamps)
    us = utterances(events)
    assert len(us) == 2
    for u in us:
        assert u.start_s <= u.speech_start_s < u.last_voiced_s <= u.end_of_turn_s
        assert audio_end_s(u) <= u.end_of_turn_s + EPS
        assert u.audio.dtype == np.float32
    assert audio_end_s(us[0]) <= us[1].start_s + EPS
    assert us[0].end_of_turn_s <= us[1].speech_start_s


# --- properties -------------------------------------------------------------------------

_runs = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.2, MID, 0.6, 1.0]) | st.floats(0.0, 1.0),
        st.integers(1, 40),
    ),
    max_size=30,
)
_configs = st.builds(
    EndpointerConfig,
    start_ms=st.integers(32, 300),
    preroll_ms=st.integers(0, 600),
    hangover_ms=st.integers(64, 800),
    min_utterance_ms=st.integers(32, 600),
    max_utterance_s=st.floats(1.0, 2.0),
)


@settings(max_examples=300, deadline=None)
@given(runs=_runs, config=_configs)
def test_utterances_are_ordered_bounded_and_long_enough(
    runs: list[tuple[float, int]], config: EndpointerConfig
) -> None:
    probs = [p for p, n in runs for _ in range(n)]
    vad = VadConfig()
    events = run(probs, config, vad)
    tail_s = min(config.hangover_ms, TRAILING_SILENCE_MS) / 1000
    bound_s = config.max_utterance_s + config.preroll_ms / 1000 + tail_s
    previous_end = 0.0
    open_start: float | None = None
    for e in events:
        if isinstance(e, SpeechStarted):
            open_start = e.speech_start_s
        if not isinstance(e, Utterance):
            continue
        assert open_start is not None and e.speech_start_s == open_start
        open_start = None
        assert e.start_s >= previous_end - EPS  # in order, never overlapping
        previous_end = audio_end_s(e)
        assert e.duration_s <= bound_s + EPS
        assert e.start_s <= e.speech_start_s < e.last_voiced_s <= e.end_of_turn_s + EPS
        # the audio is the stretch of the stream that start_s says it is, in order (long
        # pauses inside the speech squeezed)
        first_sample = round(e.start_s * SAMPLE_RATE)
        assert e.audio[0] == first_sample // FRAME_SAMPLES
        assert np.all(np.diff(e.audio) >= 0)
        # every voiced frame was at least above neg_threshold, so this bounds voiced audio
        loud = [i for i in frames_in(e.audio) if probs[i] >= vad.neg_threshold]
        assert len(loud) * FRAME_SAMPLES >= config.min_utterance_ms * SAMPLE_RATE / 1000


def test_a_pause_can_be_given_its_own_hangover() -> None:
    ep = make()
    events: list[object] = []
    for i, p in enumerate([S] * 5 + [V] * 20):
        events += ep.process(frame(i), p)
    assert ep.pause_ms is None  # still speaking
    events += ep.process(frame(25), S)
    assert ep.pause_ms == pytest.approx(32.0)
    ep.set_pause_hangover(150)  # judged complete: a short pause ends it
    for i in range(26, 40):
        events += ep.process(frame(i), S)
    (u,) = utterances(events)
    assert u.end_of_turn_s == pytest.approx(30 * FRAME_S)  # 5 silent frames = 160 ms


def test_a_pause_can_be_closed_at_once_and_speech_forgets_its_hangover() -> None:
    ep = make()
    for i, p in enumerate([S] * 5 + [V] * 20 + [S] * 3):
        ep.process(frame(i), p)
    ep.set_pause_hangover(3000)
    ep.process(frame(28), V)  # speech resumes: back to the configured 500 ms
    events: list[object] = []
    for i in range(29, 29 + 16):
        events += ep.process(frame(i), S)
    assert len(utterances(events)) == 1
    assert ep.close_pause() is None  # no turn open any more


def test_close_pause_ends_the_turn_only_in_a_pause() -> None:
    ep = make()
    for i, p in enumerate([S] * 5 + [V] * 20):
        ep.process(frame(i), p)
    assert ep.close_pause() is None  # mid-speech
    ep.process(frame(25), S)
    u = ep.close_pause()
    assert isinstance(u, Utterance) and u.last_voiced_s == pytest.approx(25 * FRAME_S)
