"""The `usage` scorer (always on): latency_ms, tokens_in, tokens_out and cost of each answer.

cost = tokens_in / 1000 * price_in_per_1k + tokens_out / 1000 * price_out_per_1k, with the
candidate's model prices from ScoreContext (zero for a local model unless rung.yaml sets one).
All four are lower-is-better. A cached answer reports the tokens and cost of producing it (what
a real request would have cost), with details["cached"] set. Latency is "not measured" when
the pipeline recorded no timings.
"""

from __future__ import annotations

from dataclasses import dataclass

from rung.core import Answer, Case, Score
from rung.evals.scorers.base import ScoreContext, register


def answer_cost(tokens_in: int, tokens_out: int, price_in_per_1k: float, price_out_per_1k: float) -> float:
    """The price of one request."""
    return tokens_in / 1000.0 * price_in_per_1k + tokens_out / 1000.0 * price_out_per_1k


@register("usage")
@dataclass
class UsageScorer:
    """latency_ms, tokens_in, tokens_out, cost (all lower is better)."""

    name: str = "usage"
    higher_is_better: bool = False

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        details = {"cached": answer.cached}
        if answer.timings_ms:
            latency = Score("latency_ms", float(answer.latency_ms), False,
                            details={**details, "timings_ms": dict(answer.timings_ms)})
        else:
            latency = Score.not_measured("latency_ms", "the pipeline recorded no timings", False)
        cost = answer_cost(answer.tokens_in, answer.tokens_out, ctx.price_in_per_1k, ctx.price_out_per_1k)
        return [
            latency,
            Score("tokens_in", float(answer.tokens_in), False, details=details),
            Score("tokens_out", float(answer.tokens_out), False, details=details),
            Score("cost", cost, False, details={**details, "price_in_per_1k": ctx.price_in_per_1k,
                                                "price_out_per_1k": ctx.price_out_per_1k}),
        ]
