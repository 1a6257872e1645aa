"""The cost model: what one candidate costs per 1M requests, with every formula's inputs.

- Inference, endpoint (not self-hosted): measured mean tokens x the model's price per 1k tokens:
  `(tokens_in / 1000 x price_in + tokens_out / 1000 x price_out) x 1e6`.
- Inference, self-hosted: the serving instance's price per hour x the measured mean latency of a
  request, shared by the requests it serves at once:
  `compute_price_per_hour x (mean_latency_ms / 3.6e6) / serving_concurrency x 1e6`.
  Assumes the instance is kept busy (no idle time billed) and that latency under load equals the
  measured latency; both are stated in the figure. The latency here is the batched evaluation's
  (each case waited for its batch of `batch_size`): a throughput figure, which is what an
  instance serving `serving_concurrency` requests at once costs; the P95 budget is judged on the
  latency probe instead (latency as served, rung.evals.latency).
- Training (levels 1 and 2): `hours x training_price_per_hour`, hours measured by the tuning job
  (rung-lineage.json) when present, else `training_hours_level1/2`. It is amortised over
  `amortisation_months` and paid again at every policy change (`policy_changes_per_month`), so
  per month: `cost / amortisation_months + policy_changes_per_month x cost`; per 1M requests:
  that / (requests_per_month / 1e6). Without requests_per_month the training share cannot be
  spread over requests: the total is inference only, and the figure says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rung.config import Constraints
    from rung.decide.evidence import Evidence

MILLION = 1_000_000.0
MS_PER_HOUR = 3_600_000.0

Inputs = dict[str, "float | int | str | None"]


@dataclass
class CostFigure:
    """One line of the cost model: its value and the formula with the numbers that went in."""

    name: str
    per_million: float | None  # per 1M requests (None: cannot be computed, see formula)
    formula: str
    inputs: Inputs = field(default_factory=dict)
    per_month: float | None = None


@dataclass
class CandidateCost:
    candidate: str
    level: int
    run_id: str
    inference: CostFigure
    training: CostFigure | None = None  # levels 1-2: amortised training + re-training
    assumptions: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every part is known (the training share could be spread over requests)."""
        return self.inference.per_million is not None and (
            self.training is None or self.training.per_million is not None)

    @property
    def total_per_million(self) -> float | None:
        if self.inference.per_million is None:
            return None
        extra = self.training.per_million if self.training and self.training.per_million else 0.0
        return self.inference.per_million + extra

    @property
    def per_1k(self) -> float | None:
        t = self.total_per_million
        return None if t is None else t / 1000.0

    @property
    def figures(self) -> list[CostFigure]:
        return [self.inference] + ([self.training] if self.training else [])


def inference_cost(e: Evidence, c: Constraints) -> CostFigure:
    if not e.self_hosted:
        t_in, t_out = e.summary.tokens_in_mean, e.summary.tokens_out_mean
        inputs: Inputs = {"tokens_in_mean": t_in, "tokens_out_mean": t_out,
                          "price_in_per_1k": e.price_in_per_1k,
                          "price_out_per_1k": e.price_out_per_1k}
        if t_in is None or t_out is None:
            run_cost = e.summary.cost_per_1k_requests
            if run_cost is None:
                return CostFigure("inference (endpoint)", None,
                                  "not measured: the run has no token counts", inputs)
            return CostFigure("inference (endpoint)", run_cost * 1000.0,
                              "cost_per_1k_requests of the run x 1000",
                              {"cost_per_1k_requests": run_cost})
        per_request = t_in / 1000.0 * e.price_in_per_1k + t_out / 1000.0 * e.price_out_per_1k
        return CostFigure("inference (endpoint)", per_request * MILLION,
                          "(tokens_in_mean/1000 x price_in_per_1k + tokens_out_mean/1000 x "
                          "price_out_per_1k) x 1e6", inputs)
    lat = e.mean_latency_ms  # batched: the evaluation's throughput, not one request's latency
    inputs = {"compute_price_per_hour": c.compute_price_per_hour, "mean_latency_ms": lat,
              "serving_concurrency": c.serving_concurrency}
    if lat is None:
        return CostFigure("inference (self-hosted)", None, "not measured: the run has no latency",
                          inputs)
    per_request = c.compute_price_per_hour * (lat / MS_PER_HOUR) / c.serving_concurrency
    return CostFigure("inference (self-hosted)", per_request * MILLION,
                      "compute_price_per_hour x mean_latency_ms / 3.6e6 / serving_concurrency "
                      "x 1e6", inputs)


def training_cost(e: Evidence, c: Constraints) -> CostFigure | None:
    if e.level < 1:
        return None
    measured = e.artifact.training_seconds if e.artifact else None
    if measured is not None:
        hours, source = measured / 3600.0, "measured by the tuning job"
    else:
        hours = c.training_hours_level1 if e.level == 1 else c.training_hours_level2
        source = f"estimate (constraints.training_hours_level{e.level})"
    once = hours * c.training_price_per_hour
    per_month = once / c.amortisation_months + c.policy_changes_per_month * once
    inputs: Inputs = {"training_hours": hours, "hours_source": source,
                      "training_price_per_hour": c.training_price_per_hour,
                      "training_cost": once, "amortisation_months": c.amortisation_months,
                      "policy_changes_per_month": c.policy_changes_per_month,
                      "requests_per_month": c.requests_per_month}
    formula = ("(training_cost / amortisation_months + policy_changes_per_month x training_cost)"
               " / (requests_per_month / 1e6); training_cost = training_hours x "
               "training_price_per_hour")
    if not c.requests_per_month:
        return CostFigure("training + re-training", None,
                          formula + "; not spread over requests: constraints.requests_per_month "
                          "is not set", inputs, per_month=per_month)
    per_million = per_month / (c.requests_per_month / MILLION)
    return CostFigure("training + re-training", per_million, formula, inputs, per_month=per_month)


def candidate_cost(e: Evidence, c: Constraints) -> CandidateCost:
    inf = inference_cost(e, c)
    tr = training_cost(e, c)
    out = CandidateCost(e.candidate, e.level, e.run_id, inf, tr)
    if e.self_hosted:
        out.assumptions.append(
            f"self-hosted: one instance at {c.compute_price_per_hour:g}/hour serves "
            f"{c.serving_concurrency:g} requests at once at the measured latency, kept busy; "
            "mean_latency_ms is the batched evaluation's (a throughput figure), not latency as "
            "served")
    elif e.price_in_per_1k == 0 and e.price_out_per_1k == 0:
        out.assumptions.append(f"endpoint {e.model or e.model_id!r} has price 0: set its "
                               "`price` in rung.yaml for a real figure")
    if tr is not None:
        out.assumptions.append(f"training hours: {tr.inputs['hours_source']}")
        if tr.per_million is None:
            out.assumptions.append("training cost per month not spread over requests "
                                   "(set constraints.requests_per_month): total is inference only")
    return out
