"""Wyoming carries raw little-endian PCM; ATLAS's engines take float32 mono in [-1, 1]."""

from __future__ import annotations

import numpy as np
from wyoming.audio import AudioChunk, AudioChunkConverter

from voice.types import SAMPLE_RATE, Samples

WIDTH = 2
"""Bytes per sample on the wire (16-bit)."""


def ears_converter() -> AudioChunkConverter:
    """To what ATLAS's ears take. One per audio stream: resampling keeps state."""
    return AudioChunkConverter(rate=SAMPLE_RATE, width=WIDTH, channels=1)


def chunk_samples(chunk: AudioChunk, converter: AudioChunkConverter) -> Samples:
    """A chunk of any rate/width/channels as 16 kHz float32 mono."""
    return pcm16_to_float(converter.convert(chunk).audio)


def pcm16_to_float(data: bytes) -> Samples:
    usable = len(data) - len(data) % WIDTH
    pcm = np.frombuffer(data[:usable], dtype="<i2")
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32, copy=False)


def float_to_pcm16(samples: Samples) -> bytes:
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return bytes(np.round(clipped * 32767.0).astype("<i2").tobytes())
