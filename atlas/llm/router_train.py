"""`atlas router train DATA.tsv`: fit the learned router and record it in routing.yaml.

Reads a labelled TSV (the format of `load_prototypes`), fine-tunes a low-rank adapter of
the embedder on it (atlas.llm.adapter; `epochs=0` skips that), embeds every utterance
with the adapted embedder, fits a calibrated logistic regression (atlas.llm.learned),
writes the model file (the adapter inside) atomically, and sets `model` and
`model_sha256` in the routing file. The model records the sha256 of the data it was
trained on. The rows that set the temperature are kept out of both fits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.llm.adapter import Adapter, TuneConfig, fine_tune
from atlas.llm.base import TIERS
from atlas.llm.classifier import load_prototypes, normalise
from atlas.llm.embedder import Embedder
from atlas.llm.learned import calibration_split, require_every_tier, train
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
    adapter: str
    """How the embedder was tuned, for the report."""

    def format(self) -> str:
        tiers = ", ".join(f"{t} {n}" for t, n in self.per_tier.items())
        return (
            f"trained on {self.rows} rows ({tiers}); data sha256 {self.data_sha256[:16]}...\n"
            f"{self.adapter}\n"
            f"temperature {self.temperature:.2f}, held-out calibration ECE "
            f"{self.holdout_ece:.3f}\nwrote {self.path} (sha256 {self.model_sha256[:16]}...)"
        )


def train_router(
    data: Path,
    encoder_dir: Path,
    make_embedder: Callable[[Adapter | None], Embedder],
    out: Path,
    tune: TuneConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Fit and write the model; raises ValueError (one line) on bad data.

    `encoder_dir` is the embedder's verified model folder (the adapter is fit on it);
    `make_embedder` builds the runtime embedder with an adapter merged in; `tune` None
    (or 0 epochs) fits the regression on the plain vectors.
    """
    rows = load_prototypes(data)
    data_sha = hashlib.sha256(data.read_bytes()).hexdigest()
    labels = np.array([TIERS.index(r.tier) for r in rows], dtype=np.int64)
    try:
        require_every_tier(labels)  # before minutes of fine-tuning
    except ValueError as e:
        raise ValueError(f"{data}: {e}") from None
    texts = [normalise(r.text) for r in rows]
    adapter = None
    how = "embedder not tuned (plain vectors)"
    if tune is not None and tune.epochs > 0:
        _, fit_rows = calibration_split(len(rows))
        adapter = fine_tune(
            encoder_dir,
            [texts[i] for i in fit_rows],
            labels[fit_rows].tolist(),
            len(TIERS),
            tune,
            progress,
        )
        how = (
            f"embedder adapter: rank {adapter.rank}, {tune.epochs} epoch(s) on "
            f"{len(fit_rows)} rows, sha256 {adapter.sha256[:16]}..."
        )
    embedder = make_embedder(adapter)
    model, ece = train(embedder.embed(texts), labels, embedder.name, data_sha, adapter)
    sha = model.save(out)
    per_tier: dict[str, int] = {t: int((labels == i).sum()) for i, t in enumerate(TIERS)}
    return TrainResult(out, sha, data_sha, len(rows), per_tier, model.temperature, ece, how)


def record_model(routing_yaml: Path, model_path: str, sha256: str) -> None:
    """Point routing.yaml's router at the model and its sha256."""
    # Quoted: a path may hold YAML's special characters, a hash may be all digits.
    quoted = {"model": json.dumps(model_path), "model_sha256": json.dumps(sha256)}
    set_router_values(routing_yaml, quoted)
