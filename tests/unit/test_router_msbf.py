"""The Bot Framework LU reader behind the router's training data (scripts/router_msbf.py)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.conftest import script_module

LU = """
> LUIS application information
> !# @app.name = MusicSkill
## Pause
- can you pause please?
- pause
- hold
## PlayMusic
- {@MusicParent={@beforeMusic=can you play} {@music=adeles} {@afterMusic=latest album}}
- play {@music=} now
- play some {music}
## None
- all of them

@ phraselist StopList(interchangeable) =
- halt, cease
## AnswerMusicQuestion
- have {artist=the killers} won any music awards
- what classic rock bands have i got to play_music from
## Made Up
- this heading is no intent name
"""

TODO = """
[ShowToDo](./secondary/show.lu)
## AddToDo
- add {TaskContent=buy milk} to my {ListType=shopping} list
- añade leche a mi lista
- is there a good place nearby the the junction
$ListType:shopping=
- grocery list
"""


@pytest.fixture
def msbf(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    yield from script_module("router_msbf", monkeypatch)


def test_entities_keep_their_text_and_markup_and_definitions_are_dropped(
    msbf: ModuleType,
) -> None:
    pairs = list(msbf.parse_lu(LU))
    assert ("PlayMusic", "can you play adeles latest album") in pairs
    assert ("Pause", "can you pause please?") in pairs
    assert not any("halt" in u for _, u in pairs)  # a phrase list, not an utterance
    assert not any(i == "" or " " in i for i, _ in pairs)
    assert ("AddToDo", "add buy milk to my shopping list") in list(msbf.parse_lu(TODO))


def test_rules_tiers_and_filters(msbf: ModuleType) -> None:
    rows = list(msbf.rows_from_lu("music", LU))
    assert (
        "can you play adeles latest album",
        "local",
        "msbf:music/PlayMusic",
        "botframework",
    ) in (rows)
    texts = [r[0] for r in rows]
    assert "pause" in texts  # a clear one-word command
    assert "hold" not in texts  # one word, not on the list
    assert "all of them" not in texts  # None is left out
    assert not any("{" in t or "_" in t for t in texts)  # leftover markup
    assert ("have the killers won any music awards", "haiku") in [(r[0], r[1]) for r in rows]
    todo = list(msbf.rows_from_lu("todo", TODO))
    assert [r[0] for r in todo] == ["add buy milk to my shopping list"]  # no Spanish, no "the the"
    assert not list(msbf.rows_from_lu("calendar", "## CreateCalendarEntry\n- book a meeting"))


def test_split_keeps_train_and_dev_apart_and_removes_known_rows(msbf: ModuleType) -> None:
    rows = [
        (f"play song number {i}", "local", "msbf:music/PlayMusic", "botframework")
        for i in range(30)
    ]
    rows.append(("Pause the music", "local", "msbf:music/Pause", "botframework"))
    train, dev, removed = msbf.split(rows, random.Random(5), {"pause the music"}, 20, 4)
    assert removed == 1 and len(dev) == 4 and len(train) == 20
    assert not {r[0] for r in train} & {r[0] for r in dev}
