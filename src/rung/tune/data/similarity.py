"""Text similarity for the dataset checks: TF-IDF (scikit-learn) cosine over word unigrams and
bigrams, sublinear term frequency. Pairs are found block by block so memory stays bounded."""

from __future__ import annotations

from dataclasses import dataclass

from rung.core import Message

BLOCK = 512


@dataclass
class Pair:
    i: int  # index into the first list
    j: int  # index into the second list (the same list for `pairs_within`)
    similarity: float


def user_text(messages: list[Message]) -> str:
    """What the user said (every user turn), the part of a prompt that identifies a task."""
    return "\n".join(m.get("content", "") for m in messages if m.get("role") == "user")


def _vectorizer():  # -> TfidfVectorizer
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True, dtype=np.float32,
                           token_pattern=r"(?u)\b\w[\w.+\-/]*\b")


def _fit(texts: list[str]):  # -> (vectorizer, matrix) or (None, None) with no vocabulary
    vec = _vectorizer()
    try:
        return vec, vec.fit_transform(texts)
    except ValueError:  # empty vocabulary (only empty or stop texts)
        return None, None


def pairs_within(texts: list[str], threshold: float) -> list[Pair]:
    """Pairs (i < j) of texts with cosine >= threshold."""
    if len(texts) < 2:
        return []
    _, x = _fit(texts)
    if x is None:
        return []
    import numpy as np

    out: list[Pair] = []
    for start in range(0, x.shape[0], BLOCK):
        sims = (x[start:start + BLOCK] @ x.T).tocoo()
        rows = sims.row.astype(np.int64) + start
        keep = (sims.data >= threshold) & (sims.col > rows)
        out.extend(Pair(int(i), int(j), float(v))
                   for i, j, v in zip(rows[keep], sims.col[keep], sims.data[keep]))
    return out


def nearest_across(queries: list[str], refs: list[str], threshold: float) -> list[Pair]:
    """For each query, its most similar reference when the cosine is >= threshold. IDF is fitted
    on both lists together."""
    if not queries or not refs:
        return []
    vec, _ = _fit(queries + refs)
    if vec is None:
        return []
    import numpy as np

    q, r = vec.transform(queries), vec.transform(refs)
    out: list[Pair] = []
    for start in range(0, q.shape[0], BLOCK):
        sims = (q[start:start + BLOCK] @ r.T).toarray()
        best = sims.argmax(axis=1)
        values = sims[np.arange(sims.shape[0]), best]
        out.extend(Pair(start + int(k), int(best[k]), float(values[k]))
                   for k in np.flatnonzero(values >= threshold))
    return out
