"""The alert engine: rules over sliding windows, for-duration, de-duplication, resolution.

`Monitor.evaluate(records, now)` looks at every (release, channel) with traffic in each rule's
window (records with now - window < ts <= now) and moves each alert through its states:

    inactive --breached--> pending --held for `for_minutes`--> firing (notified once)
    firing --still breached--> firing (notified again only after `repeat_minutes`)
    firing --evaluated and not breached--> resolved (notified) --> inactive
    pending --not breached--> inactive (never notified)

A rule that cannot be evaluated (too few requests in the window, no baseline) changes nothing:
silence neither fires nor resolves an alert. The state is a plain dict, saved between runs of
`rung monitor` (one-shot) so an alert already notified is not notified again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rung.config.operations import AlertRule, MonitorConfig
from rung.ops.monitor.rules import Baseline, Condition, evaluate_rule
from rung.ops.records import TraceRecord

SEVERITIES = ("info", "warning", "critical")
FIRING, RESOLVED = "firing", "resolved"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


@dataclass
class AlertEvent:
    """One notification: an alert fired (again) or resolved."""

    status: str  # firing | resolved
    rule: str
    kind: str
    severity: str
    release: str
    channel: str
    at: float  # when this event was emitted (unix seconds)
    started_at: float  # when the condition began to hold
    value: float | None
    threshold: float | None
    n: int
    detail: str
    p_value: float | None = None
    repeat: bool = False  # a reminder of an alert already notified
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # webhook results

    @property
    def key(self) -> str:
        return f"{self.rule}|{self.release}|{self.channel}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["at_iso"], d["started_at_iso"] = iso(self.at), iso(self.started_at)
        return d

    def summary(self) -> str:
        what = "RESOLVED" if self.status == RESOLVED else f"FIRING ({self.severity})"
        return f"{what} {self.rule} on {self.channel or '-'} release {self.release[:12] or '-'}: {self.detail}"


BaselineFn = Callable[[str], Baseline]


class Monitor:
    """Rules + state. `baseline(release_id)` gives a release's eval baseline."""

    def __init__(self, config: MonitorConfig, baseline: BaselineFn | None = None, *,
                 p95_budget_ms: float | None = None, cost_budget_per_1k: float | None = None,
                 state: dict[str, Any] | None = None) -> None:
        self.config = config
        self.baseline = baseline or (lambda _rid: Baseline())
        self.p95_budget_ms = p95_budget_ms
        self.cost_budget_per_1k = cost_budget_per_1k
        self.state: dict[str, dict[str, Any]] = dict(state or {})
        self._baselines: dict[str, Baseline] = {}

    def _base(self, release: str) -> Baseline:
        if release not in self._baselines:
            self._baselines[release] = self.baseline(release)
        return self._baselines[release]

    def conditions(self, records: Sequence[TraceRecord], now: float
                   ) -> list[tuple[str, AlertRule, str, str, Condition]]:
        """(rule name, rule, release, channel, condition) for every group with traffic."""
        out = []
        for name, rule in self.config.rules.items():
            lo = now - rule.window_minutes * 60.0
            groups: dict[tuple[str, str], list[TraceRecord]] = {}
            for r in records:
                if lo < r.ts <= now:
                    if rule.channels is not None and r.channel not in rule.channels \
                            and r.channel.split("@", 1)[0] not in rule.channels:
                        continue
                    groups.setdefault((r.release, r.channel), []).append(r)
            for (release, channel), window in sorted(groups.items()):
                cond = evaluate_rule(name, rule, window, self._base(release),
                                     p95_budget_ms=self.p95_budget_ms,
                                     cost_budget_per_1k=self.cost_budget_per_1k)
                out.append((name, rule, release, channel, cond))
        return out

    def evaluate(self, records: Sequence[TraceRecord], now: float) -> list[AlertEvent]:
        """Advance every alert to `now`; the events to notify, in order."""
        events: list[AlertEvent] = []
        for name, rule, release, channel, cond in self.conditions(records, now):
            key = f"{name}|{release}|{channel}"
            st = self.state.get(key)
            if not cond.evaluated:
                continue
            if cond.breached:
                if st is None:
                    st = {"status": "pending", "since": now}
                    self.state[key] = st
                if st["status"] == "pending" and now - st["since"] >= rule.for_minutes * 60.0:
                    st.update(status=FIRING, notified=now)
                    events.append(_event(FIRING, name, rule, release, channel, now, st["since"], cond))
                elif st["status"] == FIRING and now - st["notified"] >= rule.repeat_minutes * 60.0:
                    st["notified"] = now
                    events.append(_event(FIRING, name, rule, release, channel, now, st["since"], cond,
                                         repeat=True))
            elif st is not None:
                if st["status"] == FIRING:
                    events.append(_event(RESOLVED, name, rule, release, channel, now, st["since"], cond))
                del self.state[key]
        return events

    def firing(self) -> list[str]:
        return sorted(k for k, v in self.state.items() if v.get("status") == FIRING)


def _event(status: str, name: str, rule: AlertRule, release: str, channel: str, now: float,
           since: float, cond: Condition, repeat: bool = False) -> AlertEvent:
    return AlertEvent(status, name, rule.kind, rule.severity, release, channel, now, since,
                      cond.value, cond.threshold, cond.n, cond.detail, cond.p_value, repeat)


# ------------------------------------------------------------------------- state on disk

def load_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    tmp.replace(path)
