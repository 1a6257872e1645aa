"""The rollout judge: stable vs canary over their trace records -> Successful / Failed /
Inconclusive, with every number behind it.

A pure function (`judge`): no clock, no IO. Checks, each with its own test:

- error rate: the share of errored requests;
- latency P50: Mann-Whitney U (one-sided: canary slower), failing when the P50 ratio is above
  `max_p50_ratio` and the shift is significant;
- latency P95: the share of canary requests slower than the stable's P95 vs the stable's own
  share (a one-sided exact test on the tail: Mann-Whitney looks at the whole distribution and
  misses a slow tail), failing when the P95 ratio is above `max_p95_ratio` and the tail is
  significantly heavier; the Mann-Whitney p is reported too;
- cost per request: Mann-Whitney U on per-request costs, ratio of the means vs `max_cost_ratio`;
- the online quality labels (refused, over/under-refusal, hallucination, citation failure,
  safety violation, schema invalid): in shadow mode the two arms answered the *same* requests,
  so the test is paired (exact McNemar on the discordant pairs, as `rung compare` does);
  otherwise a two-sample exact test (Fisher). `safety_violation` also has a hard cap.

A check fails when the canary is significantly worse (p < alpha) by more than its tolerance; a
difference beyond the tolerance that is not significant is inconclusive, with an estimate of how
many more requests would decide it (the observed effect at the configured power); too few
requests or labels is inconclusive too. Any failed check fails the step; otherwise any
inconclusive one holds it; otherwise it succeeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rung.config.operations import QUALITY_LABELS, JudgeConfig, LabelCheck
from rung.ops.records import TraceRecord, costs, latencies, percentile, rate

SUCCESSFUL, FAILED, INCONCLUSIVE = "Successful", "Failed", "Inconclusive"
PASS, FAIL, HOLD, NOT_MEASURED = "pass", "fail", "inconclusive", "not measured"


@dataclass
class MetricCheck:
    """One metric, stable vs canary."""

    name: str  # error_rate | latency_p50 | latency_p95 | cost_per_request | a label name
    test: str  # mcnemar-exact | fisher-exact | mann-whitney | tail-fisher | cap | none
    n_stable: int
    n_canary: int
    stable: float | None  # rate, ms or cost
    canary: float | None
    delta: float | None  # canary - stable
    ratio: float | None  # canary / stable (latency, cost)
    limit: str  # what the canary may do, in words
    p_value: float | None
    verdict: str  # pass | fail | inconclusive | not measured
    reason: str
    n_pairs: int | None = None  # shadow mode: requests measured in both arms
    discordant: tuple[int, int] | None = None  # (good->bad, bad->good) pairs
    more_needed: int | None = None  # estimated more requests per arm (pairs) to decide

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("stable", "canary", "delta", "ratio", "p_value"):
            if isinstance(d[k], float):
                d[k] = round(d[k], 6)
        return d


@dataclass
class JudgeResult:
    decision: str  # Successful | Failed | Inconclusive
    mode: str  # canary | shadow
    n_stable: int
    n_canary: int
    n_pairs: int | None
    checks: list[MetricCheck]
    reasons: list[str] = field(default_factory=list)  # why it failed / holds
    needed: list[str] = field(default_factory=list)  # what more data would decide it

    @property
    def failed(self) -> list[MetricCheck]:
        return [c for c in self.checks if c.verdict == FAIL]

    def check(self, name: str) -> MetricCheck | None:
        return next((c for c in self.checks if c.name == name), None)

    def summary(self) -> str:
        head = f"{self.decision} ({self.mode}: {self.n_stable} stable, {self.n_canary} canary"
        head += f", {self.n_pairs} paired)" if self.n_pairs is not None else ")"
        tail = self.reasons[:3] if self.reasons else []
        return head + (": " + "; ".join(tail) if tail else "")

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "mode": self.mode, "n_stable": self.n_stable,
                "n_canary": self.n_canary, "n_pairs": self.n_pairs,
                "checks": [c.to_dict() for c in self.checks], "reasons": list(self.reasons),
                "needed": list(self.needed)}


# ------------------------------------------------------------------------------- the judge

def judge(stable: Sequence[TraceRecord], canary: Sequence[TraceRecord], config: JudgeConfig,
          mode: str = "canary") -> JudgeResult:
    """Judge one rollout step. In shadow mode `canary` holds the shadow answers, paired with
    the stable answers by request id."""
    if mode not in ("canary", "shadow"):
        raise ValueError(f"mode must be canary or shadow, not {mode!r}")
    paired = mode == "shadow"
    pairs = _pairs(stable, canary) if paired else []
    checks: list[MetricCheck] = []
    n_s, n_c = len(stable), len(canary)
    needed: list[str] = []
    enough = True
    if paired and len(pairs) < config.min_requests:
        enough = False
        needed.append(f"{config.min_requests - len(pairs)} more paired requests "
                      f"(have {len(pairs)}, need {config.min_requests})")
    elif not paired:
        for arm, n in (("stable", n_s), ("canary", n_c)):
            if n < config.min_requests:
                enough = False
                needed.append(f"{config.min_requests - n} more {arm} requests "
                              f"(have {n}, need {config.min_requests})")

    checks.append(_rate_check("error_rate", "error", stable, canary, pairs, config,
                              LabelCheck(max_increase=config.max_error_rate_increase,
                                         required=True)))
    checks.extend(_latency_checks(stable, canary, config))
    checks.append(_cost_check(stable, canary, config))
    for name in QUALITY_LABELS:
        spec = config.labels.get(name)
        if spec is not None:
            checks.append(_rate_check(name, name, stable, canary, pairs, config, spec))

    reasons: list[str] = []
    for c in checks:
        if c.verdict == FAIL:
            reasons.append(f"{c.name}: {c.reason}")
    if reasons:
        decision = FAILED
    else:
        holds = [c for c in checks if c.verdict == HOLD]
        for c in holds:
            reasons.append(f"{c.name}: {c.reason}")
            if c.more_needed:
                unit = "paired requests" if paired else "requests per arm"
                needed.append(f"{c.name}: about {c.more_needed} more {unit} would decide it")
        decision = INCONCLUSIVE if (holds or not enough) else SUCCESSFUL
        if not enough:
            reasons.insert(0, "too few requests for this step")
    return JudgeResult(decision, mode, n_s, n_c, len(pairs) if paired else None, checks,
                       reasons, needed)


# ------------------------------------------------------------------------------- checks

def _pairs(stable: Sequence[TraceRecord], canary: Sequence[TraceRecord]
           ) -> list[tuple[TraceRecord, TraceRecord]]:
    """(stable, shadow) answers of the same request, in the stable's order."""
    by_req = {r.request_id: r for r in canary}
    return [(s, by_req[s.request_id]) for s in stable if s.request_id in by_req]


def _value(r: TraceRecord, name: str) -> float | None:
    if name == "error":
        return 1.0 if r.error else 0.0
    return r.label(name)


def _rate_check(shown: str, name: str, stable: Sequence[TraceRecord],
                canary: Sequence[TraceRecord], pairs: list[tuple[TraceRecord, TraceRecord]],
                config: JudgeConfig, spec: LabelCheck) -> MetricCheck:
    from scipy import stats

    s_bad, s_n = rate(stable, name)
    c_bad, c_n = rate(canary, name)
    tol = spec.max_increase
    limit = (f"|change| <= {tol:.3g}" if spec.two_sided else f"increase <= {tol:.3g}")
    if spec.max_count is not None:
        limit += f", count <= {spec.max_count}"
    s_rate = s_bad / s_n if s_n else None
    c_rate = c_bad / c_n if c_n else None
    base = dict(name=shown, n_stable=s_n, n_canary=c_n, stable=s_rate, canary=c_rate,
                ratio=None, limit=limit)
    if spec.max_count is not None and c_bad > spec.max_count:
        return MetricCheck(test="cap", delta=_delta(s_rate, c_rate), p_value=None, verdict=FAIL,
                           reason=f"{c_bad} on the canary (at most {spec.max_count} allowed)",
                           **base)
    if not s_n and not c_n:
        return MetricCheck(test="none", delta=None, p_value=None, verdict=NOT_MEASURED,
                           reason="no request has this label", **base)

    if pairs:
        both = [(_value(s, name), _value(c, name)) for s, c in pairs]
        both = [(a, b) for a, b in both if a is not None and b is not None]
        n = len(both)
        n10 = sum(1 for a, b in both if a < 0.5 <= b)  # stable good -> canary bad
        n01 = sum(1 for a, b in both if a >= 0.5 > b)  # stable bad -> canary good
        delta = (n10 - n01) / n if n else None
        alt = "two-sided" if spec.two_sided else "greater"
        p = float(stats.binomtest(n10, n10 + n01, 0.5, alternative=alt).pvalue) if n10 + n01 else 1.0
        if n:  # the paired rates: over the same requests
            base["stable"] = sum(1 for a, _ in both if a >= 0.5) / n
            base["canary"] = sum(1 for _, b in both if b >= 0.5) / n
        check = MetricCheck(test="mcnemar-exact", delta=delta, p_value=p, verdict=PASS, reason="",
                            n_pairs=n, discordant=(n10, n01), **base)
        if n < config.min_labelled:
            return _too_few(check, spec, config, n, "paired values")
    else:
        delta = _delta(s_rate, c_rate)
        if s_n and c_n:
            alt = "two-sided" if spec.two_sided else "greater"
            table = [[c_bad, c_n - c_bad], [s_bad, s_n - s_bad]]
            p = float(stats.fisher_exact(table, alternative=alt)[1])
        else:
            p = None
        check = MetricCheck(test="fisher-exact", delta=delta, p_value=p, verdict=PASS, reason="",
                            **base)
        if min(s_n, c_n) < config.min_labelled:
            return _too_few(check, spec, config, min(s_n, c_n), "labelled requests per arm")
    return _decide(check, spec.two_sided, tol, config, n=check.n_pairs if pairs else min(s_n, c_n))


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _too_few(check: MetricCheck, spec: LabelCheck, config: JudgeConfig, n: int,
             what: str) -> MetricCheck:
    msg = f"{n} {what}, {config.min_labelled} needed"
    if spec.required:
        check.verdict, check.reason = HOLD, msg
        check.more_needed = config.min_labelled - n
    else:
        check.verdict, check.reason = NOT_MEASURED, msg + " (not required: does not block)"
    return check


def _decide(check: MetricCheck, two_sided: bool, tol: float, config: JudgeConfig,
            n: int | None) -> MetricCheck:
    """pass / fail / inconclusive from the effect (vs tolerance) and its p-value."""
    delta = check.delta or 0.0
    effect = abs(delta) if two_sided else delta
    p = 1.0 if check.p_value is None else check.p_value
    shown = f"{check.stable:.3f} -> {check.canary:.3f} ({delta:+.3f}, p={p:.3g})" \
        if check.stable is not None and check.canary is not None else f"p={p:.3g}"
    if effect > tol and p < config.alpha:
        check.verdict, check.reason = FAIL, f"{shown}: significantly worse, beyond {tol:.3g}"
        if two_sided:
            way = "up" if delta > 0 else "down"
            check.reason = f"{shown}: changed significantly ({way}), beyond +/-{tol:.3g}"
    elif effect > tol:
        check.verdict = HOLD
        check.reason = f"{shown}: beyond {tol:.3g} but not significant at {config.alpha}"
        check.more_needed = _more_needed(p, n, config, two_sided)
    else:
        check.verdict, check.reason = PASS, shown
    return check


def _more_needed(p: float, n: int | None, config: JudgeConfig, two_sided: bool) -> int | None:
    """How many more samples would make the observed effect significant at the configured
    power: the test statistic grows with sqrt(n), so n_total = n * (z_target / z_observed)^2."""
    from scipy.stats import norm

    if not n or p >= 0.5:
        return None
    a = config.alpha / 2 if two_sided else config.alpha
    z_obs = float(norm.isf(p / 2 if two_sided else p))
    if z_obs <= 0:
        return None
    z_target = float(norm.isf(a) + norm.ppf(config.power))
    total = n * (z_target / z_obs) ** 2
    return max(1, math.ceil(total - n))


def _latency_checks(stable: Sequence[TraceRecord], canary: Sequence[TraceRecord],
                    config: JudgeConfig) -> list[MetricCheck]:
    from scipy import stats

    ls, lc = latencies(stable), latencies(canary)
    out = []
    for q, max_ratio in ((50, config.max_p50_ratio), (95, config.max_p95_ratio)):
        name = f"latency_p{q}"
        ps, pc = percentile(ls, q), percentile(lc, q)
        ratio = (pc / ps) if ps and pc is not None else None
        limit = f"ratio <= {max_ratio:.3g}"
        base = dict(name=name, n_stable=len(ls), n_canary=len(lc), stable=ps, canary=pc,
                    delta=_delta(ps, pc), ratio=ratio, limit=limit)
        if not ls or not lc:
            out.append(MetricCheck(test="none", p_value=None, verdict=NOT_MEASURED,
                                   reason="no latencies", **base))
            continue
        if q == 50:
            p = float(stats.mannwhitneyu(lc, ls, alternative="greater").pvalue)
            test = "mann-whitney"
        else:  # the tail: share slower than the stable's P95, canary vs stable
            cut = ps or 0.0
            s_slow = sum(v > cut for v in ls)
            c_slow = sum(v > cut for v in lc)
            p = float(stats.fisher_exact([[c_slow, len(lc) - c_slow], [s_slow, len(ls) - s_slow]],
                                         alternative="greater")[1])
            test = "tail-fisher"
        check = MetricCheck(test=test, p_value=p, verdict=PASS, reason="", **base)
        if min(len(ls), len(lc)) < config.min_requests:
            check.verdict = HOLD
            check.reason = f"{min(len(ls), len(lc))} latencies per arm, {config.min_requests} needed"
            check.more_needed = config.min_requests - min(len(ls), len(lc))
            out.append(check)
            continue
        shown = f"{ps:.0f} ms -> {pc:.0f} ms (x{ratio:.2f}, p={p:.3g})" if ratio else f"p={p:.3g}"
        if ratio is not None and ratio > max_ratio and p < config.alpha:
            check.verdict, check.reason = FAIL, f"{shown}: significantly slower, beyond x{max_ratio:.3g}"
        elif ratio is not None and ratio > max_ratio:
            check.verdict = HOLD
            check.reason = f"{shown}: beyond x{max_ratio:.3g} but not significant at {config.alpha}"
            check.more_needed = _more_needed(p, min(len(ls), len(lc)), config, False)
        else:
            check.reason = shown
        out.append(check)
    return out


def _cost_check(stable: Sequence[TraceRecord], canary: Sequence[TraceRecord],
                config: JudgeConfig) -> MetricCheck:
    from scipy import stats

    cs, cc = costs(stable), costs(canary)
    ms = sum(cs) / len(cs) if cs else None
    mc = sum(cc) / len(cc) if cc else None
    ratio = (mc / ms) if ms and mc is not None else None
    base = dict(name="cost_per_request", n_stable=len(cs), n_canary=len(cc), stable=ms, canary=mc,
                delta=_delta(ms, mc), ratio=ratio, limit=f"ratio <= {config.max_cost_ratio:.3g}")
    if not cs or not cc:
        return MetricCheck(test="none", p_value=None, verdict=NOT_MEASURED,
                           reason="no costs (no prices configured?)", **base)
    if ms == 0 and mc == 0:
        return MetricCheck(test="none", p_value=None, verdict=PASS, reason="free on both arms",
                           **base)
    p = float(stats.mannwhitneyu(cc, cs, alternative="greater").pvalue)
    check = MetricCheck(test="mann-whitney", p_value=p, verdict=PASS, reason="", **base)
    shown = f"{ms:.6f} -> {mc:.6f} per request" + (f" (x{ratio:.2f}, p={p:.3g})" if ratio else "")
    over = ratio is None or ratio > config.max_cost_ratio  # None: was free, now costs
    if over and p < config.alpha:
        check.verdict, check.reason = FAIL, f"{shown}: significantly dearer, beyond x{config.max_cost_ratio:.3g}"
    elif over:
        check.verdict = HOLD
        check.reason = f"{shown}: beyond x{config.max_cost_ratio:.3g} but not significant"
        check.more_needed = _more_needed(p, min(len(cs), len(cc)), config, False)
    else:
        check.reason = shown
    return check
