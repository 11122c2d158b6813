"""Readers for the third frozen evaluation split, data/router/eval_frozen3.tsv (a dev tool).

Evaluation only: none of these corpora, nor any corpus of their family, is ever used for
training or dev (a test enforces it by source). Each reader takes a git directory and
yields (utterance, tier, category, source) rows; the tier comes from the written rules in
data/router/README.md (rules G1-G6 there).

* Rasa demo bot "Sara" (RasaHQ/rasa-demo `data/nlu`): small talk to the bot and
  questions about Rasa, written and collected by Rasa (GPL-3.0).
* Rasa masterclass (RasaHQ/rasa-masterclass `episode8/data/nlu.md`): small talk and
  requests to find a health-care provider (Apache-2.0).
* Leon (leon-ai/leon `skills/*/*/config/en.json`): the personal assistant's utterance
  samples (MIT).
* COVID-Q (JerryWeiAI/COVID-Q `final_master_dataset.csv`): real questions about COVID-19
  from search engines, Quora, Yahoo Answers and FAQ pages (GPL-3.0).
* K-QA (Itaymanes/K-QA `dataset/questions.jsonl`): real patients' questions written on
  K Health's platform (MIT).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml
from router_sources import Row, clean, git_ls, git_show

# Rasa annotates entities inline: "[Rasa X](product)" or '[Rasa X]{"entity": "product"}'.
_RASA_ENTITY = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


def _rasa_text(example: str) -> str:
    return clean(_RASA_ENTITY.sub(r"\1", example))


# ------------------------------------------------------------------------ rasa-demo

# Rule G1: small talk to the bot (greetings, thanks, yes/no, how it is, who or what it is,
# what it can do, what time it is) -> local, as S3 and F3.
_RASA_LOCAL = {
    "affirm",
    "deny",
    "greet",
    "bye",
    "thank",
    "react_positive",
    "chitchat/ask_howbuilt",
    "chitchat/ask_howdoing",
    "chitchat/ask_howold",
    "chitchat/ask_isbot",
    "chitchat/ask_ishuman",
    "chitchat/ask_languagesbot",
    "chitchat/ask_time",
    "chitchat/ask_whatismyname",
    "chitchat/ask_whatspossible",
    "chitchat/ask_wherefrom",
    "chitchat/ask_whoisit",
}
# Rule G2: questions about Rasa (a software product: facts and advice), a restaurant
# search, and requests to Rasa's services (a demo, sales, the newsletter) -> haiku,
# as Q and S2.
_RASA_HAIKU = {
    "chitchat/ask_restaurant",
    "chitchat/ask_whatisrasa",
    "why_rasa",
    "ask_how_contribute",
    "ask_which_events",
    "ask_why_contribute",
    "book_demo",
    "contact_sales",
    "how_to_get_started",
    "install_rasa",
    "nlu_generation_tool_recommendation",
    "nlu_info",
    "pipeline_recommendation",
    "signup_newsletter",
    "source_code",
    "technical_question",
}
# Every faq/* intent (questions about Rasa's software) -> haiku (G2). Everything else is
# left out: weather (W); react_negative ("I am sad": small talk or the start of a
# self-harm conversation, rule A); out_of_scope, canthelp, explain, need_help_broad,
# broken, enter_data, switch, restart, human_handoff, ask_question_in_forum (answers to
# the bot's questions, bare entities, or conversation control of that bot). A haiku row
# needs three words at least (a bare "rasa x" or "docs" is not a question).


def rasa_demo(repo: Path) -> Iterator[Row]:
    for name in ("chitchat", "faq", "general", "nlu"):
        yield from _rasa_demo_file(git_show(repo, f"data/nlu/{name}.yml"))


def _rasa_demo_file(text: str) -> Iterator[Row]:
    for item in yaml.safe_load(text).get("nlu") or ():
        intent = item.get("intent")
        if not intent:
            continue
        if intent in _RASA_LOCAL:
            tier = "local"
        elif intent in _RASA_HAIKU or intent.startswith("faq/"):
            tier = "haiku"
        else:
            continue
        for line in str(item.get("examples") or "").splitlines():
            line = line.strip()
            if line.startswith("- "):
                utterance = _rasa_text(line[2:])
                if tier == "haiku" and len(utterance.split()) < 3:
                    continue
                if re.search("[a-z]", utterance.lower()):
                    yield utterance, tier, f"rasa-demo:{intent}", "rasa-demo"


# ------------------------------------------------------------------ rasa-masterclass

# Rule G3: small talk (affirm, deny, goodbye, greet, thanks, "I'm great") -> local (S3);
# search_provider ("i need a nursing home in Boston") -> haiku (S2), three words at
# least, and not when it asks for a hospital (an emergency or not: unclear). Left out:
# inform (bare places), out_of_scope, mood_unhappy (rule A: possibly self-harm).
_MASTERCLASS = {
    "affirm": "local",
    "deny": "local",
    "goodbye": "local",
    "greet": "local",
    "thanks": "local",
    "mood_great": "local",
    "search_provider": "haiku",
}


def rasa_masterclass(repo: Path) -> Iterator[Row]:
    intent = ""
    for line in git_show(repo, "episode8/data/nlu.md").splitlines():
        m = re.match(r"^##\s*intent:(\S+)", line)
        if m:
            intent = m.group(1)
        elif line.startswith("##"):
            intent = ""
        elif line.startswith("- ") and intent in _MASTERCLASS:
            utterance = _rasa_text(line[2:])
            tier = _MASTERCLASS[intent]
            if tier == "haiku" and (len(utterance.split()) < 3 or "hospital" in utterance.lower()):
                continue
            if re.search("[a-z]", utterance.lower()):
                yield utterance, tier, f"rasa-masterclass:{intent}", "rasa-masterclass"


# ----------------------------------------------------------------------------- Leon

# Rule G4: Leon's own skills -> local (as F3 and O1): greeting, good_bye, welcome
# (thanks), age, introduction, help, favourite colour, joke, random number, date and
# time, to-do lists; color_hexadecimal ("what is the hexa code of green") -> haiku (Q).
# Left out: games (akinator, guess_the_number, rochambeau, mbti) and meaning_of_life
# (tier unclear), github/product-hunt trends (news, as F1), speed_test (a network check),
# and every sample holding an entity (@list, @date, @email, @url ...): filling it would
# make a template of our own.
_LEON = {
    "greeting": "local",
    "good_bye": "local",
    "welcome": "local",
    "age": "local",
    "introduction": "local",
    "help": "local",
    "color": "local",
    "joke": "local",
    "random_number": "local",
    "date_time": "local",
    "todo_list": "local",
}
_LEON_ALT = re.compile(r"\[([^\]]*\|[^\]]*)\]")


def _expand(sample: str) -> list[str]:
    """Every expansion of Leon's [a|b] alternatives."""
    parts = _LEON_ALT.split(sample)
    choices = [p.split("|") if i % 2 else [p] for i, p in enumerate(parts)]
    return [clean("".join(c)) for c in itertools.product(*choices)]


def leon(repo: Path) -> Iterator[Row]:
    for path in git_ls(repo, "skills/"):
        m = re.match(r"^skills/[^/]+/([^/]+)/config/en\.json$", path)
        if not m or m.group(1) not in _LEON:
            continue
        skill = m.group(1)
        for action, spec in json.loads(git_show(repo, path)).get("actions", {}).items():
            tier = "haiku" if action == "color_hexadecimal" else _LEON[skill]
            for sample in spec.get("utterance_samples") or ():
                if "@" in sample:
                    continue
                for utterance in _expand(sample):
                    yield utterance, tier, f"leon:{skill}.{action}", "leon"


# -------------------------------------------------------------------------- COVID-Q

# Rule G5, by COVID-Q's broad category: transmission, prevention, treatment, symptoms,
# having COVID and testing are medical questions -> agent (M); reporting (numbers of
# cases and deaths), origin, nomenclature and economic effects are questions of fact
# -> haiku (Q). Left out: comparison (with the flu: medical or general, unclear),
# speculation, societal effects and response, individual response (opinion, politics,
# coping with stress: tier unclear or rule A), other, uncategorised questions, and the
# questions the dataset's author wrote himself ("Author Generated": not real users').
_COVID_AGENT = {"Transmission", "Prevention", "Treatment", "Symptoms", "Having COVID", "Testing"}
_COVID_HAIKU = {"Reporting", "Origin", "Nomenclature", "Economic Effects"}


def covid_q(repo: Path) -> Iterator[Row]:
    for item in csv.DictReader(io.StringIO(git_show(repo, "final_master_dataset.csv"))):
        if item["Source"].strip() == "Author Generated":
            continue
        broad = item["Category"].split(" - ")[0].strip()
        tier = "agent" if broad in _COVID_AGENT else "haiku" if broad in _COVID_HAIKU else ""
        question = clean(item["Question"])
        if tier and len(question.split()) >= 3:
            slug = broad.lower().replace(" ", "-")
            yield question, tier, f"covid-q:{slug}", "covid-q"


# ----------------------------------------------------------------------------- K-QA

# Rule G6 (= M): patients' questions to a medical service -> agent. Questions under six
# words are left out: most lean on an earlier turn ("Is it contagious?").


def k_qa(repo: Path) -> Iterator[Row]:
    for line in git_show(repo, "dataset/questions.jsonl").splitlines():
        if line.strip():
            question = clean(json.loads(line)["Question"])
            if len(question.split()) >= 6:
                yield question, "agent", "medical:k-qa", "k-qa"
