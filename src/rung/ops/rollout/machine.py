"""The rollout state machine: start, evaluate a step (judge -> next step / hold / rollback /
promote), abort. Every decision is appended to the channel's log (rung.ops.rollout.state).

    r = start_rollout(store, "production", new_release_id, config.rollout)
    outcome = evaluate(store, "production", records, gate=config.gate)   # any time, idempotent-ish
    abort_rollout(store, "production", reason="...")

`evaluate` is what `rung rollout evaluate`, `rung monitor --watch` and the gateway's background
loop call. It reads the step's trace records (requests since the step began), judges them and:

- Failed: a "rollback" event (weight 0) with the judge's numbers; the stable release stays live
  (a canary was never promoted, so nothing else moves);
- Successful, with the step's minimum requests and time reached: the next step, or on the last
  step the release gate (rung.ops.releases.promote: eval runs + paired comparison with the live
  release) and a promotion; a gate refusal ends the rollout as "blocked" with its numbers;
- Inconclusive: hold; recorded when what holds it changes; past `max_minutes` with
  `on_timeout: rollback` it rolls back.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rung.config.operations import JudgeConfig, RolloutConfig
from rung.ops.records import CANARY, SHADOW, STABLE, TraceRecord
from rung.ops.rollout.judge import FAILED, INCONCLUSIVE, SUCCESSFUL, JudgeResult, judge
from rung.ops.rollout.state import (
    ABORT,
    BLOCKED,
    HOLD,
    PROMOTED,
    ROLLBACK,
    ROLLOUT_KIND,
    START,
    STEP,
    Rollout,
    current_rollout,
    iso_seconds,
    running_rollout,
)

if TYPE_CHECKING:
    from rung.config import GateConfig
    from rung.ops.releases import ReleaseStore



def _error(msg: str) -> Exception:
    from rung.ops.releases import ReleaseError

    return ReleaseError(msg)


@dataclass
class Outcome:
    """What one evaluation did."""

    rollout: Rollout
    action: str  # step | hold | rollback | promoted | blocked | wait | none
    result: JudgeResult | None = None
    message: str = ""
    events: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rollout": self.rollout.id, "channel": self.rollout.channel, "action": self.action,
                "message": self.message, "weight": self.rollout.weight, "step": self.rollout.step,
                "status": self.rollout.status,
                "judge": self.result.to_dict() if self.result else None}


def _event(store: ReleaseStore, rollout_id: str, channel: str, action: str, release: str | None,
           previous: str | None, weight: float, reason: str, evidence: dict[str, Any],
           who: str | None = None) -> Any:
    from rung.ops.releases import ChannelEvent
    from rung.ops.releases.store import current_user

    state = store.state(channel)
    ev = ChannelEvent(channel, 0, ROLLOUT_KIND, release, previous, who or current_user(), "",
                      reason, False, flag=action, value=f"{weight:g}",
                      evidence={"rollout": rollout_id, **evidence})
    return store.append(ev, state.seq)


def start_rollout(store: ReleaseStore, channel: str, release: str, config: RolloutConfig, *,
                  who: str | None = None, reason: str = "") -> Rollout:
    """Begin moving `channel` to `release` at the first step. The channel must have a live
    release (the stable arm) and no running rollout."""
    from rung.ops.releases import live_release

    new = store.load_release(release)
    if running_rollout(store, channel) is not None:
        r = running_rollout(store, channel)
        raise _error(f"channel {channel} already has a running rollout ({r.id}: {r.canary[:12]} at "
                     f"{r.weight:g}%); abort it first (`rung rollout abort {channel}`)")
    stable = live_release(store, channel)
    if stable is None:
        raise _error(f"channel {channel} has no live release to compare against: promote one first "
                     f"(`rung release promote ID --to {channel}`)")
    if stable.id == new.id:
        raise _error(f"release {new.short} is already live on {channel}")
    rid = "ro-" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S-") + secrets.token_hex(3)
    cfg = config.model_dump(mode="json")
    _event(store, rid, channel, START, new.id, stable.id, config.steps[0],
           reason or f"{config.mode} rollout of {new.short} over {stable.short}",
           {"config": cfg, "step": 0}, who)
    r = current_rollout(store, channel)
    assert r is not None and r.id == rid
    return r


def abort_rollout(store: ReleaseStore, channel: str, *, reason: str = "", who: str | None = None) -> Rollout:
    r = running_rollout(store, channel)
    if r is None:
        raise _error(f"channel {channel} has no running rollout")
    _event(store, r.id, channel, ABORT, r.canary, r.stable, 0, reason or "aborted", {"step": r.step}, who)
    return current_rollout(store, channel)  # type: ignore[return-value]


def step_records(rollout: Rollout, records: Sequence[TraceRecord]
                 ) -> tuple[list[TraceRecord], list[TraceRecord]]:
    """(stable, canary) records of the rollout's current step: requests on its channel (or a
    tenant channel of it) since the step began; canary = the new release's answers (arm canary
    or shadow), stable = the stable release's."""
    since = iso_seconds(rollout.step_started_at)
    ch = rollout.channel
    stable, canary = [], []
    for r in records:
        if r.ts < since:
            continue
        if r.channel and r.channel != ch and r.channel.split("@", 1)[0] != ch:
            continue
        if r.release == rollout.canary and r.arm in (CANARY, SHADOW):
            canary.append(r)
        elif r.release == rollout.stable and r.arm in (STABLE, "", None):
            stable.append(r)
    return stable, canary


def evaluate(store: ReleaseStore, channel: str, records: Sequence[TraceRecord], *,
             gate: GateConfig | None = None, now: float | None = None,
             who: str | None = None) -> Outcome | None:
    """Judge the running rollout's current step and act on it (see the module doc). None when
    the channel has no running rollout."""
    r = running_rollout(store, channel)
    if r is None:
        return None
    cfg = RolloutConfig.model_validate(r.config)
    now = datetime.now(timezone.utc).timestamp() if now is None else now
    stable, canary = step_records(r, records)
    jcfg: JudgeConfig = cfg.judge
    result = judge(stable, canary, jcfg, mode=r.mode)
    elapsed_min = (now - iso_seconds(r.step_started_at)) / 60.0
    step_info = {"step": r.step, "weight": r.weight, "elapsed_minutes": round(elapsed_min, 2),
                 "judge": result.to_dict()}

    if result.decision == FAILED:
        msg = f"step {r.step + 1}/{len(r.steps)} ({r.weight:g}%) Failed: " + "; ".join(result.reasons)
        ev = _event(store, r.id, channel, ROLLBACK, r.canary, r.stable, 0, msg, step_info, who)
        return Outcome(current_rollout(store, channel), ROLLBACK, result, msg, [ev])  # type: ignore[arg-type]

    n_new = result.n_pairs if r.mode == "shadow" else result.n_canary
    waiting = []
    if elapsed_min < cfg.min_minutes:
        waiting.append(f"{cfg.min_minutes - elapsed_min:.1f} more minutes (min_minutes {cfg.min_minutes:g})")
    if (n_new or 0) < cfg.min_requests:
        waiting.append(f"{cfg.min_requests - (n_new or 0)} more requests on the new release "
                       f"(min_requests {cfg.min_requests})")

    if result.decision == SUCCESSFUL and not waiting:
        if not r.last_step:
            nxt = r.step + 1
            msg = (f"step {r.step + 1}/{len(r.steps)} ({r.weight:g}%) Successful: "
                   f"to {r.steps[nxt]:g}%")
            ev = _event(store, r.id, channel, STEP, r.canary, r.stable, r.steps[nxt], msg,
                        {**step_info, "step": nxt, "from_step": r.step}, who)
            return Outcome(current_rollout(store, channel), STEP, result, msg, [ev])  # type: ignore[arg-type]
        return _finish(store, r, result, step_info, gate, who)

    if result.decision == INCONCLUSIVE or waiting:
        timeout = cfg.max_minutes is not None and elapsed_min >= cfg.max_minutes
        if timeout and cfg.on_timeout == "rollback" and result.decision != SUCCESSFUL:
            msg = (f"step {r.step + 1}/{len(r.steps)} still Inconclusive after {elapsed_min:.0f} min "
                   f"(max_minutes {cfg.max_minutes:g}, on_timeout: rollback): " + "; ".join(result.reasons))
            ev = _event(store, r.id, channel, ROLLBACK, r.canary, r.stable, 0, msg, step_info, who)
            return Outcome(current_rollout(store, channel), ROLLBACK, result, msg, [ev])  # type: ignore[arg-type]
        needed = list(result.needed) + [w for w in waiting if w not in result.needed]
        msg = (f"step {r.step + 1}/{len(r.steps)} ({r.weight:g}%) "
               f"{result.decision if result.decision != SUCCESSFUL else 'Successful so far'}; "
               f"waiting for: " + "; ".join(needed or result.reasons))
        key = sorted({n.split(":")[0].split(" (")[0] for n in result.reasons}) + (["wait"] if waiting else [])
        prev = _last_hold_key(r)
        events = []
        if prev != key:  # record a hold when what holds the step changes
            step_info["hold_key"] = key
            step_info["needed"] = needed
            events.append(_event(store, r.id, channel, HOLD, r.canary, r.stable, r.weight, msg,
                                 step_info, who))
        return Outcome(current_rollout(store, channel) or r, HOLD, result, msg, events)
    return Outcome(r, "none", result, "")


def _last_hold_key(r: Rollout) -> list[str] | None:
    for e in reversed(r.events):
        if e.flag == STEP or e.flag == START:
            return None
        if e.flag == HOLD:
            return (e.evidence or {}).get("hold_key")
    return None


def _finish(store: ReleaseStore, r: Rollout, result: JudgeResult, step_info: dict[str, Any],
            gate: GateConfig | None, who: str | None) -> Outcome:
    """The last step succeeded: the release gate decides the promotion."""
    from rung.config import GateConfig
    from rung.ops.releases import PromotionRefused, promote

    summary = result.summary()
    try:
        ev, check = promote(store, r.canary, r.channel, gate or GateConfig(), who=who,
                            reason=f"rollout {r.id}: last step ({r.weight:g}%) {summary}")
    except PromotionRefused as e:
        msg = f"rollout Successful but the release gate refused the promotion: {e}"
        check = getattr(e, "check", None)
        info = {**step_info, "gate": check.to_dict() if check is not None else None}
        ev2 = _event(store, r.id, r.channel, BLOCKED, r.canary, r.stable, 0, msg, info, who)
        return Outcome(current_rollout(store, r.channel), BLOCKED, result, msg, [ev2])  # type: ignore[arg-type]
    msg = f"rollout {r.id} completed: {r.canary[:12]} promoted on {r.channel} ({summary})"
    ev2 = _event(store, r.id, r.channel, PROMOTED, r.canary, r.stable, 100, msg,
                 {**step_info, "promotion_seq": ev.seq, "gate": check.to_dict()}, who)
    return Outcome(current_rollout(store, r.channel), PROMOTED, result, msg, [ev, ev2])  # type: ignore[arg-type]
