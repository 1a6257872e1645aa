"""Near-duplicate detection between questions: TF-IDF cosine over word unigrams and bigrams.

Pure python on purpose, so that make_train.py (decontamination) and tests/test_example.py (the
check) use exactly the same measure without loading a model. The IDF weights are fitted on the
reference texts (the eval questions), so a score does not depend on which train examples exist.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_WORD = re.compile(r"\w[\w.+\-/]*")


def terms(text: str) -> Counter[str]:
    words = _WORD.findall(text.casefold())
    return Counter(words + [f"{a} {b}" for a, b in zip(words, words[1:])])


class Index:
    """The reference texts (id, text), vectorised; `nearest` finds the closest one to a text."""

    def __init__(self, items: list[tuple[str, str]]):
        docs = [terms(text) for _, text in items]
        df = Counter(term for doc in docs for term in doc)
        n = len(docs)
        # terms unseen in the references get the highest weight: they can only lower a score
        self._idf = {term: math.log((1 + n) / (1 + count)) + 1.0 for term, count in df.items()}
        self._default_idf = math.log(1 + n) + 1.0
        self._items = [(item_id, self._vector(doc)) for (item_id, _), doc in zip(items, docs)]

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        v = {t: c * self._idf.get(t, self._default_idf) for t, c in counts.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        return {t: x / norm for t, x in v.items()}

    def nearest(self, text: str) -> tuple[float, str]:
        """(cosine, id) of the most similar reference text."""
        v = self._vector(terms(text))
        best, best_id = 0.0, ""
        for item_id, ref in self._items:
            score = sum(x * ref.get(t, 0.0) for t, x in v.items())
            if score > best:
                best, best_id = score, item_id
        return best, best_id
