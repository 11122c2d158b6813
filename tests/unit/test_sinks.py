"""Audio sinks (voice/sinks.py): WAV with real timing, the speaker via a fake stream, null.

The simulated sinks are driven by a fake clock, so positions are checked to the sample.
The speaker's fake OutputStream calls the real callback from its own thread at a fake
pace, as PortAudio would, and records every block it "played".
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from voice.audio import DeviceInfo, decode_audio, list_devices
from voice.config import AudioConfig
from voice.errors import AudioDeviceError, AudioFileError
from voice.sinks import AudioSink, NullSink, PlaybackMark, SinkSegment, SpeakerSink, WavSink

RATE = 22050


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def level(value: float, seconds: float, rate: int = RATE) -> np.ndarray:
    return np.full(round(seconds * rate), value, np.float32)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(path, dtype="float32")
    return data, rate


def runs(samples: np.ndarray) -> list[tuple[int, int, float]]:
    """(start, end, value) of each stretch of equal values (16-bit rounding ignored)."""
    q = np.round(samples * 1000).astype(int)
    edges = np.flatnonzero(np.diff(q)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [len(q)]))
    return [(int(s), int(e), q[s] / 1000) for s, e in zip(starts, ends, strict=True)]


# --------------------------------------------------------------------------- WavSink


async def test_wav_sink_writes_gaps_as_silence_at_exact_positions(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    sink = WavSink(tmp_path / "out.wav", clock=clock, realtime=False)
    assert isinstance(sink, AudioSink)
    clock.t = 0.5
    first = await sink.write(level(0.25, 1.0), RATE)
    clock.t = 3.0
    second = await sink.write(level(0.5, 0.5), RATE, label="answer")
    await sink.aclose()

    data, rate = read_wav(tmp_path / "out.wav")
    assert rate == RATE
    assert runs(data) == [
        (0, 11025, 0.0),
        (11025, 33075, 0.25),
        (33075, 66150, 0.0),
        (66150, 77175, 0.5),
    ]
    assert first.first_sample_at == pytest.approx(0.5)
    assert first.end_at == pytest.approx(1.5)
    assert second.first_sample_at == pytest.approx(3.0)
    assert second == sink.last_mark
    assert second.start_s == pytest.approx(3.0) and second.duration_s == pytest.approx(0.5)
    assert sink.segments == (
        SinkSegment(0.5, 1.5, None),
        SinkSegment(3.0, 3.5, "answer"),
    )


async def test_start_at_sets_the_files_time_zero(tmp_path: Path) -> None:
    clock = FakeClock(100.0)
    sink = WavSink(tmp_path / "out.wav", 16000, clock=clock, start_at=99.0, realtime=False)
    await sink.write(level(0.5, 0.25, 16000), 16000)
    await sink.aclose()
    data, _ = read_wav(tmp_path / "out.wav")
    assert runs(data) == [(0, 16000, 0.0), (16000, 20000, 0.5)]


async def test_writes_during_playback_are_appended_without_overlap_or_gap(
    tmp_path: Path,
) -> None:
    clock = FakeClock(10.0)
    sink = WavSink(tmp_path / "out.wav", clock=clock, realtime=False)
    marks = [await sink.write(level(0.1, 1.0), RATE, label="filler")]
    clock.t = 10.4
    assert sink.is_playing
    marks.append(await sink.write(level(0.2, 0.5), RATE, label="answer"))
    clock.t = 10.6
    marks.append(await sink.write(level(0.3, 0.25), RATE, label="answer"))
    await sink.aclose()

    assert [m.first_sample_at for m in marks] == pytest.approx([10.0, 11.0, 11.5])
    segments = sink.segments
    assert [s.label for s in segments] == ["filler", "answer", "answer"]
    for before, after in itertools.pairwise(segments):
        assert after.start_s == pytest.approx(before.end_s)
    data, _ = read_wav(tmp_path / "out.wav")
    assert runs(data) == [
        (0, 22050, 0.1),
        (22050, 33075, 0.2),
        (33075, 38587, 0.3),
    ]  # 0.25 s = 5512.5 frames -> 5512


async def test_clear_truncates_what_was_not_heard_and_reports_what_was(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    sink = WavSink(tmp_path / "out.wav", clock=clock, realtime=False)
    await sink.write(level(0.1, 2.0), RATE, label="filler")
    await sink.write(level(0.2, 1.0), RATE, label="answer")
    clock.t = 1.5
    assert sink.played_s == pytest.approx(1.5)
    heard = sink.clear()
    assert heard == pytest.approx(1.5)
    assert not sink.is_playing
    assert sink.segments == (SinkSegment(0.0, 1.5, "filler", cut=True),)
    assert sink.clear() is None  # nothing written since: nothing to report
    clock.t = 2.0
    await sink.write(level(0.3, 0.5), RATE)
    await sink.aclose()

    data, _ = read_wav(tmp_path / "out.wav")
    assert runs(data) == [(0, 33075, 0.1), (33075, 44100, 0.0), (44100, 55125, 0.3)]


async def test_heard_seconds_count_one_playback_run_across_its_gaps(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    sink = NullSink(clock=clock, realtime=False)
    await sink.write(level(0.1, 1.0), RATE)
    clock.t = 5.0
    await sink.wait_for_playout()  # the previous turn is over
    await sink.write(level(0.1, 0.5), RATE, label="filler")
    clock.t = 6.0  # the filler ended, the answer comes late: same run
    await sink.write(level(0.2, 2.0), RATE, label="answer")
    clock.t = 7.0
    assert sink.clear() == pytest.approx(1.5)
    assert sink.played_s == pytest.approx(2.5)


async def test_resampling_16k_to_22k_keeps_duration(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    sink = WavSink(tmp_path / "out.wav", clock=clock, realtime=False)
    t = np.arange(16000) / 16000
    mark = await sink.write((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    assert mark.duration_s == pytest.approx(1.0, abs=1 / RATE)
    await sink.aclose()
    data, rate = read_wav(tmp_path / "out.wav")
    assert rate == RATE and abs(len(data) - RATE) <= 1
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    assert np.fft.rfftfreq(len(data), 1 / RATE)[int(np.argmax(spectrum))] == pytest.approx(
        440, abs=2
    )


async def test_flush_leaves_a_valid_wav_and_close_one_decode_audio_reads(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    clock = FakeClock(0.0)
    sink = WavSink(path, clock=clock, realtime=False)
    await sink.write(level(0.5, 0.5), RATE)
    await sink.flush()
    assert sf.info(str(path)).frames == 11025
    clock.t = 1.0
    await sink.write(level(0.5, 0.5), RATE)
    await sink.aclose()
    await sink.aclose()  # idempotent
    info = sf.info(str(path))
    assert (info.frames, info.samplerate, info.channels, info.subtype) == (33075, RATE, 1, "PCM_16")
    assert decode_audio(path).duration_s == pytest.approx(1.5)
    with pytest.raises(RuntimeError):
        await sink.write(level(0.5, 0.1), RATE)


async def test_bad_input_is_rejected_and_nan_becomes_silence(tmp_path: Path) -> None:
    sink = NullSink(clock=FakeClock(), realtime=False)
    with pytest.raises(ValueError):
        await sink.write(np.zeros((10, 2), np.float32), RATE)
    with pytest.raises(ValueError):
        await sink.write(np.zeros(10, np.float32), 0)
    with pytest.raises(AudioFileError):
        WavSink(tmp_path / "missing-dir" / "out.wav")
    path = tmp_path / "nan.wav"
    wav = WavSink(path, clock=FakeClock(), realtime=False)
    await wav.write(np.array([np.nan, 2.0, -np.inf, -0.5], np.float32), RATE)
    await wav.aclose()
    data, _ = read_wav(path)
    assert data.tolist() == pytest.approx([0.0, 1.0, 0.0, -0.5], abs=1e-4)


async def test_realtime_wait_for_playout_waits_until_the_audio_has_played(tmp_path: Path) -> None:
    sink = WavSink(tmp_path / "out.wav")
    mark = await sink.write(level(0.5, 0.3), RATE)
    await sink.wait_for_playout()
    assert time.monotonic() >= mark.end_at
    assert not sink.is_playing
    await sink.aclose()


async def test_clear_wakes_a_realtime_wait_for_playout() -> None:
    sink = NullSink()
    await sink.write(level(0.5, 30.0), RATE)
    waiter = asyncio.create_task(sink.wait_for_playout())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    heard = sink.clear()
    await asyncio.wait_for(waiter, 5)
    assert heard is not None and 0.0 < heard < 30.0


async def test_non_realtime_wait_returns_at_once_even_with_a_frozen_clock() -> None:
    sink = NullSink(clock=FakeClock(0.0), realtime=False)
    await sink.write(level(0.5, 60.0), RATE)
    await asyncio.wait_for(sink.wait_for_playout(), 5)
    frozen = NullSink(clock=FakeClock(0.0), realtime=True)
    await frozen.write(level(0.5, 0.05), RATE)
    await asyncio.wait_for(frozen.wait_for_playout(), 5)  # a clock that never moves
    assert frozen.is_playing


async def test_null_sink_keeps_timing() -> None:
    clock = FakeClock(2.0)
    sink = NullSink(16000, clock=clock, start_at=0.0, realtime=False)
    assert isinstance(sink, AudioSink) and sink.sample_rate == 16000
    mark = await sink.write(level(0.5, 1.0, 16000), 16000)
    assert mark == PlaybackMark(2.0, 3.0, 2.0, 1.0, None)
    clock.t = 2.5
    assert sink.is_playing and sink.played_s == pytest.approx(0.5)
    assert sink.written_s == pytest.approx(1.0)
    assert sink.playout_end_at == pytest.approx(3.0)
    clock.t = 4.0
    assert not sink.is_playing and sink.played_s == pytest.approx(1.0)
    assert sink.clear() == pytest.approx(1.0)
    empty = await sink.write(np.zeros(0, np.float32), 16000)
    assert empty.duration_s == 0.0 and sink.segments[-1].end_s == pytest.approx(3.0)


# --------------------------------------------------------------------------- SpeakerSink


class FakeOutputStream:
    """Pulls blocks through the sink's callback from a thread, like PortAudio."""

    def __init__(
        self,
        kwargs: dict[str, Any],
        *,
        pace_s: float = 0.001,
        vanish_after: int | None = None,
        silent: bool = False,
    ) -> None:
        self.kwargs = kwargs
        self.pace_s, self.vanish_after, self.silent = pace_s, vanish_after, silent
        self.blocks: list[np.ndarray] = []
        self.started = self.stopped = self.closed = False
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.started = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        size, channels = self.kwargs["blocksize"], self.kwargs["channels"]
        while not self._halt.is_set() and not self.silent:
            if self.vanish_after is not None and len(self.blocks) >= self.vanish_after:
                self.kwargs["finished_callback"]()
                return
            out = np.full((size, channels), np.nan, np.float32)
            self.kwargs["callback"](out, size, None, SimpleNamespace(output_underflow=False))
            self.blocks.append(out.copy())
            self._halt.wait(self.pace_s)

    def stop(self) -> None:
        self.stopped = True
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.kwargs["finished_callback"]()  # PortAudio calls it on a normal stop too

    def close(self) -> None:
        self.closed = True

    def played(self, channel: int = 0) -> np.ndarray:
        return np.concatenate([b[:, channel] for b in self.blocks]) if self.blocks else np.zeros(0)


class FakeOutputFactory:
    def __init__(self, *options: dict[str, Any], refuse_mono: bool = False) -> None:
        self.options = list(options)
        self.refuse_mono = refuse_mono
        self.calls: list[dict[str, Any]] = []
        self.streams: list[FakeOutputStream] = []

    def __call__(self, **kwargs: Any) -> FakeOutputStream:
        self.calls.append(kwargs)
        if self.refuse_mono and kwargs["channels"] == 1:
            raise RuntimeError("Invalid number of channels [PaErrorCode -9998]")
        index = min(len(self.streams), len(self.options) - 1)
        stream = FakeOutputStream(kwargs, **(self.options[index] if self.options else {}))
        self.streams.append(stream)
        return stream


def speaker_device(rate: float = 16000, channels: int = 1) -> DeviceInfo:
    return DeviceInfo(5, "fake speaker", 0, channels, rate, is_default_output=True)


def speaker(factory: FakeOutputFactory, rate: float = 16000, **kwargs: Any) -> SpeakerSink:
    return SpeakerSink(AudioConfig(), stream_factory=factory, device=speaker_device(rate), **kwargs)


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.002)


async def test_speaker_plays_writes_in_order_at_the_device_rate() -> None:
    factory = FakeOutputFactory({"pace_s": 0.0005})
    sink = speaker(factory)
    assert isinstance(sink, AudioSink)
    chunks = [level(0.1, 0.05, 16000), level(0.2, 0.025, 16000), level(0.3, 0.0625, 16000)]
    marks = [await sink.write(c, 16000) for c in chunks]
    await sink.wait_for_playout()
    call = factory.calls[0]
    assert (call["samplerate"], call["channels"], call["dtype"]) == (16000, 1, "float32")
    assert call["blocksize"] == 160 and call["device"] == 5
    assert sink.sample_rate == 16000
    played = factory.streams[0].played()
    assert not np.isnan(played).any()
    sound = played[np.flatnonzero(played)[0] :][: sum(len(c) for c in chunks)]
    assert np.array_equal(sound, np.concatenate(chunks))
    assert sink.played_s == pytest.approx(len(sound) / 16000)
    assert [m.start_s for m in marks] == pytest.approx([0.0, 0.05, 0.075], abs=0.011)
    assert marks[0].first_sample_at <= marks[1].first_sample_at <= marks[2].first_sample_at
    assert not sink.is_playing
    assert sink.clear() is None  # the run ended with the playout
    await sink.aclose()
    assert factory.streams[0].stopped and factory.streams[0].closed


async def test_speaker_resamples_to_the_device_rate() -> None:
    factory = FakeOutputFactory({"pace_s": 0.0005})
    sink = speaker(factory, rate=48000)
    t = np.arange(22050) / 22050
    await sink.write((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    await sink.wait_for_playout()
    await sink.aclose()
    assert sink.played_s == pytest.approx(1.0, abs=0.001)
    played = factory.streams[0].played()
    sound = played[np.flatnonzero(played)[0] :][:48000]
    spectrum = np.abs(np.fft.rfft(sound * np.hanning(len(sound))))
    assert np.fft.rfftfreq(len(sound), 1 / 48000)[int(np.argmax(spectrum))] == pytest.approx(
        440, abs=2
    )


async def test_speaker_clear_silences_the_next_callback_and_reports_heard() -> None:
    factory = FakeOutputFactory({"pace_s": 0.002})
    sink = speaker(factory)
    await sink.write(level(0.5, 1.0, 16000), 16000)
    stream = factory.streams[0]
    await wait_until(lambda: np.count_nonzero(stream.played()) >= 5 * 160)
    before = len(stream.blocks)
    heard = sink.clear()
    await wait_until(lambda: len(stream.blocks) >= before + 5)
    # Only a callback already running when clear() was called may still carry audio.
    assert all(not b.any() for b in stream.blocks[before + 1 :])
    assert heard is not None
    assert heard * 16000 == pytest.approx(np.count_nonzero(stream.played()))
    assert 0.0 < heard < 1.0
    assert not sink.is_playing
    await asyncio.wait_for(sink.wait_for_playout(), 5)
    await sink.aclose()


async def test_speaker_backpressure_keeps_the_buffer_bounded() -> None:
    factory = FakeOutputFactory({"pace_s": 0.0005})
    sink = speaker(factory, max_buffer_s=0.1)
    audio = np.linspace(-0.9, 0.9, 16000, dtype=np.float32)
    writer = asyncio.create_task(sink.write(audio, 16000))
    most = 0.0
    while not writer.done():
        most = max(most, sink.buffered_s)
        await asyncio.sleep(0.001)
    await writer
    assert most <= 0.1 + 1e-9
    # write() returned only once all but the last buffer-full had been played.
    assert sink.played_s >= 1.0 - 0.1 - 1e-9
    await sink.wait_for_playout()
    await sink.aclose()
    # The fake drains faster than real time, so silence may fall between the refills;
    # the audio itself (no zero in it) arrives complete and in order.
    played = factory.streams[0].played()
    assert np.array_equal(played[played != 0], audio)


async def test_a_vanished_speaker_raises_and_the_next_write_reopens() -> None:
    # Vanishes 0.2 s in: late enough that the first write lands even on a busy machine.
    factory = FakeOutputFactory({"pace_s": 0.01, "vanish_after": 20}, {"pace_s": 0.0005})
    sink = speaker(factory)
    await sink.write(level(0.5, 1.0, 16000), 16000)
    with pytest.raises(AudioDeviceError, match="stopped") as err:
        await asyncio.wait_for(sink.wait_for_playout(), 5)
    assert "\n" not in str(err.value)
    assert factory.streams[0].closed
    # The daemon retries later: a new stream is opened and plays.
    await sink.write(level(0.25, 0.05, 16000), 16000)
    await sink.wait_for_playout()
    assert len(factory.streams) == 2
    assert np.count_nonzero(factory.streams[1].played()) == 800
    await sink.aclose()


async def test_a_speaker_that_stops_taking_audio_fails_the_waiting_write() -> None:
    factory = FakeOutputFactory({"silent": True})
    sink = speaker(factory, max_buffer_s=0.1, stall_timeout_s=0.2)
    with pytest.raises(AudioDeviceError, match="no audio"):
        await asyncio.wait_for(sink.write(level(0.5, 1.0, 16000), 16000), 5)
    await sink.aclose()


async def test_mono_refusing_speaker_gets_the_signal_on_every_channel() -> None:
    factory = FakeOutputFactory({"pace_s": 0.0005}, refuse_mono=True)
    sink = SpeakerSink(
        AudioConfig(), stream_factory=factory, device=speaker_device(16000, channels=2)
    )
    await sink.write(level(0.5, 0.05, 16000), 16000)
    await sink.wait_for_playout()
    await sink.aclose()
    assert [c["channels"] for c in factory.calls] == [1, 2]
    stream = factory.streams[0]
    assert np.array_equal(stream.played(0), stream.played(1))
    assert np.count_nonzero(stream.played(1)) == 800


async def test_closed_speaker_refuses_writes() -> None:
    factory = FakeOutputFactory({"pace_s": 0.0005})
    sink = speaker(factory)
    await sink.aclose()
    with pytest.raises(AudioDeviceError, match="closed"):
        await sink.write(level(0.5, 0.01, 16000), 16000)


async def test_a_factory_that_finds_no_speaker_gives_one_clear_line() -> None:
    def no_device(**kwargs: Any) -> None:
        raise RuntimeError("Error querying device -1")

    sink = SpeakerSink(AudioConfig(), stream_factory=no_device, device=speaker_device())
    with pytest.raises(AudioDeviceError) as err:
        await sink.write(level(0.5, 0.01, 16000), 16000)
    assert "no speaker found" in str(err.value) and "\n" not in str(err.value)


async def test_real_sounddevice_without_a_sound_card() -> None:
    try:
        devices = list_devices()
    except AudioDeviceError as exc:  # PortAudio itself missing: also one clear line
        assert "PortAudio" in str(exc)
        devices = []
    if any(d.max_output_channels > 0 for d in devices):
        pytest.skip("this machine has a speaker")
    sink = SpeakerSink(AudioConfig())
    with pytest.raises(AudioDeviceError) as err:
        await sink.write(level(0.5, 0.01, 16000), 16000)
    assert "\n" not in str(err.value)
    assert "no speaker found" in str(err.value) or "PortAudio" in str(err.value)
    await sink.aclose()
    # A device named explicitly goes through sounddevice.OutputStream itself.
    sink = SpeakerSink(AudioConfig(), device=speaker_device())
    with pytest.raises(AudioDeviceError) as err:
        await sink.start()
    assert "fake speaker" in str(err.value) or "PortAudio" in str(err.value)
    await sink.aclose()
