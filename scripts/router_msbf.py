"""Microsoft Bot Framework skills' English LU utterances for the router (a dev tool).

github.com/microsoft/botframework-solutions (MIT), one copy of each file: the TypeScript
sample assistant's `deployment/resources/` (`LU/en-us/general.lu` and
`Skills/<skill>/en-us/*.lu`). LUDown: `## Intent` then `- utterance` lines; an entity
`{Name=value}` (or `{@Name=value}`, nested) keeps its value text; `>` comments, `@`/`$`
definitions and `[import](...)` lines are skipped. The tier of each intent comes from
the written rules MB1-MB7 in data/router/README.md; intents not named below are left out
(calendar and email: F1, weather: W, and each skill's "None").
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from router_sources import Row, clean, git_show

from atlas.llm.classifier import normalise

ROOT = "templates/typescript/samples/sample-assistant/deployment/resources"
FILES: Mapping[str, str] = {
    "general": "LU/en-us/general.lu",
    "music": "Skills/musicskill/en-us/MusicSkill.lu",
    "todo": "Skills/todoskill/en-us/ToDo.lu",
    "news": "Skills/newsskill/en-us/News.lu",
    "pointofinterest": "Skills/pointofinterestskill/en-us/secondary/poi_navigation_find_poi.lu",
    "pointofinterest-directions": (
        "Skills/pointofinterestskill/en-us/secondary/poi_navigation_get_directions.lu"
    ),
    "pointofinterest-parking": (
        "Skills/pointofinterestskill/en-us/secondary/poi_navigation_find_parking.lu"
    ),
    "restaurantbooking": "Skills/restaurantbookingskill/en-us/Restaurant.lu",
    "bingsearch": "Skills/bingsearchskill/en-us/BingSearchSkill.lu",
}

# (skill, intent) -> tier, by rule. Anything not listed is left out.
RULES: Mapping[tuple[str, str], str] = {
    # MB1 (as S1, F3): music played, paused, skipped, shuffled, its volume -> local.
    **{("music", i): "local" for i in ("PlayMusic", "Pause", "Exclude", "Shuffle")},
    ("music", "AdjustVolume"): "local",
    # MB2 (as H1): to-do and shopping lists, and paging through them -> local.
    **{
        ("todo", i): "local"
        for i in ("AddToDo", "DeleteToDo", "MarkToDo", "ShowToDo", "ShowNextPage")
    },
    ("todo", "ShowPreviousPage"): "local",
    # MB3 (as O1): news briefing, trending news, favourite topics -> local.
    **{
        ("news", i): "local"
        for i in ("FindArticles", "TrendingArticles", "SetFavoriteTopics", "ShowFavoriteTopics")
    },
    # MB4 (as S3): conversation control that stands on its own -> local.
    **{
        ("general", i): "local"
        for i in (
            "Cancel",
            "Confirm",
            "Reject",
            "Stop",
            "Repeat",
            "Help",
            "GoBack",
            "StartOver",
            "ShowNext",
            "ShowPrevious",
            "SelectItem",
            "SelectAny",
            "SelectNone",
            "FinishTask",
            "ReadAloud",
        )
    },
    # MB5 (as F2, Q): a question about music that plays nothing -> haiku.
    ("music", "AnswerMusicQuestion"): "haiku",
    # MB6 (S2): places, directions, parking, booking a table -> haiku (no such service).
    ("pointofinterest", "FindPointOfInterest"): "haiku",
    ("pointofinterest-directions", "GetDirections"): "haiku",
    ("pointofinterest-parking", "FindParking"): "haiku",
    ("restaurantbooking", "Reservation"): "haiku",
    # MB7 (Q): web search for facts, people and films -> haiku.
    **{("bingsearch", i): "haiku" for i in ("QueryQna", "GetCelebrityInfo", "SearchMovieInfo")},
}

# One-word utterances kept: clear commands or replies (rule MB4); other one-word rows go.
ONE_WORD = frozenset(
    {"stop", "cancel", "pause", "resume", "repeat", "help", "restart", "quit", "shuffle"}
    | {"mute", "unmute", "next", "previous", "back", "yes", "no", "confirm", "done", "finished"}
)
_ENTITY = re.compile(r"\{@?[A-Za-z_][\w.]*=([^{}=]*)\}")
_MARKUP = re.compile(r"[{}\[\]@=$<>|\\_]")
_DOUBLED = re.compile(r"\b(the|a|an|to|of|in|on|at|for)\s+\1\b")


def parse_lu(text: str) -> Iterator[tuple[str, str]]:
    """(intent, utterance) pairs of an LU file, entity values kept, markup dropped."""
    intent = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            name = line.lstrip("#").strip()
            intent = name if re.fullmatch(r"[A-Za-z]\w*", name) else ""
        elif line.startswith(("@", "$")):
            intent = ""  # entity or phrase-list definitions: their "- " lines are not utterances
        elif line.startswith("- ") and intent:
            utterance = line[2:]
            while True:  # nested entities: innermost first
                stripped = _ENTITY.sub(r"\1", utterance)
                if stripped == utterance:
                    break
                utterance = stripped
            yield intent, clean(utterance)


def keep(utterance: str) -> bool:
    """Not leftover markup, English (ASCII) only, two words or a clear one-word command."""
    if not utterance or _MARKUP.search(utterance) or not utterance.isascii():
        return False
    if _DOUBLED.search(utterance.lower()):  # the POI templates' "nearby the the junction"
        return False
    words = utterance.split()
    return len(words) >= 2 or normalise(utterance) in ONE_WORD


def rows_from_lu(skill: str, text: str) -> Iterator[Row]:
    for intent, utterance in parse_lu(text):
        tier = RULES.get((skill, intent))
        if tier and keep(utterance):
            yield utterance, tier, f"msbf:{skill.split('-')[0]}/{intent}", "botframework"


def botframework(repo: Path) -> Iterator[Row]:
    """Every kept row of the skills' English LU files (HEAD of the snapshot)."""
    for skill, path in FILES.items():
        yield from rows_from_lu(skill, git_show(repo, f"{ROOT}/{path}"))


def split(
    rows: Iterable[Row],
    rng: random.Random,
    exclude: set[str],
    per_train: int,
    per_dev: int,
) -> tuple[list[Row], list[Row], int]:
    """Train and dev rows, different utterances, capped per intent.

    A row whose normalised utterance is in `exclude` (the frozen splits, train and dev
    as built so far) is removed first; returns (train, dev, distinct utterances removed).
    Per intent, dev gets min(per_dev, a fifth) of the shuffled utterances, train the next
    per_train.
    """
    by_cat: dict[str, dict[str, Row]] = defaultdict(dict)
    removed: set[str] = set()
    taken: set[str] = set()  # one intent per utterance (the first one read wins)
    for row in rows:
        key = normalise(row[0])
        if key in exclude:
            removed.add(key)
        elif key not in taken:
            taken.add(key)
            by_cat[row[2]][key] = row
    train: list[Row] = []
    dev: list[Row] = []
    for cat in sorted(by_cat):
        keys = sorted(by_cat[cat])
        rng.shuffle(keys)
        n_dev = min(per_dev, len(keys) // 5)
        dev += [by_cat[cat][k] for k in keys[:n_dev]]
        train += [by_cat[cat][k] for k in keys[n_dev : n_dev + per_train]]
    return train, dev, len(removed)
