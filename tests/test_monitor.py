"""Monitoring: alert rules over windows of trace records, for-duration and de-duplication, a
webhook receiver on 127.0.0.1, the Prometheus rules file and the monitor page in Chromium."""

from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from rung.config.operations import AlertRule, MonitorConfig, WebhookConfig
from rung.ops.monitor import Baseline, Monitor, Notifier, evaluate_rule, read_log
from rung.ops.monitor.prometheus import prometheus_rules, write_rules
from rung.ops.monitor.report import render_monitor_report
from rung.ops.records import TraceRecord
from tests.chromium import needs_chromium, render


class Receiver:
    """A webhook receiver on 127.0.0.1 (a free port) that keeps every JSON body it gets."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a) -> None:  # noqa: ANN002
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


def _traffic(t0: float, t1: float, rps: float, *, seed: int = 0, latency: float = 300.0,
             slow_from: float | None = None, slow_to: float | None = None, halluc: float = 0.02,
             refuse: float = 0.1, release: str = "a" * 64) -> list[TraceRecord]:
    rng = random.Random(seed)
    out, t, i = [], t0, 0
    while t < t1:
        lat = latency * rng.lognormvariate(0, 0.25)
        if slow_from is not None and slow_from <= t < (slow_to or t1):
            lat += 2500.0 * rng.uniform(0.8, 1.2)  # a slow upstream
        out.append(TraceRecord(id=f"t{i}", request_id=f"t{i}", ts=t, release=release, channel="production",
                               latency_ms=lat, cost=0.0003,
                               labels={"refused": rng.random() < refuse, "hallucination": rng.random() < halluc,
                                       "safety_violation": False}))
        t += 1.0 / rps
        i += 1
    return out


BASE = Baseline(p95_ms=450.0, hallucination=0.02, refused=0.1, n=200)


def test_rules_measure_and_decide():
    w = _traffic(0, 600, 1.0)
    rule = AlertRule(kind="p95_latency", budget_ms=1500)
    c = evaluate_rule("p95", rule, w, BASE)
    assert not c.breached and c.threshold == 1500 and 300 < c.value < 600
    c = evaluate_rule("p95", AlertRule(kind="p95_latency", factor=1.1), w, BASE)
    assert c.threshold == pytest.approx(495.0)
    spike = _traffic(0, 600, 1.0, halluc=0.15, seed=3)
    rule = AlertRule(kind="hallucination_spike", min_requests=50, min_increase=0.05, alpha=0.01)
    assert not evaluate_rule("h", rule, w, BASE).breached
    c = evaluate_rule("h", rule, spike, BASE)
    assert c.breached and c.p_value < 0.01 and "binomial" in c.detail
    c = evaluate_rule("r", AlertRule(kind="refusal_drift", min_requests=50, min_increase=0.1),
                      _traffic(0, 600, 1.0, refuse=0.4, seed=4), BASE)
    assert c.breached and "up" in c.detail
    c = evaluate_rule("r", AlertRule(kind="refusal_drift", min_requests=50, min_increase=0.1, direction="up"),
                      _traffic(0, 600, 1.0, refuse=0.0, seed=4), BASE)
    assert not c.breached
    c = evaluate_rule("c", AlertRule(kind="cost", budget=0.2), w, BASE)
    assert c.breached and c.value == pytest.approx(0.3)
    w[5].labels["safety_violation"] = True
    assert evaluate_rule("s", AlertRule(kind="safety", min_requests=1), w, BASE).breached
    few = evaluate_rule("p95", AlertRule(kind="p95_latency", budget_ms=1, min_requests=1000), w, BASE)
    assert not few.evaluated and not few.breached


def test_latency_fault_fires_once_deduplicated_then_resolves(receiver, tmp_path):
    """A slow upstream from t=1200 s to t=2400 s; the monitor runs every 30 s."""
    cfg = MonitorConfig(rules={"p95-latency": AlertRule(kind="p95_latency", severity="critical",
                                                        budget_ms=1500, window_minutes=5, for_minutes=2,
                                                        min_requests=20, repeat_minutes=120)},
                        webhooks=[WebhookConfig(url=receiver.url)])
    traffic = _traffic(0, 3600, 2.0, slow_from=1200, slow_to=2400)
    mon = Monitor(cfg, lambda rid: BASE)
    log = tmp_path / "alerts.jsonl"
    notifier = Notifier(cfg.webhooks, log, project="t")
    timeline = []
    for now in range(60, 3601, 30):
        for ev in notifier.send(mon.evaluate(traffic, float(now))):
            timeline.append((now, ev.status))
    statuses = [s for _, s in timeline]
    assert statuses == ["firing", "resolved"], timeline
    fired_at, resolved_at = timeline[0][0], timeline[1][0]
    # breached once enough slow requests are in the 5-minute window, then held 2 minutes
    assert 1200 + 120 <= fired_at <= 1200 + 300 + 120
    assert 2400 < resolved_at <= 2400 + 300
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    body = receiver.bodies[0]
    assert body["rule"] == "p95-latency" and body["severity"] == "critical" and body["value"] > 1500
    assert body["source"] == "rung" and body["channel"] == "production"
    assert [e["status"] for e in read_log(log)] == ["firing", "resolved"]
    assert read_log(log)[0]["deliveries"][0]["status"] == 204


def test_a_breach_shorter_than_for_minutes_never_fires():
    cfg = MonitorConfig(rules={"p95": AlertRule(kind="p95_latency", budget_ms=1500, window_minutes=1,
                                                for_minutes=5, min_requests=10)})
    traffic = _traffic(0, 1800, 2.0, slow_from=600, slow_to=720)
    mon = Monitor(cfg)
    fired = [e for now in range(30, 1801, 30) for e in mon.evaluate(traffic, float(now))]
    assert fired == []


def test_repeat_after_repeat_minutes_and_unreachable_webhook(tmp_path):
    cfg = MonitorConfig(rules={"p95": AlertRule(kind="p95_latency", budget_ms=1500, window_minutes=5,
                                                min_requests=10, repeat_minutes=10)},
                        webhooks=[WebhookConfig(url="http://127.0.0.1:9/nothing", timeout_s=1)])
    traffic = _traffic(0, 1800, 2.0, slow_from=0)
    mon = Monitor(cfg)
    notifier = Notifier(cfg.webhooks, tmp_path / "a.jsonl")
    evs = [e for now in range(300, 1801, 60) for e in notifier.send(mon.evaluate(traffic, float(now)))]
    assert [e.repeat for e in evs] == [False, True, True]
    assert "error" in evs[0].deliveries[0]


def test_prometheus_rules_file(tmp_path):
    cfg = MonitorConfig()
    data, notes = prometheus_rules(cfg, BASE, project="demo", p95_budget_ms=1500, cost_budget_per_1k=0.5)
    out = tmp_path / "rules.yml"
    write_rules(out, data)
    loaded = yaml.safe_load(out.read_text())
    rules = {r["alert"]: r for r in loaded["groups"][0]["rules"]}
    assert set(rules) == {"RungP95Latency", "RungHallucinationSpike", "RungRefusalDrift", "RungSafety",
                          "RungCost", "RungErrorRate"}
    p95 = rules["RungP95Latency"]
    assert "histogram_quantile(0.95" in p95["expr"] and "gen_ai_server_request_duration_seconds_bucket" in p95["expr"]
    assert "> 1.35" in p95["expr"]  # min(budget 1.5 s, 3 x eval P95 0.45 s)
    assert p95["labels"]["severity"] == "critical" and p95["for"] == "0m"
    assert "rung_hallucination_flags" in rules["RungHallucinationSpike"]["expr"] or \
        "label=\"hallucination\"" in rules["RungHallucinationSpike"]["expr"]
    assert notes == []
    data, notes = prometheus_rules(cfg, Baseline())
    assert any("p95-latency" in n for n in notes)


@needs_chromium
def test_monitor_report_renders_in_chromium(tmp_path):
    traffic = _traffic(0, 3600, 1.0, slow_from=1200, slow_to=2400)
    traffic += _traffic(1800, 3600, 0.5, release="b" * 64, seed=9)
    alerts = [{"status": "firing", "rule": "p95-latency", "severity": "critical", "release": "a" * 64,
               "channel": "production", "at": 1500.0, "detail": "P95 2900 ms > budget 1500 ms"},
              {"status": "resolved", "rule": "p95-latency", "severity": "critical", "release": "a" * 64,
               "channel": "production", "at": 2600.0, "detail": "P95 420 ms <= budget"}]
    rollouts = [{"at": 1800.0, "channel": "production", "action": "start", "weight": "5", "reason": "b over a"}]
    page = tmp_path / "monitor.html"
    page.write_text(render_monitor_report(traffic, alerts=alerts, rollout_events=rollouts, bucket_minutes=5))
    text = page.read_text()
    assert "<script" not in text and text.count("<svg") == 7
    png, colours, dom = render(page, tmp_path, want=(0xD6, 0x27, 0x28))  # the firing marker's red
    assert png.is_file() and (0xD6, 0x27, 0x28) in colours
    assert "P95 latency (ms)" in dom and "hallucination-flag rate" in dom and "Alert events" in dom
    assert "aaaaaaaaaaaa @ production" in dom and "bbbbbbbbbbbb @ production" in dom


def test_monitor_cli_once_deduplicates_across_runs_and_exports(tmp_path, receiver):
    from rung.ops.tracesource import write_jsonl
    from tests.clirun import run_rung

    (tmp_path / "rung.yaml").write_text(
        "project: t\npaths: {store: rung.db, artifacts: artifacts}\n"
        "constraints: {p95_latency_ms: 1500, cost_per_1k_requests: 0.5}\n"
        "monitor:\n"
        f"  webhooks: [{{url: '{receiver.url}'}}]\n"
        "  rules:\n"
        "    p95: {kind: p95_latency, budget_ms: 1500, window_minutes: 5, min_requests: 20}\n"
        "    errors: {kind: error_rate, max_rate: 0.05}\n")
    path = write_jsonl(_traffic(1_700_000_000, 1_700_000_600, 2.0, slow_from=1_700_000_300),
                       tmp_path / "traces.jsonl")
    cfg = str(tmp_path / "rung.yaml")
    at = "2023-11-14T22:23:20+00:00"  # 1_700_000_600
    p = run_rung("monitor", "-c", cfg, "--traces", str(path), "--at", at)
    assert p.returncode == 0, p.stderr
    assert "FIRING (warning) p95" in p.stdout and "firing" in p.stdout
    p = run_rung("monitor", "-c", cfg, "--traces", str(path), "--at", at)  # same state: no new event
    assert p.returncode == 0 and "FIRING" not in p.stdout
    assert [b["status"] for b in receiver.bodies] == ["firing"]
    assert (tmp_path / ".rung" / "alerts.jsonl").is_file()
    p = run_rung("monitor", "-c", cfg, "--export-prometheus-rules", str(tmp_path / "rules.yml"))
    assert p.returncode == 0, p.stderr
    assert "wrote 2 Prometheus alerting rule(s)" in p.stdout
    p = run_rung("monitor", "-c", cfg, "--report", "--traces", str(path), "--at", at, "--since", "1h",
                 "-o", str(tmp_path / "m.html"))
    assert p.returncode == 0, p.stderr
    page = (tmp_path / "m.html").read_text()
    assert "<svg" in page and "p95" in page


def test_hallucination_rule_does_not_test_against_a_saturated_baseline():
    rule = AlertRule(kind="hallucination_spike", min_requests=50)
    c = evaluate_rule("h", rule, _traffic(0, 600, 1.0, halluc=0.95), Baseline(hallucination=0.9, n=200))
    assert not c.evaluated and not c.breached and "max_baseline" in c.detail
