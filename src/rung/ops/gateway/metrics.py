"""Prometheus metrics of the gateway, named after the OpenTelemetry GenAI semantic conventions
where one exists, `rung_*` for the rest.

OpenTelemetry GenAI (attribute dots become underscores):
    gen_ai_server_request_duration_seconds      histogram  a chat request end to end, as served
    gen_ai_server_time_to_first_token_seconds   histogram  request received -> first token ready
    gen_ai_client_operation_duration_seconds    histogram  the gateway's call(s) to the model
    gen_ai_client_token_usage                   histogram  tokens per request, gen_ai_token_type=input|output
rung:
    rung_requests_total{status}                 ok | blocked | error, and 4xx codes
    rung_guardrail_events_total{guardrail, action, reason}
    rung_guardrail_blocks_total{guardrail, reason}
    rung_refusals_total{source}                 guardrail | model (refusal phrasing in the answer)
    rung_hallucination_flags_total              online groundedness labels with hallucination = 1
    rung_online_labels_total{label, value}      pass | fail | not_measured
    rung_cost_total                             price x tokens (the models' `price`)
    rung_cache_hits_total                       answers from the response cache
    rung_rate_limited_total, rung_auth_failures_total{code}
    rung_microbatch_size / rung_microbatch_wait_seconds / rung_microbatch_generate_seconds {model}
    rung_in_flight_requests                     gauge
    rung_trace_write_seconds                    histogram (write-ahead commit)

Labels on request metrics: gen_ai_operation_name ("chat"), gen_ai_request_model (the name the
client asked for, resolved), release (release id, else candidate@hash), channel, adapter, and
tenant only while the tenant set is bounded (`serving.tenant_label_max`; "other" beyond it).

With `--workers N`, PROMETHEUS_MULTIPROC_DIR is set and /metrics aggregates every worker.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,  # noqa: F401 - re-exported for the app
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
TARGET_LABELS = ("gen_ai_operation_name", "gen_ai_request_model", "release", "channel", "adapter", "tenant")


class GatewayMetrics:
    def __init__(self, tenant_label_max: int = 20, known_tenants: list[str] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tenant_label_max = tenant_label_max
        self._tenants: set[str] = set(known_tenants or [])
        r = self.registry
        t = TARGET_LABELS
        self.request_duration = Histogram("gen_ai_server_request_duration_seconds",
                                          "Chat request duration as served by the gateway", t + ("error_type",),
                                          buckets=DURATION_BUCKETS, registry=r)
        self.ttft = Histogram("gen_ai_server_time_to_first_token_seconds",
                              "Time from the request to its first generated token", t,
                              buckets=DURATION_BUCKETS, registry=r)
        self.operation_duration = Histogram("gen_ai_client_operation_duration_seconds",
                                            "Duration of the gateway's model calls for a request",
                                            t + ("gen_ai_response_model", "error_type"),
                                            buckets=DURATION_BUCKETS, registry=r)
        self.token_usage = Histogram("gen_ai_client_token_usage", "Tokens used per request",
                                     t + ("gen_ai_response_model", "gen_ai_token_type"),
                                     buckets=TOKEN_BUCKETS, registry=r)
        self.requests = Counter("rung_requests", "Chat requests by outcome", t + ("status",), registry=r)
        self.guard_events = Counter("rung_guardrail_events", "Guardrail events",
                                    t + ("guardrail", "action", "reason"), registry=r)
        self.guard_blocks = Counter("rung_guardrail_blocks", "Requests blocked by a guardrail",
                                    t + ("guardrail", "reason"), registry=r)
        self.refusals = Counter("rung_refusals", "Answers that refuse", t + ("source",), registry=r)
        self.hallucinations = Counter("rung_hallucination_flags", "Online labels flagging a hallucination",
                                      ("release", "channel", "adapter"), registry=r)
        self.labels = Counter("rung_online_labels", "Online labels computed", ("label", "value"), registry=r)
        self.cost = Counter("rung_cost", "Cost of answered requests (the models' price units)", t, registry=r)
        self.cache_hits = Counter("rung_cache_hits", "Answers from the response cache", t, registry=r)
        self.rate_limited = Counter("rung_rate_limited", "Requests refused by a rate limit (429)",
                                    ("tenant",), registry=r)
        self.auth_failures = Counter("rung_auth_failures", "Requests refused by authentication",
                                     ("code",), registry=r)
        self.batch_size = Histogram("rung_microbatch_size", "Requests per batched generate call", ("model",),
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_wait = Histogram("rung_microbatch_wait_seconds", "Oldest request's wait in the batch queue",
                                    ("model",), buckets=DURATION_BUCKETS, registry=r)
        self.batch_generate = Histogram("rung_microbatch_generate_seconds", "Batched generate call duration",
                                        ("model",), buckets=DURATION_BUCKETS, registry=r)
        self.in_flight = Gauge("rung_in_flight_requests", "Chat requests being answered", registry=r,
                               multiprocess_mode="livesum")
        self.trace_write = Histogram("rung_trace_write_seconds", "Write-ahead trace commit wait",
                                     buckets=DURATION_BUCKETS, registry=r)

    # ------------------------------------------------------------ labels

    def tenant_label(self, tenant: str) -> str:
        if tenant in self._tenants:
            return tenant
        if len(self._tenants) < self.tenant_label_max:
            self._tenants.add(tenant)
            return tenant
        return "other"

    def target_labels(self, target: Any | None, tenant: str, requested: str = "") -> dict[str, str]:
        if target is None:
            return {"gen_ai_operation_name": "chat", "gen_ai_request_model": requested or "",
                    "release": "", "channel": "", "adapter": "", "tenant": self.tenant_label(tenant)}
        return {"gen_ai_operation_name": "chat", "gen_ai_request_model": target.name,
                "release": target.label_release, "channel": target.channel or "",
                "adapter": target.adapter or "", "tenant": self.tenant_label(tenant)}

    # ------------------------------------------------------------ recording

    def on_batch(self, model: str, size: int, wait_s: float, generate_s: float) -> None:
        self.batch_size.labels(model=model).observe(size)
        self.batch_wait.labels(model=model).observe(wait_s)
        self.batch_generate.labels(model=model).observe(generate_s)

    def label(self, name: str, value: float | None, target_labels: dict[str, str] | None = None) -> None:
        verdict = "not_measured" if value is None else ("flag" if value >= 0.5 else "ok")
        self.labels.labels(label=name, value=verdict).inc()
        if name == "hallucination" and value is not None and value >= 0.5 and target_labels:
            self.hallucinations.labels(release=target_labels.get("release", ""),
                                       channel=target_labels.get("channel", ""),
                                       adapter=target_labels.get("adapter", "")).inc()

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
