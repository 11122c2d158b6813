"""More training corpora for the router (a dev tool, never run in CI).

* OVOS / Mycroft skills (one voice-assistant family, Apache-2.0 unless noted): the
  English sample phrases of each skill's Padatious `.intent` files (expanded at random,
  slots filled from the lexicon below) and its `skill.json` examples for training; the
  skills' own intent tests (`test/intent/*.json`) for dev. `.dialog` files (the
  assistant's answers) and `.voc` keyword lists are not used.
* Banking77 (PolyAI, CC BY 4.0): customers' requests to a bank's service (train split
  for training, test split for dev).

The tier of each row comes from the written rules in data/router/README.md (O1, O2, B).
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from router_sources import Row, TemplateSampler, clean, git_ls, git_show, git_show_many

# Rule O1: every OVOS/Mycroft skill below is a command, a house or assistant question, a
# timer/alarm/reminder, media or small talk -> local. Rule O2: look-ups of general
# knowledge (Wikipedia, WordNet definitions, wikiHow instructions) -> haiku. The weather
# skill is left out (rule W).
OVOS_SKILLS: Mapping[str, str] = {
    "OpenVoiceOS+ovos-skill-alerts": "local",  # BSD 3-Clause (Neongecko)
    "OpenVoiceOS+ovos-skill-application-launcher": "local",
    "OpenVoiceOS+ovos-skill-audio-recording": "local",
    "OpenVoiceOS+ovos-skill-camera": "local",
    "OpenVoiceOS+ovos-skill-count": "local",
    "OpenVoiceOS+ovos-skill-date-time": "local",
    "OpenVoiceOS+ovos-skill-easter-eggs": "local",
    "OpenVoiceOS+ovos-skill-hello-world": "local",
    "OpenVoiceOS+ovos-skill-icanhazdadjokes": "local",
    "OpenVoiceOS+ovos-skill-naptime": "local",
    "OpenVoiceOS+ovos-skill-news": "local",
    "OpenVoiceOS+ovos-skill-parrot": "local",
    "OpenVoiceOS+ovos-skill-personal": "local",
    "OpenVoiceOS+ovos-skill-pyradios": "local",
    "OpenVoiceOS+ovos-skill-randomness": "local",  # MIT
    "OpenVoiceOS+ovos-skill-volume": "local",
    "OpenVoiceOS+skill-ovos-stop": "local",
    "OpenVoiceOS+skill-ovos-timer": "local",
    "OpenVoiceOS+ovos-skill-wikipedia": "haiku",
    "OpenVoiceOS+ovos-skill-wordnet": "haiku",
    "OpenVoiceOS+ovos-skill-wikihow": "haiku",
    "MycroftAI+skill-alarm": "local",
    "MycroftAI+skill-date-time": "local",
    "MycroftAI+skill-iot-control": "local",
    "MycroftAI+skill-joke": "local",
    "MycroftAI+skill-mark-2": "local",
    "MycroftAI+skill-mycroft-radio": "local",
    "MycroftAI+skill-naptime": "local",
    "MycroftAI+skill-npr-news": "local",
    "MycroftAI+skill-playback-control": "local",
    "MycroftAI+skill-reminder": "local",
    "MycroftAI+skill-spelling": "local",
    "MycroftAI+skill-stop": "local",
    "MycroftAI+skill-volume": "local",
    "MycroftAI+skill-wiki": "haiku",
}

# Values for the skills' slots (the project's own).
_OVOS_SLOTS: Mapping[str, tuple[str, ...]] = {
    "location": ("london", "tokyo", "new york", "sydney", "paris", "berlin", "lagos", "lima"),
    "offset": ("5", "10", "twenty", "45", "90", "three"),
    "date": ("christmas", "next friday", "july 4th", "new year's day", "my birthday", "june 1"),
    "name": ("shopping notes", "meeting", "voice memo", "podcast idea", "band practice"),
    "query": (
        "the eiffel tower",
        "penguins",
        "the roman empire",
        "photosynthesis",
        "cats",
        "bake bread",
        "tie a tie",
        "serendipity",
        "jupiter",
    ),
    "timedate": ("7 am tomorrow", "noon", "6 30 pm", "monday at 9"),
    "reminder": ("call mum", "take the bins out", "water the plants"),
    "brightness": ("50 percent", "half", "full", "20"),
    "application": ("firefox", "the browser", "spotify", "the calculator", "the terminal"),
    "sentence": ("hello world", "i am home", "dinner is ready"),
    "time": ("7 am", "noon", "half past six"),
    "ordinal": ("first", "second", "third"),
    "faces": ("6", "20", "12"),
    "number": ("2", "3", "four"),
    "duration": ("10 minutes", "an hour", "90 seconds"),
    "upper": ("100", "50"),
    "lower": ("1", "10"),
}
_SLOT = re.compile(r"\{+([a-z_]+)\}")
_INTENT_FILE = re.compile(r"(^|/)(locale|vocab)/en-us/(.*/)?[^/]+\.intent$", re.I)


def _fill(line: str, rng: random.Random) -> str | None:
    """One random expansion of a Padatious line; None when a slot has no values."""

    def value(m: re.Match[str]) -> str:
        values = _OVOS_SLOTS.get(m.group(1))
        if not values:
            raise KeyError(m.group(1))
        return rng.choice(values)

    try:
        text = _SLOT.sub(value, line)
    except KeyError:
        return None
    text = re.sub("#", lambda _: str(rng.randint(0, 9)), text)
    text = clean(TemplateSampler({}, rng).sample(text)).lower()
    return text if text and "_" not in text and "..." not in text else None


def _skill_name(mirror: str) -> str:
    return mirror.split("+", 1)[1].removeprefix("ovos-").removeprefix("skill-")


def ovos(repos: Mapping[str, Path], per_intent: int, rng: random.Random) -> Iterator[Row]:
    """Training rows: expanded `.intent` lines and `skill.json` examples, per skill."""
    for mirror, tier in OVOS_SKILLS.items():
        repo = repos[mirror]
        skill = _skill_name(mirror)
        paths = git_ls(repo, "")
        for path in sorted(p for p in paths if _INTENT_FILE.search(p)):
            lines = [ln.strip() for ln in git_show(repo, path).splitlines()]
            lines = [ln for ln in lines if ln and not ln.startswith("#")]
            rng.shuffle(lines)
            intent = path.rsplit("/", 1)[-1].removesuffix(".intent")
            for line in lines[: per_intent * 2]:
                text = _fill(line, rng)
                if text:
                    yield text, tier, f"ovos:{skill}:{intent}", "ovos-mycroft-skills"
        for path in (p for p in paths if re.search(r"en-us/skill\.json$", p, re.I)):
            for text in json.loads(git_show(repo, path)).get("examples") or []:
                filled = _fill(str(text), rng)
                if filled:
                    yield filled, tier, f"ovos:{skill}:examples", "ovos-mycroft-skills"


def ovos_tests(repos: Mapping[str, Path]) -> Iterator[Row]:
    """Dev rows: the skills' own intent tests (utterances written by the skills' authors)."""
    for mirror, tier in OVOS_SKILLS.items():
        repo = repos[mirror]
        paths = [p for p in git_ls(repo, "") if re.search(r"test/intent/[^/]+\.json$", p)]
        for text in git_show_many(repo, paths):
            try:
                item = json.loads(text)
            except json.JSONDecodeError:
                continue
            utterance = clean(str(item.get("utterance", ""))).lower()
            if utterance:
                skill = _skill_name(mirror)
                yield utterance, tier, f"ovos-test:{skill}", "ovos-mycroft-skills"


# --------------------------------------------------------------------------- Banking77


def banking77(repo: Path, split: str) -> Iterator[Row]:
    """Rule B (= S2): a customer's request to a bank's service -> haiku (no bank here)."""
    text = git_show(repo, f"banking_data/{split}.csv")
    for item in csv.DictReader(io.StringIO(text)):
        yield clean(item["text"]), "haiku", f"banking77:{item['category']}", "banking77"
