"""Which tier should answer: reflex patterns first, then a learned model (or prototypes).

With a learned router model (atlas.llm.learned, the shipped default):
  1. safety reflexes   -> agent  (emergencies, self-harm: general lexicons)
  2. learned model     -> calibrated probabilities per tier; agent when its probability
     reaches `agent_probability`, local when its own reaches `local_probability`, haiku
     when it is the likeliest with at least `min_probability`, else `uncertain_tier`
Without one (no model configured, or it failed its checks) the older cascade runs:
  1. safety patterns   -> agent  (medical, legal trouble, emergencies, self-harm)
  2. local patterns    -> local  (commands, timers, time/date, greetings, arithmetic)
  3. agent patterns    -> agent  (planning, research, analysis)
  4. very short        -> local
  5. very long         -> agent
  6. embedding: mean similarity of the k nearest prototypes of each tier, against the
     per-tier thresholds (fit by `atlas router fit`)
  7. otherwise         -> haiku
Patterns are matched on the normalised text (see `normalise`), case-insensitively.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
import structlog

from atlas.llm.base import TIERS, Tier
from atlas.llm.config import RouterConfig
from atlas.llm.embedder import Embedder, Vectors
from atlas.llm.learned import RouterModel

log = structlog.get_logger("atlas.llm.classifier")

Stage = Literal[
    "safety",
    "local_pattern",
    "agent_pattern",
    "short",
    "long",
    "embedding",
    "default",
    "learned",
    "uncertain",
]
LOCAL, HAIKU, AGENT = 0, 1, 2
"""Column order of per-tier score arrays (the order of `TIERS`)."""

_WAKE_PHRASE = re.compile(r"\b(?:(?:hey|hi|ok|okay|yo)\s+)?atlas\b")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u00d7": "*", "\u00f7": "/"})
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d{3}\b)")
_SPACED_SIGN = re.compile(r"(?<=\d)\s*([-+*/x])\s*(?=\d)")
_LONE_DOT_DASH = re.compile(r"(?<!\d)[.-]|[.-](?!\d)")
_OTHER = re.compile(r"[^a-z0-9%+*/=^.\- ]+")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lowercase, drop the wake word and punctuation; keep digits and arithmetic signs.

    "Hey Atlas, what's 15% of 80?" -> "whats 15% of 80". Apostrophes are dropped, not
    spaced, so patterns say "cant", "dont", "im" whether or not the transcriber wrote
    them; dots and dashes stay only next to digits ("2.5", "5-3").
    """
    t = text.lower().translate(_APOSTROPHES)
    t = _WAKE_PHRASE.sub(" ", t)
    t = _DIGIT_COMMA.sub("", t).replace("'", "")
    t = _SPACED_SIGN.sub(r" \1 ", t).replace(" - ", " minus ")
    t = _OTHER.sub(" ", t)
    t = _LONE_DOT_DASH.sub(" ", t)
    return _SPACES.sub(" ", t).strip()


@dataclass(frozen=True)
class Prototype:
    """A labelled utterance (prototype for the embedding stage, or an eval row)."""

    text: str
    tier: Tier
    category: str | None = None


@dataclass(frozen=True)
class Classification:
    tier: Tier
    stage: Stage
    reason: str
    """One human-readable line: what decided, and why."""
    pattern: str | None = None
    nearest: str | None = None
    """The nearest prototype of the deciding tier (embedding/default stages)."""
    score: float | None = None
    """Embedding stage: the chosen tier's mean top-k similarity; default: the local one."""
    confidence: float = 0.5
    marginal: bool = False
    """A haiku decision close to the local threshold: thrifty mode may answer locally."""
    classify_ms: float = 0.0


def load_prototypes(path: Path) -> list[Prototype]:
    """Read a labelled TSV: header row; first column the utterance, a `tier` column.

    An optional `category` column is kept; other columns are ignored. Blank lines and
    lines starting with '#' are skipped. Problems raise one-line ValueErrors.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read labelled utterances ({type(e).__name__})") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, ln) for n, ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{path}: empty file, expected a header with a 'tier' column")
    header_no, header_line = lines[0]
    header = [h.strip().lower() for h in next(csv.reader([header_line], delimiter="\t"))]
    if "tier" not in header or header.index("tier") == 0:
        raise ValueError(
            f"{path}:{header_no}: header must have the utterance first and a 'tier' column"
        )
    tier_col = header.index("tier")
    cat_col = header.index("category") if "category" in header else None
    rows: list[Prototype] = []
    for n, line in lines[1:]:
        cells = line.split("\t")
        if len(cells) <= tier_col:
            raise ValueError(f"{path}:{n}: expected at least {tier_col + 1} tab-separated columns")
        utterance, tier = cells[0].strip(), cells[tier_col].strip().lower()
        if not utterance:
            raise ValueError(f"{path}:{n}: empty utterance")
        if tier not in ("local", "haiku", "agent"):
            raise ValueError(f"{path}:{n}: tier must be local, haiku or agent, got {tier!r}")
        category = None
        if cat_col is not None and cat_col < len(cells):
            category = cells[cat_col].strip() or None
        rows.append(Prototype(utterance, cast(Tier, tier), category))
    if not rows:
        raise ValueError(f"{path}: no labelled rows after the header")
    return rows


def embedding_tiers(
    scores: npt.NDArray[np.float32], local_threshold: float, agent_threshold: float
) -> npt.NDArray[np.int64]:
    """The embedding stage's rule, vectorised so `fit` searches exactly what runs.

    `scores` has one row per query: the mean top-k similarity to the local, haiku and
    agent prototypes. Local needs its threshold AND must beat the haiku prototypes (a
    question that merely resembles a command should not get the small model). Agent needs
    only its threshold: safety-leaning requests must not be lost to a close haiku match.
    When both qualify, the larger excess over its threshold wins (ties go to agent).
    Returns column indices (LOCAL, HAIKU, AGENT).
    """
    s = np.atleast_2d(scores)
    local_ok = (s[:, LOCAL] >= local_threshold) & (s[:, LOCAL] >= s[:, HAIKU])
    agent_ok = s[:, AGENT] >= agent_threshold
    local_wins = (s[:, LOCAL] - local_threshold) > (s[:, AGENT] - agent_threshold)
    out = np.full(s.shape[0], HAIKU, dtype=np.int64)
    out[agent_ok] = AGENT
    out[local_ok & (~agent_ok | local_wins)] = LOCAL
    return out


def learned_tier(p: npt.NDArray[np.float32], cfg: RouterConfig) -> tuple[Tier, Stage, str]:
    """The learned stage's rule on one row of probabilities (local, haiku, agent).

    Agent first, at a lower bar than the others: a missed safety or deep request costs
    more than an unneeded careful answer. Local needs its own, higher bar: a cloud
    request answered by the small model is the mistake a person notices.
    """
    if float(p[AGENT]) >= cfg.agent_probability:
        return "agent", "learned", f"agent probability >= {cfg.agent_probability:.2f}"
    if float(p[LOCAL]) >= cfg.local_probability:
        return "local", "learned", f"local probability >= {cfg.local_probability:.2f}"
    if int(np.argmax(p)) == HAIKU and float(p[HAIKU]) >= cfg.min_probability:
        return "haiku", "learned", f"haiku likeliest, >= {cfg.min_probability:.2f}"
    tier = cast(Tier, cfg.uncertain_tier)
    return tier, "uncertain", f"no tier sure enough: the configured {tier}"


def learned_tiers(p: npt.NDArray[np.float32], cfg: RouterConfig) -> npt.NDArray[np.int64]:
    """`learned_tier`'s rule on many rows of probabilities (column indices), so that a
    threshold search (scripts/router_thresholds.py) scores exactly what runs."""
    p = np.atleast_2d(p)
    out = np.full(p.shape[0], TIERS.index(cast(Tier, cfg.uncertain_tier)), dtype=np.int64)
    out[(p.argmax(axis=1) == HAIKU) & (p[:, HAIKU] >= cfg.min_probability)] = HAIKU
    out[p[:, LOCAL] >= cfg.local_probability] = LOCAL
    out[p[:, AGENT] >= cfg.agent_probability] = AGENT
    return out


def _confidence(gap: float) -> float:
    """0.5 at a threshold, rising to 1.0 at 0.2 beyond it."""
    return round(0.5 + 0.5 * min(1.0, max(0.0, gap / 0.2)), 3)


class _Patterns:
    """Compiled patterns of one stage, remembered with their source for the reason line."""

    def __init__(self, sources: Sequence[str]) -> None:
        self._compiled = [(src, re.compile(src, re.IGNORECASE)) for src in sources]

    def first_match(self, text: str) -> tuple[str, str] | None:
        """(pattern source, a readable "pattern #i matched '...'" phrase) of the first hit."""
        for i, (src, rx) in enumerate(self._compiled):
            if m := rx.search(text):
                return src, f"pattern #{i} matched '{m.group(0).strip()[:60]}'"
        return None


class Classifier:
    """The routing cascade. Build once at start (prototype vectors are computed here)."""

    def __init__(
        self,
        config: RouterConfig,
        embedder: Embedder | None,
        prototypes: Sequence[Prototype],
        cache_dir: Path | None = None,
        model: RouterModel | None = None,
    ) -> None:
        self._config = config
        self._embedder = embedder
        self._model = model if embedder is not None else None
        self._safety = _Patterns(config.safety_patterns)
        self._local = _Patterns(config.local_patterns)
        self._agent = _Patterns(config.agent_patterns)
        self._texts = [normalise(p.text) for p in prototypes]
        self._raw = [p.text for p in prototypes]
        self._tiers = np.array([TIERS.index(p.tier) for p in prototypes], dtype=np.int64)
        self._vectors: Vectors | None = None
        if embedder is not None and prototypes and self._model is None:
            self._vectors = self._prototype_vectors(embedder, cache_dir)

    @property
    def config(self) -> RouterConfig:
        return self._config

    @property
    def embedder(self) -> Embedder | None:
        return self._embedder

    @property
    def model(self) -> RouterModel | None:
        return self._model

    def classify(self, text: str) -> Classification:
        started = time.perf_counter()
        result = self._classify(normalise(text))
        ms = round((time.perf_counter() - started) * 1000.0, 3)
        return Classification(**{**result.__dict__, "classify_ms": ms})

    def rule_stage(self, normalised: str) -> Classification | None:
        """Stages 1-5 (patterns and length) on normalised text; None: go on to embeddings."""
        cfg = self._config
        if hit := self._safety.first_match(normalised):
            return Classification("agent", "safety", f"safety {hit[1]}", hit[0], None, None, 1.0)
        if hit := self._local.first_match(normalised):
            return Classification(
                "local", "local_pattern", f"local {hit[1]}", hit[0], None, None, 0.95
            )
        if hit := self._agent.first_match(normalised):
            return Classification(
                "agent", "agent_pattern", f"agent {hit[1]}", hit[0], None, None, 0.9
            )
        words = len(normalised.split())
        if words <= cfg.short_words:
            reason = f"short request ({words} words <= {cfg.short_words})"
            return Classification("local", "short", reason, confidence=0.7)
        if words >= cfg.long_words:
            reason = f"long request ({words} words >= {cfg.long_words})"
            return Classification("agent", "long", reason, confidence=0.7)
        return None

    def tier_scores(
        self, normalised: Sequence[str], exclude_identical: bool = False
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Per query: mean top-k similarity per tier (n, 3), and each tier's nearest index.

        `exclude_identical` hides prototypes whose normalised text equals the query, so
        fitting on the prototype file itself is leave-one-out (nothing matches itself).
        A tier without prototypes scores -1 and its nearest index is -1.
        """
        if self._embedder is None or self._vectors is None:
            raise ValueError("the classifier has no embedder or no prototypes")
        queries = self._embedder.embed(list(normalised))
        sims = queries @ self._vectors.T
        if exclude_identical:
            same: dict[str, list[int]] = {}
            for i, query in enumerate(normalised):
                same.setdefault(query, []).append(i)
            for j, proto in enumerate(self._texts):
                if proto in same:
                    sims[same[proto], j] = -np.inf
        k = self._config.neighbours
        scores = np.full((len(normalised), len(TIERS)), -1.0, dtype=np.float32)
        nearest = np.full((len(normalised), len(TIERS)), -1, dtype=np.int64)
        for t in range(len(TIERS)):
            cols = np.flatnonzero(self._tiers == t)
            if cols.size == 0:
                continue
            sub = sims[:, cols]
            kk = min(k, cols.size)
            top = -np.sort(-sub, axis=1)[:, :kk]
            finite = np.isfinite(top)
            count = finite.sum(axis=1)
            total = np.where(finite, top, 0.0).sum(axis=1)
            scores[:, t] = np.where(count > 0, total / np.maximum(count, 1), -1.0)
            nearest[:, t] = cols[np.argmax(sub, axis=1)]
        return scores, nearest

    def probabilities(self, normalised: Sequence[str]) -> npt.NDArray[np.float32]:
        """(n, 3) calibrated tier probabilities from the learned model."""
        if self._model is None or self._embedder is None:
            raise ValueError("the classifier has no learned model")
        return self._model.probabilities(self._embedder.embed(list(normalised)))

    def _learned(self, t: str) -> Classification:
        cfg = self._config
        if hit := self._safety.first_match(t):
            return Classification("agent", "safety", f"safety {hit[1]}", hit[0], None, None, 1.0)
        p = self.probabilities([t])[0]
        tier, stage, rule = learned_tier(p, cfg)
        shown = ", ".join(f"{name} {float(p[i]):.2f}" for i, name in enumerate(TIERS))
        col = TIERS.index(tier)
        return Classification(
            tier,
            stage,
            f"{rule} ({shown})",
            score=round(float(p[col]), 4),
            confidence=round(float(p[col]), 3),
            marginal=tier == "haiku" and float(p[LOCAL]) >= cfg.local_probability - cfg.margin,
        )

    def _classify(self, t: str) -> Classification:
        if self._model is not None:
            return self._learned(t)
        if (decided := self.rule_stage(t)) is not None:
            return decided
        if self._vectors is None:
            return Classification("haiku", "default", "no embedding stage: default tier")
        cfg = self._config
        scores, nearest = self.tier_scores([t])
        s, near = scores[0], nearest[0]
        col = int(embedding_tiers(scores, cfg.local_threshold, cfg.agent_threshold)[0])
        if col != HAIKU:
            tier = TIERS[col]
            th = cfg.local_threshold if col == LOCAL else cfg.agent_threshold
            proto = self._raw[int(near[col])]
            reason = (
                f"nearest {tier} prototype '{proto}' "
                f"({float(s[col]):.2f} top-{cfg.neighbours} mean >= {th:.2f})"
            )
            return Classification(
                tier,
                "embedding",
                reason,
                None,
                proto,
                round(float(s[col]), 4),
                _confidence(float(s[col]) - th),
            )
        best = int(np.argmax(s))
        nearest_any = self._raw[int(near[best])] if near[best] >= 0 else None
        local_score = float(s[LOCAL])
        marginal = local_score >= cfg.local_threshold - cfg.margin
        reason = (
            f"no tier close enough: local {local_score:.2f} (needs {cfg.local_threshold:.2f} "
            f"and haiku's {float(s[HAIKU]):.2f}), agent {float(s[AGENT]):.2f} "
            f"(needs {cfg.agent_threshold:.2f}); nearest '{nearest_any}'"
        )
        gap = min(cfg.local_threshold - local_score, cfg.agent_threshold - float(s[AGENT]))
        return Classification(
            "haiku",
            "default",
            reason,
            None,
            nearest_any,
            round(local_score, 4),
            _confidence(gap),
            marginal,
        )

    def _prototype_vectors(self, embedder: Embedder, cache_dir: Path | None) -> Vectors:
        digest = hashlib.sha256(embedder.name.encode())
        for text in self._texts:
            digest.update(b"\n" + text.encode())
        cache = cache_dir / f"prototypes-{digest.hexdigest()[:24]}.npy" if cache_dir else None
        if cache is not None and cache.is_file():
            try:
                vectors = np.load(cache, allow_pickle=False).astype(np.float32)
                if vectors.shape == (len(self._texts), embedder.dim):
                    return cast(Vectors, vectors)
            except (OSError, ValueError) as e:
                log.warning("classifier.cache_unreadable", path=str(cache), error=str(e))
        started = time.perf_counter()
        vectors = embedder.embed(self._texts)
        log.info(
            "classifier.prototypes_embedded",
            count=len(self._texts),
            ms=round((time.perf_counter() - started) * 1000.0, 1),
        )
        if cache is not None:
            _save_atomic(cache, vectors)
        return vectors


def _save_atomic(path: Path, vectors: Vectors) -> None:
    """A cache is an optimisation: failing to write one is logged, never raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, vectors, allow_pickle=False)
        os.replace(tmp, path)
    except OSError as e:
        log.warning("classifier.cache_unwritable", path=str(path), error=str(e))
