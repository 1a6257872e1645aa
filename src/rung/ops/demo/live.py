"""The stages of `rung demo` that watch the live release: 4. rollout (a second release in a
shadow rollout, judged over the gateway's traces) and 5. monitor (the alert rules and the
monitor page). Each is a function of (config, state, options) -> StageResult like the first
three (rung.ops.demo.stages)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rung.ops.demo.stages import (
    CHANNEL,
    TENANTS,
    DemoEvents,
    DemoOptions,
    StageResult,
    _held_out,
    _hhmm,
    _keys,
    _ladder_runs,
    _ladder_state,
    _live,
    _now_iso,
    _rel,
    _replay,
    _secs,
    _serve,
)
from rung.ops.demo.state import DemoError, DemoState, needs

if TYPE_CHECKING:
    from rung.config import RungConfig
    from rung.core import Case


# ------------------------------------------------------------------------- 4. rollout

def second_candidate(config: RungConfig, first: str) -> tuple[str, str]:
    """The candidate of the demo's second release, and how it differs from `first`: a rung.yaml
    candidate equal to `first` but for its refusal gate (without it when `first` has one, with
    one when it has none)."""
    cand = config.candidates[first]
    skip = {"description", "refusal_gate"}
    want = cand.model_dump(exclude=skip)
    gated = cand.refusal_gate is not None
    for name, other in config.candidates.items():
        if name != first and (other.refusal_gate is not None) != gated and other.model_dump(exclude=skip) == want:
            return name, ("the same candidate without its refusal gate" if gated
                          else "the same candidate with a refusal gate")
    raise DemoError(f"stage 'rollout': rung.yaml has no candidate equal to {first!r} "
                    f"{'without its' if gated else 'with a'} refusal gate: the demo's second release is that "
                    "candidate (add one to roll it out)")


def _rollout_requests(cases: list[Case], opts: DemoOptions) -> list[tuple[str, Case]]:
    from rung.evals.suite import spread_sample

    refuse = spread_sample([c for c in cases if c.should_refuse], 2 * opts.requests_per_tenant)
    answer = spread_sample([c for c in cases if not c.should_refuse], opts.requests_per_tenant)
    picked = [c for pair in zip(refuse, answer) for c in pair]
    picked += refuse[len(answer):] + answer[len(refuse):]
    return [(TENANTS[i % len(TENANTS)], c) for i, c in enumerate(picked)]


def _wait_stored(config: RungConfig, since_iso: str, live: int, shadow: int, timeout_s: float,
                 events: DemoEvents, labels: bool = True) -> tuple[int, int, int]:
    """Wait until the gateway has stored `live` answers and `shadow` shadow answers since
    `since_iso` (all labelled, with `labels`); (live, shadow, still pending) as found."""
    from rung.ops.gateway.db import open_engine
    from rung.ops.gateway.traces import TraceStore

    engine = open_engine(config.store_target())
    try:
        ts = TraceStore(engine)
        deadline = time.monotonic() + timeout_s
        while True:
            rows = list(ts.iter_all(since=since_iso))
            n_shadow = sum(1 for r in rows if r.get("arm") == "shadow")
            n_live = len(rows) - n_shadow
            pending = sum(1 for r in rows if r.get("labels_status") == "pending")
            events.say(f"waiting for the gateway: {n_shadow}/{shadow} shadow answers"
                       + (f", {pending} traces waiting for online labels" if labels else ""))
            if (n_live >= live and n_shadow >= shadow and (not pending or not labels)) \
                    or time.monotonic() > deadline:
                return n_live, n_shadow, pending
            time.sleep(0.5)
    finally:
        engine.dispose()


def _fmt_check(c: Any) -> str:
    """A judge check in a few words: "refused 0.86 -> 0.41 on 30 pairs (mcnemar-exact p=0.004,
    discordant 0/9): fail"."""
    def v(x: float | None) -> str:
        if x is None:
            return "-"
        if c.name.startswith("latency"):
            return _secs(x)
        return f"{x:.4g}" if c.name == "cost_per_request" else f"{x:.2f}"

    bits = [c.test] + ([f"p={c.p_value:.2g}"] if c.p_value is not None else [])
    if c.discordant is not None:
        bits.append(f"discordant {c.discordant[0]}/{c.discordant[1]}")
    on = f" on {c.n_pairs} pairs" if c.n_pairs else ""
    return f"{c.name} {v(c.stable)} -> {v(c.canary)}{on} ({' '.join(bits[:2])}{', ' if bits[2:] else ''}" \
           f"{', '.join(bits[2:])}): {c.verdict}"


def stage_rollout(config: RungConfig, state: DemoState, opts: DemoOptions, events: DemoEvents) -> StageResult:
    """A second release (the same candidate without its refusal gate), a shadow rollout of it on
    production, requests replayed through the gateway (which answers a shadow copy of each with
    the new release), then the judge over the gateway's traces: rolled back or promoted, with the
    paired numbers."""
    from rung.config.operations import JudgeConfig, RolloutConfig
    from rung.ops.demo.replay import Replay
    from rung.ops.releases import ReleaseStore, create_release, live_release
    from rung.ops.rollout.machine import abort_rollout, evaluate, start_rollout
    from rung.ops.rollout.state import current_rollout, iso_seconds, running_rollout
    from rung.ops.tracesource import load_records

    rel_state = state.get("release")
    if rel_state is None:
        raise needs("rollout", "release", f"no release made by the demo in {state.path}")
    keys = _keys(config, state, "rollout", create=False)
    st = ReleaseStore.for_config(config)
    try:
        stable = _live(st, "rollout")
        if stable.id != rel_state["release"]:
            raise needs("rollout", "release", f"{CHANNEL} serves {stable.short} ({stable.candidate}), not the demo's "
                        f"release {rel_state['release'][:12]} (a previous rollout promoted it)")
        name, how = second_candidate(config, stable.candidate)
        events.say(f"releasing {name}")
        new = create_release(config, name, st, runs=_ladder_runs(_ladder_state(state, "rollout"), name),
                             note=f"rung demo: {how}").release
        cases, held = _held_out(config, state, "rollout")
        requests = _rollout_requests(cases, opts)
        inputs = {"stable": stable.id, "new": new.id, "requests": [[t, c.id] for t, c in requests]}
        prev = state.get("rollout")
        last = current_rollout(st, CHANNEL)
        if (prev is not None and not opts.fresh and prev.get("inputs") == inputs and last is not None
                and last.id == prev.get("rollout") and not last.running):
            return StageResult("rollout", f"{prev['summary']} [reused from {_hhmm(prev.get('at'))}: same "
                               "releases and requests; --fresh runs it again]", reused=True,
                               numbers=prev.get("numbers", {}))
        notes = []
        running = running_rollout(st, CHANNEL)
        if running is not None:
            abort_rollout(st, CHANNEL, reason="rung demo: an unfinished rollout of an interrupted run")
            notes.append(f"aborted the unfinished rollout {running.id}")
        n = len(requests)
        judge = JudgeConfig(min_requests=min(20, n), min_labelled=min(10, n))
        rcfg = RolloutConfig(mode="shadow", steps=[100.0], min_requests=n, min_minutes=0, judge=judge)
        r = start_rollout(st, CHANNEL, new.id, rcfg,
                          reason=f"rung demo: shadow rollout of {new.short} ({name}: {how}) over {stable.short}")
        finished = False
        try:
            since = iso_seconds(r.started_at)
            since_iso = datetime.fromtimestamp(since, timezone.utc).isoformat(timespec="milliseconds")
            with _serve(config, state, opts, events, f"{stable.short} live, {new.short} in shadow") as gw:
                ready_s = gw.ready_s or 0.0
                # in rounds: `concurrency` requests, then their shadow copies (the gateway answers
                # them after the users' answers), so both arms are timed under the same load
                rep = Replay()
                for i in range(0, n, opts.concurrency):
                    part = _replay(gw, requests[i:i + opts.concurrency], keys, opts, events)
                    rep.replies += part.replies
                    rep.wall_s += part.wall_s
                    _wait_stored(config, since_iso, len(rep.ok), len(rep.ok), opts.labels_timeout_s, events,
                                 labels=False)
                n_live, n_shadow, pending = _wait_stored(config, since_iso, len(rep.ok), len(rep.ok),
                                                         opts.labels_timeout_s, events)
                events.say("stopping rung serve")
            records = load_records(config, since=since, channel=CHANNEL)
            out = evaluate(st, CHANNEL, records, gate=config.gate)
            if out is None:
                raise DemoError(f"stage 'rollout': the rollout {r.id} on {CHANNEL} is not running any more")
            if out.action == "hold":
                abort_rollout(st, CHANNEL, reason=f"rung demo: inconclusive after {n} requests")
                notes.append("rollout aborted: the demo does not wait for more traffic")
            finished = True
        finally:
            if not finished and running_rollout(st, CHANNEL) is not None:
                abort_rollout(st, CHANNEL, reason="rung demo: the rollout stage was interrupted")
        res = out.result
        after = live_release(st, CHANNEL, fallback=False)
        word = {"rollback": "rolled back", "promoted": "promoted", "blocked": "blocked by the release gate",
                "hold": "inconclusive"}.get(out.action, out.action)
        checks = res.checks if res is not None else []
        # the failing checks, and always the paired refusal numbers (what the gate changes)
        shown = [c for c in checks if c.verdict == "fail" or c.name == "refused"]
        numbers = {"rollout": r.id, "action": out.action, "stable": stable.id, "new": new.id,
                   "new_candidate": name, "requests": n, "answered": len(rep.ok), "errors": len(rep.errors),
                   "live_traces": n_live, "shadow_traces": n_shadow, "labels_pending": pending,
                   "pairs": res.n_pairs if res else None, "ready_s": round(ready_s, 1),
                   "replay_s": round(rep.wall_s, 1),
                   "checks": [c.to_dict() for c in checks], "live_after": after.id if after else None}
        why = "; ".join(_fmt_check(c) for c in shown)
        if out.action == "hold" and res is not None:
            why = "; ".join([why] + (res.needed[:2] or res.reasons[:2]))
        src = "held-out" if held else "eval"
        summary = (f"shadow rollout of {new.short} ({name}: {how}) over {stable.short}: {n} {src} requests "
                   f"through the gateway, {opts.concurrency} at a time, each answered by both releases "
                   f"({n_shadow} shadow copies), {res.n_pairs if res else 0} pairs judged -> "
                   f"{word}: {why}; {CHANNEL} serves {after.short if after else '-'}"
                   + "".join(f"; {x}" for x in notes))
        state.put("rollout", {"at": _now_iso(), "inputs": inputs, "rollout": r.id, "summary": summary,
                              "numbers": numbers})
        return StageResult("rollout", summary, numbers=numbers)
    finally:
        st.close()


# ------------------------------------------------------------------------- 5. monitor

def stage_monitor(config: RungConfig, state: DemoState, opts: DemoOptions, events: DemoEvents) -> StageResult:
    """The alert rules once over the gateway's traces (notifying as `rung monitor` does), the
    monitor page, and the paths of the decision report and the monitor page."""
    from datetime import datetime as _dt

    from rung.config import paths
    from rung.ops.monitor import Notifier, build_monitor, load_state, save_state, window_seconds
    from rung.ops.monitor.report import write_monitor_page
    from rung.ops.releases import ReleaseStore
    from rung.ops.tracesource import load_records

    lad = _ladder_state(state, "monitor")
    serve = state.get("serve")
    if serve is None:
        raise needs("monitor", "serve", f"no traffic through the gateway recorded in {state.path}")
    st = ReleaseStore.for_config(config)
    try:
        now = time.time()
        records = load_records(config, since=now - window_seconds(config))
        at_note = ""
        if not records:  # the demo's traffic is older than every window: judge as of its last request
            older = load_records(config, since=now - 7 * 86400)
            if not older:
                raise needs("monitor", "serve", "the store has no gateway traces")
            now = max(r.ts for r in older) + 1.0
            records = [r for r in older if r.ts > now - window_seconds(config)]
            at_note = f" as of the last request ({_dt.fromtimestamp(now).strftime('%H:%M')})"
        state_path = config.resolve(paths.MONITOR_STATE)
        mon = build_monitor(config, st, state=load_state(state_path))
        log = config.resolve(config.monitor.log) if config.monitor.log else None
        sent = Notifier(config.monitor.webhooks, log, project=config.project).send(mon.evaluate(records, now))
        save_state(state_path, mon.state)
        conds = mon.conditions(records, now)
        breached = [(name, rel, ch, cond) for name, _r, rel, ch, cond in conds if cond.evaluated and cond.breached]
        evaluated = sum(1 for *_x, cond in conds if cond.evaluated)
        bad = [f"{name} {(mon.state.get(f'{name}|{rel}|{ch}') or {}).get('status', 'breached')} on "
               f"{rel[:12]}@{ch} ({cond.detail})" for name, rel, ch, cond in breached]
        page = write_monitor_page(config, st, config.path("reports") / "monitor.html",
                                  now - 24 * 3600 if not at_note else now - 7 * 86400)
    finally:
        st.close()
    rules = len(config.monitor.rules)
    found = "; ".join(bad) if bad else "nothing breached"
    summary = (f"{rules} alert rules once over {len(records)} requests{at_note} ({evaluated} rule checks had enough "
               f"traffic): {found}; {len(sent)} notification(s). Monitor page: {_rel(page.path)} · "
               f"decision report: {_rel(lad['report'])}")
    return StageResult("monitor", summary, numbers={
        "rules": rules, "requests": len(records), "evaluated": evaluated, "breached": [b[0] for b in breached],
        "notified": len(sent), "page_requests": page.requests},
        paths={"monitor": str(page.path), "report": lad["report"]})
