"""LLM text deltas -> speakable chunks.

Two streaming stages, both pure functions of the text seen so far, so an answer split
into any deltas gives exactly the chunks of the whole text:

* `MarkdownStripper` turns markdown into plain text worth saying. It works on whole
  words and whole line starts (it holds back the word still being typed), so a marker
  split across deltas ("**bo" + "ld**") is always seen whole.
* `SentenceChunker` cuts that plain text at sentence ends. Like pipecat's aggregator it
  waits for the next non-space character before deciding, so "$29.95", "Dr. Smith",
  "e.g. this" and "the U.S. Army" are not split.

When unsure whether a period ends a sentence, the chunker does NOT cut: a chunk holding
two sentences only starts a little later (Piper still pauses between them), while a cut
inside a sentence makes the voice drop its pitch mid-phrase.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from voice.config import ChunkerConfig

_TERMINALS = ".!?…"
_CLOSERS = "\"')]}”’»"
_OPENERS = "\"'([{“‘«"
_CLAUSE_PUNCT = ",;:"

# Never end a sentence after these (lower case, trailing dot removed). Dotted letter
# groups ("e.g", "u.s", "a.m", "ph.d") and single initials ("J") are matched by
# _DOTTED_LETTERS instead of being listed.
_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "mt",
        "jr",
        "sr",
        "vs",
        "etc",
        "approx",
        "dept",
        "inc",
        "ltd",
        "co",
        "corp",
        "gen",
        "gov",
        "lt",
        "col",
        "capt",
        "sgt",
        "rev",
        "hon",
        "ave",
        "blvd",
        "rd",
        "cf",
        "al",
        "esp",
        "est",
    }
)
# Abbreviations that only precede a number ("No. 5", "Fig. 3"); "no." is also a word.
_NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "fig", "vol", "pp", "p", "ch", "sec"})
_DOTTED_LETTERS = re.compile(r"(?:[a-z]{1,2}\.)*[a-z]")

_SPEAKABLE = re.compile(r"[^\W_]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.!?;:…)\]”’])")
_REPEATED_CLAUSE_PUNCT = re.compile(r"([,;])(?:\s*[,;])+")
_LEADING_JUNK = re.compile(r"^(?:[,;:!?…—–)\]]|\.(?!\d)|-(?=\s)|\s)+")

# --- markdown ------------------------------------------------------------------------

# Characters a markdown line prefix is made of. Until a line shows a character outside
# this set (or ends), its prefix ("1. ", "- ", "## ", "> ", "```") is not decided yet.
_MARKER_CHARS = frozenset(" \t#>-*+•0123456789.)`~_=|:")
_BLOCK_PREFIX = re.compile(
    r"(?:[ \t]*(?:#{1,6}[ \t]+|>[ \t]?|[-*+•][ \t]+|\d{1,3}[.)][ \t]+|\|[ \t]*))*[ \t]*"
)
_RULE_LINE = re.compile(r"[ \t]*(?:[-*_=][ \t]*){3,}")
_TABLE_RULE = re.compile(r"[ \t]*\|?(?:[ \t]*:?-{2,}:?[ \t]*\|?)+[ \t]*")
_FENCES = ("```", "~~~")
_WHITESPACE = re.compile(r"[ \t]")
_MAX_HELD_WORD = 400
"""A "word" this long without a space (a pasted blob) is processed anyway."""

_AUTOLINK = re.compile(r"<((?:https?://|www\.)[^\s>]+)>")
_IMAGE_START = re.compile(r"!\[")
# "](target)" of a markdown link; targets may hold one level of parentheses (Wikipedia).
_LINK_TARGET = re.compile(r"\]\((?:[^()\s]|\([^()\s]*\))*\)")
_BARE_URL = re.compile(r"(?:https?://|www\.)[^\s<>\[\]\"']+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)"
_HTML_AMP = re.compile(r"&amp;", re.IGNORECASE)
_AMPERSAND = re.compile(r"\s*&\s*")
_APPROX = re.compile(r"~(?=\d)")
_EMOJI = re.compile(
    "["
    "\U0001f000-\U0001faff"  # pictographs, emoticons, transport, flags, skin tones
    "\u2600-\u27bf"  # misc symbols and dingbats
    "\u2b00-\u2bff"  # stars, arrows used as emoji
    "\u231a\u231b\u23e9-\u23fa"  # watch, hourglass, media keys
    "\ufe0e\ufe0f\u200d\u20e3"  # variation selectors, zero-width joiner, keycap
    "\U000e0020-\U000e007f"  # tag characters (subdivision flags)
    "]"
)
_MARKUP = re.compile(r"[*`~\[\]]|\\(?=[^\w\s])")
_EDGE_UNDERSCORES = re.compile(r"(?<![^\W_])_+|_+(?![^\W_])")
_PIPE = re.compile(r"\s*\|\s*")


class MarkdownStripper:
    """Streaming markdown -> plain speakable text.

    `push` returns only text that is final; `flush` returns the rest and resets.
    """

    def __init__(self, config: ChunkerConfig) -> None:
        self._config = config
        self._pending = ""
        self._at_line_start = True
        self._in_code = False
        self._skip_line = False

    def push(self, delta: str) -> str:
        self._pending += delta.replace("\r\n", "\n").replace("\r", "\n")
        return self._drain(final=False)

    def flush(self) -> str:
        out = self._drain(final=True)
        self._pending = ""
        self._at_line_start = True
        self._in_code = False
        self._skip_line = False
        return out

    def peek(self) -> str | None:
        """The first character of the text still held back, when it is already certain.

        The chunker needs the next non-space character to decide a sentence end; this
        saves waiting for the whole next word. Only a letter or digit mid-line is
        certain: no inline rule changes it, except a URL ("http...", "www...").
        """
        if self._at_line_start or self._in_code or self._skip_line or not self._pending:
            return None
        first = self._pending[0]
        if first.isalnum() and first.lower() not in "hw":
            return first
        return None

    def _drain(self, final: bool) -> str:
        out: list[str] = []
        while self._pending:
            if self._skip_line:
                newline = self._pending.find("\n")
                if newline < 0:
                    self._pending = ""
                    break
                self._pending = self._pending[newline + 1 :]
                self._skip_line = False
                self._at_line_start = True
            elif self._at_line_start:
                if not self._line_start(out, final):
                    break
            elif not self._line_body(out, final):
                break
        return "".join(out)

    def _line_start(self, out: list[str], final: bool) -> bool:
        """Deal with a line's block prefix; False when more text is needed to decide."""
        pending = self._pending
        newline = pending.find("\n")
        line = pending if newline < 0 else pending[:newline]
        complete = newline >= 0 or final
        if self._in_code:
            head = line.lstrip()[:3]
            is_fence = head in _FENCES
            if not (is_fence or complete or not any(f.startswith(head) for f in _FENCES)):
                return False
            self._in_code = not is_fence
            self._skip_line = True
            self._at_line_start = False
            return True
        if not complete and all(c in _MARKER_CHARS for c in line):
            return False
        if complete and (_RULE_LINE.fullmatch(line) or _TABLE_RULE.fullmatch(line)):
            self._skip_line = True  # horizontal rules and table separators say nothing
            self._at_line_start = False
            return True
        if line.lstrip().startswith(_FENCES):
            self._in_code = True
            self._skip_line = True
            self._at_line_start = False
            if self._config.code_block_text:
                out.append(self._config.code_block_text + "\n")
            return True
        prefix = _BLOCK_PREFIX.match(pending)
        if prefix is not None:
            self._pending = pending[prefix.end() :]
        self._at_line_start = False
        return True

    def _line_body(self, out: list[str], final: bool) -> bool:
        """Clean the complete words of the current line; False when only a partial
        word (still being typed) is left."""
        pending = self._pending
        newline = pending.find("\n")
        if newline >= 0:
            out.append(self._words(pending[:newline]) + "\n")
            self._pending = pending[newline + 1 :]
            self._at_line_start = True
            return True
        space = _WHITESPACE.search(pending)
        if (space.start() if space else len(pending)) >= _MAX_HELD_WORD:
            cut = _MAX_HELD_WORD  # a blob without spaces: do not hold it for ever
        elif final:
            cut = len(pending)
        else:
            cut = max(pending.rfind(" "), pending.rfind("\t")) + 1
            if cut == 0:
                return False  # only the word still being typed is left
        out.append(self._words(pending[:cut]))
        self._pending = pending[cut:]
        return True

    def _words(self, text: str) -> str:
        """Inline markdown of complete words. Every rule stays inside one word, so the
        result does not depend on where the text was split."""
        text = text.replace("\t", " ")
        text = _AUTOLINK.sub(r"\1", text)
        text = _IMAGE_START.sub("[", text)
        text = _LINK_TARGET.sub("", text)
        text = _BARE_URL.sub(self._say_url, text)
        text = _HTML_AMP.sub("&", text)
        text = _AMPERSAND.sub(" and ", text)
        text = _APPROX.sub("about ", text)
        text = _EMOJI.sub("", text)
        text = _MARKUP.sub("", text)
        text = _EDGE_UNDERSCORES.sub("", text)
        text = text.replace("_", " ")
        return _PIPE.sub(", ", text)

    def _say_url(self, match: re.Match[str]) -> str:
        url = match.group(0)
        trailing = ""
        while url and url[-1] in _URL_TRAILING and not (url[-1] == ")" and "(" in url):
            trailing = url[-1] + trailing
            url = url[:-1]
        if self._config.url_style == "link":
            return "a link" + trailing
        try:
            host = urlsplit(url if "://" in url else "http://" + url).hostname
        except ValueError:
            host = None
        if not host:
            return "a link" + trailing
        host = host.removeprefix("www.")
        return " dot ".join(part for part in host.split(".") if part) + trailing


class SentenceChunker:
    """Cuts an answer's text deltas into chunks worth handing to the synthesizer.

    One instance per answer at a time; `flush()` ends the answer and resets the state,
    so the next answer's first chunk may again end early at a comma.
    """

    def __init__(self, config: ChunkerConfig) -> None:
        self._config = config
        self._stripper = MarkdownStripper(config)
        self._buf = ""
        self._first = True

    def push(self, delta: str) -> list[str]:
        self._buf += self._stripper.push(delta)
        return self._drain()

    def flush(self) -> list[str]:
        self._buf += self._stripper.flush()
        out = self._drain()
        self._emit(self._buf, at_newline=False, into=out)
        self._buf = ""
        self._first = True
        return out

    def _drain(self) -> list[str]:
        out: list[str] = []
        while True:
            cut = self._next_cut()
            if cut is None:
                return out
            end, rest, at_newline = cut
            self._emit(self._buf[:end], at_newline, out)
            self._buf = self._buf[rest:].lstrip()

    def _emit(self, raw: str, at_newline: bool, into: list[str]) -> None:
        chunk = speakable(raw, at_newline)
        if chunk is not None:
            into.append(chunk)
            self._first = False

    def _next_cut(self) -> tuple[int, int, bool] | None:
        """(chunk end, start of the rest, cut at a line break), or None when no cut can be
        decided from the text so far. Depends only on the buffered text, never on how it
        arrived."""
        buf = self._buf
        n = len(buf)
        max_chars = self._config.max_chars
        i = 0
        while i < n:
            if i > max_chars:
                return self._length_cut()
            ch = buf[i]
            if ch == "\n":
                return i, i + 1, True
            if ch in _TERMINALS:
                j = i
                while j < n and buf[j] in _TERMINALS:
                    j += 1
                while j < n and buf[j] in _CLOSERS:
                    j += 1
                if j >= n:
                    return None  # the next character decides (flush takes the rest)
                if not buf[j].isspace():
                    i = j  # "3.5", "$29.95", "e.g.x"
                    continue
                k = j
                while k < n and buf[k].isspace():
                    if buf[k] == "\n":
                        return j, k, False
                    k += 1
                following = buf[k] if k < n else self._stripper.peek()
                if following is None:
                    return None  # wait for the next non-space character
                if _ends_sentence(buf, i, j, following):
                    return j, k, False
                i = k
                continue
            if self._first:
                clause = self._clause_cut(i)
                if clause == -1:
                    return None
                if clause is not None:
                    return clause, clause, False
            i += 1
        return None

    def _clause_cut(self, i: int) -> int | None:
        """Where the first chunk may end early at position i; -1 = needs the next char."""
        buf = self._buf
        ch = buf[i]
        most = self._config.first_chunk_max_words
        if ch == " " and most and len(buf[:i].split()) >= most:
            return i  # a long opening clause: speak its first words now
        if ch in _CLAUSE_PUNCT or ch in "—–-":
            if len(buf[:i].split()) < self._config.first_chunk_min_words:
                return None
            if ch != "—" and ch != "," and ch not in _CLAUSE_PUNCT and buf[i - 1] != " ":
                return None  # "1990–2000", "well-known"
            if i + 1 >= len(buf):
                return -1
            if ch == "—" or buf[i + 1].isspace():
                return i + 1
        return None

    def _length_cut(self) -> tuple[int, int, bool]:
        """A chunk that found no sentence end within max_chars: cut at the last comma
        (if it leaves a decent chunk), else the last space, else hard."""
        max_chars = self._config.max_chars
        window = self._buf[: max_chars + 1]
        comma = max(window.rfind(", "), window.rfind("; "))
        if comma >= max_chars // 3:
            return comma + 1, comma + 1, False
        space = window.rfind(" ")
        if space > 0:
            return space, space, False
        return max_chars, max_chars, False


def _ends_sentence(buf: str, start: int, end: int, following: str) -> bool:
    """Whether the punctuation buf[start:end] ends a sentence, given the next non-space
    character."""
    run = buf[start:end].rstrip(_CLOSERS)
    if "?" in run or "!" in run:
        return True
    if following.islower():
        return False  # "e.g. apples", "3 p.m. tomorrow", "Well... maybe"
    if run != ".":
        return True
    before = buf[:start]
    token = before.split()[-1] if before and not before[-1].isspace() else ""
    token = token.lstrip(_OPENERS).lower()
    if token in _ABBREVIATIONS:
        return False
    if token in _NUMBER_ABBREVIATIONS and following.isdigit():
        return False
    return not _DOTTED_LETTERS.fullmatch(token)  # "J. R. R. Tolkien", "U.S. Army"


def speakable(raw: str, at_newline: bool = False) -> str | None:
    """Tidy a cut piece of text into a chunk; None when there is nothing to say.

    A chunk cut at a line break (a list item, a heading) gets a full stop so it is
    spoken as a sentence.
    """
    text = " ".join(raw.split())
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_CLAUSE_PUNCT.sub(r"\1", text)
    text = _LEADING_JUNK.sub("", text)
    if not _SPEAKABLE.search(text):
        return None
    if text[-1] in "—–-" and (text[-1] == "—" or text[-2:-1] == " "):
        text = text[:-1].rstrip() + ","
    if at_newline:
        if text[-1] in ",;":
            text = text[:-1] + "."
        elif text.rstrip(_CLOSERS)[-1:] not in _TERMINALS + ":":
            text += "."
    return text


async def chunks(deltas: AsyncIterator[str], chunker: SentenceChunker) -> AsyncIterator[str]:
    """Speakable chunks of a stream of text deltas, as soon as each is decided."""
    async for delta in deltas:
        for chunk in chunker.push(delta):
            yield chunk
    for chunk in chunker.flush():
        yield chunk
