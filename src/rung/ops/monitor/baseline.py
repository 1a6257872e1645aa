"""A release's eval baseline for the alert rules: from the eval runs in its evidence.

P95 latency: the run's served P95 when it has a latency probe (latency as served), else its
P95; hallucination: the mean of the `hallucination` score; refusal rate: the share of its
answers that refuse (fully or partly) by the same detector the gateway's online `refused` label uses
(rung.text.refusal, patterns only). The first evidence run that has each number wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rung.ops.monitor.rules import Baseline

if TYPE_CHECKING:
    from rung.ops.releases import ReleaseStore


def release_baseline(store: ReleaseStore, release_id: str) -> Baseline:
    """The baseline of a release (empty when it is unknown or has no runs)."""
    from rung.evals.aggregate import aggregate
    from rung.text.refusal import detect_refusal

    try:
        rel = store.load_release(release_id)
    except Exception:  # noqa: BLE001 - an unknown release (or not a release id): no baseline
        return Baseline()
    base = Baseline()
    for ev in rel.evidence.get("runs", []):
        try:
            run = store.runs.get_run(ev["id"])
        except Exception:  # noqa: BLE001 - a run deleted from the store: skip it
            continue
        s = aggregate(run, n_boot=100)  # only the means and percentiles are read
        if base.p95_ms is None:
            base.p95_ms = s.served_p95_latency_ms or s.p95_latency_ms
        h = s.metrics.get("hallucination")
        if base.hallucination is None and h is not None and h.mean is not None:
            base.hallucination = float(h.mean)
            base.n = max(base.n, h.n)
        if base.refused is None:
            answers = [r.answer for r in run.results if r.epoch == 0 and not r.answer.error]
            if answers:
                base.refused = sum(detect_refusal(a.text or "").refused for a in answers) / len(answers)
                base.n = max(base.n, len(answers))
        base.source = base.source or f"run {run.info.id} on {run.info.suite}"
    return base

