"""Citation correctness: does every cited id exist among the retrieved chunks, and does the cited
chunk support the claim the citation follows?

`citation` scorer -> `citation_correct` (1.0 / 0.0). Citations are read from `answer.citations`
and from inline markers such as "[doc-id]" or "[chunk-id#3]" (several ids: "[a, b]"). An id
matches a chunk id or a document id (then any chunk of that document may support the claim).
An inline citation is checked against the sentence it follows, with the groundedness support
function restricted to the cited chunk(s); an id only in `answer.citations` must exist and
support at least one claim of the answer. Not measured when the answer cites nothing and the
case lists no `sources`; 0.0 when the case lists sources and nothing is cited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rung.core import Answer, Case, RetrievedChunk, Score
from rung.evals.scorers.base import ScoreContext, register
from rung.evals.scorers.groundedness import DEFAULT_EMBEDDING_THRESHOLD, SupportChecker, _check_threshold
from rung.text.claims import content_tokens, split_claims
from rung.text.refusal import non_refusal_part


@dataclass
class CitationCheck:
    id: str
    claim: str | None  # the sentence it follows (None: listed in answer.citations only)
    exists: bool
    supported: bool | None  # None: not checked (id unknown, or it follows no factual claim)
    why: str

    @property
    def ok(self) -> bool:
        return self.exists and self.supported is not False


def resolve(cid: str, chunks: list[RetrievedChunk]) -> list[RetrievedChunk]:
    """The chunks a citation id names: a chunk id, else a document id (exact, then ignoring case)."""
    for key in (lambda s: s, str.lower):
        k = key(cid.strip())
        hit = [c for c in chunks if key(c.id) == k]
        if hit:
            return hit
        hit = [c for c in chunks if key(c.doc_id) == k]
        if hit:
            return hit
    return []


@register("citation")
class CitationScorer:
    name = "citation"

    def __init__(self, lexical_threshold: float | None = None,
                 embedding_threshold: float = DEFAULT_EMBEDDING_THRESHOLD, check_facts: bool = True,
                 use_embedder: bool = True) -> None:
        self.lexical_threshold = _check_threshold("lexical_threshold", lexical_threshold)
        self.embedding_threshold = _check_threshold("embedding_threshold", embedding_threshold)
        self.check_facts = bool(check_facts)
        self.use_embedder = bool(use_embedder)

    def _checker(self, chunks: list[RetrievedChunk], embedder: Any) -> SupportChecker:
        return SupportChecker(chunks, embedder, self.lexical_threshold, self.embedding_threshold,
                              self.check_facts)

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        claims = split_claims(answer.text)
        inline = [(cid, c) for c in claims for cid in c.citations]
        listed = [cid for cid in dict.fromkeys(answer.citations) if cid not in {i for i, _ in inline}]
        if not inline and not listed:
            if case.sources:
                return [Score("citation_correct", 0.0, True,
                              f"the case expects sources {case.sources} but the answer cites nothing",
                              {"citations": [], "expected_sources": list(case.sources)})]
            return [Score.not_measured("citation_correct", "the answer cites nothing and the case lists no sources")]
        chunks = list(answer.trace.retrieved)
        embedder = ctx.embedder if self.use_embedder else None
        checks: list[CitationCheck] = []
        for cid, claim in inline:
            checks.append(self._check_inline(cid, claim.text, claim.kind, chunks, embedder))
        factual = [t for t in (non_refusal_part(c.text) for c in claims if c.kind == "factual")
                   if len(content_tokens(t)) >= 2]
        for cid in listed:
            checks.append(self._check_listed(cid, factual, chunks, embedder))
        bad = [c for c in checks if not c.ok]
        details: dict[str, Any] = {
            "citations": [c.__dict__ for c in checks],
            "method": "lexical+embedding" if embedder is not None else "lexical",
        }
        if embedder is None:
            details["note"] = "no embedder available: lexical overlap and fact checks only"
        cited_docs = {ch.doc_id for c in checks if c.exists for ch in resolve(c.id, chunks)}
        missing_sources = [s for s in case.sources if s not in cited_docs]
        if missing_sources:
            details["uncited_expected_sources"] = missing_sources
        if bad:
            reason = f"{len(bad)}/{len(checks)} citation(s) wrong; first: [{bad[0].id}] {bad[0].why}"
            return [Score("citation_correct", 0.0, True, reason, details)]
        return [Score("citation_correct", 1.0, True, f"all {len(checks)} citation(s) exist and support "
                      "their claims", details)]

    def _check_inline(self, cid: str, sentence: str, kind: str, chunks: list[RetrievedChunk],
                      embedder: Any) -> CitationCheck:
        target = resolve(cid, chunks)
        if not target:
            return CitationCheck(cid, sentence, False, None, f"id {cid!r} is not among the retrieved chunks")
        claim = non_refusal_part(sentence).strip() if kind == "factual" else ""
        if len(content_tokens(claim)) < 2:
            return CitationCheck(cid, sentence, True, None, "exists; follows no factual claim")
        v = self._checker(target, embedder).check([claim])[0]
        why = f"supports the claim ({v.why})" if v.supported else f"does not support the claim: {v.why}"
        return CitationCheck(cid, sentence, True, v.supported, why)

    def _check_listed(self, cid: str, factual: list[str], chunks: list[RetrievedChunk],
                      embedder: Any) -> CitationCheck:
        target = resolve(cid, chunks)
        if not target:
            return CitationCheck(cid, None, False, None, f"id {cid!r} is not among the retrieved chunks")
        if not factual:
            return CitationCheck(cid, None, True, None, "exists; the answer makes no factual claim")
        verdicts = self._checker(target, embedder).check(factual)
        hit = next((v for v in verdicts if v.supported), None)
        if hit:
            return CitationCheck(cid, hit.claim, True, True, f"supports a claim ({hit.why})")
        return CitationCheck(cid, None, True, False, f"supports none of the answer's {len(factual)} claim(s)")
