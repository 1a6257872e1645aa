"""The first three stages of `rung demo` (ladder, release, serve; rollout and monitor are in
rung.ops.demo.live), each a function of (config, state, options) -> StageResult, and what the
stages share (options, events, results, the held-out requests, the keys, the gateway).

Each stage reads what the earlier ones stored (the run store, the release store and channels,
the API keys, the demo's state file) and raises a one-line DemoError naming the stage to run
first when that is missing. A re-run is quick: the ladder reuses finished steps, releases are
content-addressed (making one again is a no-op), and the serve and rollout stages reuse their
previous result when nothing they depend on changed (same live release, same requests, same
keys; `fresh=True` replays anyway). Every result says which.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.ops.demo.state import DemoError, DemoState, needs

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
