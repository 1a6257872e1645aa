"""Paired comparison of two runs of the same suite: run A (baseline) vs run B (candidate).

Cases are paired by case id (each case: the mean of its epochs). For every score name the
comparison gives the paired means, the delta B - A with a paired-bootstrap 95% interval and a
p-value from a paired test (exact McNemar / sign test for 0-1 metrics, Wilcoxon signed-rank
otherwise), and calls the change improved / regressed / unchanged at `alpha`. Cases present in
only one run are listed, never silently dropped. docs/metrics.md defines each number exactly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from rung.evals.aggregate import (
    bootstrap_ci,
    case_means,
    group_by_case,
    result_latency_ms,
    score_direction,
)
from rung.evals.types import CaseResult, RunResult

IMPROVED, REGRESSED, UNCHANGED, NOT_MEASURED = "improved", "regressed", "unchanged", "not measured"


@dataclass
class MetricDelta:
    """One metric, A vs B, over the cases measured in both runs."""

    name: str
    higher_is_better: bool
    n_pairs: int
    mean_a: float | None
    mean_b: float | None
    delta: float | None  # mean_b - mean_a
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    test: str  # "mcnemar-exact" | "wilcoxon" | "none"
    direction: str  # improved | regressed | unchanged | not measured
    discordant: tuple[int, int] | None = None  # binary: (pass->fail, fail->pass) pairs
    unpaired: int = 0  # cases measured in only one of the runs

    @property
    def regressed(self) -> bool:
        return self.direction == REGRESSED

    @property
    def improved(self) -> bool:
        return self.direction == IMPROVED


@dataclass
class LatencyDelta:
    """P95 latency over the paired cases (each case: mean latency of its epochs)."""

    n_pairs: int
    p95_a: float
    p95_b: float
    delta: float  # p95_b - p95_a, ms
    ci_low: float
    ci_high: float

    @property
    def regressed(self) -> bool:
        """B is slower at P95 and the whole interval says so."""
        return self.ci_low > 0


@dataclass
class Flip:
    """A case whose 0-1 metric went from pass in A to fail in B (or back)."""

    case_id: str
    metric: str
    value_a: float
    value_b: float


@dataclass
class Comparison:
    run_a: str
    run_b: str
    candidate_a: str
    candidate_b: str
    alpha: float
    metrics: dict[str, MetricDelta]
    only_in_a: list[str]  # case ids answered only in run A
    only_in_b: list[str]
    latency_p95: LatencyDelta | None
    flipped_to_fail: list[Flip] = field(default_factory=list)
    flipped_to_pass: list[Flip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricDelta]:
        """Significant changes in the bad direction, smallest p-value first."""
        out = [d for d in self.metrics.values() if d.regressed]
        return sorted(out, key=lambda d: (d.p_value if d.p_value is not None else 1.0, d.name))

    @property
    def improvements(self) -> list[MetricDelta]:
        out = [d for d in self.metrics.values() if d.improved]
        return sorted(out, key=lambda d: (d.p_value if d.p_value is not None else 1.0, d.name))

    @property
    def flipped_cases(self) -> list[str]:
        """Ids of the cases with at least one pass -> fail flip, in order."""
        return list(dict.fromkeys(f.case_id for f in self.flipped_to_fail))


def compare(a: RunResult, b: RunResult, *, alpha: float = 0.05, n_boot: int = 2000,
            seed: int = 0) -> Comparison:
    """Pair the cases of run A and run B and test every metric's change (delta = B - A)."""
    by_a, by_b = group_by_case(a.results), group_by_case(b.results)
    notes = []
    if a.info.suite_hash and b.info.suite_hash and a.info.suite_hash != b.info.suite_hash:
        notes.append(f"suite differs: {a.info.suite} ({a.info.suite_hash[:12]}) vs "
                     f"{b.info.suite} ({b.info.suite_hash[:12]}); only shared case ids are paired")
    names = list(dict.fromkeys(s.name for r in [*a.results, *b.results] for s in r.scores))
    metrics: dict[str, MetricDelta] = {}
    to_fail: list[Flip] = []
    to_pass: list[Flip] = []
    for i, name in enumerate(names):
        hib = score_direction([*a.results, *b.results], name)
        ma, mb = case_means(by_a, name), case_means(by_b, name)
        paired = [cid for cid in ma if cid in mb]
        unpaired = len(set(ma) ^ set(mb))
        xa = np.array([ma[c] for c in paired], dtype=float)
        xb = np.array([mb[c] for c in paired], dtype=float)
        # the exact test needs 0-1 values per case (after averaging epochs); flips need 0-1 scores
        binary = bool(np.isin(xa, (0.0, 1.0)).all() and np.isin(xb, (0.0, 1.0)).all())
        metrics[name] = _metric_delta(name, hib, xa, xb, binary, alpha, n_boot, seed + i, unpaired)
        if _is_binary(by_a, name) and _is_binary(by_b, name):
            for cid, va, vb in zip(paired, xa, xb):
                pa, pb = _passes(va, hib), _passes(vb, hib)
                if pa and not pb:
                    to_fail.append(Flip(cid, name, float(va), float(vb)))
                elif pb and not pa:
                    to_pass.append(Flip(cid, name, float(va), float(vb)))
    only_a = [cid for cid in by_a if cid not in by_b]
    only_b = [cid for cid in by_b if cid not in by_a]
    if only_a or only_b:
        notes.append(f"{len(only_a)} case(s) only in {a.info.id}, {len(only_b)} only in "
                     f"{b.info.id}: left out of every paired statistic")
    return Comparison(
        run_a=a.info.id,
        run_b=b.info.id,
        candidate_a=a.info.candidate,
        candidate_b=b.info.candidate,
        alpha=alpha,
        metrics=metrics,
        only_in_a=only_a,
        only_in_b=only_b,
        latency_p95=_latency_delta(by_a, by_b, n_boot, seed),
        flipped_to_fail=to_fail,
        flipped_to_pass=to_pass,
        notes=notes,
    )


def paired_p_value(xa: np.ndarray, xb: np.ndarray, binary: bool) -> tuple[float, str]:
    """Two-sided p-value of a paired test of A vs B and the test's name."""
    from scipy import stats

    if binary:
        n01 = int(np.sum((xa == 0) & (xb == 1)))
        n10 = int(np.sum((xa == 1) & (xb == 0)))
        if n01 + n10 == 0:
            return 1.0, "mcnemar-exact"
        return float(stats.binomtest(n10, n01 + n10, 0.5).pvalue), "mcnemar-exact"
    diff = xb - xa
    if not np.any(diff != 0):
        return 1.0, "wilcoxon"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.wilcoxon(xb, xa, zero_method="wilcox", alternative="two-sided")
    p = float(res.pvalue)
    return (1.0 if np.isnan(p) else p), "wilcoxon"


def _metric_delta(name: str, hib: bool, xa: np.ndarray, xb: np.ndarray, binary: bool,
                  alpha: float, n_boot: int, seed: int, unpaired: int) -> MetricDelta:
    n = len(xa)
    if n == 0:
        return MetricDelta(name, hib, 0, None, None, None, None, None, None, "none",
                           NOT_MEASURED, unpaired=unpaired)
    mean_a, mean_b = float(xa.mean()), float(xb.mean())
    delta = mean_b - mean_a
    lo, hi = bootstrap_ci(xb - xa, n_boot=n_boot, seed=seed)
    p, test = paired_p_value(xa, xb, binary)
    direction = UNCHANGED
    if p < alpha and delta != 0:
        direction = IMPROVED if (delta > 0) == hib else REGRESSED
    discordant = None
    if binary:
        pa, pb = _passes(xa, hib), _passes(xb, hib)
        discordant = (int(np.sum(pa & ~pb)), int(np.sum(~pa & pb)))
    return MetricDelta(name, hib, n, mean_a, mean_b, delta, lo, hi, p, test, direction,
                       discordant, unpaired)


def _is_binary(by_case: dict[str, list[CaseResult]], name: str) -> bool:
    """Every measured value of `name` in every epoch is 0 or 1."""
    for results in by_case.values():
        for r in results:
            s = r.score(name)
            if s is not None and s.value is not None and s.value not in (0.0, 1.0):
                return False
    return True


def _passes(v: np.ndarray | float, hib: bool) -> np.ndarray | bool:
    """A case passes a 0-1 metric when its (epoch-averaged) value is on the good side of 0.5."""
    return np.asarray(v) >= 0.5 if hib else np.asarray(v) <= 0.5


def _latency_delta(by_a: dict[str, list[CaseResult]], by_b: dict[str, list[CaseResult]],
                   n_boot: int, seed: int) -> LatencyDelta | None:
    def per_case(by_case: dict[str, list[CaseResult]]) -> dict[str, float]:
        out = {}
        for cid, results in by_case.items():
            vals = [v for v in (result_latency_ms(r) for r in results) if v is not None]
            if vals:
                out[cid] = float(np.mean(vals))
        return out

    la, lb = per_case(by_a), per_case(by_b)
    paired = [cid for cid in la if cid in lb]
    if not paired:
        return None
    pairs = np.array([[la[c], lb[c]] for c in paired], dtype=float)

    def p95_delta(sample: np.ndarray, axis: int = 1) -> np.ndarray:
        return (np.percentile(sample[..., 1], 95, axis=axis)
                - np.percentile(sample[..., 0], 95, axis=axis))

    p95_a = float(np.percentile(pairs[:, 0], 95))
    p95_b = float(np.percentile(pairs[:, 1], 95))
    lo, hi = bootstrap_ci(pairs, n_boot=n_boot, seed=seed, stat=p95_delta)
    return LatencyDelta(len(paired), p95_a, p95_b, p95_b - p95_a, lo, hi)
