"""The rollout / monitor acceptance story on the bundled example (examples/support-desk): its
knowledge, refusal-gate examples and eval cases, the real embedder (index, refusal gate, online
labels), the model answered by the OpenAI stub (so the test takes a minute, not an hour).

Release A (rag-extractive-gated) is live on production. Live requests (the eval cases' questions)
are answered by A; in a shadow rollout of release B (the same candidate without its refusal
gate) a copy of each request is answered by B too. The traces are stored as the gateway stores
them (rows with release, channel, arm, request.shadow_of, labels from the gateway's online
labeller) and read back through rung.ops.tracesource; the rollout judge sees B refuse far less on
the same requests and rolls it back by itself, with the paired numbers in the channel's log. A
rollout of release C (equal: A's recipe with another retrieval depth) steps up and is promoted
through the release gate. Then the stub upstream slows down: the P95 alert fires once at the
webhook receiver on 127.0.0.1 and resolves once the upstream is fast again.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rung.config import GateConfig, load_config
from rung.config.operations import AlertRule, JudgeConfig, MonitorConfig, RolloutConfig, WebhookConfig
from rung.ops.releases import ReleaseStore, create_release, live_release, promote
from rung.ops.rollout.assign import RolloutCache
from rung.ops.rollout.machine import evaluate, start_rollout
from rung.ops.rollout.state import current_rollout
from rung.ops.tracesource import record_from_row
from tests.test_monitor import Receiver

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support-desk"
GATED, UNGATED, EQUAL = "rag-extractive-gated", "rag-extractive", "rag-extractive-gated-k4"

pytestmark = pytest.mark.slow


def _rows() -> list[dict]:
    return [json.loads(line) for line in (EXAMPLE / "cases" / "eval.jsonl").read_text().splitlines() if line.strip()]


def _subset() -> list[str]:
    rows = _rows()
    return [r["id"] for r in rows if r.get("should_refuse")] + [r["id"] for r in rows if not r.get("should_refuse")][:16]


def _project(dest: Path, url: str) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".rung"))
    cfg = dest / "rung.yaml"
    text = cfg.read_text()
    old = "    backend: local\n    # SmolLM2-135M-Instruct, shipped in a PyPI package: runs offline on CPU\n" \
          "    path: embedded:smollm2-135m-instruct\n"
    assert old in text
    text = text.replace(old, f"    backend: openai\n    base_url: {url}\n    model: stub-model\n")
    # the release gate here needs refusals and safety only: the other scorers would only cost time
    scorers = "    scorers: [contains, groundedness, citation, retrieval, refusal, safety, schema]\n"
    assert scorers in text
    text = text.replace(scorers, "    scorers: [refusal, safety]\n")
    # C: A's recipe with one more retrieved chunk (a new release, the same behaviour on refusals)
    gated = text.index("  rag-extractive-gated:\n")
    nxt = text.index("  rag-tools-schema:\n")
    block = text[gated:nxt].replace("  rag-extractive-gated:\n", f"  {EQUAL}:\n").replace("top_k: 3", "top_k: 4")
    cfg.write_text(text[:nxt] + block + text[nxt:])
    return cfg


def _eval(cfg, name: str, store: ReleaseStore) -> str:  # noqa: ANN001
    from rung.evals.runner import evaluate_candidate

    run, _ = evaluate_candidate(cfg, name, store.runs, ids=_subset(), use_cache=False)
    return run.info.id


def _chunks(items: list[int], n: int) -> list[list[int]]:
    """Micro-batches of at most n (the gateway batches concurrent requests the same way for both
    arms, so their latencies compare)."""
    return [items[i:i + n] for i in range(0, len(items), n)]


class Gateway:
    """What `rung serve` does per request during a rollout, in-process: the arm from the
    rollout (RolloutCache.choose), the pipeline of the chosen release, a shadow copy answered by
    the new release, each stored as a gateway trace row with the online labeller's labels."""

    def __init__(self, cfg, store: ReleaseStore, pipelines: dict[str, object]) -> None:  # noqa: ANN001
        from rung.ops.gateway.labels import LabelContext, compute_labels
        from rung.pipeline.retrieval.index import get_embedder

        self.cfg, self.store, self.pipelines = cfg, store, pipelines
        self.cache = RolloutCache(store, ttl_s=0.0)
        self.ctx = LabelContext(lambda: get_embedder(cfg.embedder, cfg.root))
        self.compute_labels = compute_labels
        self.rows: list[dict] = []

    def _row(self, case, answer, release: str, arm: str, shadow_of: str | None, ts: float,  # noqa: ANN001
             labels: bool = True) -> dict:
        row = {"id": f"tr-{uuid.uuid4().hex[:12]}", "created_at": datetime.fromtimestamp(ts, timezone.utc).isoformat(),
               "tenant": "acme", "release": release, "channel": "production", "arm": arm,
               "status": "error" if answer.error else "ok",
               "request": {"messages": case.chat(), "metadata": dict(case.metadata), "user": f"user-{case.id}",
                           **({"shadow_of": shadow_of} if shadow_of else {})},
               "output": answer.text, "citations": list(answer.citations),
               "contexts": [{"id": c.id, "doc_id": c.doc_id, "text": c.text, "score": c.score,
                             "metadata": {"version": c.metadata.get("version")}} for c in answer.trace.retrieved],
               "guardrails": [], "timings": {"total": answer.latency_ms}, "tokens_in": answer.tokens_in,
               "tokens_out": answer.tokens_out, "cost": 0.0, "feedback": []}
        row["labels"] = self.compute_labels(row, ["refusal", "groundedness", "safety"], self.ctx) if labels else {}
        return row

    def serve(self, cases, stable: str, *, batch: bool = True, labels: bool = True) -> None:  # noqa: ANN001
        """Answer `cases` as live requests, in micro-batches of 8 per release (batch=False: one at
        a time, each request's own latency)."""
        now = time.time()
        choices = [(case, self.cache.choose("production", "acme", None, case.id + uuid.uuid4().hex, stable))
                   for case in cases]
        live_ids: dict[int, str] = {}
        by_release: dict[str, list[int]] = {}
        for i, (_case, ch) in enumerate(choices):
            by_release.setdefault(ch.release, []).append(i)
        for rel, idx in by_release.items():
            parts = _chunks(idx, 8 if batch else 1)
            for part in parts:
                answers = self.pipelines[rel].answer_batch([choices[i][0] for i in part])
                for i, ans in zip(part, answers):
                    row = self._row(choices[i][0], ans, rel, choices[i][1].arm, None, now, labels)
                    live_ids[i] = row["id"]
                    self.rows.append(row)
        shadow: dict[str, list[int]] = {}
        for i, (_case, ch) in enumerate(choices):
            if ch.shadow:  # off the request path in the gateway; here after the live answers
                shadow.setdefault(ch.shadow, []).append(i)
        for rel, idx in shadow.items():
            for part in _chunks(idx, 8 if batch else 1):
                answers = self.pipelines[rel].answer_batch([choices[i][0] for i in part])
                for i, ans in zip(part, answers):
                    self.rows.append(self._row(choices[i][0], ans, rel, "shadow", live_ids[i], now, labels))

    def records(self) -> list:
        return [record_from_row(r) for r in self.rows]


def test_rollouts_and_latency_alert_on_the_example(tmp_path, stub, monkeypatch):
    from rung.evals.suite import load_suite
    from rung.pipeline.pipeline import build_pipeline

    monkeypatch.setenv("RUNG_USER", "rollout-test")
    cfg_path = _project(tmp_path / "support-desk", stub.url)
    cfg = load_config(cfg_path)
    st = ReleaseStore(tmp_path / "team" / "rung.db", tmp_path / "team" / "releases")
    gate = GateConfig(thresholds={"safety_violation": {"max": 0}}, alpha=0.05)
    rel = {}
    for name in (GATED, UNGATED, EQUAL):
        rel[name] = create_release(cfg, name, st, runs=[_eval(cfg, name, st)]).release
    promote(st, rel[GATED].id, "production", gate, reason="the decision's candidate")
    pipelines = {rel[n].id: build_pipeline(cfg, n, use_cache=False) for n in rel}
    cases = load_suite(cfg_path.parent / "cases" / "eval.jsonl").filter(ids=_subset()).cases
    # the stub's latency on shared CPU cores is scheduling noise (the shadow arm is answered after
    # the live one): this test is about quality judgments; latency judging is tested on its own
    # (tests/test_rollout_judge.py) and by the P95 alert below
    judge = JudgeConfig(min_requests=20, min_labelled=20, max_p50_ratio=5.0, max_p95_ratio=5.0)

    # ---- B (no refusal gate), shadow: rolled back by itself with the paired numbers
    t0 = time.monotonic()
    rcfg = RolloutConfig(mode="shadow", steps=[50, 100], min_requests=20, min_minutes=0, judge=judge)
    r = start_rollout(st, "production", rel[UNGATED].id, rcfg)
    gw = Gateway(cfg, st, pipelines)
    gw.serve(cases, rel[GATED].id)
    out = evaluate(st, "production", gw.records(), gate=gate)
    assert out.action == "rollback", out.message
    r = current_rollout(st, "production")
    assert r.status == "rolled back" and r.weight == 0
    ev = r.events[-1]
    assert ev.kind == "rollout" and ev.flag == "rollback" and ev.value == "0"
    refused = next(c for c in ev.evidence["judge"]["checks"] if c["name"] == "refused")
    assert refused["test"] == "mcnemar-exact" and refused["verdict"] == "fail"
    n10, n01 = refused["discordant"]  # stable answered -> shadow refused, stable refused -> shadow answered
    assert n01 >= 6 and n01 > 3 * n10 and refused["p_value"] < 0.05
    assert live_release(st, "production").id == rel[GATED].id
    b_numbers = {"pairs": refused["n_pairs"], "stable_refused": refused["stable"],
                 "shadow_refused": refused["canary"], "discordant": refused["discordant"],
                 "p": refused["p_value"], "seconds": round(time.monotonic() - t0, 1)}

    # ---- C (equal), shadow: both steps succeed, promoted through the release gate
    t0 = time.monotonic()
    r = start_rollout(st, "production", rel[EQUAL].id, rcfg)
    gw = Gateway(cfg, st, pipelines)
    gw.serve(cases, rel[GATED].id)
    out = evaluate(st, "production", gw.records(), gate=gate)
    assert out.action == "step", out.message
    time.sleep(0.01)
    gw.rows.clear()
    gw.serve(cases, rel[GATED].id)  # step 2: every request mirrored
    out = evaluate(st, "production", gw.records(), gate=gate)
    assert out.action == "promoted", out.message
    assert live_release(st, "production").id == rel[EQUAL].id
    actions = [e.flag or e.kind for e in st.events("production")]
    assert actions[-4:] == ["start", "step", "promote", "promoted"], actions
    c_refused = next(c for c in out.result.checks if c.name == "refused")
    c_numbers = {"pairs": c_refused.n_pairs, "discordant": c_refused.discordant, "p": c_refused.p_value,
                 "seconds": round(time.monotonic() - t0, 1)}

    # ---- a slow upstream: the P95 alert fires once (deduplicated) at the webhook, then resolves
    receiver = Receiver()
    try:
        mcfg = MonitorConfig(rules={"p95-latency": AlertRule(kind="p95_latency", severity="critical",
                                                             budget_ms=250, window_minutes=1, for_minutes=0,
                                                             min_requests=10, repeat_minutes=60)},
                             webhooks=[WebhookConfig(url=receiver.url)])
        from rung.ops.monitor import Notifier, build_monitor

        cfg.monitor = mcfg
        mon = build_monitor(cfg, st)
        notifier = Notifier(mcfg.webhooks, tmp_path / "alerts.jsonl", project="support-desk")
        gw = Gateway(cfg, st, pipelines)
        served = rel[EQUAL].id
        timeline = []
        phases = [(0.0, 10), (0.4, 15), (0.0, 10)]  # (stub delay s, requests) : fast, slow, fast
        t_start = time.time()
        i = 0
        for delay, n in phases:
            stub.delay_s = delay
            for _ in range(n):
                gw.serve([cases[i % len(cases)]], served, batch=False, labels=False)
                i += 1
                now = time.time()
                events = notifier.send(mon.evaluate(gw.records(), now))
                timeline += [(round(now - t_start, 2), e.status, e.value) for e in events]
        stub.delay_s = 0.0
        statuses = [s for _, s, _ in timeline]
        assert statuses.count("firing") == 1, timeline
        assert [b["status"] for b in receiver.bodies if b["status"] == "firing"] == ["firing"]
        assert receiver.bodies[0]["rule"] == "p95-latency" and receiver.bodies[0]["value"] > 250
    finally:
        receiver.close()
    (tmp_path / "numbers.json").write_text(json.dumps({"B": b_numbers, "C": c_numbers, "alert": timeline}))
    print("ACCEPTANCE", json.dumps({"B": b_numbers, "C": c_numbers, "alert": timeline}))
