"""Text normalisation for comparing answers with references and key facts.

`normalize(text)` makes two phrasings of the same fact compare equal:

- Unicode NFKC + casefold ("Straße" == "STRASSE");
- punctuation and hyphens become spaces, whitespace collapses ("30-day" -> "30 day");
- numbers: thousands separators dropped ("1,000" -> "1000"), trailing decimal zeros dropped
  ("30.00" -> "30"), "%" spelled "percent", English number words become digits
  ("thirty" -> "30", "twenty-one" -> "21");
- a light plural fold: a trailing "s" is dropped from words longer than three letters that do
  not end in "ss", "us" or "is" ("days" -> "day", "refunds" -> "refund"). It is applied to both
  sides, so it only has to be consistent, not linguistically right.

`contains(haystack, needle)` is whole-token containment of the normalised needle, so "30"
does not match "130".
"""

from __future__ import annotations

import re
import unicodedata

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD_VALUE = {w: i for i, w in enumerate(_ONES)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NOT_WORD = re.compile(r"[^\w\s.]|_")
_LONE_DOT = re.compile(r"(?<!\d)\.|\.(?!\d)")
_DECIMAL = re.compile(r"^\d+\.\d+$")


def tokens(text: str) -> list[str]:
    """The normalised tokens of `text` (see the module doc)."""
    t = unicodedata.normalize("NFKC", text or "").casefold()
    t = t.replace("%", " percent ")
    t = _THOUSANDS.sub("", t)
    t = _NOT_WORD.sub(" ", t)
    t = _LONE_DOT.sub(" ", t)
    return [_fold(w) for w in _merge_number_words(t.split())]


def normalize(text: str) -> str:
    """`tokens(text)` joined by single spaces."""
    return " ".join(tokens(text))


def contains(haystack: str, needle: str) -> bool:
    """Whether the normalised needle occurs in the normalised haystack, on token boundaries.
    An empty needle is contained in anything."""
    n = normalize(needle)
    if not n:
        return True
    return f" {n} " in f" {normalize(haystack)} "


def _fold(word: str) -> str:
    if _DECIMAL.match(word):
        word = word.rstrip("0").rstrip(".")
        return word or "0"
    if word in _WORD_VALUE:
        return str(_WORD_VALUE[word])
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")) \
            and not word[:-1].isdigit():
        return word[:-1]
    return word


def _merge_number_words(words: list[str]) -> list[str]:
    """"twenty one" -> "21": a tens word followed by a ones word (one to nine)."""
    out: list[str] = []
    for w in words:
        prev = out[-1] if out else ""
        if prev in _TENS and w in _ONES[1:10]:
            out[-1] = str(_WORD_VALUE[prev] + _WORD_VALUE[w])
        else:
            out.append(w)
    return out
