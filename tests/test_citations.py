"""Citation markers: extraction, checking against retrieved chunks, stripping, enforcement."""

from __future__ import annotations

import pytest

from rung.core import RetrievedChunk
from rung.pipeline.citations import (
    DEFAULT_REFUSAL,
    canonical_citations,
    check_citations,
    enforce_required_citations,
    extract_citations,
    strip_citation_markers,
)
from rung.text.refusal import detect_refusal

CHUNKS = [
    RetrievedChunk("refund-policy-eu-v3#2", "refund-policy-eu-v3", "EU refunds within 14 days."),
    RetrievedChunk("shipping-eu#1", "shipping-eu", "Standard shipping takes 3 days."),
    RetrievedChunk("warranty-eu#0", "warranty-eu", "Two-year warranty."),
]


@pytest.mark.parametrize(("text", "expected"), [
    ("Refunds take 14 days [refund-policy-eu-v3#2].", ["refund-policy-eu-v3#2"]),
    ("See [doc: refund-policy-eu-v3] and [Source: shipping-eu].", ["refund-policy-eu-v3", "shipping-eu"]),
    ("Both [shipping-eu#1, warranty-eu#0; refund-policy-eu-v3].",
     ["shipping-eu#1", "warranty-eu#0", "refund-policy-eu-v3"]),
    ("Cited twice [warranty-eu] and again [warranty-eu].", ["warranty-eu"]),
    ("Full-width 【warranty-eu】 and id=: [id=shipping-eu#1]", ["warranty-eu", "shipping-eu#1"]),
    ("Numbers stay numbers without numbering [2] [^3].", ["2", "3"]),
    ("Not citations: [[phrase:x]] [phrase:y] [a link](http://x) [see above] [].", []),
])
def test_extract_citations(text: str, expected: list[str]) -> None:
    assert extract_citations(text) == expected


def test_numeric_markers_map_to_numbered_chunks() -> None:
    text = "Shipping [2]. Warranty [^3]. Range [1-2]. Out of range [7]. Source [Source 1]."
    assert extract_citations(text, CHUNKS) == [
        "shipping-eu#1", "warranty-eu#0", "refund-policy-eu-v3#2", "7"]
    assert canonical_citations("A [doc: shipping-eu]. B [2, 3].", CHUNKS) == (
        "A [shipping-eu]. B [shipping-eu#1, warranty-eu#0].")


def test_check_citations_matches_chunk_or_document() -> None:
    check = check_citations(["refund-policy-eu-v3#2", "Shipping-EU", "warranty-eu.md", "pricing-us", "7"], CHUNKS)
    assert check.valid == ["refund-policy-eu-v3#2", "Shipping-EU", "warranty-eu.md"]
    assert check.unknown_ids == ["pricing-us", "7"]
    assert check.retrieved_ids == ["refund-policy-eu-v3#2", "shipping-eu#1", "warranty-eu#0"]
    assert check.cited_docs == ["refund-policy-eu-v3", "shipping-eu", "warranty-eu"]
    assert not check.ok
    assert check_citations(["shipping-eu#1"], CHUNKS).ok
    assert not check_citations([], CHUNKS).ok


def test_strip_citation_markers_tidies_text() -> None:
    text = ("Refunds take 14 days [refund-policy-eu-v3#2]. Ships fast [1], [2]; free [doc: shipping-eu] "
            "over 50 EUR.\n[3] Warranty applies. Keep [[phrase:x]] and [see above].")
    assert strip_citation_markers(text) == (
        "Refunds take 14 days. Ships fast; free over 50 EUR.\nWarranty applies. "
        "Keep [[phrase:x]] and [see above].")


def test_enforce_required_citations() -> None:
    answer = "EU refunds take 14 days [refund-policy-eu-v3#2]."
    assert enforce_required_citations(answer, extract_citations(answer), CHUNKS) == (answer, False, "")
    text, refused, reason = enforce_required_citations("EU refunds take 14 days.", [], CHUNKS)
    assert (text, refused, reason) == (DEFAULT_REFUSAL, True, "the answer cites no retrieved source")
    text, refused, reason = enforce_required_citations("x [pricing-us]", ["pricing-us"], CHUNKS)
    assert refused and reason == "the answer cites only ids that were not retrieved: pricing-us"
    text, refused, reason = enforce_required_citations(answer, ["refund-policy-eu-v3#2"], [], "No source.")
    assert (text, refused) == ("No source.", True) and "nothing was retrieved" in reason


def test_default_refusal_reads_as_a_refusal() -> None:
    # the refusal scorer must count rung's own refusal as one
    assert detect_refusal(DEFAULT_REFUSAL).refused
