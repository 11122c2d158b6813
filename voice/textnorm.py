"""Text normalisation and word error rate, for comparing transcripts.

Whisper writes "Go forward 10 meters." where a reference says "go forward ten meters";
both must compare equal, so case, punctuation and (optionally) small numbers are
normalised away before words are compared.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

# Thousands separators ("1,000") go; decimal points ("3.5") stay part of the number.
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d{3}\b)")
# Apostrophes join ("it's" -> "its") so "it's" and "its" compare equal; everything else
# that is not a letter or digit (hyphens included: "ill-disposed" -> "ill disposed")
# separates words, because transcripts disagree about punctuation and compounds.
_APOSTROPHES = re.compile(r"['’‘`]")
_WORD = re.compile(r"\d+(?:\.\d+)+|[^\W_]+")


MAX_SPOKEN_NUMBER = 999_999


def number_to_words(n: int) -> str:
    """English words for an integer 0..999999 ("521" -> "five hundred twenty one")."""
    if not 0 <= n <= MAX_SPOKEN_NUMBER:
        raise ValueError(f"number_to_words handles 0..{MAX_SPOKEN_NUMBER}, not {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens - 2] if ones == 0 else f"{_TENS[tens - 2]} {_ONES[ones]}"
    big, rest, unit = (
        (n // 1000, n % 1000, "thousand") if n >= 1000 else (n // 100, n % 100, "hundred")
    )
    head = f"{number_to_words(big)} {unit}"
    return head if rest == 0 else f"{head} {number_to_words(rest)}"


def _is_spoken_int(word: str) -> bool:
    # "007" or "0800" is read digit by digit, not as a number: leave it alone.
    return (
        word.isascii()
        and word.isdigit()
        and word == str(int(word))
        and int(word) <= MAX_SPOKEN_NUMBER
    )


def normalize_text(text: str, numbers_to_words: bool = False) -> str:
    """Lowercase, punctuation removed, spaces collapsed.

    Numbers are left as they are ("3.5", "1000") unless `numbers_to_words` is set, in
    which case whole integers up to 999999 become words ("10" -> "ten", "15%" ->
    "fifteen percent") so a reference that
    spells numbers out compares fairly with Whisper's digits.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _APOSTROPHES.sub("", _DIGIT_COMMA.sub("", text))
    if numbers_to_words:
        text = text.replace("%", " percent ")
    words = _WORD.findall(text)
    if numbers_to_words:
        words = [number_to_words(int(w)) if _is_spoken_int(w) else w for w in words]
    return " ".join(words)


def word_error_rate(ref: str, hyp: str, numbers_to_words: bool = False) -> float:
    """(substitutions + deletions + insertions) / reference words, after normalisation.

    An empty reference gives 0.0 when the hypothesis is empty too, else 1.0 (the usual
    formula would divide by zero).
    """
    ref_words = normalize_text(ref, numbers_to_words).split()
    hyp_words = normalize_text(hyp, numbers_to_words).split()
    if not ref_words:
        return 0.0 if not hyp_words else 1.0
    # One row of the Levenshtein table at a time: O(len(hyp)) memory.
    previous = list(range(len(hyp_words) + 1))
    for i, ref_word in enumerate(ref_words, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp_words, start=1):
            current.append(
                min(
                    previous[j] + 1,  # deletion
                    current[j - 1] + 1,  # insertion
                    previous[j - 1] + (ref_word != hyp_word),  # substitution or match
                )
            )
        previous = current
    return previous[-1] / len(ref_words)
