"""The gate: thresholds of rung.yaml `gate:` (and optionally regressions) decide pass/fail.

Each threshold gives one line: the metric's value in the run summary against its bound. A metric
that is not measured fails unless it is listed in `gate.allow_not_measured`; an unknown name
fails with a "did you mean". A run with errored answers gets an `error_rate` line, failing when
the share is above `gate.max_error_rate` (default 0.05). With `fail_on_regression`, each
significant regression of a comparison adds a failing line. `GateResult.exit_code` is what CI sees: 0 pass, 1 fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rung.config import GateConfig, Threshold
from rung.errors import did_you_mean
from rung.evals.aggregate import USAGE_METRICS, RunSummary
from rung.evals.compare import Comparison

PASS, FAIL = "pass", "fail"
NOT_MEASURED = "not measured"
ALLOWED_NOT_MEASURED = "allowed, not measured"
REGRESSED = "regressed"


@dataclass
class GateLine:
    name: str
    bound: str  # ">= 0.8", "<= 0.03", ">= 0.5 and <= 0.9", "no significant regression"
    value: float | None
    passed: bool
    status: str  # pass | fail | not measured | allowed, not measured | no such metric ... | regressed
    detail: str = ""  # interval, p-value, ...

    @property
    def message(self) -> str:
        """One line for a terminal or a log."""
        shown = "-" if self.value is None else f"{self.value:.4g}"
        extra = f" [{self.detail}]" if self.detail else ""
        return f"{'PASS' if self.passed else 'FAIL'} {self.name} = {shown} ({self.bound}): " \
               f"{self.status}{extra}"


@dataclass
class GateResult:
    run_id: str
    lines: list[GateLine] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(line.passed for line in self.lines)

    @property
    def failures(self) -> list[GateLine]:
        return [line for line in self.lines if not line.passed]

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def evaluate_gate(summary: RunSummary, gate: GateConfig, comparison: Comparison | None = None,
                  fail_on_regression: bool = False) -> GateResult:
    """Check every threshold of `gate` against `summary` (and regressions of `comparison`)."""
    result = GateResult(run_id=summary.run_id)
    if summary.errors:
        result.lines.append(error_rate_line(summary, gate.max_error_rate))
    for name, threshold in gate.thresholds.items():
        result.lines.append(_threshold_line(summary, name, threshold, gate.allow_not_measured))
    if fail_on_regression:
        result.lines.extend(_regression_lines(comparison))
    return result


def error_rate_line(summary: RunSummary, max_rate: float) -> GateLine:
    """The share of the run's answers that errored against gate.max_error_rate."""
    n = summary.n_results
    rate = summary.errors / n if n else 1.0
    ok = rate <= max_rate
    detail = f"{summary.errors} of {n} answers errored"
    if not ok:
        detail += ", more than gate.max_error_rate allows: the other metrics do not measure the candidate"
    return GateLine("error_rate", f"<= {max_rate:g}", rate, ok, PASS if ok else FAIL, detail)


def format_bound(t: Threshold) -> str:
    parts = []
    if t.min is not None:
        parts.append(f">= {t.min:g}")
    if t.max is not None:
        parts.append(f"<= {t.max:g}")
    return " and ".join(parts)


def _threshold_line(summary: RunSummary, name: str, t: Threshold,
                    allowed: list[str]) -> GateLine:
    bound = format_bound(t)
    if not summary.knows(name):
        return GateLine(name, bound, None, False, f"no such metric{did_you_mean(name, summary.names())}")
    value = summary.value(name)
    if value is None:
        if name in allowed:
            return GateLine(name, bound, None, True, ALLOWED_NOT_MEASURED)
        return GateLine(name, bound, None, False, NOT_MEASURED,
                        "list it in gate.allow_not_measured to accept this")
    ok = (t.min is None or value >= t.min) and (t.max is None or value <= t.max)
    return GateLine(name, bound, value, ok, PASS if ok else FAIL, _detail(summary, name))


def _detail(summary: RunSummary, name: str) -> str:
    m = summary.metrics.get(name)
    if m is None or m.ci_low is None:
        return ""
    text = f"95% CI {m.ci_low:.4g}..{m.ci_high:.4g}, n={m.n}"
    if m.not_measured:
        text += f", {m.not_measured} not measured"
    return text


def _regression_lines(comparison: Comparison | None) -> list[GateLine]:
    bound = "no significant regression"
    if comparison is None:
        return [GateLine("regressions", bound, None, False, NOT_MEASURED,
                         "fail_on_regression needs a comparison with a baseline run")]
    lines = []
    # latency, tokens and cost vary with the machine: they are gated by thresholds
    # (p95_latency_ms, cost_per_1k_requests, ...), not by significance against a baseline
    for d in (d for d in comparison.regressions if d.name not in USAGE_METRICS):
        lines.append(GateLine(
            d.name, bound, d.delta, False, REGRESSED,
            f"{comparison.run_a} {d.mean_a:.4g} -> {comparison.run_b} {d.mean_b:.4g}, "
            f"delta 95% CI {d.ci_low:.4g}..{d.ci_high:.4g}, p={d.p_value:.3g} ({d.test}), "
            f"n={d.n_pairs}"))
    if not lines:
        lines.append(GateLine("regressions", bound, 0.0, True, PASS,
                              f"no metric regressed at alpha={comparison.alpha:g}"))
    return lines
