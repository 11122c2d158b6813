"""A deterministic stand-in for the sentence embedder: hashed bag of words."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from atlas.llm.embedder import Vectors, l2_normalise


class HashedBagOfWords:
    """Texts sharing words get similar vectors; no model, no randomness."""

    name = "test:hashed-bag-of-words"
    dim = 256

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
                out[i, h % self.dim] += 1.0
        return l2_normalise(out)
