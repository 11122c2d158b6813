"""The chunker: sentence ends with lookahead, early first chunk, length cap, markdown
cleaning, and chunks that do not depend on how the text was split into deltas."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voice.chunker import MarkdownStripper, SentenceChunker, chunks, speakable
from voice.config import ChunkerConfig

DEFAULT = ChunkerConfig(first_chunk_max_words=0)  # sentence logic; max words tested apart


def run(deltas: list[str], config: ChunkerConfig = DEFAULT) -> list[str]:
    chunker = SentenceChunker(config)
    out: list[str] = []
    for delta in deltas:
        out.extend(chunker.push(delta))
    out.extend(chunker.flush())
    return out


def by_char(text: str) -> list[str]:
    return list(text)


# (deltas, expected chunks). The first chunk may end early at a comma, so most cases
# start with a short first sentence to test the rules for later chunks in isolation.
CASES: list[tuple[str, list[str], list[str]]] = [
    ("plain sentences", ["Hi. It is late. Go home."], ["Hi.", "It is late.", "Go home."]),
    ("question and bang", ["Ready? Yes! Go."], ["Ready?", "Yes!", "Go."]),
    ("decimal", ["Ok. It weighs 3.5 kg. Done."], ["Ok.", "It weighs 3.5 kg.", "Done."]),
    ("decimal split", ["Ok. It weighs 3", ".", "5 kg."], ["Ok.", "It weighs 3.5 kg."]),
    ("price", ["Ok. That is $29.95 today. Bye."], ["Ok.", "That is $29.95 today.", "Bye."]),
    ("price at end", ["Ok. It costs $29.95. Bye."], ["Ok.", "It costs $29.95.", "Bye."]),
    ("dr", ["Ok. Dr. Smith is in. Bye."], ["Ok.", "Dr. Smith is in.", "Bye."]),
    (
        "mr mrs ms",
        ["Ok. Mr. Li, Mrs. Ode and Ms. Fay came."],
        ["Ok.", "Mr. Li, Mrs. Ode and Ms. Fay came."],
    ),
    ("st", ["Ok. Go to St. Louis now."], ["Ok.", "Go to St. Louis now."]),
    ("vs", ["Ok. It was Kim vs. Lee. Kim won."], ["Ok.", "It was Kim vs. Lee.", "Kim won."]),
    ("etc", ["Ok. Eggs, milk, etc. are fine."], ["Ok.", "Eggs, milk, etc. are fine."]),
    (
        "e.g.",
        ["Ok. Some fruit, e.g. apples, is sweet."],
        ["Ok.", "Some fruit, e.g. apples, is sweet."],
    ),
    ("e.g. capital", ["Ok. Cities, e.g. Paris, are big."], ["Ok.", "Cities, e.g. Paris, are big."]),
    ("i.e.", ["Ok. The core, i.e. The Engine, runs."], ["Ok.", "The core, i.e. The Engine, runs."]),
    ("a.m.", ["Ok. Wake at 7 a.m. tomorrow. Bye."], ["Ok.", "Wake at 7 a.m. tomorrow.", "Bye."]),
    ("p.m.", ["Ok. Meet at 3 p.m. Monday please."], ["Ok.", "Meet at 3 p.m. Monday please."]),
    ("U.S.", ["Ok. The U.S. Army is large. Yes."], ["Ok.", "The U.S. Army is large.", "Yes."]),
    ("U.K.", ["Ok. In the U.K. People queue."], ["Ok.", "In the U.K. People queue."]),
    ("initials", ["Ok. J. R. R. Tolkien wrote it."], ["Ok.", "J. R. R. Tolkien wrote it."]),
    ("no. before number", ["Ok. Take bus No. 5 home."], ["Ok.", "Take bus No. 5 home."]),
    ("no. as a word", ["Ok. The answer is no. Sorry."], ["Ok.", "The answer is no.", "Sorry."]),
    ("ellipsis lower", ["Ok. Well... maybe not."], ["Ok.", "Well... maybe not."]),
    ("ellipsis upper", ["Ok. Well... Maybe not."], ["Ok.", "Well...", "Maybe not."]),
    ("unicode ellipsis", ["Ok. Hmm… Right."], ["Ok.", "Hmm…", "Right."]),
    (
        "quote closer",
        ['Ok. He said "go." Then he left.'],
        ["Ok.", 'He said "go."', "Then he left."],
    ),
    ("paren closer", ["Ok. (It works.) Good."], ["Ok.", "(It works.)", "Good."]),
    ("newline ends", ["Ok\nthen we go"], ["Ok.", "then we go"]),
    ("paragraph", ["First part.\n\nSecond part."], ["First part.", "Second part."]),
    ("period needs lookahead", ["Ok. Dr", ".", " ", "Smith."], ["Ok.", "Dr. Smith."]),
    ("url-like no split", ["Ok. Visit example.com today."], ["Ok.", "Visit example.com today."]),
    ("version", ["Ok. Python 3.11.4 is out."], ["Ok.", "Python 3.11.4 is out."]),
    ("time", ["Ok. It is 10:30 now."], ["Ok.", "It is 10:30 now."]),
    # the first chunk of an answer may end at a clause once it has 4 words
    (
        "first at comma",
        ["Well, the weather tomorrow, as far as I know, is fine. Yes, it is, really."],
        ["Well, the weather tomorrow,", "as far as I know, is fine.", "Yes, it is, really."],
    ),
    ("first comma too early", ["Yes, sir. Fine."], ["Yes, sir.", "Fine."]),
    (
        "first at colon",
        ["Here is what you need: flour and eggs."],
        ["Here is what you need:", "flour and eggs."],
    ),
    (
        "first at semicolon",
        ["It is late in the day; go home now."],
        ["It is late in the day;", "go home now."],
    ),
    (
        "first at em dash",
        ["That is a fine question—one I like."],
        ["That is a fine question,", "one I like."],
    ),
    (
        "first at spaced dash",
        ["That is a fine question - one I like."],
        ["That is a fine question,", "one I like."],
    ),
    (
        "hyphen is no dash",
        ["A well-known and often-cited fact."],
        ["A well-known and often-cited fact."],
    ),
    ("number range", ["From 1990–2000 it rained a lot."], ["From 1990–2000 it rained a lot."]),
    ("thousands", ["We have 1,000,000 apples and pears."], ["We have 1,000,000 apples and pears."]),
    (
        "only the first chunk",
        ["Good. Then, after that, we wait, and then we go."],
        ["Good.", "Then, after that, we wait, and then we go."],
    ),
    # never empty or punctuation-only
    ("punct only", ["... !!! ?"], []),
    ("empty deltas", ["", "", ""], []),
    ("whitespace", ["   \n\n  "], []),
    ("stray punct chunk", ["Ok. . . Right."], ["Ok.", "Right."]),
    # markdown
    ("bold", ["Ok. This is **very** good."], ["Ok.", "This is very good."]),
    ("bold split", ["Ok. This is **ve", "ry** go", "od."], ["Ok.", "This is very good."]),
    ("bold split marker", ["Ok. This is *", "*very*", "* good."], ["Ok.", "This is very good."]),
    ("italic", ["Ok. This is *quite* _nice_."], ["Ok.", "This is quite nice."]),
    ("inline code", ["Ok. Run `ls -l` now."], ["Ok.", "Run ls -l now."]),
    ("snake case", ["Ok. Set max_tokens high."], ["Ok.", "Set max tokens high."]),
    ("heading", ["## Ingredients\nYou need eggs."], ["Ingredients.", "You need eggs."]),
    (
        "heading split",
        ["#", "# Ingre", "dients\nYou need eggs."],
        ["Ingredients.", "You need eggs."],
    ),
    ("quote", ["> To be or not.\nSaid him."], ["To be or not.", "Said him."]),
    ("bullets", ["You need:\n- eggs\n- milk\n* flour"], ["You need:", "eggs.", "milk.", "flour"]),
    ("numbered", ["Steps:\n1. Mix it\n2) Bake it\n"], ["Steps:", "Mix it.", "Bake it."]),
    (
        "numbered split",
        ["Steps:\n1", ".", " Mix it\n1", "0. Bake it"],
        ["Steps:", "Mix it.", "Bake it"],
    ),
    ("decimal line start", ["3.5 liters is plenty."], ["3.5 liters is plenty."]),
    ("year line start", ["1999 was a good year."], ["1999 was a good year."]),
    ("negative line start", ["-5 degrees tonight."], ["-5 degrees tonight."]),
    ("bold line start", ["**Note:** it is late."], ["Note: it is late."]),
    (
        "nested list",
        ["Items:\n  - one thing\n    - two things"],
        ["Items:", "one thing.", "two things"],
    ),
    ("rule", ["Ok.\n---\nNext."], ["Ok.", "Next."]),
    ("table", ["| Name | Age |\n|---|:---:|\n| Bob | 42 |\n"], ["Name, Age.", "Bob, 42."]),
    ("link", ["Ok. See [the docs](https://x.org/a_b) now."], ["Ok.", "See the docs now."]),
    (
        "link split",
        ["Ok. See [the do", "cs](https://x.or", "g/a(b)) now."],
        ["Ok.", "See the docs now."],
    ),
    ("image", ["Ok. ![A cat](cat.png) Nice."], ["Ok.", "A cat Nice."]),
    (
        "code block",
        ["Try this:\n```python\nprint('a. B')\nx = 1\n```\nThat is all."],
        ["Try this:", "I'll skip reading out the code.", "That is all."],
    ),
    (
        "code block split",
        ["Try this:\n``", "`py\nprint('a. B')\n`", "``\nThat is all."],
        ["Try this:", "I'll skip reading out the code.", "That is all."],
    ),
    (
        "unclosed code",
        ["Try this:\n```\nrm -rf /tmp/x. Yes"],
        ["Try this:", "I'll skip reading out the code."],
    ),
    (
        "tilde fence",
        ["Ok.\n~~~\ncode here\n~~~\nDone."],
        ["Ok.", "I'll skip reading out the code.", "Done."],
    ),
    (
        "bare url",
        ["Ok. Go to https://www.example.com/a?b=1 now."],
        ["Ok.", "Go to example dot com now."],
    ),
    ("url at end", ["Ok. Go to https://example.org/x."], ["Ok.", "Go to example dot org."]),
    (
        "www url",
        ["Ok. Try www.bbc.co.uk, then rest."],
        ["Ok.", "Try bbc dot co dot uk, then rest."],
    ),
    ("autolink", ["Ok. See <https://a.io/x> now."], ["Ok.", "See a dot io now."]),
    ("emoji", ["Great news 🎉! You won 👍🏽."], ["Great news!", "You won."]),
    ("emoji only", ["🎉🎉\nOk."], ["Ok."]),
    ("flag and zwj", ["Ok. Hi 🇬🇧 👨‍👩‍👧 there."], ["Ok.", "Hi there."]),
    ("ampersand", ["Ok. Tom & Jerry, AT&T &amp; co."], ["Ok.", "Tom and Jerry, AT and T and co."]),
    ("approx", ["Ok. It takes ~5 minutes."], ["Ok.", "It takes about 5 minutes."]),
    ("spaces", ["Ok.   Lots    of \t space."], ["Ok.", "Lots of space."]),
    ("escaped", [r"Ok. A \*star\* here."], ["Ok.", "A star here."]),
]


@pytest.mark.parametrize(
    ("deltas", "expected"), [(d, e) for _, d, e in CASES], ids=[c[0] for c in CASES]
)
def test_chunk_table(deltas: list[str], expected: list[str]) -> None:
    assert run(deltas) == expected


@pytest.mark.parametrize(
    ("deltas", "expected"), [(d, e) for _, d, e in CASES], ids=[c[0] for c in CASES]
)
def test_single_character_deltas_give_the_same_chunks(
    deltas: list[str], expected: list[str]
) -> None:
    assert run(by_char("".join(deltas))) == expected


def test_url_can_be_said_as_a_link() -> None:
    config = ChunkerConfig(url_style="link")
    assert run(["Ok. Go to https://example.com/a now."], config) == ["Ok.", "Go to a link now."]


def test_code_block_can_be_skipped_silently() -> None:
    config = ChunkerConfig(code_block_text="")
    assert run(["Look:\n```\nx = 1\n```\nDone."], config) == ["Look:", "Done."]


def test_first_chunk_min_words_is_configurable() -> None:
    text = "Yes, of course, I can do that for you."
    assert run([text], ChunkerConfig(first_chunk_min_words=1)) == [
        "Yes,",
        "of course, I can do that for you.",
    ]
    assert run([text], ChunkerConfig(first_chunk_min_words=20, first_chunk_max_words=0)) == [text]


def test_a_long_opening_clause_is_cut_after_max_words() -> None:
    text = "A heat pump is a device that moves heat from one place to another. It is efficient."
    shipped = ChunkerConfig()
    assert run([text], shipped) == [
        "A heat pump is",
        "a device that moves heat from one place to another.",
        "It is efficient.",
    ]
    # Only the first chunk: later sentences are never cut at a word boundary.
    assert run(list(text), shipped) == run([text], shipped)
    assert run([text], ChunkerConfig(first_chunk_max_words=0))[0] == text.split(" It")[0]


def test_first_chunk_comes_out_before_the_sentence_ends() -> None:
    chunker = SentenceChunker(DEFAULT)
    assert chunker.push("Well, the answer to that one") == []
    assert chunker.push(", I think, ") == ["Well, the answer to that one,"]
    assert chunker.push("is forty-two") == []
    assert chunker.flush() == ["I think, is forty-two"]


def test_sentence_end_waits_for_the_next_non_space_character() -> None:
    chunker = SentenceChunker(DEFAULT)
    assert chunker.push("Hello.") == []
    assert chunker.push(" ") == []
    assert chunker.push("  ") == []
    assert chunker.push("Dr.") == ["Hello."]  # decided by the "D", before "Dr." is whole
    assert chunker.push(" ") == []
    assert chunker.push("Smith is here. ") == []
    assert chunker.push("N") == ["Dr. Smith is here."]
    assert chunker.push("o") == []
    assert chunker.flush() == ["No"]


def test_a_lower_case_word_after_a_period_does_not_start_a_sentence() -> None:
    chunker = SentenceChunker(DEFAULT)
    assert chunker.push("Ok. Meet at 3 p.m. t") == ["Ok."]
    assert chunker.push("omorrow. ") == []
    assert chunker.push("Bye") == ["Meet at 3 p.m. tomorrow."]


def test_flush_resets_so_the_next_answer_starts_early_again() -> None:
    chunker = SentenceChunker(DEFAULT)
    assert chunker.push("One two three four, five. Six, seven eight nine ten, eleven.") == [
        "One two three four,",
        "five.",
    ]
    assert chunker.flush() == ["Six, seven eight nine ten, eleven."]
    assert chunker.push("One two three four, five") == ["One two three four,"]
    assert chunker.flush() == ["five"]


def test_markdown_state_does_not_leak_into_the_next_answer() -> None:
    chunker = SentenceChunker(DEFAULT)
    chunker.push("Code:\n```\nx = 1\n")
    chunker.flush()
    assert run(["Plain words."]) == ["Plain words."]
    assert chunker.push("Plain words. ") == []
    assert chunker.flush() == ["Plain words."]


def test_max_chars_cuts_at_the_last_comma() -> None:
    config = ChunkerConfig(max_chars=60)
    clause = "and then we walked along the river bank"
    text = f"Ok. We went out, {clause}, {clause}, {clause}."
    out = run([text], config)
    assert out == ["Ok.", f"We went out, {clause},", f"{clause},", f"{clause}."]
    assert all(len(c) <= 60 for c in out)


def test_max_chars_cuts_at_the_last_space_without_commas() -> None:
    config = ChunkerConfig(max_chars=50)
    words = [f"word{i}" for i in range(40)]
    out = run([" ".join(words)], config)
    assert len(out) > 1
    assert all(len(c) <= 50 for c in out)
    assert " ".join(out).split() == words  # cut between words, nothing lost


def test_max_chars_hard_cut_in_a_blob() -> None:
    config = ChunkerConfig(max_chars=40)
    blob = "x" * 100
    out = run([blob], config)
    assert "".join(out) == blob
    assert all(len(c) <= 40 for c in out)


def test_markdown_stripper_holds_back_the_unfinished_word() -> None:
    stripper = MarkdownStripper(DEFAULT)
    assert stripper.push("This is **bo") == "This is "
    assert stripper.push("ld** text") == "bold "
    assert stripper.flush() == "text"


def test_markdown_stripper_waits_to_decide_a_line_prefix() -> None:
    stripper = MarkdownStripper(DEFAULT)
    assert stripper.push("Hi\n1") == "Hi\n"
    assert stripper.push("0") == ""
    assert stripper.push(". ") == ""
    assert stripper.push("Mix ") == "Mix "


@pytest.mark.parametrize(
    ("raw", "newline", "expected"),
    [
        ("  hello   there ", False, "hello there"),
        ("Great news !", False, "Great news!"),
        (". , hello", False, "hello"),
        ("...", False, None),
        ("- ", False, None),
        ("", False, None),
        ("eggs", True, "eggs."),
        ("Bob, 42,", True, "Bob, 42."),
        ("Steps:", True, "Steps:"),
        ("(see above.)", True, "(see above.)"),
        ("it depends —", False, "it depends,"),
        ("-5 degrees", False, "-5 degrees"),
    ],
)
def test_speakable(raw: str, newline: bool, expected: str | None) -> None:
    assert speakable(raw, newline) == expected


async def test_async_adapter_yields_chunks_as_they_are_decided() -> None:
    seen: list[tuple[str, int]] = []
    sent = 0

    async def deltas() -> AsyncIterator[str]:
        nonlocal sent
        for delta in ["Good evening. ", "The lights ", "are off. ", "Anything else?"]:
            sent += 1
            yield delta

    async for chunk in chunks(deltas(), SentenceChunker(DEFAULT)):
        seen.append((chunk, sent))
    assert seen == [
        ("Good evening.", 2),  # decided as soon as "T" arrived, not at the end
        ("The lights are off.", 4),
        ("Anything else?", 4),
    ]


# --- properties over random splits ---------------------------------------------------

SAMPLES = [
    "Good evening. Dr. Smith called at 3 p.m. about the $29.95 invoice, e.g. the one "
    "from the U.S. office. I said it was fine... Then he hung up! Shall I call back?",
    "Well, that depends on the weather tomorrow, which looks mild; expect 3.5 mm of rain "
    "in the morning and sunshine later. J. R. R. Tolkien would approve.",
    "## Plan\n\n1. **Preheat** the oven to ~180 degrees\n2. Mix *flour* & `sugar`\n\n"
    "- See [the recipe](https://example.com/r_(1)) or www.bbc.co.uk.\n"
    "```\nx = 1. Y\n```\n> Enjoy 🎉!\n| a | b |\n|---|---|\n",
    "Short. Another one? Yes! " + "A rather long sentence without any end " * 8 + "and done.",
    "Mr. and Mrs. Jones, i.e. the neighbours, live on St. James St. near No. 10; they "
    "moved in Jan. 2020 — I think.\nNext line\n\nNew paragraph…",
]


@st.composite
def splits(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(st.sampled_from(SAMPLES))
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=len(text) - 1), max_size=40)))
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(splits())
def test_any_split_gives_the_same_chunks(case: tuple[str, list[str]]) -> None:
    text, deltas = case
    assert run(deltas) == run([text])


@settings(max_examples=100, deadline=None)
@given(splits(), st.integers(min_value=40, max_value=300), st.integers(min_value=1, max_value=8))
def test_any_split_same_chunks_any_config(
    case: tuple[str, list[str]], max_chars: int, words: int
) -> None:
    config = ChunkerConfig(max_chars=max_chars, first_chunk_min_words=words)
    text, deltas = case
    out = run(deltas, config)
    assert out == run([text], config)
    assert all(0 < len(c) <= max_chars + 1 for c in out)  # +1: a full stop after a list item
    assert all(re.search(r"[^\W_]", c) for c in out)


PLAIN_WORDS = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=1, max_size=9
)
PUNCT = st.sampled_from(["", "", "", ",", ".", "!", "?", ";", ":", "...", " -", "—"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(PLAIN_WORDS, PUNCT), min_size=1, max_size=80), st.data())
def test_nothing_is_lost_from_plain_text(words: list[tuple[str, str]], data: st.DataObject) -> None:
    text = " ".join(w + p for w, p in words)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=30)))
    bounds = [0, *cuts, len(text)]
    deltas = [text[a:b] for a, b in itertools.pairwise(bounds)]
    out = run(deltas)
    spoken = re.findall(r"[^\W_]+", " ".join(out))
    # A text that opens with "1. " (or "0. 2. ") opens a numbered list: the markers are
    # Markdown, not words, and are not spoken.
    said = re.sub(r"^(?:\d{1,3}\.[ \t]+)+", "", text)
    assert spoken == re.findall(r"[^\W_]+", said)
    assert all(len(c) <= DEFAULT.max_chars for c in out)
