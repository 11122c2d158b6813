"""Fuzzing the two doors bad input comes through: the config loader and the audio decoder.

Each runs hypothesis for a fixed time budget (ATLAS_FUZZ_SECONDS, 20 s by default; set
it higher to hunt longer). The only acceptable outcomes are a valid result or the one
error type the CLI turns into one clear line (SettingsError, AudioFileError): never a
traceback of any other kind, never a message of more than one line.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np
import soundfile as sf
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas.settings import Settings, SettingsError, load_settings
from voice.decode import decode_audio
from voice.errors import AudioFileError

BUDGET_S = float(os.environ.get("ATLAS_FUZZ_SECONDS", "20"))
ROUND = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def for_seconds(budget: float, test: Callable[[], None]) -> int:
    """Run a @given test round after round (fresh random examples) until time is up."""
    rounds = 0
    end = time.monotonic() + budget
    while rounds == 0 or time.monotonic() < end:
        test()
        rounds += 1
    return rounds


# ---- the config loader ------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["auto", "0", "-1", "1e9", ".nan", "~", "", "yes", "[", "(?P<", "a\x00b"]),
    st.sampled_from(["/", "..", "/dev/null", "/proc/self/mem", "x" * 5000, "a\nb"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)


def _keys(cls: type, prefix: str = "") -> list[tuple[str, ...]]:
    """Every settable key path of a settings dataclass."""
    out: list[tuple[str, ...]] = []
    hints = get_type_hints(cls)
    for f in fields(cls):
        typ = hints[f.name]
        if isinstance(typ, type) and is_dataclass(typ):
            out += [(f.name, *rest) for rest in _keys(typ)]
        else:
            out.append((f.name,))
    return out


SETTINGS_KEYS = [k for k in _keys(Settings) if k[0] not in ("source", "router", "persona")]


@st.composite
def config_documents(draw: st.DrawFn) -> Any:
    """Mostly well-formed documents with wrong values at real keys; some junk at the top."""
    if draw(st.integers(0, 9)) == 0:
        return draw(VALUES)
    doc: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(SETTINGS_KEYS), min_size=1, max_size=6)):
        node = doc
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                break
            node = nxt
        else:
            node[path[-1]] = draw(VALUES)
    if draw(st.booleans()):
        doc[draw(st.text(max_size=8))] = draw(VALUES)
    return doc


def _load_expecting_one_line(path: Path) -> None:
    try:
        load_settings(path, env={})
    except SettingsError as e:
        msg = str(e)
        assert msg and "\n" not in msg, repr(msg)


def test_fuzz_the_config_loader() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "atlas.yaml"

        @ROUND
        @given(doc=config_documents())
        def structured(doc: Any) -> None:
            path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
            _load_expecting_one_line(path)

        @ROUND
        @given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
        def raw_bytes(raw: bytes | str) -> None:
            data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
            path.write_bytes(data)
            _load_expecting_one_line(path)

        rounds = for_seconds(BUDGET_S * 0.8, structured) + for_seconds(BUDGET_S * 0.2, raw_bytes)
    print(f"config fuzz: {rounds} rounds of up to {ROUND.max_examples} examples")
    assert rounds >= 2


# ---- the audio decoder ------------------------------------------------------------------

FORMATS = [
    ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("WAV", "PCM_U8"),
    ("WAV", "ULAW"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("AIFF", "PCM_16"),
]  # fmt: skip


@st.composite
def audio_files(draw: st.DrawFn) -> bytes:
    """A real encoded file (random rate, channels, format), then broken in some way."""
    fmt, subtype = draw(st.sampled_from(FORMATS))
    rate = draw(st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]))
    channels = draw(st.integers(1, 3))
    frames = draw(st.integers(0, 2000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = (rng.standard_normal((frames, channels)) * 0.3).astype(np.float32)
    buf = io.BytesIO()
    try:
        sf.write(buf, data, rate, format=fmt, subtype=subtype)
    except (sf.LibsndfileError, ValueError, RuntimeError):
        buf = io.BytesIO(b"RIFF")  # a combination libsndfile will not write
    raw = bytearray(buf.getvalue())
    for _ in range(draw(st.integers(0, 4))):
        how = draw(st.sampled_from(["flip", "truncate", "overwrite", "insert", "header"]))
        if not raw:
            break
        at = draw(st.integers(0, len(raw) - 1))
        if how == "flip":
            raw[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "truncate":
            del raw[at:]
        elif how == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            raw[at : at + len(chunk)] = chunk
        elif how == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:  # a header field (sizes, rate, channels, bits) set to an extreme
            pos = draw(st.integers(0, min(60, len(raw) - 1)))
            value = draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            raw[pos : pos + 4] = value.to_bytes(4, "little")
    return bytes(raw)


MAGIC = st.sampled_from([b"RIFF", b"RIFX", b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"FORM", b""])


def _decode_expecting_one_line(path: Path) -> None:
    try:
        got = decode_audio(path, max_duration_s=60.0)
    except AudioFileError as e:
        msg = str(e)
        assert msg.startswith(str(path)) and "\n" not in msg, repr(msg)
        return
    assert got.samples.dtype == np.float32 and got.samples.ndim == 1
    assert np.isfinite(got.samples).all()
    assert np.abs(got.samples).max(initial=0.0) <= 1.0
    assert got.source_rate > 0 and got.channels > 0


def test_fuzz_the_audio_decoder() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.audio"

        @ROUND
        @given(raw=audio_files())
        def broken_files(raw: bytes) -> None:
            path.write_bytes(raw)
            _decode_expecting_one_line(path)

        @ROUND
        @given(magic=MAGIC, tail=st.binary(max_size=300))
        def magic_then_junk(magic: bytes, tail: bytes) -> None:
            path.write_bytes(magic + tail)
            _decode_expecting_one_line(path)

        rounds = for_seconds(BUDGET_S * 0.7, broken_files)
        rounds += for_seconds(BUDGET_S * 0.3, magic_then_junk)
    print(f"audio fuzz: {rounds} rounds of up to {ROUND.max_examples} examples")
    assert rounds >= 2
