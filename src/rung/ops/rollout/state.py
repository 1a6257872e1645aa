"""A rollout's state, folded from its events in the channel's append-only log.

Every rollout decision is a `ChannelEvent` of kind "rollout" in the release store (the same log
as promotions and rollbacks, so `rung release history` shows them in order and every gateway
replica reads the same state from the same database). The event's `flag` field holds the action
and `value` the traffic weight after it:

    start     a rollout of `release_id` (canary) over `previous_id` (stable) begins at step 0;
              evidence: the rollout id and the configuration it runs under (copied: editing
              rung.yaml later does not change a running rollout)
    step      the judge found the step Successful: the next step's weight; evidence: the judge
    hold      Inconclusive, recorded when its reasons change; evidence: the judge and what more
              data is needed
    rollback  Failed (or timed out with on_timeout: rollback): weight 0; evidence: the judge
    promoted  the last step succeeded and the release gate let the release onto the channel
    blocked   the last step succeeded but the release gate refused the promotion (its numbers)
    abort     stopped by a person (weight 0)

A channel has at most one running rollout; `current_rollout` folds the latest one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rung.ops.releases import ChannelEvent, ReleaseStore

ROLLOUT_KIND = "rollout"
START, STEP, HOLD, ROLLBACK, PROMOTED, BLOCKED, ABORT = (
    "start", "step", "hold", "rollback", "promoted", "blocked", "abort")
ENDS = {ROLLBACK: "rolled back", PROMOTED: "promoted", BLOCKED: "blocked", ABORT: "aborted"}
RUNNING = "running"


@dataclass
class Rollout:
    """One rollout of a channel, as its events say."""

    id: str
    channel: str
    stable: str | None  # release id live when it started
    canary: str  # the new release
    mode: str  # canary | shadow
    steps: list[float]
    config: dict[str, Any]  # RolloutConfig as it was at start
    started_at: str
    step: int = 0  # index into steps
    step_started_at: str = ""
    status: str = RUNNING  # running | rolled back | promoted | blocked | aborted
    ended_at: str | None = None
    last_decision: dict[str, Any] | None = None  # the last judge result recorded
    events: list[ChannelEvent] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def weight(self) -> float:
        """Traffic percentage of the new release now (0 once ended)."""
        return self.steps[self.step] if self.running else 0.0

    @property
    def last_step(self) -> bool:
        return self.step >= len(self.steps) - 1

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "channel": self.channel, "stable": self.stable, "canary": self.canary,
                "mode": self.mode, "steps": self.steps, "step": self.step, "weight": self.weight,
                "status": self.status, "started_at": self.started_at,
                "step_started_at": self.step_started_at, "ended_at": self.ended_at,
                "last_decision": self.last_decision,
                "events": [{"seq": e.seq, "at": e.at, "action": e.flag, "weight": e.value,
                            "reason": e.reason} for e in self.events]}


def fold_rollouts(events: list[ChannelEvent]) -> list[Rollout]:
    """Every rollout in a channel's events, oldest first."""
    out: list[Rollout] = []
    by_id: dict[str, Rollout] = {}
    for e in events:
        if e.kind != ROLLOUT_KIND:
            continue
        rid = (e.evidence or {}).get("rollout")
        if e.flag == START:
            cfg = dict((e.evidence or {}).get("config") or {})
            r = Rollout(id=rid, channel=e.channel, stable=e.previous_id, canary=e.release_id or "",
                        mode=cfg.get("mode", "canary"), steps=list(cfg.get("steps") or [100.0]),
                        config=cfg, started_at=e.at, step_started_at=e.at, events=[e])
            out.append(r)
            by_id[rid] = r
            continue
        r = by_id.get(rid)
        if r is None or not r.running:
            continue
        r.events.append(e)
        judged = (e.evidence or {}).get("judge")
        if judged is not None:
            r.last_decision = judged
        if e.flag == STEP:
            r.step = int((e.evidence or {}).get("step", r.step + 1))
            r.step_started_at = e.at
        elif e.flag in ENDS:
            r.status, r.ended_at = ENDS[e.flag], e.at
    return out


def current_rollout(store: ReleaseStore, channel: str) -> Rollout | None:
    """The channel's latest rollout (running or not), None when it never had one."""
    rollouts = fold_rollouts(store.events(channel))
    return rollouts[-1] if rollouts else None


def running_rollout(store: ReleaseStore, channel: str) -> Rollout | None:
    r = current_rollout(store, channel)
    return r if r is not None and r.running else None


def iso_seconds(iso: str) -> float:
    """An ISO instant of the log -> unix seconds."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
