"""Monitoring: alert rules over sliding windows of the gateway's traces (`rules`, `engine`),
notifications (`notify`: webhooks and the alert log), the same rules for Prometheus
(`prometheus`), eval baselines of releases (`baseline`) and the monitor page (`report`).

    monitor = build_monitor(config, store)                 # rules + baselines from the release store
    events = monitor.evaluate(records, now)                # firing / resolved, de-duplicated
    Notifier(config.monitor.webhooks, log).send(events)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rung.ops.monitor.engine import AlertEvent, Monitor, load_state, save_state
from rung.ops.monitor.notify import Notifier, post_json, read_log
from rung.ops.monitor.rules import Baseline, Condition, evaluate_rule

if TYPE_CHECKING:
    from rung.config import RungConfig
    from rung.ops.releases import ReleaseStore

__all__ = ["AlertEvent", "Baseline", "Condition", "Monitor", "Notifier", "build_monitor", "evaluate_rule",
           "load_state", "post_json", "read_log", "save_state", "window_seconds"]


def build_monitor(config: RungConfig, store: ReleaseStore | None = None,
                  state: dict[str, Any] | None = None) -> Monitor:
    """A Monitor over rung.yaml's `monitor:` rules; budgets from `constraints:`; release
    baselines from the store's eval runs (none without a store)."""
    from rung.ops.monitor.baseline import release_baseline

    def baseline(release_id: str) -> Baseline:
        return release_baseline(store, release_id) if store is not None and release_id else Baseline()

    return Monitor(config.monitor, baseline, p95_budget_ms=config.constraints.p95_latency_ms,
                   cost_budget_per_1k=config.constraints.cost_per_1k_requests, state=state)


def window_seconds(config: RungConfig) -> float:
    """The longest rule window: how far back a one-shot evaluation must read."""
    return max((r.window_minutes for r in config.monitor.rules.values()), default=15.0) * 60.0
