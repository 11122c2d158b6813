"""Readers for the fourth frozen evaluation split, data/router/eval_frozen4.tsv (a dev tool).

Evaluation only: none of these corpora, nor any corpus of their family, is ever used for
training or dev (a test enforces it by source). Each reader takes a git directory and
yields (utterance, tier, category, source) rows; the tier comes from the written rules in
data/router/README.md (rules G7-G9 there).

* MindMeld blueprints (CiscoDevNet/mindmeld-blueprints `blueprints/*/domains`): the
  training and test queries of Cisco's example apps, written by people for them: smart
  home commands (lights, doors, thermostat, appliances), alarms and timers, greetings;
  store hours, food orders, a video catalogue, a bank's requests (Apache-2.0).
* NLU Evaluation Corpora (sebischair/NLU-Evaluation-Corpora): a Telegram public
  transport chatbot's real user questions and Ask Ubuntu / Web Applications Stack
  Exchange question titles (CC BY-SA 3.0).
* ExpertQA (chaitanyamalaviya/ExpertQA `data/r1_data_anon.jsonl`): questions written by
  experts of many fields, among them doctors, nurses and pharmacists (MIT).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from router_sources import Row, clean, git_ls, git_show

# MindMeld annotates entities inline: "{kitchen|location}" or "{two|sys_number|num_orders}".
_MINDMELD_ENTITY = re.compile(r"\{([^{}|]*)\|[^{}]*\}")

# -------------------------------------------------------------------------- MindMeld

# Rule G7. The home_assistant blueprint's commands to the house -> local (as H1 and C):
# lights, doors (open, close, lock, unlock, is it locked), the thermostat, appliances,
# alarms and timers, and its greetings and goodbyes (S3). Requests to services ATLAS
# does not have -> haiku (S2): a shop's opening hours and nearest branch (kwik_e_mart),
# ordering food from a restaurant (food_ordering build_order), finding films and shows
# in a catalogue and when or on which channel a programme is on (video_discovery; as
# Snips SearchCreativeWork / SearchScreeningEvent), a bank's requests (banking_assistant;
# as B). A haiku row needs three words at least (bare dish names, account types).
# Left out: weather (W); specify_location / specify_time (bare answers to the bot's
# questions: "the attic oven", "at 6:25am"); the unknown / unsupported / unrelated
# questions (open-domain questions in the style of WebQuestions, the family of a
# training corpus); help, start_over, place_order (conversation control and
# confirmations of those bots); hr_assistant (look-ups in a company's staff records:
# tier unclear); any query naming the weather or a forecast (W); screening_app (answers
# to a medical questionnaire); the greetings of the other blueprints (copies of
# home_assistant's).
_MINDMELD = {
    "home_assistant/smart_home/check_door": "local",
    "home_assistant/smart_home/check_lights": "local",
    "home_assistant/smart_home/check_thermostat": "local",
    "home_assistant/smart_home/close_door": "local",
    "home_assistant/smart_home/lock_door": "local",
    "home_assistant/smart_home/open_door": "local",
    "home_assistant/smart_home/set_thermostat": "local",
    "home_assistant/smart_home/turn_appliance_off": "local",
    "home_assistant/smart_home/turn_appliance_on": "local",
    "home_assistant/smart_home/turn_down_thermostat": "local",
    "home_assistant/smart_home/turn_lights_off": "local",
    "home_assistant/smart_home/turn_lights_on": "local",
    "home_assistant/smart_home/turn_off_thermostat": "local",
    "home_assistant/smart_home/turn_on_thermostat": "local",
    "home_assistant/smart_home/turn_up_thermostat": "local",
    "home_assistant/smart_home/unlock_door": "local",
    "home_assistant/times_and_dates/change_alarm": "local",
    "home_assistant/times_and_dates/check_alarm": "local",
    "home_assistant/times_and_dates/remove_alarm": "local",
    "home_assistant/times_and_dates/set_alarm": "local",
    "home_assistant/times_and_dates/start_timer": "local",
    "home_assistant/times_and_dates/stop_timer": "local",
    "home_assistant/greeting/greet": "local",
    "home_assistant/greeting/exit": "local",
    "kwik_e_mart/store_info/get_store_hours": "haiku",
    "kwik_e_mart/store_info/find_nearest_store": "haiku",
    "food_ordering/ordering/build_order": "haiku",
    "video_discovery/video_content/browse": "haiku",
    "video_discovery/video_content/unsupported": "haiku",
    "banking_assistant/accounts_creditcards/check_balances": "haiku",
    "banking_assistant/accounts_creditcards/credit_due_date": "haiku",
    "banking_assistant/accounts_creditcards/pay_creditcard": "haiku",
    "banking_assistant/accounts_creditcards/setup_autopay": "haiku",
    "banking_assistant/accounts_creditcards/transfer_money": "haiku",
    "banking_assistant/faq/activate_creditcard": "haiku",
    "banking_assistant/faq/apply_loan": "haiku",
    "banking_assistant/faq/forgot_pin": "haiku",
    "banking_assistant/faq/fraud_charge": "haiku",
    "banking_assistant/faq/lost_creditcard": "haiku",
    "banking_assistant/faq/new_creditcard": "haiku",
    "banking_assistant/faq/order_checks": "haiku",
    "banking_assistant/faq/routing_number": "haiku",
}
_MINDMELD_FILE = re.compile(r"^blueprints/([^/]+)/domains/([^/]+)/([^/]+)/[^/]+\.txt$")


def mindmeld_text(query: str) -> str:
    return clean(_MINDMELD_ENTITY.sub(r"\1", query))


def mindmeld(repo: Path) -> Iterator[Row]:
    for path in git_ls(repo, "blueprints/"):
        m = _MINDMELD_FILE.match(path)
        if not m:
            continue
        key = "/".join(m.groups())
        tier = _MINDMELD.get(key)
        if not tier:
            continue
        if key.startswith("video_discovery/") and not re.search(r"/(train|test)[^/]*\.txt$", path):
            continue
        app, _, intent = m.groups()
        if key.endswith("/unsupported"):  # video_discovery: when / on which channel a show is on
            kind = re.search(r"train_(get_\w+?)_\d+\.txt$", path)
            if not kind:
                continue
            intent = kind.group(1)
        for line in git_show(repo, path).splitlines():
            utterance = mindmeld_text(line)
            if tier == "haiku" and len(utterance.split()) < 3:
                continue
            if re.search(r"weather|forecast", utterance, re.IGNORECASE):
                continue  # rule W, also for "what channel is the weather channel"
            if re.search("[a-z]", utterance.lower()):
                yield utterance, tier, f"mindmeld:{app}.{intent}", "mindmeld"


# ------------------------------------------------------------- NLU Evaluation Corpora

# Rule G8. The Munich public transport chatbot's questions (FindConnection,
# DepartureTime) -> haiku (S2: a journey planner ATLAS does not have). Ask Ubuntu and
# Web Applications question titles (software recommendations, updates, printers,
# accounts, passwords, spam filters, alternatives to a web service, and their "None"
# questions, all about using software) -> haiku (Q: advice). Three words at least.
_SEBIS = {
    "ChatbotCorpus": "chatbot",
    "AskUbuntuCorpus": "askubuntu",
    "WebApplicationsCorpus": "webapps",
}


def nlu_evaluation_corpora(repo: Path) -> Iterator[Row]:
    for name, short in _SEBIS.items():
        for item in json.loads(git_show(repo, f"{name}.json"))["sentences"]:
            text = clean(item["text"])
            intent = item["intent"].replace(" ", "")
            if len(text.split()) >= 3:
                yield text, "haiku", f"nlu-eval:{short}.{intent}", "nlu-eval-corpora"


# -------------------------------------------------------------------------- ExpertQA

# Rule G9. Questions written by experts whose field is medicine ("Healthcare /
# Medicine", "Medicine": doctors, nurses, pharmacists, midwives...) -> agent (M), by
# their specific field; questions of at most 60 words (longer ones are case reports),
# and not those marked only as "request for opinion on a topic" (tier unclear).
# Questions of the other fields that the expert marked as only "a directed question
# that has a single unambiguous answer" -> haiku (Q), at most 30 words. Left out: Law
# (legal trouble, rule A, or a question of fact: unclear), Psychology (mental health:
# unclear), Military or Law Enforcement and Criminology (unclear), and every
# non-medical question of another type (scenarios, opinions, summaries, advice: the
# line between a question and research, rule A, is unclear).
_EXPERTQA_MEDICAL = {"Healthcare / Medicine", "Medicine"}
_EXPERTQA_OUT = {"Law", "Psychology", "Military or Law Enforcement", "Criminology"}
_DIRECTED = "Directed question that has a single unambiguous answer"
_OPINION = "Request for opinion on a topic"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-") or "other"


def expertqa(repo: Path) -> Iterator[Row]:
    for line in git_show(repo, "data/r1_data_anon.jsonl").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        question = clean(item["question"])
        field = item["metadata"]["field"].strip()
        words = len(question.split())
        kinds = {k.strip() for k in item["metadata"]["question_type"].split("|")}
        if field in _EXPERTQA_MEDICAL:
            if 4 <= words <= 60 and kinds != {_OPINION}:
                specific = _slug(item["metadata"].get("specific_field") or "")
                yield question, "agent", f"expertqa:medicine.{specific}", "expertqa"
        elif field not in _EXPERTQA_OUT and kinds == {_DIRECTED} and 4 <= words <= 30:
            yield question, "haiku", f"expertqa:{_slug(field)}", "expertqa"
