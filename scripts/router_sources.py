"""Read the public corpora the router's data comes from (a dev tool, never run in CI).

Each reader takes a git directory (a clone or a bare mirror) and yields
(utterance, tier, category, source) rows, with the tier given by the written rule per
intent in data/router/README.md. Files are read with `git show`, so a bare mirror works.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

Row = tuple[str, str, str, str]
"""utterance, tier, category, source"""


def git_show(repo: Path, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), "show", f"HEAD:{path}"],
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8", errors="replace")


def git_show_many(repo: Path, paths: list[str]) -> Iterator[str]:
    """The text of many files through one `git cat-file --batch` (missing ones skipped)."""
    specs = "".join(f"HEAD:{p}\n" for p in paths).encode()
    out = subprocess.run(
        ["git", "--git-dir", str(repo), "cat-file", "--batch"],
        input=specs,
        check=True,
        capture_output=True,
    ).stdout
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] != b"blob":
            continue
        size = int(header[2])
        yield out[pos : pos + size].decode("utf-8", errors="replace")
        pos += size + 1


def git_ls(repo: Path, prefix: str) -> list[str]:
    out = subprocess.run(
        ["git", "--git-dir", str(repo), "ls-tree", "-r", "--name-only", "HEAD"]
        + ([prefix] if prefix else []),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.splitlines() if line]


def clean(text: str) -> str:
    return " ".join(text.replace("\t", " ").split()).strip()


# ------------------------------------------------------------------ Home Assistant

# Values for the slots Home Assistant leaves to each home (names, areas, free text).
_SLOTS: Mapping[str, tuple[str, ...]] = {
    "name": (
        "kitchen light",
        "desk lamp",
        "tv",
        "porch light",
        "ceiling fan",
        "heater",
        "front door",
        "garage door",
        "coffee maker",
        "bedroom speaker",
        "dehumidifier",
        "christmas tree",
        "hallway light",
        "sprinkler",
        "air purifier",
        "fridge",
    ),
    "area": (
        "kitchen",
        "living room",
        "bedroom",
        "bathroom",
        "office",
        "hallway",
        "garage",
        "garden",
        "basement",
        "dining room",
        "kids room",
        "attic",
    ),
    "floor": ("upstairs", "downstairs", "first", "ground", "second"),
    "shopping_list_item": (
        "milk",
        "eggs",
        "bread",
        "apples",
        "dish soap",
        "coffee",
        "batteries",
        "toilet paper",
        "butter",
        "bananas",
    ),
    "todo_list_item": (
        "call the plumber",
        "pay the gas bill",
        "water the plants",
        "book a haircut",
        "renew the car insurance",
    ),
    "timer_name": ("pasta", "eggs", "laundry", "pizza", "tea", "oven"),
    "timer_command": ("turn off the lights", "turn on the fan", "close the blinds"),
    "message": ("dinner is ready", "time to leave", "wake up", "come downstairs"),
    "search_query": (
        "jazz",
        "the beatles",
        "bbc radio 4",
        "rain sounds",
        "taylor swift",
        "my discover weekly playlist",
        "a podcast about history",
    ),
    "zone": ("home", "work", "school", "the gym"),
    "list": ("shopping list", "grocery list", "to do list"),
}
_TOKEN = re.compile(r"\(|\)|\[|\]|\||<[^>]+>|\{[^}]+\}|[^()\[\]|<{]+")


class TemplateSampler:
    """Random expansions of hassil sentence templates: (a|b), [optional], <rule>, {list}."""

    def __init__(self, common: Mapping[str, Any], rng: random.Random) -> None:
        self._rules: dict[str, str] = dict(common.get("expansion_rules") or {})
        self._lists: dict[str, Any] = dict(common.get("lists") or {})
        self._rng = rng

    def add(self, rules: Mapping[str, str] | None, lists: Mapping[str, Any] | None) -> None:
        self._rules.update(rules or {})
        self._lists.update(lists or {})

    def sample(self, template: str, depth: int = 0) -> str:
        tokens = _TOKEN.findall(template)
        out, _ = self._seq(tokens, 0, depth)
        return clean(out.replace(";", " "))

    def _seq(self, tokens: list[str], i: int, depth: int) -> tuple[str, int]:
        """Alternatives up to a closing bracket; returns the chosen one and the index after."""
        alts: list[str] = []
        cur = ""
        while i < len(tokens):
            tok = tokens[i]
            if tok in (")", "]"):
                break
            if tok == "|":
                alts.append(cur)
                cur, i = "", i + 1
                continue
            if tok in ("(", "["):
                inner, i = self._seq(tokens, i + 1, depth)
                i += 1  # the closing bracket
                if tok == "[" and self._rng.random() < 0.5:
                    inner = ""
                cur += inner
                continue
            cur += self._atom(tok, depth)
            i += 1
        alts.append(cur)
        return self._rng.choice(alts), i

    def _atom(self, tok: str, depth: int) -> str:
        if tok.startswith("<") and depth < 12:
            rule = self._rules.get(tok[1:-1])
            return self.sample(str(rule), depth + 1) if rule is not None else ""
        if tok.startswith("{"):
            return self._value(tok[1:-1].split(":")[0], depth)
        return tok

    def _value(self, name: str, depth: int) -> str:
        if name in _SLOTS:
            return self._rng.choice(_SLOTS[name])
        spec = self._lists.get(name)
        if isinstance(spec, Mapping) and spec.get("values"):
            v = self._rng.choice(spec["values"])
            text = v.get("in", v.get("out")) if isinstance(v, Mapping) else v
            return self.sample(str(text), depth + 1)
        if isinstance(spec, Mapping) and spec.get("range"):
            r = spec["range"]
            return str(self._rng.randint(int(r.get("from", 1)), min(int(r.get("to", 100)), 90)))
        return self._rng.choice(_SLOTS["name"])


# Home Assistant intents that are questions to the cloud, not to the house: none today.
# Every HA intent is a device command, a house state question, a timer, a list, the
# time or date, or "never mind": all `local` (rule H1). Weather is left out (rule W).
_HA_SKIP = ("HassGetWeather", "HassBroadcast")


def home_assistant(repo: Path, per_intent: int, rng: random.Random) -> Iterator[Row]:
    common = yaml.safe_load(git_show(repo, "sentences/en/_common.yaml"))
    files = [p for p in git_ls(repo, "sentences/en/") if p.endswith(".yaml")]
    files = [p for p in files if "/_" not in p and p.count("/") == 2]
    for path in files:
        doc = yaml.safe_load(git_show(repo, path)) or {}
        for intent, body in (doc.get("intents") or {}).items():
            if intent in _HA_SKIP:
                continue
            blocks = [d for d in body.get("data", []) if d.get("sentences")]
            if not blocks:
                continue
            seen: set[str] = set()
            for _ in range(per_intent * 4):
                block = rng.choice(blocks)
                sampler = TemplateSampler(common, rng)
                sampler.add(doc.get("expansion_rules"), doc.get("lists"))
                sampler.add(block.get("expansion_rules"), block.get("lists"))
                text = sampler.sample(rng.choice(block["sentences"]))
                if text and text not in seen and "{" not in text:
                    seen.add(text)
                if len(seen) >= per_intent:
                    break
            for text in sorted(seen):
                yield text, "local", f"ha:{intent}", "home-assistant/intents"


# --------------------------------------------------------------- Schema-Guided Dialogue

# Rule S1: playing media and alarms are commands -> local. Rule S2: every other service
# intent (search, look up, book, buy, transfer, schedule) is an errand or a question
# ATLAS answers with advice or an honest "I cannot book that" -> haiku. Rule S3: a user
# turn that only affirms, negates, thanks or says goodbye -> local. Rule W: weather out.
_SGD_LOCAL = {"PlaySong", "PlayMedia", "PlayMovie", "AddAlarm", "GetAlarms"}
_SGD_SKIP = {"GetWeather"}
_SGD_CHAT_ACTS = {"AFFIRM", "NEGATE", "THANK_YOU", "GOODBYE", "REQ_MORE"}


def schema_guided(repo: Path, split: str) -> Iterator[Row]:
    for path in git_ls(repo, f"{split}/"):
        if not path.rsplit("/", 1)[-1].startswith("dialogues_"):
            continue
        try:
            dialogues = json.loads(git_show(repo, path))
        except subprocess.CalledProcessError:  # a snapshot may lack its largest files
            continue
        for dialogue in dialogues:
            for turn in dialogue["turns"]:
                if turn["speaker"] != "USER":
                    continue
                text = clean(turn["utterance"])
                acts = {a["act"] for f in turn["frames"] for a in f["actions"]}
                intents = {
                    a["canonical_values"][0]
                    for f in turn["frames"]
                    for a in f["actions"]
                    if a["act"] == "INFORM_INTENT" and a["canonical_values"]
                }
                if acts and acts <= _SGD_CHAT_ACTS:
                    yield text, "local", "sgd:chat", "schema-guided-dialogue"
                elif len(intents) == 1 and not intents & _SGD_SKIP:
                    intent = next(iter(intents))
                    tier = "local" if intent in _SGD_LOCAL else "haiku"
                    yield text, tier, f"sgd:{intent}", "schema-guided-dialogue"


# ---------------------------------------------------------------------------- MedQuAD

_QUESTION = re.compile(r"<Question[^>]*>(.*?)</Question>", re.S)


def medquad(repo: Path) -> Iterator[Row]:
    """Rule M: every medical question -> agent (safety-sensitive: the careful tier)."""
    paths = [p for p in git_ls(repo, "") if p.endswith(".xml")]
    for xml in git_show_many(repo, paths):
        for q in _QUESTION.findall(xml):
            yield clean(q), "agent", "medical:medquad", "MedQuAD"


# ------------------------------------------------------------- evaluation-only sources

_SNIPS_TIER = {
    "PlayMusic": "local",  # rule S1 (playing media)
    "AddToPlaylist": "local",  # rule H1 (a list command)
    "SearchCreativeWork": "haiku",  # rule S2 (look something up)
    "SearchScreeningEvent": "haiku",
    "BookRestaurant": "haiku",
    "RateBook": "haiku",  # an errand on a service ATLAS does not have
}


def snips(repo: Path) -> Iterator[Row]:
    """Snips 2017 validation files (CC0); GetWeather left out (rule W)."""
    for intent, tier in _SNIPS_TIER.items():
        base = f"2017-06-custom-intent-engines/{intent}"
        for name in (f"train_{intent}_full.json", f"validate_{intent}.json"):
            for item in json.loads(git_show(repo, f"{base}/{name}"))[intent]:
                text = clean("".join(d["text"] for d in item["data"]))
                yield text, tier, f"snips:{intent}", "snips-nlu-benchmark"


_LIVEQA = re.compile(r"<(NIST-PARAPHRASE|NLM-Summary)>(.*?)</\1>", re.S)


def liveqa(repo: Path) -> Iterator[Row]:
    """TREC 2017 LiveQA medical test questions (consumer questions, rewritten short)."""
    xml = git_show(repo, "TestDataset/TREC-2017-LiveQA-Medical-Test-Questions-w-summaries.xml")
    for kind, text in _LIVEQA.findall(xml):
        yield clean(text), "agent", f"medical:liveqa-{kind.lower()}", "LiveQA-Med-2017"


def home_assistant_tests(repo: Path) -> Iterator[Row]:
    """Home Assistant's own test sentences (a development set: rule H1, weather out)."""
    for path in git_ls(repo, "tests/en/"):
        if not path.endswith(".yaml") or "/_" in path:
            continue
        doc = yaml.safe_load(git_show(repo, path)) or {}
        for test in doc.get("tests") or []:
            intent = (test.get("intent") or {}).get("name", "")
            if intent in _HA_SKIP or not intent:
                continue
            for text in test.get("sentences") or []:
                yield clean(str(text)), "local", f"ha-test:{intent}", "home-assistant/intents"


def webquestions(repo: Path) -> Iterator[Row]:
    """Rule Q: questions of general fact (WebQuestions, CC BY 4.0) -> haiku."""
    for item in json.loads(git_show(repo, "main/trainmodel.json")):
        yield clean(item["qText"]), "haiku", "knowledge:webquestions", "WebQuestions"
