"""Readers for the second frozen evaluation split, data/router/eval_frozen2.tsv (a dev tool).

Evaluation only: none of these corpora, nor any corpus of their family, is ever used for
training or dev (a test enforces it by source). Each reader takes a git directory and
yields (utterance, tier, category, source) rows; the tier comes from the written rules in
data/router/README.md (rules F1-F4 there).

* Almond (Stanford OVAL, thingpedia-common-devices `eval/everything`): real users' turns
  to the Almond/Genie voice assistant, annotated with ThingTalk programs (BSD 3-Clause).
* Natural Questions, NQ-open dev split: real Google search questions (CC BY-SA 3.0).
* NLU++ hotels (PolyAI): requests to a hotel's service bot (CC BY 4.0).
* MeQSum: consumer health questions sent to the U.S. NLM, and their summaries (CC BY 4.0).
"""

from __future__ import annotations

import html
import io
import json
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

from router_sources import Row, clean, git_ls, git_show, git_show_many

# ----------------------------------------------------------------------------- Almond

# Agent acts after which the user's next turn is a fresh request (not an answer to a
# question Almond asked), so the turn stands on its own as a single utterance.
_ALMOND_FRESH = (
    "sys_action_success",
    "sys_display_result",
    "sys_action_error",
    "sys_rule_enable_success",
    "sys_greet",
    "sys_empty_search",
)
# Rule F1: a service or account ATLAS does not have, or news and social automations
# whose tier is unclear -> left out. Weather -> left out (rule W).
_ALMOND_SKIP = (
    "weather",
    "twitter",
    "facebook",
    "instagram",
    "tumblr",
    "gmail",
    "slack",
    "linkedin",
    "nasa",
    "wsj",
    "washingtonpost",
    "nytimes",
    "smartnews",
    "translate",
    "huffingtonpost",
    "github",
    "dropbox",
    "thedogapi",
    "icalendar",
    "fitbit",
    "phdcomics",
    "com.bbc",
    "xkcd",
    "configure",
    "get_gps()",
    "security-camera",
    "youtube",
    "gnome",
    "demo.coffee",
)
# Rule F2: searching for a restaurant, a web search, a dictionary, sports fixtures, and
# questions about music (no playing) -> haiku (as rules S2 and Q).
_ALMOND_HAIKU = {
    "com.yelp": "search",
    "com.bing": "search",
    "info.owlbot": "dictionary",
    "com.goal_smart": "sports",
}
_ALMOND_LOCAL_DEVICES = (
    "media-player",
    "media-source",
    "com.spotify",
    "com.tunein",
    "volume-control",
    "org.thingpedia.iot",
    "thingengine.builtin",
    "icanhazdadjoke",
)
_TURN = re.compile(r"^(U|UT|A|AT|C): ?(.*)$")


def _almond_turns(text: str) -> Iterator[tuple[str, str]]:
    """(user utterance, its annotated program) for turns that stand on their own."""
    for block in text.split("====\n"):
        last_act, user, program, first = "", "", "", True
        for line in [*block.splitlines(), "U: "]:
            m = _TURN.match(line)
            if not m:
                continue
            kind, body = m.groups()
            if kind == "U":
                if user and (first or any(a in last_act for a in _ALMOND_FRESH)):
                    yield user, program
                if user:
                    first = False
                user, program = body, ""
            elif kind == "UT":
                program += body + "\n"
            elif kind == "AT" and body.startswith("$dialogue"):
                last_act = body


def _almond_rule(program: str) -> tuple[str, str] | None:
    """(tier, category) by rules F1/F2/F3, or None when the turn is left out."""
    if "transaction.greet" in program or "transaction.cancel" in program:
        return "local", "chat"
    if "transaction.hello" in program:
        return "local", "chat"
    action = "\n".join(ln for ln in program.splitlines() if not ln.startswith("$dialogue"))
    if not action.strip() or any(s in action for s in _ALMOND_SKIP):
        return None
    for device, cat in _ALMOND_HAIKU.items():
        if f"@{device}" in action:
            return "haiku", cat
    if "=>" not in action and re.search(r"media-source\.(song|album|artist)\(", action):
        return "haiku", "music-question"
    if not any(d in action for d in _ALMOND_LOCAL_DEVICES):
        return None
    if "monitor" in action or "edge" in action or "attimer" in action:
        return "local", "home-rule"
    if "org.thingpedia.iot" in action:
        return "local", "device"
    if "thingengine.builtin" in action or "icanhazdadjoke" in action:
        return "local", "builtin"
    return "local", "media"


def almond(repo: Path) -> Iterator[Row]:
    """Rule F3: media, devices, timers and small talk to Almond -> local."""
    for split in ("train", "dev"):
        text = git_show(repo, f"eval/everything/{split}/annotated.txt")
        for user, program in _almond_turns(text):
            utterance = clean(user)
            if "str:" in utterance or "ENTITY" in utterance or not re.search("[a-z]", utterance):
                continue
            rule = _almond_rule(program)
            if rule is not None:
                tier, cat = rule
                yield utterance, tier, f"almond:{cat}", "almond-thingpedia"


# -------------------------------------------------------------------- Natural Questions


def nq_open(repo: Path) -> Iterator[Row]:
    """Rule Q: real search questions of general fact (NQ-open dev split) -> haiku."""
    for line in git_show(repo, "nq_open/NQ-open.dev.jsonl").splitlines():
        if line.strip():
            q = clean(json.loads(line)["question"])
            yield q, "haiku", "knowledge:nq-open", "natural-questions"


# ---------------------------------------------------------------------------- NLU++

# Dialogue acts alone are not a service request: a turn holding only these is left out.
_NLUPP_ACTS = {"affirm", "deny", "acknowledge", "greet", "end_call", "handoff", "dont_know"}


def nlupp_hotels(repo: Path) -> Iterator[Row]:
    """Rule F4 (= S2): a request to a hotel's service (book, change, ask about it) -> haiku."""
    paths = [p for p in git_ls(repo, "nlupp/data/hotels/") if p.endswith(".json")]
    for text in git_show_many(repo, sorted(paths)):
        for item in json.loads(text):
            intents = set(item.get("intents") or ())
            if intents - _NLUPP_ACTS:
                yield clean(item["text"]), "haiku", "service:nlupp-hotels", "nlupp-hotels"


# --------------------------------------------------------------------------- MeQSum


def _git_bytes(repo: Path, path: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(repo), "show", f"HEAD:{path}"], check=True, capture_output=True
    ).stdout


def _xlsx_rows(data: bytes) -> list[dict[str, str]]:
    """The first sheet of an .xlsx as rows of {column letter: text} (shared strings only)."""
    z = zipfile.ZipFile(io.BytesIO(data))
    shared = [
        html.unescape("".join(re.findall(r"<t[^>]*>(.*?)</t>", si, re.S)))
        for si in re.findall(r"<si>(.*?)</si>", z.read("xl/sharedStrings.xml").decode(), re.S)
    ]
    sheet = z.read("xl/worksheets/sheet1.xml").decode()
    rows = []
    for row in re.findall(r"<row[^>]*>(.*?)</row>", sheet, re.S):
        cells = {}
        for col, attrs, value in re.findall(r'<c r="([A-Z]+)\d+"([^>]*)>\s*<v>(.*?)</v>', row):
            cells[col] = shared[int(value)] if 't="s"' in attrs else value
        rows.append(cells)
    return rows


_GREETING = re.compile(r"^(hi|hello|dear|good (morning|afternoon|evening)|thanks?|thank you)\b")


def _first_ask(chq: str) -> str:
    """The message's opening: from its first sentence of >= 6 words (not a greeting), a
    second sentence added when the first is short; at most 40 words."""
    body = chq.split("MESSAGE:", 1)[1] if "MESSAGE:" in chq else chq
    if "MESSAGE:" not in chq and "\n" in chq.strip():
        body = chq.strip().split("\n", 1)[1]  # the first line is the subject
    taken: list[str] = []
    for sentence in re.split(r"(?<=[.?!])\s+|\n+", body):
        s = clean(sentence)
        if not taken and (len(s.split()) < 6 or _GREETING.match(s.lower())):
            continue
        if s:
            taken.append(s)
        if len(" ".join(taken).split()) >= 12 or len(taken) == 2:
            break
    words = " ".join(taken).split()
    return " ".join(words[:40]) if len(words) <= 40 else ""


def meqsum(repo: Path) -> Iterator[Row]:
    """Rule M: consumer health questions (first sentence of the message; summaries) -> agent."""
    rows = _xlsx_rows(_git_bytes(repo, "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"))
    for cells in rows[1:]:
        chq, summary = cells.get("B", ""), cells.get("C", "")
        ask = _first_ask(chq)
        if ask:
            yield ask, "agent", "medical:meqsum-message", "MeQSum"
        if summary.strip():
            yield clean(summary), "agent", "medical:meqsum-summary", "MeQSum"
