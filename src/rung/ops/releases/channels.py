"""Channels: gated promotion, rollback to the last good release, flags, and what was live when.

A promotion passes when (1) every evidence run of the new release passes the project's gate
thresholds, and (2) on each suite where the live release has a run on the same cases (same
suite hash), the paired comparison live -> new shows no significant regression of a gated
metric (rung.evals.compare: McNemar / Wilcoxon at gate.alpha; latency and cost are gated by
their thresholds). A release without runs, or a live release without a run on the suite, cannot
be compared: the promotion is refused unless forced. `force=True` needs a reason and records
the override (and the failing numbers) in the log.

Rollback needs no gate (it is the way back); by default it goes to the last release that was
good on that channel: the most recent one live there before that nobody rolled back away from
there.

Flags switch parts of a live release without a new release (read at request time):
    adapter: on | off                  off: the release's level-0 counterpart (no adapter)
    retrieval: on | require_citations  require_citations: answers must cite retrieved sources
    refusal_gate: on | off             off: the refusal gate is skipped
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rung.errors import did_you_mean
from rung.ops.releases.errors import PromotionRefused, ReleaseError
from rung.ops.releases.store import (
    ChannelEvent,
    ChannelState,
    Release,
    ReleaseStore,
    base_channel,
    check_channel,
    current_user,
    to_iso,
)

if TYPE_CHECKING:
    from rung.config import CandidateConfig, GateConfig

FLAGS: dict[str, tuple[str, ...]] = {
    "adapter": ("on", "off"),
    "retrieval": ("on", "require_citations"),
    "refusal_gate": ("on", "off"),
}
"""Known flags and their values; the first value is the default (the release as made)."""


# ---------------------------------------------------------------- the promotion check

@dataclass
class Line:
    """One line of a promotion check: what was measured, against what, pass or fail."""

    name: str
    passed: bool
    message: str
    suite: str = ""


@dataclass
class PromotionCheck:
    release: str
    channel: str
    live: str | None
    lines: list[Line] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # per suite: runs + metric deltas

    @property
    def passed(self) -> bool:
        return bool(self.lines) and all(line.passed for line in self.lines)

    @property
    def failures(self) -> list[Line]:
        return [line for line in self.lines if not line.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "live": self.live,
                "lines": [{"name": x.name, "passed": x.passed, "message": x.message, "suite": x.suite}
                          for x in self.lines],
                "comparisons": self.comparisons}


def check_promotion(store: ReleaseStore, release: Release, channel: str, gate: GateConfig,
                    live: Release | None = None) -> PromotionCheck:
    """The gate and the paired comparison of `release` against `live` (the channel's release)."""
    from rung.evals.aggregate import aggregate
    from rung.evals.compare import compare
    from rung.evals.gate import evaluate_gate

    check = PromotionCheck(release.id, channel, live.id if live else None)
    if not release.run_ids:
        check.lines.append(Line("evidence", False, f"release {release.short} has no eval run: nothing "
                                "to gate on (create it again after `rung eval`, or --force)"))
        return check
    for ev in release.evidence["runs"]:
        run = store.runs.get_run(ev["id"])
        summary = aggregate(run)
        suite = ev["suite"]
        plain = evaluate_gate(summary, gate).lines
        for gl in plain:
            check.lines.append(Line(gl.name, gl.passed, f"{suite}: {gl.message}", suite))
        if live is None:
            continue
        live_run_id = _live_run(store, live, ev["suite_hash"])
        if live_run_id is None:
            check.lines.append(Line("comparison", False,
                                    f"{suite}: live release {live.short} has no run on this suite "
                                    f"(hash {ev['suite_hash'][:12]}): the paired comparison cannot be "
                                    "made; evaluate the live release on it, or --force --reason", suite))
            continue
        cmp = compare(store.runs.get_run(live_run_id), run, alpha=gate.alpha)
        # the lines fail_on_regression adds after the gate's own
        regression = evaluate_gate(summary, gate, cmp, fail_on_regression=True).lines[len(plain):]
        for gl in regression:
            check.lines.append(Line(gl.name, gl.passed, f"{suite}: {_regression_message(gl, cmp)}", suite))
        check.comparisons.append(_comparison_dict(suite, cmp))
    if not check.lines:  # a gate with no thresholds and an empty channel
        check.lines.append(Line("gate", True, "no thresholds in gate: (the runs are recorded as evidence)"))
    return check


def _live_run(store: ReleaseStore, live: Release, suite_hash: str) -> str | None:
    """The live release's run on these cases: from its evidence, else the store's latest
    finished run of its recipe (candidate hash) on the suite."""
    for ev in live.evidence.get("runs", []):
        if ev["suite_hash"] == suite_hash:
            return ev["id"]
    chash = live.provenance.get("candidate_hash")
    if chash:
        info = store.runs.latest_finished(chash, suite_hash)
        if info is not None:
            return info.id
    return None


def _regression_message(gl: Any, cmp: Any) -> str:
    if gl.name == "regressions":
        return f"{gl.message} (paired {cmp.run_a} -> {cmp.run_b})"
    d = cmp.metrics.get(gl.name)
    flips = ""
    if d is not None and d.discordant is not None:
        flips = f", {d.discordant[0]} case(s) pass->fail, {d.discordant[1]} fail->pass"
    return f"{gl.message}{flips}"


def _comparison_dict(suite: str, cmp: Any) -> dict[str, Any]:
    return {"suite": suite, "live_run": cmp.run_a, "new_run": cmp.run_b, "alpha": cmp.alpha,
            "metrics": {n: {"mean_live": d.mean_a, "mean_new": d.mean_b, "delta": d.delta,
                            "ci": [d.ci_low, d.ci_high], "p": d.p_value, "test": d.test,
                            "n": d.n_pairs, "direction": d.direction}
                        for n, d in sorted(cmp.metrics.items())},
            "notes": list(cmp.notes)}


# ---------------------------------------------------------------- moving a channel

def promote(store: ReleaseStore, release_id: str, channel: str, gate: GateConfig, *,
            who: str | None = None, reason: str = "", force: bool = False,
            expected_head: int | None = None) -> tuple[ChannelEvent, PromotionCheck]:
    """Point `channel` at a release if the gate and the paired comparison allow it (see the
    module doc). Raises PromotionRefused with the check's numbers; `force` (with a reason)
    records the override. `expected_head`: the channel head the caller saw (default: the one
    read here); if the channel moved since, ChannelConflict and nothing changes."""
    check_channel(channel)
    release = store.load_release(release_id)
    state = store.state(channel)
    if state.release_id == release.id:
        raise ReleaseError(f"release {release.short} is already live on {channel} "
                           f"(since {state.since})")
    if force and not reason.strip():
        raise ReleaseError("--force needs --reason: the override is recorded in the channel's log")
    live = store.load_release(state.release_id) if state.release_id else None
    check = check_promotion(store, release, channel, gate, live)
    if not check.passed and not force:
        raise PromotionRefused(_refusal(release, channel, live, check), check)
    ev = ChannelEvent(channel, 0, "promote", release.id, live.id if live else None,
                      who or current_user(), "", reason.strip(), force and not check.passed,
                      evidence={"runs": release.run_ids, "check": check.to_dict(),
                                **({"override": [x.message for x in check.failures]}
                                   if force and not check.passed else {})})
    head = state.seq if expected_head is None else expected_head
    return store.append(ev, head), check


def _refusal(release: Release, channel: str, live: Release | None, check: PromotionCheck) -> str:
    against = f" over live {live.short}" if live else ""
    lines = "; ".join(x.message for x in check.failures)
    return (f"promotion of {release.short} to {channel}{against} refused: {lines}. "
            f"Override with --force --reason \"...\" (recorded in the log)")


def last_good(store: ReleaseStore, channel: str, state: ChannelState | None = None) -> str | None:
    """The last release that was good on `channel`, other than the live one: the most recent
    one that was live there and that nobody rolled back away from there (a forced promotion
    counts once it served: the override is in the log)."""
    events = [e for e in store.events(channel) if e.kind in ("promote", "rollback")]
    state = state or store.state(channel)
    bad = {e.previous_id for e in events if e.kind == "rollback"} | {state.release_id}
    for e in reversed(events):
        if e.release_id and e.release_id not in bad:
            return e.release_id
    return None


def rollback(store: ReleaseStore, channel: str, *, to: str | None = None, who: str | None = None,
             reason: str = "", expected_head: int | None = None) -> ChannelEvent:
    """Point `channel` back at `to`, by default the last good release there (no gate: this is
    the way back). The release rolled back from counts as bad on this channel from now on."""
    check_channel(channel)
    state = store.state(channel)
    if state.release_id is None:
        raise ReleaseError(f"channel {channel} has no live release: nothing to roll back")
    if to is not None:
        target = store.load_release(to).id
    else:
        target = last_good(store, channel, state)
        if target is None:
            raise ReleaseError(f"channel {channel}: no earlier release was good there (live before and "
                               "not rolled back from); name one with --to")
    if target == state.release_id:
        raise ReleaseError(f"release {target[:12]} is already live on {channel}")
    ev = ChannelEvent(channel, 0, "rollback", target, state.release_id, who or current_user(), "",
                      reason.strip(), False, evidence={"rolled_back": state.release_id})
    return store.append(ev, state.seq if expected_head is None else expected_head)


def set_flag(store: ReleaseStore, channel: str, name: str, value: str, *, who: str | None = None,
             reason: str = "") -> ChannelEvent:
    """Set a flag on a channel (logged like a promotion). Value `on` restores the default."""
    check_channel(channel)
    if name not in FLAGS:
        raise ReleaseError(f"unknown flag {name!r}{did_you_mean(name, FLAGS)}; flags: "
                           + ", ".join(f"{k} ({'|'.join(v)})" for k, v in FLAGS.items()))
    if value not in FLAGS[name]:
        raise ReleaseError(f"flag {name}: value {value!r} is not one of {', '.join(FLAGS[name])}"
                           f"{did_you_mean(value, FLAGS[name])}")
    state = store.state(channel)
    ev = ChannelEvent(channel, 0, "flag", state.release_id, state.release_id, who or current_user(), "",
                      reason.strip(), False, flag=name, value=value,
                      evidence={"before": state.flags.get(name, FLAGS[name][0])})
    return store.append(ev, state.seq)


# ---------------------------------------------------------------- reading (the gateway's side)

def channel_state(store: ReleaseStore, channel: str, at: Any = None) -> ChannelState:
    """The channel's state now, or at an instant (datetime or ISO string; no zone: local)."""
    check_channel(channel)
    return store.state(channel, to_iso(at) if at is not None else None)


def live_release(store: ReleaseStore, channel: str, *, fallback: bool = True) -> Release | None:
    """The release live on `channel` (None when none). A tenant channel (`production@acme`)
    with no release of its own falls back to its base channel (`production`) unless
    fallback=False."""
    state = channel_state(store, channel)
    if state.release_id is None and fallback and base_channel(channel):
        state = channel_state(store, base_channel(channel) or "")
    return store.load_release(state.release_id) if state.release_id else None


def channel_flags(store: ReleaseStore, channel: str, *, inherit: bool = True) -> dict[str, str]:
    """The flags set away from their default on `channel`; a tenant channel inherits its base
    channel's flags and overrides them with its own (unless inherit=False)."""
    flags: dict[str, str] = {}
    base = base_channel(channel)
    if inherit and base:
        flags.update(channel_state(store, base).flags)
    flags.update(channel_state(store, channel).flags)
    return {k: v for k, v in flags.items() if k in FLAGS and v != FLAGS[k][0]}


def apply_flags(candidate: CandidateConfig, flags: dict[str, str]) -> CandidateConfig:
    """The candidate a request is answered with under `flags` (a copy; the release is untouched)."""
    update: dict[str, Any] = {}
    if flags.get("adapter") == "off" and candidate.adapter:
        update.update(adapter=None, level=None)
    if flags.get("retrieval") == "require_citations":
        update["require_citations"] = True
    if flags.get("refusal_gate") == "off":
        update["refusal_gate"] = None
    return candidate.model_copy(update=update) if update else candidate
