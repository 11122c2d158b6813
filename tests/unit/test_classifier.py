"""The routing cascade: stages and their order, the shipped patterns, prototype files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from atlas.llm.classifier import (
    AGENT,
    HAIKU,
    LOCAL,
    Classifier,
    Prototype,
    embedding_tiers,
    load_prototypes,
    normalise,
)
from atlas.llm.config import RouterConfig
from atlas.settings import load_settings
from tests.unit.routing_fakes import HashedBagOfWords

ROOT = Path(__file__).resolve().parents[2]

PROTOS = [
    Prototype("turn on the kitchen lights", "local", "lights"),
    Prototype("switch off the bedroom lights", "local", "lights"),
    Prototype("explain why the sky is blue", "haiku", "explain"),
    Prototype("explain how rainbows form", "haiku", "explain"),
    Prototype("plan a trip itinerary for rome", "agent", "planning"),
    Prototype("plan a party schedule for saturday", "agent", "planning"),
]


def _config(**kw: object) -> RouterConfig:
    base = RouterConfig(
        safety_patterns=(r"\bchest (?:hurts|pain)\b",),
        local_patterns=(r"\btimer\b",),
        agent_patterns=(r"\bitinerary\b",),
        short_words=2,
        long_words=12,
        neighbours=2,
        local_threshold=0.5,
        agent_threshold=0.5,
        margin=0.1,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def shipped() -> Classifier:
    """The shipped routing.yaml patterns, without an embedding stage."""
    return Classifier(load_settings(ROOT / "config" / "atlas.yaml").router, None, [])


# --- normalisation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("Hey Atlas, what's 15% of 80?", "whats 15% of 80"),
        ("I can\u2019t breathe!!", "i cant breathe"),
        ("Atlas: set a timer for 5-minutes.", "set a timer for 5 minutes"),
        ("what is 3.5 x 4?", "what is 3.5 x 4"),
        ("what's 10 - 4", "whats 10 minus 4"),
        ("Thanks, Atlas.", "thanks"),
        ("It cost 1,000 dollars", "it cost 1000 dollars"),
    ],
)
def test_normalise(raw: str, want: str) -> None:
    assert normalise(raw) == want


# --- the cascade with a fake embedder ----------------------------------------------------


def test_safety_beats_every_other_stage() -> None:
    c = Classifier(_config(), HashedBagOfWords(), PROTOS)
    r = c.classify("my chest hurts, set a timer and plan an itinerary")
    assert (r.tier, r.stage, r.pattern) == ("agent", "safety", r"\bchest (?:hurts|pain)\b")
    assert r.reason == "safety pattern #0 matched 'chest hurts'"
    assert r.confidence == 1.0


def test_local_pattern_beats_agent_pattern_and_length() -> None:
    c = Classifier(_config(), HashedBagOfWords(), PROTOS)
    r = c.classify("set a timer while you write the itinerary " + "very " * 20)
    assert (r.tier, r.stage) == ("local", "local_pattern")


def test_agent_pattern_beats_short() -> None:
    c = Classifier(_config(), HashedBagOfWords(), PROTOS)
    r = c.classify("itinerary")
    assert (r.tier, r.stage) == ("agent", "agent_pattern")


def test_short_then_long_then_embedding() -> None:
    c = Classifier(_config(), HashedBagOfWords(), PROTOS)
    short = c.classify("Atlas, hello there!")
    assert (short.tier, short.stage) == ("local", "short")
    assert "2 words" in short.reason
    long = c.classify(" ".join(["word"] * 12))
    assert (long.tier, long.stage) == ("agent", "long")


def test_embedding_stage_picks_the_nearest_tier() -> None:
    c = Classifier(_config(), HashedBagOfWords(), PROTOS)
    r = c.classify("turn on the bedroom lights please")
    assert (r.tier, r.stage) == ("local", "embedding")
    assert r.nearest in {"turn on the kitchen lights", "switch off the bedroom lights"}
    assert r.score is not None and r.score >= 0.5
    assert r.reason.startswith("nearest local prototype '")
    agent = c.classify("please plan a trip itinerary for paris")
    # "itinerary" is an agent pattern; without that pattern the embedding decides.
    assert agent.stage == "agent_pattern"
    c2 = Classifier(_config(agent_patterns=()), HashedBagOfWords(), PROTOS)
    agent = c2.classify("please plan a trip itinerary for paris")
    assert (agent.tier, agent.stage) == ("agent", "embedding")


def test_nothing_close_falls_through_to_haiku() -> None:
    c = Classifier(_config(), HashedBagOfWords(), PROTOS)
    r = c.classify("who won the cup final in nineteen sixty six")
    assert (r.tier, r.stage) == ("haiku", "default")
    assert r.nearest is not None and r.marginal is False
    assert r.reason.startswith("no tier close enough")


def test_haiku_near_the_local_threshold_is_marginal() -> None:
    c = Classifier(_config(local_threshold=0.95, margin=0.5), HashedBagOfWords(), PROTOS)
    r = c.classify("turn on the bedroom lights please")
    assert (r.tier, r.stage, r.marginal) == ("haiku", "default", True)
    strict = Classifier(_config(local_threshold=0.95, margin=0.0), HashedBagOfWords(), PROTOS)
    assert strict.classify("turn on the bedroom lights please").marginal is False


def test_without_an_embedder_the_default_is_haiku() -> None:
    r = Classifier(_config(), None, PROTOS).classify("tell me about the roman empire")
    assert (r.tier, r.stage, r.nearest, r.score) == ("haiku", "default", None, None)
    assert r.classify_ms >= 0.0
    assert Classifier(_config(), None, PROTOS).embedder is None


def test_embedding_rule() -> None:
    rows = np.array(
        [
            [0.70, 0.60, 0.10],  # local above threshold and above haiku
            [0.70, 0.80, 0.10],  # local above threshold but haiku closer -> haiku
            [0.10, 0.90, 0.55],  # agent above its threshold wins even over haiku
            [0.62, 0.10, 0.61],  # both qualify: larger excess (local 0.12 vs agent 0.11)
            [0.40, 0.30, 0.40],  # neither
        ],
        dtype=np.float32,
    )
    assert embedding_tiers(rows, 0.5, 0.5).tolist() == [LOCAL, HAIKU, AGENT, LOCAL, HAIKU]


def test_prototype_vectors_are_cached(tmp_path: Path) -> None:
    first = HashedBagOfWords()
    Classifier(_config(), first, PROTOS, cache_dir=tmp_path)
    assert first.calls == [len(PROTOS)]
    assert len(list(tmp_path.glob("prototypes-*.npy"))) == 1
    second = HashedBagOfWords()
    c = Classifier(_config(), second, PROTOS, cache_dir=tmp_path)
    assert second.calls == []  # loaded from the cache
    assert c.classify("turn on the bedroom lights please").tier == "local"
    other = HashedBagOfWords()
    Classifier(_config(), other, [*PROTOS, Prototype("open the blinds", "local")], tmp_path)
    assert other.calls == [len(PROTOS) + 1]  # different prototypes: a new cache entry


def test_tier_scores_can_exclude_identical_prototypes() -> None:
    c = Classifier(_config(neighbours=1), HashedBagOfWords(), PROTOS)
    text = normalise(PROTOS[0].text)
    with_self, _ = c.tier_scores([text])
    without, nearest = c.tier_scores([text], exclude_identical=True)
    assert with_self[0, LOCAL] == pytest.approx(1.0)
    assert without[0, LOCAL] < 0.99
    assert nearest[0, LOCAL] == 1  # the other local prototype


# --- the shipped patterns ----------------------------------------------------------

SAFETY = [
    "my chest hurts",
    "I've got this pain in my chest",
    "my dad's chest feels really tight",
    "I can't breathe",
    "he's struggling to breathe",
    "I took too many pills",
    "my son swallowed a battery",
    "I think my toddler drank some bleach",
    "my dad fell and he's not answering",
    "grandma had a fall and can't get up",
    "he collapsed in the garden",
    "she's not breathing",
    "I think I'm having an allergic reaction",
    "my throat is swelling up",
    "her face is drooping and her speech is slurred",
    "I cut myself and it won't stop bleeding",
    "can I take ibuprofen with my blood pressure tablets",
    "how much Calpol can I give my two year old",
    "I missed a dose of my insulin",
    "the baby has a fever",
    "my stomach's been killing me all day",
    "I think my wrist is broken",
    "my son is having a seizure",
    "there's a fire in the kitchen",
    "I can smell gas",
    "the carbon monoxide alarm is going off",
    "someone's breaking in downstairs",
    "there's someone in our garden",
    "call an ambulance",
    "the police want to talk to me about my brother",
    "I've been arrested",
    "my landlord is evicting us",
    "my ex is going for custody",
    "I'm being sued",
    "do I need a lawyer",
    "I don't want to be here anymore",
    "I want to kill myself",
    "I've been thinking about ending it all",
    "everyone would be better off without me",
    "I keep hurting myself",
    "I can't take it anymore",
    "I'm thinking about suicide",
]


@pytest.mark.parametrize("text", SAFETY)
def test_safety_phrases_hit_the_safety_stage(shipped: Classifier, text: str) -> None:
    r = shipped.classify(text)
    assert (r.tier, r.stage) == ("agent", "safety"), r.reason


# Look-alikes, and where each should go instead.
LOOK_ALIKES = [
    ("kill the lights", "local", "local_pattern"),
    ("turn off the lights", "local", "local_pattern"),
    ("my chest of drawers is broken", "haiku", "default"),
    ("this traffic is killing me", "haiku", "default"),
    ("how does a timer work", "haiku", "default"),
    ("what's a good plan for dinner", "haiku", "default"),
    ("i fell asleep on the sofa last night", "haiku", "default"),
    ("how do I light a fire in the fireplace", "haiku", "default"),
    ("how much should I keep in an emergency fund", "haiku", "default"),
    ("how do snakes swallow their prey", "haiku", "default"),
    ("the stock market fell today", "haiku", "default"),
    ("what causes a stroke of lightning", "haiku", "default"),
    ("tell me about the great depression", "haiku", "default"),
    ("how do i kill a process in linux", "haiku", "default"),
    ("my phone fell in the bath", "haiku", "default"),
]


@pytest.mark.parametrize(("text", "tier", "stage"), LOOK_ALIKES)
def test_look_alikes_do_not_hit_safety(
    shipped: Classifier, text: str, tier: str, stage: str
) -> None:
    r = shipped.classify(text)
    assert r.stage != "safety", r.reason
    assert (r.tier, r.stage) == (tier, stage), r.reason


@pytest.mark.parametrize(
    "text",
    [
        "set a timer for ten minutes",
        "hey atlas, could you start a 20 minute timer",
        "cancel the timer",
        "wake me up at 7",
        "turn on the kitchen lights",
        "could you turn the heating up a bit",
        "play some jazz",
        "what time is it",
        "what's the date today",
        "good morning",
        "thanks atlas",
        "what's 15 percent of 80",
        "what's seven times eight",
        "how many grams in an ounce",
        "convert 5 miles to kilometres",
    ],
)
def test_commands_hit_local_patterns(shipped: Classifier, text: str) -> None:
    r = shipped.classify(text)
    assert (r.tier, r.stage) == ("local", "local_pattern"), r.reason


@pytest.mark.parametrize(
    "text",
    [
        "plan a week of dinners for us",
        "research the best family cars",
        "compare these two phone contracts for me",
        "can you make an itinerary for lisbon",
        "walk me through it step by step",
    ],
)
def test_planning_and_research_hit_agent_patterns(shipped: Classifier, text: str) -> None:
    r = shipped.classify(text)
    assert (r.tier, r.stage) == ("agent", "agent_pattern"), r.reason


def test_shipped_prototypes_load_and_cover_every_tier() -> None:
    rows = load_prototypes(ROOT / "config" / "prototypes.tsv")
    assert len(rows) >= 450
    assert {r.tier for r in rows} == {"local", "haiku", "agent"}
    assert {"medical", "legal", "emergency", "self_harm"} <= {r.category for r in rows}


# --- load_prototypes ------------------------------------------------------------------


def _tsv(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rows.tsv"
    p.write_text(text, encoding="utf-8")
    return p


def test_load_prototypes_reads_tier_and_category(tmp_path: Path) -> None:
    p = _tsv(
        tmp_path,
        "utterance\tnote\ttier\tcategory\n# a comment\nturn on the lights\tx\tlocal\tlights\n"
        "\nwhy is the sky blue\t\tHAIKU\t\n",
    )
    assert load_prototypes(p) == [
        Prototype("turn on the lights", "local", "lights"),
        Prototype("why is the sky blue", "haiku", None),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("utterance\tlabel\nhi\tlocal\n", "header must have"),
        ("tier\tutterance\nlocal\thi\n", "header must have"),
        ("utterance\ttier\nhello\tcloud\n", "rows.tsv:2: tier must be local, haiku or agent"),
        ("utterance\ttier\nhello\n", "rows.tsv:2: expected at least 2"),
        ("utterance\ttier\n\tlocal\n", "rows.tsv:2: empty utterance"),
        ("utterance\ttier\n", "no labelled rows"),
    ],
)
def test_load_prototypes_errors_name_file_and_line(
    tmp_path: Path, content: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as err:
        load_prototypes(_tsv(tmp_path, content))
    assert "\n" not in str(err.value)
    assert "rows.tsv" in str(err.value)


def test_load_prototypes_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing\.tsv: cannot read"):
        load_prototypes(tmp_path / "missing.tsv")
