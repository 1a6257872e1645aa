"""A small language guess for the dataset card: English, Spanish, French or German.

It is a heuristic, not a language identifier: it counts how many words of the text are in a
short list of very common words (stopwords) of each language and picks the language with the
most hits, when it has at least MIN_HITS and more than any other; otherwise "unknown". It is
good enough to count a mix of these four languages in a card; other languages come out
"unknown" (or wrong, for languages close to these four).
"""

from __future__ import annotations

import re

MIN_HITS = 2
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and is are was to of in for on with my your you i it this that can do "
                    "does what how have has not be will at from or if".split()),
    "es": frozenset("el la los las de del que y en un una es por para con mi su no se lo al "
                    "como pero más puedo qué cómo está tengo hay".split()),
    "fr": frozenset("le la les des du de et est un une pour dans que qui je mon ma mes ne pas "
                    "sur avec vous il au aux par en puis comment quel quelle".split()),
    "de": frozenset("der die das und ist nicht ich mein meine ein eine zu mit den dem des für "
                    "auf wie kann ich es sie wir sich noch auch bei".split()),
}


def guess_language(text: str) -> str:
    """"en", "es", "fr", "de" or "unknown" (see the module doc)."""
    words = [w.casefold() for w in _WORD.findall(text)]
    hits = {lang: sum(1 for w in words if w in stops) for lang, stops in STOPWORDS.items()}
    ranked = sorted(hits.items(), key=lambda kv: -kv[1])
    best, n = ranked[0]
    if n < MIN_HITS or n == ranked[1][1]:
        return "unknown"
    return best
