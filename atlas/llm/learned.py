"""The learned router: calibrated tier probabilities from a sentence embedding.

A multinomial logistic regression over the embedder's unit vectors (384 numbers for
MiniLM), trained by `atlas router train DATA.tsv`, then temperature-scaled on a held-out
part of the training data so that its probabilities mean what they say (a row given
0.8 is right about 8 times in 10). The model is one small .npz file, loaded by path and
checked against the sha256 the config records; it names the embedder it was trained
with and the sha256 of its training data.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from atlas.llm.adapter import Adapter
from atlas.llm.base import TIERS

Floats = npt.NDArray[np.float32]


class RouterModelError(Exception):
    """A router model that cannot be used; the text says which file and why."""


@dataclass(frozen=True)
class RouterModel:
    weights: Floats
    """(dim, 3): one column per tier, in the order of TIERS."""
    bias: Floats
    temperature: float
    """Logits are divided by this before the softmax (fit on held-out rows)."""
    embedder: str
    """The embedder the model was trained with (its vectors mean nothing to another)."""
    data_sha256: str
    rows: int
    adapter: Adapter | None = None
    """The encoder's low-rank adapter the vectors were made with (atlas.llm.adapter)."""

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    def probabilities(self, vectors: Floats) -> Floats:
        """(n, 3) calibrated probabilities of local, haiku, agent."""
        return softmax((np.atleast_2d(vectors) @ self.weights + self.bias) / self.temperature)

    def save(self, path: Path) -> str:
        """Write atomically; returns the file's sha256 (for the config)."""
        meta = {
            "tiers": list(TIERS),
            "temperature": self.temperature,
            "embedder": self.embedder,
            "data_sha256": self.data_sha256,
            "rows": self.rows,
        }
        arrays: dict[str, Any] = {
            "weights": self.weights.astype(np.float32),
            "bias": self.bias.astype(np.float32),
        }
        if self.adapter is not None:
            meta["adapter_sha256"] = self.adapter.sha256
            arrays.update(self.adapter.arrays())
        arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)  # a model file, not a secret (mkstemp makes it 0600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return hashlib.sha256(data).hexdigest()


def load_model(path: Path, sha256: str) -> RouterModel:
    """Read and verify a model file; every problem is one RouterModelError line."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RouterModelError(f"router model {path}: cannot read it ({e.strerror})") from None
    got = hashlib.sha256(data).hexdigest()
    if sha256 and got != sha256.lower():
        raise RouterModelError(
            f"router model {path}: sha256 {got[:12]}... does not match the configured "
            f"{sha256[:12]}... (retrain with `atlas router train`, which records it)"
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            weights = z["weights"].astype(np.float32)
            bias = z["bias"].astype(np.float32)
            meta = json.loads(bytes(z["meta"]).decode())
            adapter = Adapter.from_arrays({k: z[k] for k in z.files if k.startswith("lora_")})
        model = RouterModel(
            weights,
            bias,
            float(meta["temperature"]),
            str(meta["embedder"]),
            str(meta["data_sha256"]),
            int(meta["rows"]),
            adapter,
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RouterModelError(f"router model {path}: not a router model ({e})") from None
    if (adapter.sha256 if adapter else None) != meta.get("adapter_sha256"):
        raise RouterModelError(f"router model {path}: its adapter does not match its record")
    if (
        meta.get("tiers") != list(TIERS)
        or weights.ndim != 2
        or weights.shape[1] != 3
        or bias.shape != (3,)
    ):
        raise RouterModelError(f"router model {path}: expected 3 tiers {list(TIERS)}")
    if not model.temperature > 0:
        raise RouterModelError(f"router model {path}: temperature must be positive")
    return model


def softmax(logits: npt.NDArray[np.floating]) -> Floats:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Floats = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def fit_logistic(
    x: Floats,
    y: npt.NDArray[np.int64],
    l2: float = 1e-3,
    steps: int = 600,
    rate: float = 0.05,
) -> tuple[Floats, Floats]:
    """Class-balanced multinomial logistic regression by full-batch Adam (deterministic).

    Each tier weighs the same in the loss whatever its row count, so the prior of the
    training mix does not decide close calls.
    """
    n, dim = x.shape
    k = len(TIERS)
    onehot = np.eye(k, dtype=np.float64)[y]
    counts = np.bincount(y, minlength=k).astype(np.float64)
    sample_w = (n / (k * np.maximum(counts, 1.0)))[y][:, None] / n
    w = np.zeros((dim, k))
    b = np.zeros(k)
    m_w, v_w, m_b, v_b = (np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b))
    x64 = x.astype(np.float64)
    for t in range(1, steps + 1):
        p = softmax(x64 @ w + b).astype(np.float64)
        g = (p - onehot) * sample_w
        g_w = x64.T @ g + l2 * w
        g_b = g.sum(axis=0)
        for param, grad, m, v in ((w, g_w, m_w, v_w), (b, g_b, m_b, v_b)):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= rate * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return w.astype(np.float32), b.astype(np.float32)


def fit_temperature(logits: Floats, y: npt.NDArray[np.int64]) -> float:
    """The temperature minimising the negative log-likelihood (grid search, 0.25..5)."""
    best_t, best_nll = 1.0, float("inf")
    for t in np.round(np.arange(0.25, 5.0001, 0.05), 2):
        p = softmax(logits / t)
        nll = -float(np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-12))))
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def expected_calibration_error(
    probabilities: Floats, y: npt.NDArray[np.int64], bins: int = 10
) -> float:
    """ECE of the top-class confidence: the mean |accuracy - confidence| over equal-width
    bins, weighted by how many rows fall in each."""
    conf = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(right[inside].mean() - conf[inside].mean())
    return float(total)


def require_every_tier(y: npt.NDArray[np.int64]) -> None:
    """ValueError unless the labels hold every tier (before any costly fitting)."""
    if len(set(y.tolist())) < len(TIERS):
        raise ValueError("training data must hold rows of all three tiers")


HOLDOUT = 0.2
"""The share of training rows kept out of the fit (and the adapter) to set the temperature."""


def calibration_split(
    rows: int, holdout: float = HOLDOUT, seed: int = 12
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(held, fit) row indices: the same split for the adapter and the regression."""
    order = np.random.default_rng(seed).permutation(rows).astype(np.int64)
    cut = int(rows * holdout)
    return order[:cut], order[cut:]


def train(
    x: Floats,
    y: npt.NDArray[np.int64],
    embedder: str,
    data_sha256: str,
    adapter: Adapter | None = None,
) -> tuple[RouterModel, float]:
    """Fit on all rows; the temperature comes from a fit that did not see the held rows
    of `calibration_split` (nor did the adapter, when there is one).

    Returns the model and the held-out ECE after scaling.
    """
    require_every_tier(y)
    held, fit_rows = calibration_split(len(y))
    w, b = fit_logistic(x[fit_rows], y[fit_rows])
    logits = x[held] @ w + b
    temperature = fit_temperature(logits, y[held])
    ece = expected_calibration_error(softmax(logits / temperature), y[held])
    w, b = fit_logistic(x, y)
    return RouterModel(w, b, temperature, embedder, data_sha256, len(y), adapter), ece
