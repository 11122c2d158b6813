"""Spoken text <-> numbers: the shared front end of every skill.

`normalize()` turns a transcript into lower-case words with every spoken number as
digits ("twenty five" -> "25", "one and a half" -> "1.5", "what's" -> "what is"), so the
skills' grammars only ever see one spelling. "a"/"an" stay words: only the grammars
that expect a quantity ("an hour") read them as one.
"""

from __future__ import annotations

import math
import re

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9}
_FRACTIONS = {"half": 0.5, "quarter": 0.25}
_DIGITS = re.compile(r"\d+(?:\.\d+)?")

_CONTRACTIONS = (
    (re.compile(r"\bwhat'?s\b"), "what is"),
    (re.compile(r"\bit'?s\b"), "it is"),
    (re.compile(r"\bthat'?s\b"), "that is"),
    (re.compile(r"\bhow'?s\b"), "how is"),
    (re.compile(r"\bwhat'?re\b"), "what are"),
    (re.compile(r"\bi'?m\b"), "i am"),
)


def normalize(text: str) -> str:
    t = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)  # 1,000 -> 1000
    t = re.sub(r"(?<=[a-z\d])-(?=[a-z])", " ", t)  # twenty-five, ten-minute
    t = re.sub(r"(?<=[\d)])\s*-\s*(?=[\d(])", " minus ", t)
    t = re.sub(r"(?:^|(?<=[\s(]))-(?=[\d(])", "minus ", t)
    t = re.sub(r"(?<=[\d\s)])/(?=[\s\d(])", " divided by ", t)  # not km/h
    t = re.sub(r"\*\*|\^", " to the power of ", t)
    for sym, word in (("%", " percent "), ("+", " plus "), ("*", " times "), ("×", " times ")):
        t = t.replace(sym, word)
    t = t.replace("÷", " divided by ").replace("(", " ( ").replace(")", " ) ")
    t = re.sub(r"\.(?!\d)|[?!,;:\"]", " ", t)
    t = t.replace("per cent", "percent")
    for pattern, repl in _CONTRACTIONS:
        t = pattern.sub(repl, t)
    return " ".join(_numbers_to_digits(t.split()))


def _numbers_to_digits(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        run = _read_number(tokens, i)
        if run is None:
            out.append(tokens[i])
            i += 1
            continue
        value, i = run
        # "one and a half", "two and a quarter"
        if tokens[i : i + 2] == ["and", "a"] and i + 2 < len(tokens):
            frac = _FRACTIONS.get(tokens[i + 2])
            if frac is not None:
                value += frac
                i += 3
        out.append(format_plain(value))
    return out


def _read_number(tokens: list[str], i: int) -> tuple[float, int] | None:
    """The number starting at tokens[i] and the index after it, or None."""
    n = len(tokens)
    if tokens[i] in ("a", "an") and i + 1 < n and tokens[i + 1] in ("hundred", *_SCALES):
        tokens = [*tokens[:i], "one", *tokens[i + 1 :]]
    total, chunk, last, j = 0.0, 0.0, "", i
    while j < n:
        w = tokens[j]
        follows_number = j + 1 < n and (
            tokens[j + 1] in _UNITS or tokens[j + 1] in _TEENS or tokens[j + 1] in _TENS
        )
        if w == "and" and last in ("hundred", "scale") and follows_number:
            j += 1
            continue
        if _DIGITS.fullmatch(w) and not last:
            chunk, last = float(w), "digits"
        elif w in _UNITS and last in ("", "tens", "hundred", "scale"):
            chunk, last = chunk + _UNITS[w], "unit"
        elif w in _TEENS and last in ("", "hundred", "scale"):
            chunk, last = chunk + _TEENS[w], "teen"
        elif w in _TENS and last in ("", "hundred", "scale"):
            chunk, last = chunk + _TENS[w], "tens"
        elif w == "hundred" and last in ("unit", "teen", "tens", "digits") and chunk < 100:
            chunk, last = chunk * 100, "hundred"
        elif w in _SCALES and last in ("unit", "teen", "tens", "hundred", "digits"):
            total, chunk, last = total + chunk * _SCALES[w], 0.0, "scale"
        else:
            break
        j += 1
    if not last:
        return None
    value = total + chunk
    # "two point five": only after spoken words (digits already carry their decimals)
    if last != "digits" and j + 1 < n and tokens[j] == "point" and tokens[j + 1] in _UNITS:
        digits = ""
        j += 1
        while j < n and tokens[j] in _UNITS:
            digits += str(_UNITS[tokens[j]])
            j += 1
        value += float("0." + digits)
    return value, j


def format_plain(value: float) -> str:
    """A number as digits without float noise: 12.0 -> '12', 0.1+0.2 -> '0.3'."""
    if value == 0:
        return "0"  # also turns -0.0 into 0
    return f"{value:.12g}" if abs(value) < 1e15 else f"{value:.0f}"


def round_for_speech(value: float, significant: int = 3) -> tuple[float, bool]:
    """(value rounded to `significant` digits but never below whole units, is it exact?)."""
    if value == 0 or not math.isfinite(value):
        return value, True
    decimals = max(0, significant - 1 - math.floor(math.log10(abs(value))))
    rounded = round(value, decimals)
    return rounded, math.isclose(rounded, value, rel_tol=1e-9, abs_tol=1e-12)


def say_number(value: float, significant: int = 3) -> tuple[str, bool]:
    """Digits for the TTS to read, and whether they are exact (else say "about")."""
    rounded, exact = round_for_speech(value, significant)
    return format_plain(rounded), exact


_SMALL = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
]  # fmt: skip
_TENS_WORDS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINAL_SMALL = {
    1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh",
    8: "eighth", 9: "ninth", 10: "tenth", 11: "eleventh", 12: "twelfth", 13: "thirteenth",
    14: "fourteenth", 15: "fifteenth", 16: "sixteenth", 17: "seventeenth",
    18: "eighteenth", 19: "nineteenth", 20: "twentieth", 30: "thirtieth",
}  # fmt: skip


def int_words(n: int) -> str:
    """0 <= n < 1,000,000 in words: 25 -> 'twenty-five', 130 -> 'one hundred and thirty'."""
    if n < 0:
        return "minus " + int_words(-n)
    if n < 20:
        return _SMALL[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _TENS_WORDS[tens] + (f"-{_SMALL[unit]}" if unit else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_SMALL[hundreds]} hundred" + (f" and {int_words(rest)}" if rest else "")
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        sep = " and " if 0 < rest < 100 else " "
        return f"{int_words(thousands)} thousand" + (sep + int_words(rest) if rest else "")
    return str(n)


def ordinal_words(n: int) -> str:
    """1..99 as an ordinal: 5 -> 'fifth', 21 -> 'twenty-first'."""
    if n in _ORDINAL_SMALL:
        return _ORDINAL_SMALL[n]
    tens, unit = divmod(n, 10)
    if unit == 0:
        return _TENS_WORDS[tens][:-1] + "ieth"
    return f"{_TENS_WORDS[tens]}-{_ORDINAL_SMALL[unit]}"
