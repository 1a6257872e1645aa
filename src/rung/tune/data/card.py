"""The dataset card: what is in a dataset and how it got there, saved as card.json.

Counts (of the final, balanced examples) by source, label, tag, length bucket (words in the
whole conversation), language (the stopword heuristic of rung.tune.data.language, over the user
turns and the target) and lineage (product / policy versions, annotators); what the sources
skipped and why; the checks' findings; the balance report; the inputs of the build.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

from rung.tune.data.balance import BalanceReport, word_count
from rung.tune.data.checks import Finding
from rung.tune.data.language import guess_language
from rung.tune.data.similarity import user_text
from rung.tune.data.sources import Skipped
from rung.tune.example import Example

LENGTH_BUCKETS = ((32, "≤32 words"), (128, "33-128 words"), (512, "129-512 words"))
LANGUAGE_METHOD = ("stopword heuristic (en/es/fr/de): the language with the most common-word hits "
                   "(at least 2, strictly more than any other), else 'unknown'")


def length_bucket(ex: Example) -> str:
    n = word_count(ex)
    for limit, name in LENGTH_BUCKETS:
        if n <= limit:
            return name
    return ">512 words"


def _sorted(c: Counter[str]) -> dict[str, int]:
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def counts(examples: list[Example]) -> dict[str, dict[str, int]]:
    """The card's count tables."""
    order = [name for _, name in LENGTH_BUCKETS] + [">512 words"]
    lengths = Counter(length_bucket(ex) for ex in examples)
    return {
        "source": _sorted(Counter(ex.lineage.source for ex in examples)),
        "label": _sorted(Counter(ex.label for ex in examples)),
        "tag": _sorted(Counter(t for ex in examples for t in ex.tags)),
        "length": {b: lengths[b] for b in order if lengths[b]},
        "language": _sorted(Counter(guess_language(user_text(ex.messages) + "\n" + ex.target)
                                    for ex in examples)),
        "product_version": _sorted(Counter(ex.lineage.product_version or "(none)" for ex in examples)),
        "policy_version": _sorted(Counter(ex.lineage.policy_version or "(none)" for ex in examples)),
        "annotator": _sorted(Counter(ex.lineage.annotator or "(none)" for ex in examples)),
    }


def make_card(examples: list[Example], *, name: str, inputs: dict[str, Any], skipped: Skipped,
              findings: list[Finding], balance: BalanceReport, sourced: int) -> dict[str, Any]:
    """The card as a JSON-ready dict (Dataset.save(card=...) writes it into card.json)."""
    return {
        "name": name,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "examples": len(examples),
        "sourced": sourced,  # examples before balancing (sources + negatives)
        "inputs": inputs,
        "skipped": skipped.to_dict(),
        "counts": counts(examples),
        "language_method": LANGUAGE_METHOD,
        "checks": [f.to_dict() for f in findings],
        "balance": balance.to_dict(),
    }
