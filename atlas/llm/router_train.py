"""`atlas router train DATA.tsv`: fit the learned router and record it in routing.yaml.

Reads a labelled TSV (the format of `load_prototypes`), embeds every utterance with the
router's embedder, fits a calibrated logistic regression (atlas.llm.learned), writes the
model file atomically, and sets `model` and `model_sha256` in the routing file. The
model records the sha256 of the data it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.llm.base import TIERS
from atlas.llm.classifier import load_prototypes, normalise
from atlas.llm.embedder import Embedder
from atlas.llm.learned import train
from atlas.llm.router_eval import set_router_values


@dataclass(frozen=True)
class TrainResult:
    path: Path
    model_sha256: str
    data_sha256: str
    rows: int
    per_tier: dict[str, int]
    temperature: float
    holdout_ece: float
    """ECE on the 20% of rows the temperature was fit on (not seen by that fit)."""

    def format(self) -> str:
        tiers = ", ".join(f"{t} {n}" for t, n in self.per_tier.items())
        return (
            f"trained on {self.rows} rows ({tiers}); data sha256 {self.data_sha256[:16]}...\n"
            f"temperature {self.temperature:.2f}, held-out calibration ECE "
            f"{self.holdout_ece:.3f}\nwrote {self.path} (sha256 {self.model_sha256[:16]}...)"
        )


def train_router(data: Path, embedder: Embedder, out: Path) -> TrainResult:
    """Fit and write the model; raises ValueError (one line) on bad data."""
    rows = load_prototypes(data)
    data_sha = hashlib.sha256(data.read_bytes()).hexdigest()
    labels = np.array([TIERS.index(r.tier) for r in rows], dtype=np.int64)
    vectors = embedder.embed([normalise(r.text) for r in rows])
    model, ece = train(vectors, labels, embedder.name, data_sha)
    sha = model.save(out)
    per_tier: dict[str, int] = {t: int((labels == i).sum()) for i, t in enumerate(TIERS)}
    return TrainResult(out, sha, data_sha, len(rows), per_tier, model.temperature, ece)


def record_model(routing_yaml: Path, model_path: str, sha256: str) -> None:
    """Point routing.yaml's router at the model and its sha256."""
    # Quoted: a path may hold YAML's special characters, a hash may be all digits.
    quoted = {"model": json.dumps(model_path), "model_sha256": json.dumps(sha256)}
    set_router_values(routing_yaml, quoted)
