"""Fitting thresholds, evaluating the router, and writing thresholds back to routing.yaml."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from atlas.llm.classifier import Classifier, Prototype, load_prototypes
from atlas.llm.config import RouterConfig
from atlas.llm.embedder import MiniLMEmbedder
from atlas.llm.router_eval import FittedThresholds, evaluate, fit, write_thresholds
from atlas.settings import load_settings
from tests.unit.routing_fakes import HashedBagOfWords

ROOT = Path(__file__).resolve().parents[2]

CFG = RouterConfig(short_words=1, long_words=40, neighbours=1, margin=0.05)

# Two near-identical phrasings per intent, so leave-one-out still finds a neighbour.
ROWS = [
    Prototype("turn on the kitchen lamp now", "local", "lights"),
    Prototype("turn on the kitchen lamp please", "local", "lights"),
    Prototype("why is the winter sky so grey", "haiku", "explain"),
    Prototype("why is the summer sky so blue", "haiku", "explain"),
    Prototype("my chest hurts really badly", "agent", "medical"),
    Prototype("my chest hurts so badly", "agent", "medical"),
    Prototype("plan our family holiday to spain", "agent", "planning"),
    Prototype("plan our family holiday to italy", "agent", "planning"),
    Prototype("who painted the ceiling of the chapel", "haiku", "knowledge"),
]


def test_fit_learns_thresholds_that_route_the_rows_right() -> None:
    fitted = fit(ROWS, HashedBagOfWords(), CFG)
    assert fitted.rows == len(ROWS)
    assert (fitted.agent_missed, fitted.safety_missed) == (0, 0)
    assert fitted.correct == len(ROWS)
    config = fitted.apply(CFG)
    assert config.local_threshold == fitted.local_threshold
    c = Classifier(config, HashedBagOfWords(), ROWS)
    assert c.classify("turn on the kitchen lamp tonight").tier == "local"
    assert c.classify("my chest hurts quite badly").tier == "agent"
    assert c.classify("who wrote the famous opera carmen").tier == "haiku"


def test_fit_is_leave_one_out() -> None:
    # A row whose only match is itself must not look like a perfect prototype.
    lonely = [*ROWS, Prototype("zebra quartz xylophone", "local", "odd")]
    fitted = fit(lonely, HashedBagOfWords(), CFG)
    assert fitted.correct == len(lonely) - 1


def test_safety_misses_cost_more_than_anything_else() -> None:
    # Agent rows that look less like agent prototypes than some haiku rows do: plain
    # accuracy would give them up; the safety penalty keeps them, at haiku's expense.
    rows = [
        Prototype("sharp pain in my side", "agent", "medical"),
        Prototype("dull ache in my back", "agent", "medical"),
        Prototype("sharp pain in my side of the story", "haiku", "advice"),
        Prototype("sharp pain in my side of town", "haiku", "advice"),
        Prototype("sharp pain in my side of the road", "haiku", "advice"),
        Prototype("a side of the story", "haiku", "advice"),
    ]
    careful = fit(rows, HashedBagOfWords(), CFG)
    assert (careful.agent_missed, careful.safety_missed, careful.correct) == (0, 0, 3)
    plain = fit(rows, HashedBagOfWords(), CFG, agent_penalty=0.0, safety_penalty=0.0)
    assert (plain.safety_missed, plain.correct) == (2, 4)
    assert plain.agent_threshold > careful.agent_threshold


def test_fit_needs_rows_that_reach_the_embedding_stage() -> None:
    cfg = replace(CFG, short_words=50, long_words=60)
    with pytest.raises(ValueError, match="no labelled row reaches the embedding stage"):
        fit(ROWS, HashedBagOfWords(), cfg)


def _pattern_classifier() -> Classifier:
    cfg = RouterConfig(
        safety_patterns=(r"\bchest hurts\b",),
        local_patterns=(r"\blights?\b",),
        agent_patterns=(r"\bplan\b",),
        short_words=0,
        long_words=100,
    )
    return Classifier(cfg, None, [])


EVAL_ROWS = [
    Prototype("turn on the lights", "local", "lights"),
    Prototype("lights off", "local", "lights"),
    Prototype("set a timer", "local", "timer"),  # no pattern: goes haiku (wrong)
    Prototype("why is the sky blue", "haiku", "explain"),
    Prototype("plan a trip", "agent", "planning"),
    Prototype("my chest hurts", "agent", "medical"),
    Prototype("i took too many pills", "agent", "medical"),  # missed: haiku
    Prototype("explain the lights in the sky", "haiku", "explain"),  # -> local (wrong)
]


def test_evaluate_counts_confusion_precision_recall_and_safety() -> None:
    report = evaluate(_pattern_classifier(), EVAL_ROWS)
    assert report.rows == 8
    assert report.accuracy == pytest.approx(5 / 8)
    assert report.confusion["local"] == {"local": 2, "haiku": 1, "agent": 0}
    assert report.confusion["haiku"] == {"local": 1, "haiku": 1, "agent": 0}
    assert report.confusion["agent"] == {"local": 0, "haiku": 1, "agent": 2}
    assert report.per_tier["local"].precision == pytest.approx(2 / 3)
    assert report.per_tier["local"].recall == pytest.approx(2 / 3)
    assert report.per_tier["haiku"].precision == pytest.approx(1 / 3)
    assert report.per_tier["agent"].precision == pytest.approx(1.0)
    assert report.per_tier["agent"].recall == pytest.approx(2 / 3)
    assert report.safety_rows == 2
    assert report.safety_recall == pytest.approx(0.5)
    assert report.stages == {"local_pattern": 3, "default": 3, "agent_pattern": 1, "safety": 1}
    assert {m.text for m in report.misclassified} == {
        "set a timer",
        "i took too many pills",
        "explain the lights in the sky",
    }
    assert 0.0 <= report.p50_ms <= report.p99_ms


def test_report_as_dict_is_json_and_format_is_a_table() -> None:
    report = evaluate(_pattern_classifier(), EVAL_ROWS)
    data = json.loads(json.dumps(report.as_dict()))
    assert data["accuracy"] == 0.625
    assert data["confusion"]["agent"]["haiku"] == 1
    assert data["safety_recall"] == 0.5
    assert set(data["classify_ms"]) == {"p50", "p99"}
    assert data["misclassified"][0]["expected"] == "local"
    text = report.format()
    assert "accuracy 0.625" in text and "safety recall 0.500 (2 rows)" in text
    assert "local        0.667   0.667        3" in text
    assert "agent          0       1       2" in text


def test_evaluate_without_safety_rows_reports_none() -> None:
    report = evaluate(_pattern_classifier(), [Prototype("turn on the lights", "local")])
    assert report.safety_recall is None
    assert report.as_dict()["safety_recall"] is None
    with pytest.raises(ValueError):
        evaluate(_pattern_classifier(), [])


def _copy_config(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copy(ROOT / "config" / "routing.yaml", tmp_path / "routing.yaml")
    (tmp_path / "atlas.yaml").write_text("routing_file: routing.yaml\n", encoding="utf-8")
    return tmp_path / "atlas.yaml", tmp_path / "routing.yaml"


def test_write_thresholds_changes_only_the_numbers(tmp_path: Path) -> None:
    atlas_yaml, routing = _copy_config(tmp_path)
    before = routing.read_text(encoding="utf-8").splitlines()
    fitted = FittedThresholds(0.57, 0.33, 0.07, rows=1, correct=1, agent_missed=0, safety_missed=0)
    write_thresholds(routing, fitted)
    after = routing.read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert [b for _, b in changed if "threshold" in b] == [
        "  local_threshold: 0.57",
        "  agent_threshold: 0.33",
    ]
    assert len(changed) <= 3  # margin too, unless it already had that value
    router = load_settings(atlas_yaml).router
    assert (router.local_threshold, router.agent_threshold, router.margin) == (0.57, 0.33, 0.07)
    persona = load_settings(atlas_yaml).persona
    assert persona == load_settings(ROOT / "config" / "atlas.yaml").persona


def test_write_thresholds_refuses_bad_values_and_missing_keys(tmp_path: Path) -> None:
    _, routing = _copy_config(tmp_path)
    original = routing.read_text(encoding="utf-8")
    bad = FittedThresholds(1.5, 0.3, 0.05, rows=1, correct=1, agent_missed=0, safety_missed=0)
    with pytest.raises(ValueError, match="local_threshold must be between"):
        write_thresholds(routing, bad)
    assert routing.read_text(encoding="utf-8") == original
    routing.write_text("router:\n  local_threshold: 0.5\npersona: {}\n", encoding="utf-8")
    good = replace(bad, local_threshold=0.5)
    with pytest.raises(ValueError, match="no agent_threshold, margin line"):
        write_thresholds(routing, good)
    routing.write_text("persona: {}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no top-level 'router:' section"):
        write_thresholds(routing, good)


# --- the real embedder ------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    from atlas.modelstore import ModelError, ModelStore, load_manifest

    settings = load_settings(ROOT / "config" / "atlas.yaml")
    store = ModelStore(
        load_manifest(settings.project_path(settings.models.manifest)),
        settings.project_path(settings.models.cache_dir),
    )
    try:
        model = store.resolve(settings.router.embedder_model, "sentence-transformer", "router")
    except ModelError as e:
        pytest.skip(str(e))
    return MiniLMEmbedder(model.path)


@pytest.mark.slow
def test_heldout_accuracy_and_safety_recall_with_minilm(minilm: MiniLMEmbedder) -> None:
    settings = load_settings(ROOT / "config" / "atlas.yaml")
    prototypes = load_prototypes(settings.project_path(settings.router.prototypes))
    classifier = Classifier(settings.router, minilm, prototypes)
    report = evaluate(classifier, load_prototypes(ROOT / "tests" / "data" / "router_heldout.tsv"))
    assert report.rows >= 150
    assert report.accuracy >= 0.90, report.format()
    assert report.safety_recall is not None and report.safety_recall >= 0.98, report.format()
    # The shipped thresholds are what fitting on the prototypes gives (leave-one-out).
    fitted = fit(prototypes, minilm, settings.router)
    assert fitted.safety_missed == 0
    assert fitted.local_threshold == pytest.approx(settings.router.local_threshold, abs=0.011)
    assert fitted.agent_threshold == pytest.approx(settings.router.agent_threshold, abs=0.011)
