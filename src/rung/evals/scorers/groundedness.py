"""Groundedness: are the answer's claims supported by the retrieved sources?

`groundedness` scorer -> `hallucination` (1.0 when at least one claim is unsupported, lower is
better) and `claim_support` (share of claims supported). A claim is supported by a set of chunks
when (1) every number, amount, percentage, date, name and product code in it appears in one of
them (the hard check) and (2) it overlaps enough with a source sentence window: content-word
recall >= lexical_threshold, or cosine similarity >= embedding_threshold with the embedder from
the ScoreContext (lexical-only when there is none, said in details). Default thresholds were
calibrated on fitz-gov (docs/scorer-quality.md): recall 0.55 lexical-only; with the embedder,
similarity 0.75 or recall 0.9. With `mode: judge` the
configured judge model decides per claim instead (not measured when it fails).

`SupportChecker` is the support function shared with the citation scorer.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from rung.core import Answer, Case, RetrievedChunk, Score
from rung.errors import ScorerError
from rung.evals.scorers.base import ScoreContext, register
from rung.text.claims import SourceFacts, content_tokens, missing_facts, split_claims, split_sentences
from rung.text.refusal import detect_refusal, non_refusal_part

# Calibrated on the fitz-gov calibration split (benchmarks/scorer_quality.py); see docs/scorer-quality.md.
DEFAULT_LEXICAL_THRESHOLD = 0.55  # lexical-only (no embedder)
DEFAULT_LEXICAL_THRESHOLD_WITH_EMBEDDER = 0.9  # with the embedder, similarity carries paraphrases
DEFAULT_EMBEDDING_THRESHOLD = 0.75
_WINDOW = 2  # sentences per source window (claims often fuse two adjacent sentences)
_EMB_CACHE: dict[tuple[int, str], Any] = {}
_EMB_CACHE_MAX = 50_000


@dataclass
class ClaimVerdict:
    """Whether one claim is supported, and why."""

    claim: str
    supported: bool
    why: str
    lexical: float = 0.0
    similarity: float | None = None
    chunk: str | None = None  # id of the best-matching chunk
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lexical"] = round(self.lexical, 3)
        d["similarity"] = None if self.similarity is None else round(self.similarity, 3)
        return d


def embed(embedder: Any, texts: list[str]) -> Any:
    """Normalised embeddings, cached by text across calls (source windows repeat across cases)."""
    import numpy as np

    key = id(embedder)
    todo = list(dict.fromkeys(t for t in texts if (key, t) not in _EMB_CACHE))
    if todo:
        vecs = embedder.encode(todo, normalize_embeddings=True, convert_to_numpy=True, batch_size=32)
        if len(_EMB_CACHE) + len(todo) > _EMB_CACHE_MAX:
            _EMB_CACHE.clear()
        _EMB_CACHE.update({(key, t): v for t, v in zip(todo, vecs)})
    return np.stack([_EMB_CACHE[(key, t)] for t in texts]) if texts else np.zeros((0, 384))


class SupportChecker:
    """Decides, claim by claim, whether a set of chunks supports it."""

    def __init__(self, chunks: list[RetrievedChunk], embedder: Any = None,
                 lexical_threshold: float | None = None,
                 embedding_threshold: float = DEFAULT_EMBEDDING_THRESHOLD,
                 check_facts: bool = True, given: list[str] | None = None) -> None:
        self.chunks = chunks
        self.embedder = embedder
        if lexical_threshold is None:  # the calibrated default for the method in use
            lexical_threshold = (DEFAULT_LEXICAL_THRESHOLD if embedder is None
                                 else DEFAULT_LEXICAL_THRESHOLD_WITH_EMBEDDER)
        self.lexical_threshold = lexical_threshold
        self.embedding_threshold = embedding_threshold
        self.check_facts = check_facts
        # facts the user gave (names, numbers in the question) are not hallucinations when repeated
        self.facts = SourceFacts.of([c.text for c in chunks] + list(given or []))
        self.windows: list[tuple[str, str, set[str], int]] = []  # (chunk id, text, tokens, sentences)
        for c in chunks:
            sents = split_sentences(c.text) or [c.text]
            for size in range(1, _WINDOW + 1):
                for i in range(0, max(1, len(sents) - size + 1)):
                    text = " ".join(sents[i:i + size])
                    self.windows.append((c.id, text, set(content_tokens(text)), size))

    @property
    def method(self) -> str:
        return "lexical+embedding" if self.embedder is not None else "lexical"

    def check(self, claims: list[str]) -> list[ClaimVerdict]:
        if not self.chunks:
            return [ClaimVerdict(c, False, "no retrieved sources to support it") for c in claims]
        sims = self._similarities(claims)
        out = []
        for i, claim in enumerate(claims):
            out.append(self._verdict(claim, None if sims is None else sims[i]))
        return out

    def texts_to_embed(self, claims: list[str]) -> list[str]:
        """Everything `check` embeds (to batch several checkers' work into one encode call)."""
        return list(claims) + [self.windows[j][1] for j in self._sentence_windows]

    @property
    def _sentence_windows(self) -> list[int]:
        # similarity is computed against single sentences only: half the encoding work of all
        # windows, and lexical recall already covers claims that fuse adjacent sentences
        return [j for j, w in enumerate(self.windows) if w[3] == 1]

    def _similarities(self, claims: list[str]) -> Any:
        if self.embedder is None or not claims:
            return None
        import numpy as np

        idx = self._sentence_windows
        cv = embed(self.embedder, claims)
        wv = embed(self.embedder, [self.windows[j][1] for j in idx])
        full = np.full((len(claims), len(self.windows)), -1.0, dtype=np.float32)
        full[:, idx] = cv @ wv.T
        return full

    def _verdict(self, claim: str, sims: Any) -> ClaimVerdict:
        toks = set(content_tokens(claim))
        best_lex, best_w = 0.0, 0
        for j, (_cid, _text, wt, _n) in enumerate(self.windows):
            lex = len(toks & wt) / len(toks) if toks else 0.0
            if lex > best_lex:
                best_lex, best_w = lex, j
        sim, chunk = None, self.windows[best_w][0]
        if sims is not None:
            j = int(sims.argmax())
            sim = float(sims[j])
            if sim >= self.embedding_threshold or best_lex < self.lexical_threshold:
                chunk = self.windows[j][0]
        missing = [f.describe() for f in missing_facts(claim, self.facts)] if self.check_facts else []
        if missing:
            where = "any source" if len(self.chunks) > 1 else f"source {self.chunks[0].id}"
            why = "; ".join(f"{m} not in {where}" for m in missing)
            return ClaimVerdict(claim, False, why, best_lex, sim, chunk, missing)
        if best_lex >= self.lexical_threshold:
            return ClaimVerdict(claim, True, f"content-word recall {best_lex:.2f} in {chunk}", best_lex, sim, chunk)
        if sim is not None and sim >= self.embedding_threshold:
            return ClaimVerdict(claim, True, f"similarity {sim:.2f} to {chunk}", best_lex, sim, chunk)
        why = f"low overlap with sources (recall {best_lex:.2f} < {self.lexical_threshold}"
        why += f", similarity {sim:.2f} < {self.embedding_threshold})" if sim is not None else ")"
        return ClaimVerdict(claim, False, why, best_lex, sim, chunk)


def answer_claims(text: str) -> list[str]:
    """The factual claims of an answer: sentences without citation markers, boilerplate,
    questions, remarks about the sources, or refusal/abstention clauses."""
    if detect_refusal(text).kind == "full":
        return []
    out = []
    for c in split_claims(text):
        if c.kind != "factual":
            continue
        rest = non_refusal_part(c.text).strip()
        if rest and len(content_tokens(rest)) >= 2:
            out.append(rest)
    return out


_JUDGE_PROMPT = (
    "You check whether a claim is supported by source passages.\n\nSources:\n{sources}\n\n"
    "Claim: {claim}\n\nIs every part of the claim (including numbers, dates and names) stated in "
    "or directly implied by the sources? Answer with one word: SUPPORTED or UNSUPPORTED.")


def judge_claims(judge: Any, claims: list[str], chunks: list[RetrievedChunk]) -> list[bool | None]:
    """Ask the judge model per claim; None where it failed or answered something else."""
    from rung.models.base import GenerationParams, GenRequest

    sources = "\n".join(f"[{c.id}] {c.text}" for c in chunks) or "(none)"
    params = GenerationParams(max_new_tokens=8, temperature=0.0)
    reqs = [GenRequest.chat([{"role": "user", "content": _JUDGE_PROMPT.format(sources=sources, claim=c)}], params)
            for c in claims]
    try:
        outs = judge.generate(reqs)
    except Exception:  # noqa: BLE001 - any backend failure means "not measured", never a crash
        return [None] * len(claims)
    verdicts: list[bool | None] = []
    for o in outs:
        word = (o.text or "").strip().upper()
        if o.error or not word:
            verdicts.append(None)
        elif re.search(r"\bUNSUPPORTED\b|\bNOT SUPPORTED\b", word):
            verdicts.append(False)
        elif re.search(r"\bSUPPORTED\b", word):
            verdicts.append(True)
        else:
            verdicts.append(None)
    return verdicts


def _check_threshold(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ScorerError(f"scorer parameter {name}: expected a number in [0, 1], got {value!r}")
    return float(value)


@register("groundedness")
class GroundednessScorer:
    """hallucination + claim_support against answer.trace.retrieved."""

    name = "groundedness"

    def __init__(self, mode: str = "offline", lexical_threshold: float | None = None,
                 embedding_threshold: float = DEFAULT_EMBEDDING_THRESHOLD, check_facts: bool = True,
                 use_embedder: bool = True) -> None:
        if mode not in ("offline", "judge"):
            raise ScorerError(f"scorer groundedness: mode must be 'offline' or 'judge', got {mode!r}")
        self.mode = mode
        self.lexical_threshold = _check_threshold("lexical_threshold", lexical_threshold)
        self.embedding_threshold = _check_threshold("embedding_threshold", embedding_threshold)
        self.check_facts = bool(check_facts)
        self.use_embedder = bool(use_embedder)

    def checker(self, chunks: list[RetrievedChunk], ctx: ScoreContext,
                given: list[str] | None = None) -> SupportChecker:
        embedder = ctx.embedder if self.use_embedder else None
        return SupportChecker(chunks, embedder, self.lexical_threshold, self.embedding_threshold,
                              self.check_facts, given)

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        if answer.error and not answer.text.strip():
            why = f"the pipeline failed: {answer.error}"
            return [Score.not_measured("hallucination", why, False), Score.not_measured("claim_support", why)]
        claims = answer_claims(answer.text)
        chunks = list(answer.trace.retrieved)
        if not claims:
            return [Score("hallucination", 0.0, False, "refusal or no factual claims", {"claims": []}),
                    Score.not_measured("claim_support", "no factual claims to check")]
        details: dict[str, Any] = {}
        if self.mode == "judge":
            if ctx.judge is None:
                why = "mode judge but no judge model is configured"
                return [Score.not_measured("hallucination", why, False), Score.not_measured("claim_support", why)]
            verdicts = judge_claims(ctx.judge, claims, chunks)
            if any(v is None for v in verdicts):
                why = f"the judge {ctx.judge_id or ''} gave no usable verdict for some claims".replace("  ", " ")
                return [Score.not_measured("hallucination", why, False), Score.not_measured("claim_support", why)]
            results = [ClaimVerdict(c, bool(v), "judge: supported" if v else "judge: unsupported")
                       for c, v in zip(claims, verdicts)]
            details["method"] = "judge"
        else:
            given = [m.get("content", "") for m in case.chat() if m.get("role") == "user"]
            checker = self.checker(chunks, ctx, given=given)
            results = checker.check(claims)
            details["method"] = checker.method
            if checker.embedder is None:
                details["note"] = "no embedder available: lexical overlap and fact checks only"
        bad = [r for r in results if not r.supported]
        details["claims"] = [r.to_dict() for r in results]
        details["unsupported"] = [{"claim": r.claim, "why": r.why} for r in bad]
        share = (len(results) - len(bad)) / len(results)
        if bad:
            reason = f"{len(bad)}/{len(results)} claim(s) unsupported; first: {bad[0].why}"
        else:
            reason = f"all {len(results)} claim(s) supported"
        if not chunks:
            reason += " (no retrieved sources)"
        return [Score("hallucination", 1.0 if bad else 0.0, False, reason, details),
                Score("claim_support", share, True, reason, {"method": details["method"]})]
