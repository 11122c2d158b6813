"""The learned router: fitting, calibration, the model file, and the decision rule."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from atlas.llm.base import TIERS
from atlas.llm.classifier import Classifier, learned_tier, learned_tiers
from atlas.llm.config import RouterConfig
from atlas.llm.learned import (
    RouterModel,
    RouterModelError,
    expected_calibration_error,
    fit_logistic,
    load_model,
    softmax,
    train,
)
from tests.unit.routing_fakes import HashedBagOfWords

ROWS = {
    "local": [
        "turn on the kitchen lights",
        "switch off the lamp",
        "turn the lights off",
        "dim the lights",
        "pause the music",
        "play the radio",
        "set a timer",
        "stop the timer",
    ],
    "haiku": [
        "what is the capital of peru",
        "who wrote hamlet",
        "what is a black hole",
        "why is the sky blue",
        "who painted the mona lisa",
        "what is the tallest mountain",
        "how does a rainbow form",
        "what is the speed of light",
    ],
    "agent": [
        "my knee has been aching for days",
        "my back hurts when i walk",
        "i have a sharp pain in my side",
        "my head hurts every morning",
        "my ankle is swollen and hurts",
        "my wrist aches when i type",
        "my foot hurts since tuesday",
        "my neck has been hurting all week",
    ],
}


def _data() -> tuple[np.ndarray, np.ndarray, HashedBagOfWords]:
    emb = HashedBagOfWords()
    texts = [t for tier in TIERS for t in ROWS[tier]]
    labels = np.array([TIERS.index(tier) for tier in TIERS for _ in ROWS[tier]])
    return emb.embed(texts), labels, emb


@pytest.fixture(scope="module")
def model() -> RouterModel:
    x, y, emb = _data()
    m, _ = train(x, y, emb.name, "0" * 64)
    return m


def test_fit_logistic_separates_the_training_rows() -> None:
    x, y, _ = _data()
    w, b = fit_logistic(x, y)
    assert (softmax(x @ w + b).argmax(axis=1) == y).all()


def test_probabilities_are_distributions(model: RouterModel) -> None:
    x, _, _ = _data()
    p = model.probabilities(x)
    assert p.shape == (len(x), 3)
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert model.temperature > 0 and model.rows == len(x)


def test_train_needs_every_tier() -> None:
    x, y, emb = _data()
    keep = y != 2
    with pytest.raises(ValueError, match="all three tiers"):
        train(x[keep], y[keep], emb.name, "x")


def test_expected_calibration_error() -> None:
    y = np.array([0, 1, 2, 0])
    assert expected_calibration_error(np.eye(3, dtype=np.float32)[y], y) == pytest.approx(0.0)
    # Always 90% sure, right half the time: 0.4 off.
    p = np.array([[0.9, 0.05, 0.05]] * 4, dtype=np.float32)
    assert expected_calibration_error(p, np.array([0, 0, 1, 1])) == pytest.approx(0.4, abs=1e-6)


def test_model_file_round_trip_and_sha256(model: RouterModel, tmp_path: Path) -> None:
    path = tmp_path / "router.npz"
    sha = model.save(path)
    loaded = load_model(path, sha)
    assert np.array_equal(loaded.weights, model.weights)
    assert (loaded.embedder, loaded.data_sha256, loaded.temperature) == (
        model.embedder,
        model.data_sha256,
        model.temperature,
    )
    with pytest.raises(RouterModelError, match="does not match") as e:
        load_model(path, "f" * 64)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "cannot read"), (b"not a zip", "not a router model")],
    ids=["missing", "garbage"],
)
def test_unusable_model_files_are_one_line_errors(
    tmp_path: Path, content: bytes | None, match: str
) -> None:
    path = tmp_path / "router.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RouterModelError, match=match) as e:
        load_model(path, "")
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def _p(local: float, haiku: float, agent: float) -> np.ndarray:
    return np.array([local, haiku, agent], dtype=np.float32)


@pytest.mark.parametrize(
    ("p", "tier", "stage"),
    [
        (_p(0.30, 0.30, 0.40), "agent", "learned"),  # agent wins at a lower bar
        (_p(0.62, 0.10, 0.28), "local", "learned"),
        (_p(0.55, 0.40, 0.05), "haiku", "uncertain"),  # local not sure enough
        (_p(0.20, 0.70, 0.10), "haiku", "learned"),
        (_p(0.45, 0.46, 0.09), "haiku", "uncertain"),
    ],
)
def test_learned_rule(p: np.ndarray, tier: str, stage: str) -> None:
    cfg = RouterConfig(agent_probability=0.35, local_probability=0.6, min_probability=0.5)
    assert learned_tier(p, cfg)[:2] == (tier, stage)


def test_uncertain_goes_to_the_configured_tier() -> None:
    cfg = RouterConfig(uncertain_tier="local")
    assert learned_tier(_p(0.45, 0.46, 0.09), cfg)[:2] == ("local", "uncertain")


@pytest.mark.parametrize("uncertain", ["haiku", "local"])
def test_the_vectorised_rule_is_the_rule(uncertain: str) -> None:
    cfg = RouterConfig(
        agent_probability=0.25,
        local_probability=0.78,
        min_probability=0.5,
        uncertain_tier=uncertain,
    )
    p = np.random.default_rng(3).dirichlet((0.7, 0.7, 0.7), size=2000).astype(np.float32)
    tiers = learned_tiers(p, cfg)
    assert [("local", "haiku", "agent")[t] for t in tiers] == [learned_tier(r, cfg)[0] for r in p]


def _classifier(model: RouterModel, **changes: object) -> Classifier:
    cfg = replace(RouterConfig(safety_patterns=(r"\bsuicid",)), **changes)  # type: ignore[arg-type]
    return Classifier(cfg, HashedBagOfWords(), [], model=model)


def test_classifier_uses_the_model_after_the_reflexes(model: RouterModel) -> None:
    c = _classifier(model)
    assert (c.classify("i am thinking about suicide").stage) == "safety"
    r = c.classify("hey atlas, turn on the lights")
    assert (r.tier, r.stage) == ("local", "learned")
    assert 0.6 <= r.confidence <= 1.0 and "local" in r.reason
    r = c.classify("my shoulder has been aching for days")
    assert (r.tier, r.stage) == ("agent", "learned")
    r = c.classify("what is a rainbow")
    assert r.tier == "haiku" and r.classify_ms >= 0


def test_a_haiku_decision_near_local_is_marginal(model: RouterModel) -> None:
    c = _classifier(model, local_probability=0.99, margin=0.99, min_probability=0.0)
    r = c.classify("what is the capital of france")
    assert r.tier == "haiku" and r.marginal


def test_without_an_embedder_the_model_is_ignored(model: RouterModel) -> None:
    c = Classifier(RouterConfig(), None, [], model=model)
    assert c.model is None and c.classify("turn on the lights").stage != "learned"
