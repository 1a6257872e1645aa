"""Does an answer refuse or abstain? Phrase patterns per language, with negation, quotation and
position awareness, plus an optional embedding check against refusal prototypes.

`detect_refusal(text)` returns a `RefusalVerdict`:
- kind "full": the answer declines / abstains and gives nothing else of substance;
- kind "partial": it declines something but also gives substantive content ("I can't share Y,
  but X is ..."; "the documents don't state the price; the plan includes SSO ...");
- kind "none": it answers. Formulaic caveats after an answer ("I'm not a lawyer", "consult a
  doctor") are disclaimers, not refusals.
`refused` is True for "full" and "partial". The phrase lists live in data/refusal_phrases.yaml
(en, es, fr, de, it, pt). Usable outside scorers (e.g. by a pipeline's guardrail).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from rung.text.claims import classify_sentence, content_tokens, extract_facts, normalise, split_sentences

Kind = Literal["full", "partial", "none"]
STRONG = ("refuse", "abstain")

# Calibrated on the fitz-gov calibration split (benchmarks/scorer_quality.py); see docs/scorer-quality.md.
DEFAULT_EMBEDDING_THRESHOLD = 0.30  # max similarity to a refusal prototype
DEFAULT_EMBEDDING_MARGIN = 0.10  # ... minus max similarity to an answer prototype
MIN_SUBSTANTIVE_TOKENS = 4

_CONTRAST = re.compile(
    r"[,;:]?\s*\b(?:but|however|although|though|while|whereas|yet|instead|pero|sin embargo|aunque|mais|"
    r"cependant|toutefois|aber|jedoch|allerdings|ma|però|tuttavia|mas|porém|no entanto)\b[,:]?\s*"
    r"|[;:]\s+|\s+[-\u2013\u2014]\s+")
_SCOPE = re.compile(
    r"^(?:(?:while|although|though|whereas|aunque|bien que|obwohl|sebbene|embora)\s+)?"
    r"(?:the |these |those |my |our |this |that |both |all |los |las |el |la |les |le |der |die |das |"
    r"il |i |o |os |as )?(?:provided |given |available |retrieved |supplied |attached |above )?"
    r"(?:context|documents?|docs|sources?|passages?|texts?|excerpts?|materials?|information|search results|"
    r"records?|articles?|snippets?|contexto|documentos?|fuentes?|documents?|contexte|kontext|dokumente?|"
    r"quellen?|unterlagen|contesto|documenti|fonti)\b"
    r"|^(?:they|it|these|those|this|that)\s+(?:only\s+)?(?:\w+\s+)?(?:describes?|covers?|discuss(?:es)?|"
    r"mentions?|focus(?:es)?|talks?|deals?|relates?|refers?|contains?|provides?|are about|is about|"
    r"concerns?|addresses?)\b"
    r"|^(?:instead|rather),?\s", re.IGNORECASE)
_REDIRECT = re.compile(
    r"^(?:please\s+|you\s+(?:may|might|could|should|can)\s+(?:want to\s+|wish to\s+)?|i\s+(?:would\s+|'d\s+)?"
    r"(?:recommend|suggest|encourage)\s+(?:that you\s+|you\s+)?|i'?d\s+recommend\s+|try\s+)"
    r"(?:consult|contact|check|reach out|refer|ask|visit|look|speak|talk|call|email|search)", re.IGNORECASE)


@dataclass(frozen=True)
class RefusalVerdict:
    """Whether a text refuses, how (full / partial / none), what showed it and how sure we are."""

    refused: bool
    kind: Kind
    signal: str
    confidence: float
    language: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"refused": self.refused, "kind": self.kind, "signal": self.signal,
                "confidence": round(self.confidence, 3), "language": self.language}


@dataclass(frozen=True)
class _Hit:
    category: str  # refuse | abstain | weak | disclaimer | help
    language: str
    sentence: int
    matched: str
    start: int
    end: int


@lru_cache(maxsize=1)
def phrase_table() -> dict[str, Any]:
    """The compiled phrase patterns per language and the embedding prototypes."""
    import yaml

    raw = yaml.safe_load(resources.files("rung.text").joinpath("data/refusal_phrases.yaml").read_text("utf-8"))
    table: dict[str, Any] = {"prototypes": raw.pop("prototypes", {}), "languages": {}}
    for lang, cats in raw.items():
        table["languages"][lang] = {cat: [re.compile(p) for p in pats] for cat, pats in cats.items()}
    return table


def _mask(text: str, patterns: list[re.Pattern[str]]) -> str:
    for rx in patterns:
        text = rx.sub(lambda m: " " * len(m.group(0)), text)
    return text


def _prepare(sentence: str) -> str:
    """Lower-case, unify quotes, mask quoted spans (a quoted refusal is not a refusal)."""
    s = normalise(sentence).lower()
    s = re.sub(r'"[^"]{2,300}"|«[^»]{2,300}»|„[^"]{2,300}"', lambda m: " " * len(m.group(0)), s)
    return s


def _hits(sentence: str, index: int) -> list[_Hit]:
    return [_Hit(h.category, h.language, index, h.matched, h.start, h.end) for h in _sentence_hits(sentence)]


@lru_cache(maxsize=16384)
def _sentence_hits(sentence: str) -> tuple[_Hit, ...]:
    index = 0
    s = _prepare(sentence)
    out: list[_Hit] = []
    for lang, cats in phrase_table()["languages"].items():
        masked = _mask(s, cats.get("exceptions", []))
        for cat in ("refuse", "abstain", "weak", "disclaimer", "help"):
            for rx in cats.get(cat, []):
                m = rx.search(masked)
                if m:
                    out.append(_Hit(cat, lang, index, sentence[m.start():m.end()].strip(), m.start(), m.end()))
                    break
    return tuple(out)


@lru_cache(maxsize=16384)
def _substantive(clause: str) -> bool:
    c = clause.strip(" ,;:-\u2013\u2014")
    if len(content_tokens(c)) < MIN_SUBSTANTIVE_TOKENS:
        return False
    if _SCOPE.match(c) or _REDIRECT.match(c):
        return False
    if any(h.category in STRONG + ("weak", "disclaimer") for h in _hits(c, 0)):
        return False
    return classify_sentence(c) == "factual"


def _clauses(sentence: str) -> list[str]:
    return [p for p in _CONTRAST.split(sentence) if p and p.strip()]


def non_refusal_part(sentence: str) -> str:
    """The part of a sentence that is not a refusal/abstention clause ("" if it is all refusal)."""
    if not any(h.category in STRONG for h in _hits(sentence, 0)):
        return sentence
    keep = [c for c in _clauses(sentence) if not any(h.category in STRONG for h in _hits(c, 0))
            and not _SCOPE.match(c.strip())]
    return " ".join(c.strip() for c in keep if len(content_tokens(c)) >= MIN_SUBSTANTIVE_TOKENS)


def is_refusal_sentence(sentence: str) -> bool:
    """True when the sentence contains a refusal or abstention phrase (patterns only)."""
    return any(h.category in STRONG for h in _hits(sentence, 0))


def detect_refusal(text: str, embedder: Any = None, *,
                   embedding_threshold: float = DEFAULT_EMBEDDING_THRESHOLD,
                   embedding_margin: float = DEFAULT_EMBEDDING_MARGIN) -> RefusalVerdict:
    """Classify `text` as a full refusal, a partial refusal or an answer.

    `embedder` (a SentenceTransformer, optional) adds a similarity check against refusal
    prototypes for phrasings the patterns miss; without it only the patterns are used.
    """
    sentences = split_sentences(text or "")
    if not sentences:
        return RefusalVerdict(True, "full", "empty answer", 0.5)
    hits = [h for i, s in enumerate(sentences) for h in _hits(s, i)]
    strong = [h for h in hits if h.category in STRONG]
    refusing_idx = {h.sentence for h in hits if h.category in STRONG + ("weak", "disclaimer")}
    substantive = [i for i, s in enumerate(sentences) if i not in refusing_idx and _substantive(s)]
    partial_clause = _partial_in_sentence(sentences, strong)

    if strong:
        first = min(strong, key=lambda h: (h.sentence, h.category != "refuse"))
        signal = f"{first.language}:{first.category}: '{first.matched}' (sentence {first.sentence + 1})"
        if substantive or partial_clause:
            why = partial_clause or f"and {len(substantive)} substantive sentence(s)"
            return RefusalVerdict(True, "partial", f"{signal}; {why}", 0.8, first.language)
        conf = 0.95 if first.sentence == 0 else 0.85
        return RefusalVerdict(True, "full", signal, conf, first.language)

    weak = [h for h in hits if h.category in ("weak", "disclaimer")]
    if weak and not substantive:
        h = weak[0]
        return RefusalVerdict(True, "full", f"{h.language}:{h.category}: '{h.matched}' and no substantive "
                              "content", 0.6, h.language)
    if embedder is not None:
        verdict = _embedding_check(sentences, substantive, embedder, embedding_threshold, embedding_margin)
        if verdict is not None:
            return verdict
    if weak:
        h = weak[0]
        return RefusalVerdict(False, "none", f"answers; only a {h.category} phrase '{h.matched}'", 0.7,
                              h.language)
    return RefusalVerdict(False, "none", "no refusal phrase" + (" or prototype match" if embedder else ""),
                          0.8 if embedder is not None else 0.75)


def _partial_in_sentence(sentences: list[str], strong: list[_Hit]) -> str:
    """A refusal sentence that also helps: an offer of help or a substantive contrasting clause."""
    for h in strong:
        sent = sentences[h.sentence]
        if any(x.category == "help" for x in _hits(sent, 0)) and _CONTRAST.search(sent):
            return f"offers help in the same sentence: '{sent.strip()[:120]}'"
        for clause in _clauses(sent):
            if not any(x.category in STRONG for x in _hits(clause, 0)) and _substantive(clause):
                return f"answers in the same sentence: '{clause.strip()[:120]}'"
    return ""


_PROTO_CACHE: dict[int, tuple[Any, Any]] = {}
_SIM_CACHE: dict[tuple[int, str], tuple[float, float]] = {}


def _prototype_vectors(embedder: Any) -> tuple[Any, Any]:
    key = id(embedder)
    if key not in _PROTO_CACHE:
        protos = phrase_table()["prototypes"]
        ref = embedder.encode(protos["refusal"], normalize_embeddings=True, convert_to_numpy=True)
        ans = embedder.encode(protos["answer"], normalize_embeddings=True, convert_to_numpy=True)
        _PROTO_CACHE.clear()
        _SIM_CACHE.clear()
        _PROTO_CACHE[key] = (ref, ans)
    return _PROTO_CACHE[key]


def refusal_similarity(sentences: list[str], embedder: Any) -> list[tuple[float, float]]:
    """(max similarity to a refusal prototype, max similarity to an answer prototype) per sentence."""
    ref, ans = _prototype_vectors(embedder)
    key = id(embedder)
    todo = list(dict.fromkeys(s for s in sentences if (key, s) not in _SIM_CACHE))
    if todo:
        vecs = embedder.encode(todo, normalize_embeddings=True, convert_to_numpy=True, batch_size=32)
        if len(_SIM_CACHE) + len(todo) > 20_000:
            _SIM_CACHE.clear()
        for s, v in zip(todo, vecs):
            _SIM_CACHE[(key, s)] = (float((v @ ref.T).max()), float((v @ ans.T).max()))
    return [_SIM_CACHE[(key, s)] for s in sentences]


def _embedding_check(sentences: list[str], substantive: list[int], embedder: Any,
                     threshold: float, margin: float) -> RefusalVerdict | None:
    # a sentence that states a specific number, date, name or code is not an abstention
    candidates = [i for i, s in enumerate(sentences) if not extract_facts(s)]
    if not candidates:
        return None
    sims = dict(zip(candidates, refusal_similarity([sentences[i] for i in candidates], embedder)))
    best = max(candidates, key=lambda i: sims[i][0] - sims[i][1])
    r, a = sims[best]
    if r < threshold or r - a < margin:
        return None
    others = [i for i in substantive if i != best]
    kind: Kind = "partial" if others else "full"
    signal = f"embedding: sentence {best + 1} is close to a refusal prototype ({r:.2f} vs answer {a:.2f})"
    return RefusalVerdict(True, kind, signal, min(0.9, 0.5 + (r - a)), "")
