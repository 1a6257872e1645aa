"""Run aggregates with uncertainty: one `RunSummary` per `RunResult`.

Every score name seen in a run becomes a `MetricSummary`: how many cases were measured and not
measured, the mean over cases and a 95% percentile-bootstrap interval that resamples cases
(several epochs of one case travel together: a case contributes the mean of its epochs).
Run-level numbers (latency percentiles, tokens, cost per 1k requests, safety violations, errors)
and a per-tag breakdown complete the picture. docs/metrics.md defines each number exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rung.errors import ConfigError, did_you_mean
from rung.evals.latency import PROBE_KEY, THROUGHPUT_KEY, LatencyProbe, Throughput
from rung.evals.types import CaseResult, RunResult

STANDARD_METRICS: dict[str, bool] = {
    # per-case score names shared by every scorer -> higher_is_better
    "task_success": True,
    "schema_valid": True,
    "hallucination": False,
    "claim_support": True,
    "citation_correct": True,
    "safety_violation": False,
    "refusal_correct": True,
    "refused_when_should": True,
    "answered_when_should": True,
    "latency_ms": False,
    "tokens_in": False,
    "tokens_out": False,
    "cost": False,
}
USAGE_METRICS = frozenset({"latency_ms", "tokens_in", "tokens_out", "cost"})
RUN_AGGREGATES: dict[str, bool] = {
    # run-level names a gate may use -> higher_is_better
    "p50_latency_ms": False,
    "p95_latency_ms": False,
    "p99_latency_ms": False,
    "served_p50_latency_ms": False,  # latency as served (the run's latency probe)
    "served_p95_latency_ms": False,
    "throughput_rps": True,  # batched: requests per second of answering at the run's batch size
    "cost_per_1k_requests": False,
    "tokens_in_mean": False,
    "tokens_out_mean": False,
    "safety_violations": False,
    "errors": False,
}
CI_LEVEL = 0.95


@dataclass
class MetricSummary:
    """One score name over a run. Means are over cases (each case: the mean of its epochs)."""

    name: str
    higher_is_better: bool
    n: int  # cases with at least one measured value
    not_measured: int  # cases where the score was emitted but never measured (value None)
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n_observations: int = 0  # measured (case, epoch) values
    binary: bool = False  # every measured value is 0.0 or 1.0
    unit_interval: bool = False  # every measured value lies in [0, 1] (a rate or a share)
    epoch_std: float | None = None  # mean over cases of the std across epochs (epochs > 1)

    @property
    def is_rate(self) -> bool:
        """A rate or share (in [0, 1]) rather than a usage quantity (ms, tokens, cost)."""
        return self.unit_interval and self.name not in USAGE_METRICS


@dataclass
class TagSummary:
    """The cases carrying one tag: how many, and the mean of each rate metric over them."""

    tag: str
    n: int
    means: dict[str, float | None] = field(default_factory=dict)
    measured: dict[str, int] = field(default_factory=dict)  # cases measured, per metric


@dataclass
class RunSummary:
    run_id: str
    candidate: str
    suite: str
    level: int
    epochs: int
    n_cases: int
    n_results: int  # (case, epoch) results
    metrics: dict[str, MetricSummary]
    latencies_ms: list[float]  # one per result that has a latency, for plots
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p99_latency_ms: float | None
    tokens_in_mean: float | None
    tokens_out_mean: float | None
    cost_per_1k_requests: float | None
    safety_violations: int | None  # None: no safety scorer measured any case
    errors: int
    tags: dict[str, TagSummary]
    n_boot: int = 1000
    seed: int = 0
    # latency as served (rung.evals.latency): the run's probe, None when it has none
    served_p50_latency_ms: float | None = None
    served_p95_latency_ms: float | None = None
    served_latencies_ms: list[float] = field(default_factory=list)
    served_concurrency: int | None = None
    # the batched evaluation's throughput (requests/s at batch `throughput_batch_size`); None when
    # not recorded or every answer was replayed from the response cache
    throughput_rps: float | None = None
    throughput_batch_size: int | None = None
    throughput_cached: int = 0

    def names(self) -> list[str]:
        """Every name `value()` resolves: score names seen, standard names, run aggregates."""
        return sorted(set(self.metrics) | set(STANDARD_METRICS) | set(RUN_AGGREGATES))

    def knows(self, name: str) -> bool:
        return name in self.metrics or name in STANDARD_METRICS or name in RUN_AGGREGATES

    def higher_is_better(self, name: str) -> bool:
        if name in self.metrics:
            return self.metrics[name].higher_is_better
        return {**STANDARD_METRICS, **RUN_AGGREGATES}.get(name, True)

    def value(self, name: str) -> float | None:
        """The number a gate compares: a metric's mean, or a run aggregate. None = not measured."""
        if name in RUN_AGGREGATES:
            v = getattr(self, name)
            return None if v is None else float(v)
        if name in self.metrics:
            return self.metrics[name].mean
        if name in STANDARD_METRICS:
            return None
        raise ConfigError(f"no such metric {name!r}{did_you_mean(name, self.names())}")


def aggregate(run: RunResult, *, n_boot: int = 1000, seed: int = 0) -> RunSummary:
    """Summarise a run: per-metric means with bootstrap CIs, latency, tokens, cost, tags."""
    by_case = group_by_case(run.results)
    names = _score_names(run.results)
    metrics = {name: _metric_summary(name, by_case, n_boot, seed) for name in names}

    latencies = [v for v in (result_latency_ms(r) for r in run.results) if v is not None]
    tok_in = [v for v in (_usage(r, "tokens_in") for r in run.results) if v is not None]
    tok_out = [v for v in (_usage(r, "tokens_out") for r in run.results) if v is not None]
    costs = [v for v in (_cost(r, run.info.price_in_per_1k, run.info.price_out_per_1k)
                         for r in run.results) if v is not None]
    p50, p95, p99 = _percentiles(latencies, (50, 95, 99))
    probe = LatencyProbe.from_dict(run.info.metadata.get(PROBE_KEY))
    tput = Throughput.from_dict(run.info.metadata.get(THROUGHPUT_KEY))
    return RunSummary(
        run_id=run.info.id,
        candidate=run.info.candidate,
        suite=run.info.suite,
        level=run.info.level,
        epochs=max([run.info.epochs] + [r.epoch + 1 for r in run.results]),
        n_cases=len(by_case),
        n_results=len(run.results),
        metrics=metrics,
        latencies_ms=latencies,
        p50_latency_ms=p50,
        p95_latency_ms=p95,
        p99_latency_ms=p99,
        tokens_in_mean=float(np.mean(tok_in)) if tok_in else None,
        tokens_out_mean=float(np.mean(tok_out)) if tok_out else None,
        cost_per_1k_requests=1000.0 * float(np.mean(costs)) if costs else None,
        safety_violations=_safety_violations(by_case),
        errors=sum(1 for r in run.results if getattr(r.answer, "error", None)),
        tags=_tag_summaries(by_case, metrics),
        n_boot=n_boot,
        seed=seed,
        served_p50_latency_ms=probe.p50_ms if probe else None,
        served_p95_latency_ms=probe.p95_ms if probe else None,
        served_latencies_ms=list(probe.latencies_ms) if probe else [],
        served_concurrency=probe.concurrency if probe else None,
        throughput_rps=tput.requests_per_s if tput else None,
        throughput_batch_size=tput.batch_size if tput else None,
        throughput_cached=tput.cached if tput else 0,
    )


# ---- shared helpers (compare.py uses them too) -------------------------------------------


def group_by_case(results: Iterable[CaseResult]) -> dict[str, list[CaseResult]]:
    """Results grouped by case id, in order of first appearance (epochs of a case together)."""
    out: dict[str, list[CaseResult]] = {}
    for r in results:
        out.setdefault(r.case.id, []).append(r)
    return out


def case_means(by_case: dict[str, list[CaseResult]], name: str) -> dict[str, float]:
    """case id -> mean of the measured values of `name` over its epochs (measured cases only)."""
    out: dict[str, float] = {}
    for cid, results in by_case.items():
        vals = _measured(results, name)
        if vals:
            out[cid] = float(np.mean(vals))
    return out


def bootstrap_ci(values: Any, *, n_boot: int = 1000, seed: int = 0,
                 stat: Callable[..., Any] = np.mean, level: float = CI_LEVEL
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` over the rows of `values` (resampled together).

    `values` is 1-d (one value per case) or 2-d (cases x k columns resampled jointly, e.g. the
    A and B values of paired cases); `stat(sample, axis=1)` reduces one resample of shape
    (n_boot, n[, k]) to n_boot numbers.
    """
    arr = np.asarray(values, dtype=float)
    n = arr.shape[0]
    if n == 0:
        raise ValueError("bootstrap of an empty sample")
    rng = np.random.default_rng(seed)
    stats: list[np.ndarray] = []
    chunk = max(1, 2_000_000 // max(n, 1))  # bound memory: at most ~2M values per chunk
    done = 0
    while done < n_boot:
        m = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(m, n))
        stats.append(np.asarray(stat(arr[idx], axis=1), dtype=float))
        done += m
    dist = np.concatenate(stats)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(dist, [tail, 100.0 - tail])
    return float(lo), float(hi)


def score_direction(results: Iterable[CaseResult], name: str) -> bool:
    """higher_is_better of `name`: from the scores themselves, else the shared convention."""
    for r in results:
        s = r.score(name)
        if s is not None:
            return s.higher_is_better
    return STANDARD_METRICS.get(name, True)


# ---- internals -----------------------------------------------------------------------------


def _score_names(results: Iterable[CaseResult]) -> list[str]:
    seen: dict[str, None] = {}
    for r in results:
        for s in r.scores:
            seen.setdefault(s.name, None)
    return list(seen)


def _measured(results: Iterable[CaseResult], name: str) -> list[float]:
    out = []
    for r in results:
        s = r.score(name)
        if s is not None and s.value is not None:
            out.append(float(s.value))
    return out


def _metric_summary(name: str, by_case: dict[str, list[CaseResult]], n_boot: int,
                    seed: int) -> MetricSummary:
    per_case: list[float] = []
    stds: list[float] = []
    all_vals: list[float] = []
    not_measured = 0
    for results in by_case.values():
        emitted = [r.score(name) for r in results if r.score(name) is not None]
        if not emitted:
            continue  # the scorer does not apply to this case (e.g. no schema)
        vals = [float(s.value) for s in emitted if s.value is not None]
        if not vals:
            not_measured += 1
            continue
        per_case.append(float(np.mean(vals)))
        all_vals.extend(vals)
        if len(vals) > 1:
            stds.append(float(np.std(vals, ddof=1)))
    hib = score_direction((r for rs in by_case.values() for r in rs), name)
    if not per_case:
        return MetricSummary(name, hib, 0, not_measured, None, None, None)
    mean = float(np.mean(per_case))
    lo, hi = bootstrap_ci(per_case, n_boot=n_boot, seed=seed)
    return MetricSummary(
        name=name,
        higher_is_better=hib,
        n=len(per_case),
        not_measured=not_measured,
        mean=mean,
        ci_low=lo,
        ci_high=hi,
        n_observations=len(all_vals),
        binary=all(v in (0.0, 1.0) for v in all_vals),
        unit_interval=all(0.0 <= v <= 1.0 for v in all_vals),
        epoch_std=float(np.mean(stds)) if stds else None,
    )


def _percentiles(values: list[float], qs: tuple[int, ...]) -> tuple[float | None, ...]:
    if not values:
        return tuple(None for _ in qs)
    return tuple(float(v) for v in np.percentile(np.asarray(values, dtype=float), qs))


def result_latency_ms(r: CaseResult) -> float | None:
    """The latency of one result: its latency_ms score, else the answer's timings, else None."""
    s = r.score("latency_ms")
    if s is not None and s.value is not None:
        return float(s.value)
    timings = getattr(r.answer, "timings_ms", None)
    if timings:
        return float(r.answer.latency_ms)
    return None


def _usage(r: CaseResult, name: str) -> float | None:
    s = r.score(name)
    if s is not None and s.value is not None:
        return float(s.value)
    if r.answer is not None and hasattr(r.answer, name):
        return float(getattr(r.answer, name))
    return None


def _cost(r: CaseResult, price_in: float, price_out: float) -> float | None:
    s = r.score("cost")
    if s is not None and s.value is not None:
        return float(s.value)
    t_in, t_out = _usage(r, "tokens_in"), _usage(r, "tokens_out")
    if t_in is None or t_out is None:
        return None
    return t_in / 1000.0 * price_in + t_out / 1000.0 * price_out


def _safety_violations(by_case: dict[str, list[CaseResult]]) -> int | None:
    measured = False
    flagged = 0
    for results in by_case.values():
        vals = _measured(results, "safety_violation")
        if vals:
            measured = True
            flagged += any(v > 0 for v in vals)
    return flagged if measured else None


def _tag_summaries(by_case: dict[str, list[CaseResult]],
                   metrics: dict[str, MetricSummary]) -> dict[str, TagSummary]:
    tagged: dict[str, dict[str, list[CaseResult]]] = {}
    for cid, results in by_case.items():
        for tag in results[0].case.tags:
            tagged.setdefault(tag, {})[cid] = results
    rates = [m.name for m in metrics.values() if m.is_rate]
    out: dict[str, TagSummary] = {}
    for tag in sorted(tagged):
        cases = tagged[tag]
        ts = TagSummary(tag=tag, n=len(cases))
        for name in rates:
            vals = list(case_means(cases, name).values())
            ts.measured[name] = len(vals)
            ts.means[name] = float(np.mean(vals)) if vals else None
        out[tag] = ts
    return out
