"""Build the router's training set and its frozen evaluation set (a dev tool).

    python scripts/build_router_data.py --mirrors /path/to/mirrors

`--mirrors` holds git directories named owner+name/repo. Writes data/router/train.tsv
and dev.tsv (Home Assistant intents, Schema-Guided Dialogue, MedQuAD, WebQuestions,
OVOS/Mycroft skills, Banking77, the project's own lexicons), eval_frozen.tsv (Snips and
LiveQA-Med, sources never used for training), eval_frozen2.tsv (Almond, NQ-open,
NLU++ hotels, MeQSum), eval_frozen3.tsv (Rasa demo and masterclass, Leon, COVID-Q, K-QA)
and eval_frozen4.tsv (MindMeld blueprints, NLU Evaluation Corpora, ExpertQA): corpus
families never used for training. The rules mapping
intents to tiers are in data/router/README.md. Deterministic for a given seed and
corpus commits.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import router_frozen2 as frozen2
import router_frozen3 as frozen3
import router_frozen4 as frozen4
import router_more as more
import router_msbf as msbf
import router_own
import router_own_more as own_more
import router_sources as src

from atlas.llm.classifier import normalise

ROOT = Path(__file__).resolve().parents[1]
_REPOS = {
    "intents": "home-assistant+intents",
    "sgd": "google-research-datasets+dstc8-schema-guided-dialogue",
    "medquad": "abachaa+MedQuAD",
    "snips": "sonos+nlu-benchmark",
    "liveqa": "abachaa+LiveQA_MedicalTask_TREC2017",
    "webquestions": "brmson+dataset-factoid-webquestions",
    "banking77": "PolyAI-LDN+task-specific-datasets",  # banking_data/ only
    # eval_frozen2.tsv only: never read for training or dev.
    "almond": "stanford-oval+thingpedia-common-devices",
    "nq": "google-research-datasets+natural-questions",
    "nlupp": "PolyAI-LDN+task-specific-datasets",  # nlupp/ only
    "meqsum": "abachaa+MeQSum",
    # eval_frozen3.tsv only: never read for training or dev.
    "rasa_demo": "RasaHQ+rasa-demo",
    "rasa_masterclass": "RasaHQ+rasa-masterclass",
    "leon": "leon-ai+leon",
    "covid_q": "JerryWeiAI+COVID-Q",
    "k_qa": "Itaymanes+K-QA",
    # appended to train and dev after the frozen splits (rules MB1-MB7).
    "botframework": "microsoft+botframework-solutions",
    # eval_frozen4.tsv only: never read for training or dev.
    "mindmeld": "CiscoDevNet+mindmeld-blueprints",
    "nlu_eval": "sebischair+NLU-Evaluation-Corpora",
    "expertqa": "chaitanyamalaviya+ExpertQA",
}


def cap(rows: Iterable[src.Row], per_category: int, rng: random.Random) -> list[src.Row]:
    """At most `per_category` distinct utterances per category, chosen at random."""
    by_cat: dict[str, dict[str, src.Row]] = defaultdict(dict)
    for row in rows:
        if row[0] and len(row[0].split()) <= 40:
            by_cat[row[2]].setdefault(normalise(row[0]), row)
    out: list[src.Row] = []
    for cat in sorted(by_cat):
        keys = sorted(by_cat[cat])
        rng.shuffle(keys)
        out += [by_cat[cat][k] for k in keys[:per_category]]
    return out


def frozen_two(repo: dict[str, Path], rng: random.Random) -> list[src.Row]:
    """The second frozen split: corpora (and corpus families) never used for training."""
    almond = list(frozen2.almond(repo["almond"]))
    rows = cap((r for r in almond if r[1] == "local"), 55, rng)
    rows += cap((r for r in almond if r[1] == "haiku"), 60, rng)
    rows += cap(frozen2.nq_open(repo["nq"]), 120, rng)
    rows += cap(frozen2.nlupp_hotels(repo["nlupp"]), 90, rng)
    meq = list(frozen2.meqsum(repo["meqsum"]))
    rows += cap((r for r in meq if r[2] == "medical:meqsum-message"), 150, rng)
    rows += cap((r for r in meq if r[2] == "medical:meqsum-summary"), 75, rng)
    return rows


def _unseen(rows: Iterable[src.Row], seen: set[str]) -> list[src.Row]:
    """The rows whose utterance (after normalising) is not in `seen`."""
    return [r for r in rows if normalise(r[0]) not in seen]


def _one_per_utterance(rows: Iterable[src.Row]) -> list[src.Row]:
    """One row per utterance across a split (the first category wins)."""
    out: dict[str, src.Row] = {}
    for row in rows:
        out.setdefault(normalise(row[0]), row)
    return list(out.values())


def frozen_three(repo: dict[str, Path], rng: random.Random, seen: set[str]) -> list[src.Row]:
    """The third frozen split: corpora (and corpus families) never used for training.

    Built after train/dev and leaves them alone: a row equal (after normalising) to a
    train, dev or earlier frozen row is dropped from this split instead, before sampling.
    """
    rasa = _unseen(frozen3.rasa_demo(repo["rasa_demo"]), seen)
    rows = cap((r for r in rasa if r[1] == "local"), 10, rng)
    rows += cap((r for r in rasa if r[1] == "haiku"), 6, rng)
    rows += cap(_unseen(frozen3.rasa_masterclass(repo["rasa_masterclass"]), seen), 8, rng)
    rows += cap(_unseen(frozen3.leon(repo["leon"]), seen), 6, rng)
    covid = _unseen(frozen3.covid_q(repo["covid_q"]), seen)
    rows += cap((r for r in covid if r[1] == "agent"), 17, rng)
    rows += cap((r for r in covid if r[1] == "haiku"), 20, rng)
    rows += cap(_unseen(frozen3.k_qa(repo["k_qa"]), seen), 150, rng)
    return _one_per_utterance(rows)


def frozen_four(
    repo: dict[str, Path],
    rng: random.Random,
    earlier: set[str],
    haiku_extra: int = 0,
    agent_extra: int = 0,
) -> list[src.Row]:
    """The fourth frozen split: corpora (and corpus families) never used for training.

    A candidate equal (after normalising) to a row of an earlier frozen split is dropped
    before sampling; train and dev rows equal to a frozen4 row are removed by the caller.
    The extras raise the per-category caps of the haiku and agent rows (for a second
    sample: the first took the smaller categories' rows).
    """
    mindmeld = _unseen(frozen4.mindmeld(repo["mindmeld"]), earlier)
    rows = cap((r for r in mindmeld if r[1] == "local"), 11, rng)
    rows += cap((r for r in mindmeld if r[1] == "haiku"), 5 + haiku_extra, rng)
    rows += cap(_unseen(frozen4.nlu_evaluation_corpora(repo["nlu_eval"]), earlier), 8, rng)
    expert = _unseen(frozen4.expertqa(repo["expertqa"]), earlier)
    rows += cap((r for r in expert if r[1] == "haiku"), 3 + haiku_extra, rng)
    rows += cap((r for r in expert if r[1] == "agent"), 3 + agent_extra, rng)
    return _one_per_utterance(rows)


def _git_dir(path: Path) -> Path:
    """A bare mirror is the git directory; a clone keeps it in .git."""
    return path / ".git" if (path / ".git").is_dir() else path


def write(path: Path, rows: list[src.Row], header_note: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(f"# {header_note}\n")
        w = csv.writer(
            f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\"
        )
        w.writerow(["utterance", "tier", "category", "source"])
        w.writerows(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--out", type=Path, default=ROOT / "data" / "router")
    args = p.parse_args()
    repo = {k: _git_dir(args.mirrors / v / "repo") for k, v in _REPOS.items()}
    ovos = {m: _git_dir(args.mirrors / m / "repo") for m in more.OVOS_SKILLS}
    rng = random.Random(args.seed)

    evaluation = cap(src.snips(repo["snips"]), 150, rng)
    evaluation += cap(src.liveqa(repo["liveqa"]), 300, rng)
    evaluation2 = frozen_two(repo, random.Random(args.seed + 2))
    banned = {normalise(r[0]) for r in evaluation + evaluation2}

    train: list[src.Row] = []
    train += cap(src.home_assistant(repo["intents"], 60, rng), 60, rng)
    sgd = list(src.schema_guided(repo["sgd"], "train"))
    train += cap((r for r in sgd if r[2] != "sgd:chat"), 90, rng)
    train += cap((r for r in sgd if r[2] == "sgd:chat"), 600, rng)
    train += cap(src.medquad(repo["medquad"]), 1500, rng)
    train += cap(src.webquestions(repo["webquestions"]), 1200, rng)
    train += cap(router_own.agent_rows(rng, 1800, 900), 2000, rng)
    train += cap(router_own.haiku_rows(rng, 1500), 200, rng)
    train += cap(router_own.local_rows(), 100, rng)
    train += cap(more.ovos(ovos, 15, rng), 15, rng)
    train += cap(more.banking77(repo["banking77"], "train"), 8, rng)
    train += cap(own_more.command_rows(rng, 4000), 150, rng)
    train += cap(own_more.service_rows(rng, 3000), 150, rng)
    train += cap(own_more.symptom_rows(rng, 2000), 1200, rng)
    leaked = [r for r in train if normalise(r[0]) in banned]
    train = [r for r in train if normalise(r[0]) not in banned]
    dev = cap(src.home_assistant_tests(repo["intents"]), 20, rng)
    sgd_dev = list(src.schema_guided(repo["sgd"], "dev"))
    dev += cap((r for r in sgd_dev if r[2] != "sgd:chat"), 20, rng)
    dev += cap((r for r in sgd_dev if r[2] == "sgd:chat"), 150, rng)
    dev += cap(router_own.agent_rows(random.Random(args.seed + 1), 300, 60), 300, rng)
    dev += cap(router_own.haiku_rows(random.Random(args.seed + 1), 300), 40, rng)
    dev += cap(more.ovos_tests(ovos), 20, rng)
    dev += cap(more.banking77(repo["banking77"], "test"), 2, rng)
    dev += cap(own_more.command_rows(random.Random(args.seed + 1), 600), 40, rng)
    dev += cap(own_more.service_rows(random.Random(args.seed + 1), 400), 30, rng)
    dev += cap(own_more.symptom_rows(random.Random(args.seed + 1), 300), 150, rng)
    seen = {normalise(r[0]) for r in train} | banned
    dev = [r for r in dev if normalise(r[0]) not in seen]
    evaluation3 = frozen_three(
        repo, random.Random(args.seed + 3), seen | {normalise(r[0]) for r in dev}
    )
    # Bot Framework skills (rules MB1-MB7), appended after every frozen split with their
    # own rng: the rows above and the frozen splits are unchanged. Rows equal to a frozen,
    # train or dev row are removed; train and dev get different utterances.
    bf_train, bf_dev, bf_removed = msbf.split(
        msbf.botframework(repo["botframework"]),
        random.Random(args.seed + 5),
        seen | {normalise(r[0]) for r in dev + evaluation3},
        per_train=40,
        per_dev=8,
    )
    train += bf_train
    dev += bf_dev
    print(f"botframework: train {len(bf_train)}, dev {len(bf_dev)}, removed {bf_removed}")
    evaluation4 = frozen_four(
        repo,
        random.Random(args.seed + 4),
        {normalise(r[0]) for r in evaluation + evaluation2 + evaluation3},
    )
    frozen4_texts = {normalise(r[0]) for r in evaluation4}
    removed = [r for r in train + dev if normalise(r[0]) in frozen4_texts]
    train = [r for r in train if normalise(r[0]) not in frozen4_texts]
    dev = [r for r in dev if normalise(r[0]) not in frozen4_texts]
    # A second sample of the fourth split's corpora (other rows, another rng): a fresh
    # check of the same sources for a change chosen after the fourth split was run. Rows
    # equal to any frozen, train or dev row are dropped; train and dev are unchanged.
    evaluation4b = frozen_four(
        repo,
        random.Random(args.seed + 6),
        {normalise(r[0]) for r in train + dev + evaluation + evaluation2 + evaluation3}
        | frozen4_texts,
        haiku_extra=3,
        agent_extra=100,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "dev.tsv", dev, "development set (never trained on)")
    write(args.out / "train.tsv", train, "ATLAS router training set: see README.md")
    write(
        args.out / "eval_frozen.tsv",
        evaluation,
        "FROZEN evaluation set (Snips + LiveQA-Med): never train or tune on it",
    )
    write(
        args.out / "eval_frozen2.tsv",
        evaluation2,
        "FROZEN evaluation set 2 (Almond, NQ-open, NLU++ hotels, MeQSum): never train or "
        "tune on it, never look at a model's errors on it",
    )
    write(
        args.out / "eval_frozen3.tsv",
        evaluation3,
        "FROZEN evaluation set 3 (Rasa demo and masterclass, Leon, COVID-Q, K-QA): never "
        "train or tune on it, never look at a model's errors on it",
    )
    write(
        args.out / "eval_frozen4.tsv",
        evaluation4,
        "FROZEN evaluation set 4 (MindMeld blueprints, NLU Evaluation Corpora, ExpertQA): "
        "never train or tune on it, never look at a model's errors on it",
    )
    write(
        args.out / "eval_frozen4b.tsv",
        evaluation4b,
        "FROZEN evaluation set 4b (other rows of the fourth split's corpora): never train or "
        "tune on it, never look at a model's errors on it",
    )
    for name, rows in (
        ("train", train),
        ("dev", dev),
        ("eval", evaluation),
        ("eval2", evaluation2),
        ("eval3", evaluation3),
        ("eval4", evaluation4),
        ("eval4b", evaluation4b),
    ):
        counts: dict[str, int] = defaultdict(int)
        for r in rows:
            counts[r[1]] += 1
        print(f"{name}: {len(rows)} rows {dict(sorted(counts.items()))}")
    print(f"dropped from training (also in evaluation): {len(leaked)}")
    kinds: dict[str, int] = defaultdict(int)
    for r in removed:
        kinds[r[2]] += 1
    print(f"dropped from train/dev (also in eval_frozen4): {len(removed)} {dict(kinds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
