"""The five stages of `rung demo`, each a function of (config, state, options) -> StageResult.

Each stage reads what the earlier ones stored (the run store, the release store and channels,
the API keys, the demo's state file) and raises a one-line DemoError naming the stage to run
first when that is missing. A re-run is quick: the ladder reuses finished steps, releases are
content-addressed (making one again is a no-op), and the serve and rollout stages reuse their
previous result when nothing they depend on changed (same live release, same requests, same
keys; `fresh=True` replays anyway). Every result says which.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.ops.demo.state import STAGES, DemoError, DemoState, needs

if TYPE_CHECKING:
    from rung.config import RungConfig
    from rung.core import Case
    from rung.ladder import LadderEvents
    from rung.ops.demo.replay import Replay, ServeProcess
    from rung.ops.releases import Release, ReleaseStore

CHANNEL = "production"
TENANTS = ("acme", "globex")


@dataclass
class DemoOptions:
    """What `rung demo` was asked for."""

    sample: int | None = 32  # the ladder's fixed sample of cases (None: every case)
    train: bool = False  # let the ladder train a LoRA adapter
    fresh: bool = False  # serve and rollout replay even when nothing changed
    out: Path | None = None  # report folder (default: paths.reports)
    requests_per_tenant: int = 8  # serve: held-out requests per tenant; the rollout replays up to
    # twice as many that should be refused and as many that should be answered
    concurrency: int = 8  # requests in flight at once (the gateway micro-batches them)
    ready_timeout_s: float = 300.0  # how long `rung serve` may take to load
    request_timeout_s: float = 180.0  # per replayed request
    labels_timeout_s: float = 180.0  # rollout: shadow answers and online labels to be stored


@dataclass
class DemoEvents:
    """Callbacks the CLI renders: the ladder's progress bars, and a short status text while a
    stage works (starting the gateway, replaying, waiting for labels)."""

    ladder: LadderEvents | None = None
    status: Callable[[str], None] | None = None

    def say(self, text: str) -> None:
        if self.status is not None:
            self.status(text)


@dataclass
class StageResult:
    """One stage: what it did and measured, in one line (`summary`), with the numbers behind it."""

    stage: str
    summary: str
    seconds: float = 0.0
    reused: bool = False  # the previous result, nothing having changed
    numbers: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    exit_code: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "summary": self.summary, "seconds": round(self.seconds, 2),
                "reused": self.reused, "numbers": self.numbers, "paths": self.paths,
                "exit_code": self.exit_code}


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _hhmm(iso: str | None) -> str:
    if not iso:
        return "earlier"
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M")
    except ValueError:
        return iso


def _rel(p: str | Path) -> str:
    """A path as the user can open it from where they ran the demo."""
    path = Path(p)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def _secs(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms"


# ------------------------------------------------------------------------- 1. ladder

def stage_ladder(config: RungConfig, state: DemoState, opts: DemoOptions, events: DemoEvents) -> StageResult:
    """The ladder and the decision, as `rung ladder --sample N` (reusing finished steps)."""
    from rung.decide.brief import decision_sentence
    from rung.decide.report import write_decision_report
    from rung.evals.store import RunStore
    from rung.evals.suite import load_suite, spread_sample
    from rung.ladder import climb

    suite_name, _ = config.suite(None)
    cases = load_suite(config.existing_path("suites", suite_name, "path", what="suite file or folder"),
                       name=suite_name).cases
    ids = [c.id for c in spread_sample(cases, opts.sample)] if opts.sample else None
    store = RunStore(config.store_target())
    result = climb(config, store, ids=ids, reuse=True, allow_training=opts.train, events=events.ladder)
    out_dir = opts.out if opts.out is not None else config.path("reports")
    paths = write_decision_report(result.decision, out_dir, runs=result.gathered.runs,
                                  title=f"rung ladder: {config.project}", stem="report")
    d = result.decision
    sentence = decision_sentence(d)
    wall = sum(s.wall_s for s in result.steps)
    reused = sum(s.reused for s in result.steps)
    n = len(ids) if ids is not None else len(cases)
    state.put("ladder", {
        "at": _now_iso(), "suite": suite_name, "sample_ids": ids, "n_cases": len(cases),
        "action": d.action, "level": d.level, "candidate": d.candidate, "sentence": sentence,
        "report": str(paths.html), "markdown": str(paths.markdown), "decision": str(paths.json),
        "runs": {s.candidate: s.run_id for s in result.steps},
        "trained": sorted(set(result.config.candidates) - set(config.candidates)) if result.config else [],
    })
    steps = f"{len(result.steps)} steps ({reused} reused) in {wall:.0f} s"
    summary = (f"{steps} on {n} of {len(cases)} cases: {sentence} Report: {_rel(paths.html)}")
    return StageResult("ladder", summary, numbers={
        "steps": len(result.steps), "reused": reused, "ladder_s": round(wall, 1), "cases": n,
        "action": d.action, "candidate": d.candidate, "level": d.level},
        paths={"report": str(paths.html), "markdown": str(paths.markdown), "decision": str(paths.json)},
        exit_code=d.exit_code)


# ------------------------------------------------------------------------- 2. release

_GATE_LINE = re.compile(r"^(?:[^:]+: )?(PASS|FAIL) (\S+) = (\S+) \(([^)]*)\)")


def _ms_as_s(text: str) -> str:
    """"1.159e+05" (ms) -> "115.9 s"; numbers inside a bound ("<= 1500") too."""
    def one(m: re.Match[str]) -> str:
        return f"{float(m.group(0)) / 1000:.3g} s"
    return re.sub(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", one, text)


def gate_phrase(message: str) -> str:
    """A promotion check's line in a few words: "refusal_correct 0.85 (>= 0.95)", "p95_latency
    116 s (<= 1.5 s)"."""
    m = _GATE_LINE.match(message)
    if m:
        name, value, bound = m.group(2), m.group(3), m.group(4)
        if name.endswith("_ms"):
            name, value, bound = name[:-3], _ms_as_s(value), _ms_as_s(bound)
        return f"{name} {value} ({bound})"
    text = message.split(": ", 1)[-1] if ": " in message else message
    return text if len(text) <= 140 else text[:137] + "..."


def _ladder_state(state: DemoState, stage: str) -> dict[str, Any]:
    lad = state.get("ladder")
    if lad is None:
        raise needs(stage, "ladder", f"no ladder result in {state.path}")
    return lad


def _decision(config: RungConfig, state: DemoState, stage: str) -> tuple[dict[str, Any], str]:
    """(the ladder's decision.json, the candidate to ship) for the release and rollout stages."""
    import json

    lad = _ladder_state(state, stage)
    path = Path(lad.get("decision") or "")
    try:
        decision = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise needs(stage, "ladder", f"the decision {path} is missing or unreadable") from None
    cand = decision.get("candidate")
    if not cand:
        raise DemoError(f"stage '{stage}': the ladder chose no candidate ({decision.get('action')}: "
                        f"{decision.get('headline', '')}); nothing to release")
    if cand not in config.candidates:
        raise DemoError(f"stage '{stage}': the ladder's candidate {cand!r} was trained by the ladder and is "
                        "not in rung.yaml; add it (see the ladder's note) to release it")
    return decision, cand


def _ladder_runs(lad: dict[str, Any], candidate: str) -> list[str] | None:
    """The ladder's run of `candidate` as a release's evidence (the ladder evaluated a sample of
    the suite, which the default evidence, a run on the whole suite, is not); None: the latest
    finished run on each suite."""
    run = (lad.get("runs") or {}).get(candidate)
    return [run] if run else None


def stage_release(config: RungConfig, state: DemoState, opts: DemoOptions, events: DemoEvents) -> StageResult:
    """Release what the decision chose (or its closest candidate, said plainly) and promote it
    to production with the gate's evidence; forced, with the failing checks recorded, when the
    gate refuses."""
    from rung.ops.releases import ReleaseStore, check_promotion, create_release, live_release, promote

    decision, cand = _decision(config, state, "release")
    ships = decision.get("action") == "ship"
    st = ReleaseStore.for_config(config)
    try:
        events.say(f"releasing {cand}")
        lad = _ladder_state(state, "release")
        created = create_release(config, cand, st, runs=_ladder_runs(lad, cand), decision=lad["decision"],
                                 note="rung demo: the ladder's " + ("decision" if ships else "closest candidate"))
        rel = created.release
        made = "created" if created.created else "made before: same content and evidence"
        nfiles = len(rel.content.get("files") or {})
        live = live_release(st, CHANNEL, fallback=False)
        if live is not None and live.id == rel.id:
            check = check_promotion(st, rel, CHANNEL, config.gate, None)
            ev_state = st.state(CHANNEL)
            moved = f"already live on {CHANNEL} since {_hhmm(ev_state.since)}"
            forced = not check.passed
            reused = True
        else:
            check = check_promotion(st, rel, CHANNEL, config.gate, live)
            forced = not check.passed
            reason = ("rung demo: the decision's candidate" if ships else
                      "rung demo: no level meets the targets; shipping the closest candidate")
            ev, check = promote(st, rel.id, CHANNEL, config.gate, reason=reason, force=forced)
            over = f" over {live.short}" if live is not None else ""
            moved = f"promoted to {CHANNEL}{over} (event #{ev.seq}{', forced' if ev.forced else ''})"
            reused = False
        passed = [gate_phrase(x.message) for x in check.lines if x.passed]
        failed = [gate_phrase(x.message) for x in check.failures]
        runs = ", ".join(rel.run_ids) or "no run"
        evidence = f"gate on run {runs}: " + "; ".join(
            ([f"FAIL {', '.join(failed)}"] if failed else []) + ([f"PASS {', '.join(passed)}"] if passed else []))
        if ships and not forced:
            head = f"the decision ships {cand}: release {rel.short} {made} ({nfiles} files)"
        elif ships:
            head = (f"the decision ships {cand}, but the release gate refuses it; release {rel.short} {made} "
                    f"({nfiles} files), shipped with --force")
        elif forced:
            head = (f"no level meets the targets; shipping the closest, {cand}, as release {rel.short} "
                    f"({made}, {nfiles} files) with --force: {', '.join(failed) or 'the gate refused'}")
        else:
            head = (f"no level meets the decision's targets; shipping the closest, {cand}, as release "
                    f"{rel.short} ({made}, {nfiles} files), which the release gate passes")
        state.put("release", {"at": _now_iso(), "release": rel.id, "candidate": cand, "forced": forced,
                              "check": check.to_dict()})
        return StageResult("release", f"{head}; {moved}. {evidence}", reused=reused, numbers={
            "release": rel.id, "candidate": cand, "created": created.created, "forced": forced,
            "failed": failed, "passed": passed, "runs": rel.run_ids})
    finally:
        st.close()


# ------------------------------------------------------------------------- 3. serve

def _held_out(config: RungConfig, state: DemoState, stage: str) -> tuple[list[Case], bool]:
    """Eval cases the ladder did not sample (their answers were never seen by the decision),
    without the ones that ask for a JSON schema (a different kind of request); (cases, held_out).
    When the ladder ran on every case there are none: every case then, said so."""
    from rung.evals.suite import load_suite

    lad = _ladder_state(state, stage)
    suite = str(lad.get("suite"))
    cases = load_suite(config.existing_path("suites", suite, "path", what="suite file or folder"),
                       name=suite).cases
    sample = set(lad.get("sample_ids") or [])
    plain = [c for c in cases if c.schema is None]
    held = [c for c in plain if c.id not in sample]
    return (held, True) if held and sample else (plain, False)


def _serve_requests(cases: list[Case], per_tenant: int) -> list[tuple[str, Case]]:
    from rung.evals.suite import spread_sample

    picked = spread_sample(cases, per_tenant * len(TENANTS))
    return [(TENANTS[i % len(TENANTS)], c) for i, c in enumerate(picked)]


def _keys(config: RungConfig, state: DemoState, stage: str, create: bool) -> dict[str, str]:
    """The tenants' API keys: those the serve stage made, while they still verify; new ones
    (create=True) otherwise."""
    from rung.ops.gateway.db import open_engine
    from rung.ops.gateway.keys import KeyStore

    stored = (state.get("keys") or {}).get("keys") or {}
    engine = open_engine(config.store_target())
    try:
        ks = KeyStore(engine, ttl_s=0)
        keys = {t: k for t, k in stored.items() if t in TENANTS and ks.verify(k) is not None}
        missing = [t for t in TENANTS if t not in keys]
        if missing and not create:
            raise needs(stage, "serve", f"no API keys for tenant(s) {', '.join(missing)} in {state.path}")
        for t in missing:
            keys[t] = ks.create(t, "rung demo")[1]
    finally:
        engine.dispose()
    if keys != stored:
        state.put("keys", {"at": _now_iso(), "keys": keys})
    return keys


def _live(st: ReleaseStore, stage: str) -> Release:
    from rung.ops.releases import live_release

    live = live_release(st, CHANNEL, fallback=False)
    if live is None:
        raise needs(stage, "release", f"{CHANNEL} has no live release")
    return live


def _percentile(values: list[float], q: float) -> float | None:
    from rung.ops.records import percentile

    return percentile(values, q) if values else None


def _serve(config: RungConfig, state: DemoState, opts: DemoOptions, events: DemoEvents, what: str) -> ServeProcess:
    from rung.ops.demo.replay import ServeProcess

    events.say(f"starting rung serve on 127.0.0.1 ({what})")
    return ServeProcess(config.root, state.folder / "serve.log", ready_timeout_s=opts.ready_timeout_s)


def _replay(gw: ServeProcess, requests: list[tuple[str, Case]], keys: dict[str, str], opts: DemoOptions,
            events: DemoEvents) -> Replay:
    from rung.ops.demo.replay import replay

    events.say(f"replaying {len(requests)} requests through {gw.url}")
    return replay(gw.url, requests, keys, timeout_s=opts.request_timeout_s, concurrency=opts.concurrency,
                  done=lambda d, n: events.say(f"replaying through {gw.url}: {d}/{n} answered"))


def stage_serve(config: RungConfig, state: DemoState, opts: DemoOptions, events: DemoEvents) -> StageResult:
    """The real gateway: `rung serve` on a free 127.0.0.1 port, two tenants' API keys, held-out
    requests replayed concurrently with the openai client; P50/P95 as served, blocks."""
    from rung.ops.demo.replay import metric_mean
    from rung.ops.releases import ReleaseStore
    from rung.text.refusal import detect_refusal

    st = ReleaseStore.for_config(config)
    try:
        live = _live(st, "serve")
    finally:
        st.close()
    cases, held = _held_out(config, state, "serve")
    requests = _serve_requests(cases, opts.requests_per_tenant)
    keys = _keys(config, state, "serve", create=True)
    inputs = {"release": live.id, "requests": [[t, c.id] for t, c in requests],
              "keys": sorted(k.split("_")[1] for k in keys.values())}
    prev = state.get("serve")
    if prev is not None and not opts.fresh and prev.get("inputs") == inputs:
        return StageResult("serve", f"{prev['summary']} [reused from {_hhmm(prev.get('at'))}: same release, "
                           "requests and keys; --fresh replays]", reused=True, numbers=prev.get("numbers", {}))
    with _serve(config, state, opts, events, f"release {live.short} on {CHANNEL}") as gw:
        ready_s = gw.ready_s or 0.0
        rep = _replay(gw, requests, keys, opts, events)
        batch = metric_mean(gw.metrics(), "rung_microbatch_size")
        events.say("stopping rung serve")
    ok = rep.ok
    lat = [r.latency_ms for r in ok]
    p50, p95 = _percentile(lat, 50), _percentile(lat, 95)
    blocks = [r for r in ok if r.blocked]
    refused = [r for r in ok if not r.blocked and detect_refusal(r.text).refused]
    per_tenant = {t: sum(1 for r in rep.replies if r.tenant == t) for t in TENANTS}
    reasons = sorted({str(r.blocked) for r in blocks})
    numbers = {"requests": len(requests), "answered": len(ok), "errors": len(rep.errors),
               "p50_ms": p50, "p95_ms": p95, "blocked": len(blocks), "block_reasons": reasons,
               "refused": len(refused), "tenants": per_tenant, "ready_s": round(ready_s, 1),
               "replay_s": round(rep.wall_s, 1), "mean_batch": batch, "release": live.id,
               "held_out": held}
    err = f", {len(rep.errors)} errors ({rep.errors[0].error})" if rep.errors else ""
    src = "held-out" if held else "eval (the ladder used every case: none held out)"
    batching = f", micro-batches of {batch:.1f} on average" if batch else ""
    summary = (f"{len(requests)} {src} requests from {len(TENANTS)} tenants "
               f"({', '.join(f'{t} {n}' for t, n in per_tenant.items())}) through rung serve (release "
               f"{live.short}), {opts.concurrency} at a time with the openai client: P50 {_secs(p50)}, "
               f"P95 {_secs(p95)} as served{batching}; {_n(len(blocks), 'guardrail block')}"
               f"{' (' + ', '.join(reasons) + ')' if reasons else ''}, {_n(len(refused), 'refusal')}{err}; "
               f"gateway ready in {ready_s:.0f} s, {rep.wall_s:.0f} s of replay, stopped")
    state.put("serve", {"at": _now_iso(), "inputs": inputs, "summary": summary, "numbers": numbers})
    return StageResult("serve", summary, numbers=numbers)


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


RUNNERS: dict[str, Callable[[RungConfig, DemoState, DemoOptions, DemoEvents], StageResult]] = {
    "ladder": stage_ladder, "release": stage_release, "serve": stage_serve, "rollout": stage_rollout,
    "monitor": stage_monitor,
}
assert tuple(RUNNERS) == STAGES
