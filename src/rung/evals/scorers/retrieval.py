"""Retrieval quality of one answer, against the case's `sources` (document ids).

`retrieval` scorer -> three scores, all higher-is-better:
- context_precision: the share of retrieved chunks whose doc_id is one of the case's sources;
- context_recall: the share of the case's sources with at least one retrieved chunk;
- hit_at_k: 1.0 when any source was retrieved, else 0.0.

The retrieved chunks are `answer.trace.retrieved`, in rank order; with parameter `k` only the
first k count. Not measured when the case lists no sources. When the case lists sources and
nothing was retrieved (no retrieval, or it found nothing), recall and hit are 0.0 and precision
is not measured (there is nothing to take a share of).
"""

from __future__ import annotations

from dataclasses import dataclass

from rung.core import Answer, Case, Score
from rung.errors import ScorerError
from rung.evals.scorers.base import ScoreContext, register

NAMES = ("context_precision", "context_recall", "hit_at_k")


@register("retrieval")
@dataclass
class RetrievalScorer:
    k: int | None = None
    name: str = "retrieval"

    def __post_init__(self) -> None:
        if self.k is not None and (not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1):
            raise ScorerError(f"scorer 'retrieval': k must be a positive integer, got {self.k!r}")

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        sources = list(dict.fromkeys(s for s in case.sources if s))
        if not sources:
            return [Score.not_measured(n, "the case lists no sources") for n in NAMES]
        chunks = list(answer.trace.retrieved)
        if not chunks and not any(e.get("type") == "retrieval" for e in answer.trace.events):
            return [Score.not_measured(n, "the candidate does not retrieve") for n in NAMES]
        if self.k is not None:
            chunks = chunks[: self.k]
        doc_ids = [c.doc_id for c in chunks]
        found = [s for s in sources if s in set(doc_ids)]
        missing = [s for s in sources if s not in found]
        details = {"sources": sources, "retrieved_docs": list(dict.fromkeys(doc_ids)), "missing": missing}
        recall = len(found) / len(sources)
        hit = 1.0 if found else 0.0
        if not chunks:
            why = "nothing was retrieved"
            return [Score.not_measured("context_precision", why),
                    Score("context_recall", 0.0, True, why, details),
                    Score("hit_at_k", 0.0, True, why, details)]
        relevant = sum(1 for d in doc_ids if d in set(sources))
        precision = relevant / len(chunks)
        return [
            Score("context_precision", precision, True,
                  f"{relevant} of {len(chunks)} retrieved chunks come from a source", details),
            Score("context_recall", recall, True,
                  f"{len(found)} of {len(sources)} sources retrieved" + (f"; missing {missing}" if missing else ""),
                  details),
            Score("hit_at_k", hit, True, "a source was retrieved" if hit else "no source was retrieved", details),
        ]
