"""The gateway without HTTP: authenticate, limit, route, guard, answer, trace, measure.

    key (hashed, per tenant) -> rate limit -> target (resolver) -> input guardrails
        -> pipeline (retrieve, prompt, gate, generate: micro-batched or upstream, postprocess)
        -> output guardrails -> trace committed (write-ahead) -> metrics -> the answer
        -> online labels (background, sampled)

`Gateway.chat` is what the HTTP layer (rung.ops.gateway.app) calls; benchmarks call it in
process to measure what HTTP adds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rung.config import RungConfig
from rung.config.serving import ServingConfig
from rung.core import Answer, Case
from rung.errors import ModelError, RungError, StoreError
from rung.ops.gateway.keys import ApiKey, KeyStore
from rung.ops.gateway.metrics import GatewayMetrics
from rung.ops.gateway.protocol import ChatRequest, GatewayError, now_s
from rung.ops.gateway.ratelimit import RateLimiter
from rung.ops.gateway.routing import (
    Resolver,
    RoutingError,
    ServedTarget,
    make_resolver,
    serving_config,
)
from rung.ops.gateway.traces import (
    FEEDBACK_LABELS,
    TraceRecord,
    TraceStore,
    new_trace_id,
    now_iso,
)
from rung.ops.guardrails import GuardEvent

log = logging.getLogger("rung.gateway")
_CHUNK_META = ("version", "effective_date", "title", "jurisdiction", "product", "untrusted", "supersedes")


@dataclass
class ChatOutcome:
    trace_id: str
    target: ServedTarget
    text: str
    finish_reason: str  # stop | length | content_filter
    status: str  # ok | blocked
    tokens_in: int = 0
    tokens_out: int = 0
    citations: list[str] = field(default_factory=list)
    events: list[GuardEvent] = field(default_factory=list)
    created: int = field(default_factory=now_s)
    ttft_s: float | None = None
    cost: float = 0.0
    record: TraceRecord | None = None
    model_seconds: float = 0.0
    response_model: str = ""
    cached: bool = False
    refused: bool = False

    @property
    def completion_id(self) -> str:
        return "chatcmpl-" + self.trace_id

    @property
    def blocked(self) -> GuardEvent | None:
        return next((e for e in self.events if e.blocks), None)

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.tokens_in, "completion_tokens": self.tokens_out,
                "total_tokens": self.tokens_in + self.tokens_out}

    def rung_extra(self) -> dict[str, Any]:
        b = self.blocked
        return {"trace_id": self.trace_id, "release": self.target.release, "channel": self.target.channel,
                "candidate": self.target.candidate, "version": self.target.label_release,
                "adapter": self.target.adapter, "level": self.target.level, "citations": self.citations,
                "blocked": b.reason if b else None,
                "guardrails": [{"guardrail": e.guardrail, "action": e.action, "reason": e.reason}
                               for e in self.events]}


class Gateway:
    """One gateway process: its store tables, keys, limiter, resolver, metrics and workers."""

    def __init__(self, config: RungConfig, *, resolver: Resolver | None = None,
                 engine: Any = None, workers: int = 64) -> None:
        from rung.ops.gateway.db import open_engine

        self.config = config
        self.serving: ServingConfig = serving_config(config)
        self.engine = engine if engine is not None else open_engine(config.store_target())
        self.keys = KeyStore(self.engine)
        self.traces = TraceStore(self.engine)
        tenants = sorted(set(self.serving.tenants) | set(_safe(lambda: self.keys.tenants(), [])))
        self.metrics = GatewayMetrics(self.serving.tenant_label_max, tenants)
        self.resolver: Resolver = resolver or make_resolver(config, self.metrics.on_batch)
        self.limiter = RateLimiter()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rung-gw")
        self.labeler = self._labeler()
        self.ready = False
        self.load_error: str | None = None
        self._random = random.Random()
        self._started = False

    # ------------------------------------------------------------ lifecycle

    def _labeler(self) -> Any:
        from rung.ops.gateway.labels import LabelContext, OnlineLabeler

        t = self.serving.traces
        if t.label_sample_rate <= 0 or not t.labels:
            return None
        cfg = self.config

        def embedder() -> Any:
            from rung.pipeline.retrieval.index import get_embedder

            return get_embedder(cfg.embedder, cfg.root)

        schemas: dict[str, Any] = {}
        return OnlineLabeler(self.traces, list(t.labels), LabelContext(embedder, schemas), self._on_label)

    def _on_label(self, row: dict[str, Any], labels: dict[str, float | None]) -> None:
        tl = {"release": (row.get("request") or {}).get("version") or row.get("release") or "",
              "channel": row.get("channel") or "", "adapter": row.get("adapter") or ""}
        for name, value in labels.items():
            self.metrics.label(name, value, tl)

    def start(self, background: bool = True) -> None:
        """Load the targets (models, indexes, classifiers) and start the labeller. With
        background=True the server answers /healthz at once and /readyz once loaded."""
        if self._started:
            return
        self._started = True
        if self.labeler is not None:
            self.labeler.start()
        if background:
            threading.Thread(target=self._warm, name="rung-warm", daemon=True).start()
        else:
            self._warm()

    def _warm(self) -> None:
        try:
            self.resolver.warm()
            self.ready = True
        except RungError as e:
            self.load_error = str(e)
            log.error("rung serve: cannot load the served candidates: %s", e)
        except Exception as e:
            self.load_error = f"{type(e).__name__}: {e}"
            log.exception("rung serve: loading failed")

    def close(self) -> None:
        if self.labeler is not None:
            self.labeler.stop(timeout=5)
        self.traces.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.resolver.close()

    # ------------------------------------------------------------ requests

    def authenticate(self, authorization: str | None) -> ApiKey:
        if not authorization:
            self.metrics.auth_failures.labels(code="missing_api_key").inc()
            raise GatewayError(401, "missing API key (Authorization: Bearer <key>)", "missing_api_key",
                               "authentication_error", headers={"WWW-Authenticate": "Bearer"})
        scheme, _, token = authorization.partition(" ")
        key = self.keys.verify(token.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            self.metrics.auth_failures.labels(code="invalid_api_key").inc()
            raise GatewayError(401, "invalid or revoked API key", "invalid_api_key", "authentication_error",
                               headers={"WWW-Authenticate": "Bearer"})
        return key

    def check_rate(self, key: ApiKey) -> None:
        rl = self.serving.rate_limit
        tenant_cfg = self.serving.tenants.get(key.tenant)
        per_minute = key.requests_per_minute or (tenant_cfg.requests_per_minute if tenant_cfg else None) \
            or rl.requests_per_minute
        wait = self.limiter.acquire(key.id, per_minute, rl.burst)
        if wait > 0:
            self.metrics.rate_limited.labels(tenant=self.metrics.tenant_label(key.tenant)).inc()
            raise GatewayError(429, f"rate limit of {per_minute:g} requests per minute exceeded for this key",
                               "rate_limit_exceeded", "rate_limit_error",
                               headers={"Retry-After": RateLimiter.retry_after(wait)})

    def resolve(self, key: ApiKey, model: str | None, user: str | None = None,
                request_id: str | None = None) -> ServedTarget:
        try:
            return self.resolver.resolve(key.tenant, model, user=user or None, request_id=request_id)
        except RoutingError as e:
            raise GatewayError(e.status, str(e), e.code, param="model") from None

    async def chat(self, key: ApiKey, req: ChatRequest) -> ChatOutcome:
        """Answer one chat request; the trace is committed before this returns."""
        t0 = time.perf_counter()
        if not self.ready:
            raise GatewayError(503, "the gateway is still loading its models (see /readyz)", "not_ready",
                               "server_error", headers={"Retry-After": "5"})
        trace_id = new_trace_id()
        loop = asyncio.get_running_loop()
        labels = self.metrics.target_labels(None, key.tenant)  # (an unresolved name is no label: unbounded)
        self.metrics.in_flight.inc()
        try:
            fut = loop.run_in_executor(self.executor, self._route_and_answer, key, req, trace_id, t0)
            try:
                outcome = await asyncio.wait_for(fut, self.serving.limits.timeout_s)
            except TimeoutError:
                self._count(labels, "timeout", t0)
                raise GatewayError(504, f"no answer within {self.serving.limits.timeout_s:g} s", "timeout",
                                   "server_error") from None
            except GatewayError as e:
                self._count(labels, "error", t0, e.code)
                raise
            target = outcome.target
            labels = self.metrics.target_labels(target, key.tenant)
            t_write = time.perf_counter()
            try:
                assert outcome.record is not None
                await asyncio.wrap_future(self.traces.submit(outcome.record))
            except StoreError as e:
                log.error("trace %s not stored: %s", trace_id, e)
                self._count(labels, "error", t0, "trace_store")
                raise GatewayError(503, "the trace store is unavailable, so the answer was not sent",
                                   "trace_store_unavailable", "server_error") from None
            self.metrics.trace_write.observe(time.perf_counter() - t_write)
        finally:
            self.metrics.in_flight.dec()
        if outcome.record is not None and outcome.record.labels_status == "pending" and self.labeler is not None:
            self.labeler.enqueue(trace_id)
        self._measure(outcome, labels, t0)
        if target.shadow is not None:  # a rollout in shadow mode: a copy, answered after this one
            self.executor.submit(self._shadow, key, req, target.shadow, trace_id)
        return outcome

    def _route_and_answer(self, key: ApiKey, req: ChatRequest, trace_id: str, t0: float) -> ChatOutcome:
        """On a worker thread: the target (a rollout's arm is chosen per user, else per request),
        then the answer."""
        user = req.user or str((req.metadata or {}).get("user") or "")
        target = self.resolve(key, req.model, user, trace_id)
        return self._answer(key, req, target, trace_id, t0)

    def _shadow(self, key: ApiKey, req: ChatRequest, target: ServedTarget, live_id: str) -> None:
        """Answer a copy of a request with the shadow release and store its trace (arm "shadow",
        request.shadow_of = the live trace); the user never sees it."""
        trace_id = new_trace_id()
        try:
            outcome = self._answer(key, req, target, trace_id, time.perf_counter())
            assert outcome.record is not None
            outcome.record.arm = "shadow"
            outcome.record.request["shadow_of"] = live_id
            self.traces.write(outcome.record)
            if outcome.record.labels_status == "pending" and self.labeler is not None:
                self.labeler.enqueue(trace_id)
        except Exception as e:  # noqa: BLE001 - a shadow failure never reaches the user
            log.warning("shadow answer for %s failed: %s", live_id, e)

    def _count(self, labels: dict[str, str], status: str, t0: float, error_type: str = "") -> None:
        self.metrics.requests.labels(**labels, status=status).inc()
        self.metrics.request_duration.labels(**labels, error_type=error_type or status).observe(
            time.perf_counter() - t0)

    def _measure(self, o: ChatOutcome, labels: dict[str, str], t0: float) -> None:
        m = self.metrics
        m.requests.labels(**labels, status=o.status).inc()
        m.request_duration.labels(**labels, error_type="").observe(time.perf_counter() - t0)
        if o.ttft_s is not None:
            m.ttft.labels(**labels).observe(o.ttft_s)
        if o.model_seconds:
            m.operation_duration.labels(**labels, gen_ai_response_model=o.response_model,
                                        error_type="").observe(o.model_seconds)
            m.token_usage.labels(**labels, gen_ai_response_model=o.response_model,
                                 gen_ai_token_type="input").observe(o.tokens_in)
            m.token_usage.labels(**labels, gen_ai_response_model=o.response_model,
                                 gen_ai_token_type="output").observe(o.tokens_out)
        if o.cost:
            m.cost.labels(**labels).inc(o.cost)
        if o.cached:
            m.cache_hits.labels(**labels).inc()
        for e in o.events:
            m.guard_events.labels(**labels, guardrail=e.guardrail, action=e.action, reason=e.reason).inc()
        b = o.blocked
        if b is not None:
            m.guard_blocks.labels(**labels, guardrail=b.guardrail, reason=b.reason).inc()
            m.refusals.labels(**labels, source="guardrail").inc()
        elif o.refused:
            m.refusals.labels(**labels, source="model").inc()

    # ------------------------------------------------------------ the answer (worker thread)

    def _answer(self, key: ApiKey, req: ChatRequest, target: ServedTarget, trace_id: str,
                t0: float) -> ChatOutcome:
        timings: dict[str, float] = {"queued": (time.perf_counter() - t0) * 1000}
        guards = target.guardrails
        schema_name, schema = req.schema()
        t = time.perf_counter()
        ig = guards.check_input(req.chat())
        timings["input_guardrails"] = (time.perf_counter() - t) * 1000
        metadata = dict(req.metadata or {})
        events = list(ig.events)
        answer: Answer | None = None
        obs = None
        case = Case(id=trace_id, messages=ig.messages, metadata=metadata, tenant=key.tenant)
        served_schema: str | None = None
        if ig.blocked is None:
            pipeline = target.pipeline
            if schema is not None:
                if schema_name and schema_name in pipeline.components.schemas \
                        and pipeline.candidate.output_schema == "case":
                    served_schema = schema_name  # a schema of the project, by name
                else:
                    pipeline, served_schema = target.schema_pipeline(schema)
            elif pipeline.candidate.output_schema and pipeline.candidate.output_schema != "case":
                served_schema = pipeline.candidate.output_schema
            case.schema = served_schema
            model = pipeline.model
            observe = getattr(model, "begin", None)
            if callable(observe):
                observe()
            try:
                answer = pipeline.answer_batch([case])[0]
            except ModelError as e:
                if callable(observe):
                    model.end()
                log.error("trace %s: the model failed: %s", trace_id, e)
                self._store_error(key, req, target, trace_id, ig, timings, t0, str(e))
                raise GatewayError(502, f"the model failed to answer (trace {trace_id})", "model_error",
                                   "server_error") from None
            except Exception as e:
                if callable(observe):
                    model.end()
                log.exception("trace %s: the pipeline failed", trace_id)
                self._store_error(key, req, target, trace_id, ig, timings, t0, f"{type(e).__name__}: {e}")
                raise GatewayError(500, f"internal error (trace {trace_id})", "internal_error",
                                   "server_error") from None
            obs = model.end() if callable(observe) else None
            for k, v in answer.timings_ms.items():
                if k != "total":
                    timings[k] = v
            if answer.error and not answer.text.strip():
                log.error("trace %s: the model failed: %s", trace_id, answer.error)
                self._store_error(key, req, target, trace_id, ig, timings, t0, answer.error, answer)
                raise GatewayError(502, f"the model failed to answer (trace {trace_id})", "model_error",
                                   "server_error")
            t = time.perf_counter()
            og = guards.check_output(case, answer, schema_expected=served_schema is not None)
            timings["output_guardrails"] = (time.perf_counter() - t) * 1000
            events += og.events
            text, citations = og.text, og.citations
        else:
            text, citations = guards.refusal_message, []
        blocked = next((e for e in events if e.blocks), None)
        finish = "stop"
        if blocked is not None:
            text, citations, finish = guards.refusal_message, [], "content_filter"
        elif answer is not None and target.pipeline.candidate.answer.mode != "extractive" \
                and any(e.get("event") == "truncated" for e in answer.trace.events):
            finish = "length"  # (an extractive answer is quoted: the model's cut reply only decided refusal)
        refused = False
        if blocked is None and answer is not None:
            from rung.text.refusal import detect_refusal

            refused = detect_refusal(text).refused
        tokens_in = answer.tokens_in if answer else 0
        tokens_out = answer.tokens_out if answer else 0
        price = target.price
        cost = tokens_in / 1000 * price.input_per_1k + tokens_out / 1000 * price.output_per_1k
        ttft = None
        if obs is not None and (first := obs.first_token_at()) is not None:
            ttft = first - t0
        elif blocked is not None:
            ttft = time.perf_counter() - t0  # the refusal is ready now
        timings["total"] = (time.perf_counter() - t0) * 1000
        if ttft is not None:
            timings["ttft"] = ttft * 1000
        status = "blocked" if blocked is not None else "ok"
        outcome = ChatOutcome(trace_id, target, text, finish, status, tokens_in, tokens_out, citations, events,
                              ttft_s=ttft, cost=cost, model_seconds=obs.seconds if obs else 0.0,
                              response_model=obs.response_model if obs else "", cached=bool(obs and obs.cached),
                              refused=refused)
        outcome.record = self._record(key, req, target, trace_id, ig, timings, status, finish, text,
                                      answer, citations, events, tokens_in, tokens_out, cost, served_schema, obs)
        return outcome

    def _record(self, key: ApiKey, req: ChatRequest, target: ServedTarget, trace_id: str, ig: Any,
                timings: dict[str, float], status: str, finish: str, text: str, answer: Answer | None,
                citations: list[str], events: list[GuardEvent], tokens_in: int, tokens_out: int,
                cost: float, schema_name: str | None, obs: Any, error: str | None = None) -> TraceRecord:
        guards = target.guardrails
        pii = guards.config.pii
        output = text
        if pii is not None:
            from rung.ops.guardrails.pii import redact

            output = redact(text, pii.kinds).text
        request: dict[str, Any] = {"messages": ig.stored_messages, "metadata": dict(req.metadata or {}),
                                   "stream": req.stream, "version": target.label_release}
        if req.response_format:
            request["response_format"] = req.response_format
        if schema_name:
            request["schema_name"] = schema_name
            if answer is not None and answer.parsed is not None:
                request["parsed"] = answer.parsed
        if req.user:
            request["user"] = req.user
        if answer is not None:
            request["pipeline_events"] = answer.trace.events
        if obs is not None:
            request.update(obs.extra())
        if error:
            request["error"] = error[:500]
        contexts = []
        if answer is not None:
            keep = self.serving.traces.store_contexts
            contexts = [{"id": c.id, "doc_id": c.doc_id, "score": round(float(c.score), 4),
                         "metadata": {k: v for k, v in (c.metadata or {}).items() if k in _CHUNK_META},
                         **({"text": c.text} if keep else {})} for c in answer.trace.retrieved]
        sample = status == "ok" and self.labeler is not None \
            and self._random.random() < self.serving.traces.label_sample_rate
        return TraceRecord(
            id=trace_id, tenant=key.tenant, key_id=key.id, model=target.name, candidate=target.candidate,
            release=target.release, channel=target.channel, arm=target.arm, adapter=target.adapter,
            model_id=(answer.model_id if answer else "") or "", status=status, finish_reason=finish,
            request=request, output=output, contexts=contexts, citations=citations,
            guardrails=[e.to_dict() for e in events], timings={k: round(v, 3) for k, v in timings.items()},
            tokens_in=tokens_in, tokens_out=tokens_out, cost=cost, labels_status="pending" if sample else "none",
            created_at=now_iso())

    def _store_error(self, key: ApiKey, req: ChatRequest, target: ServedTarget, trace_id: str, ig: Any,
                     timings: dict[str, float], t0: float, error: str, answer: Answer | None = None) -> None:
        timings["total"] = (time.perf_counter() - t0) * 1000
        rec = self._record(key, req, target, trace_id, ig, timings, "error", "error", "", answer, [],
                           list(ig.events), 0, 0, 0.0, None, None, error)
        try:
            self.traces.write(rec, timeout=10)
        except (StoreError, TimeoutError):
            log.error("trace %s (an error) not stored", trace_id)

    # ------------------------------------------------------------ feedback and traces

    def feedback(self, key: ApiKey, body: dict[str, Any]) -> dict[str, Any]:
        trace_id = body.get("trace_id")
        labels = body.get("labels")
        if not isinstance(trace_id, str) or not trace_id:
            raise GatewayError(400, "trace_id: a trace id from a response's rung.trace_id", "invalid_request",
                               param="trace_id")
        if not isinstance(labels, dict) or not labels:
            raise GatewayError(400, f"labels: an object such as {{\"success\": true}}; known labels: "
                               f"{', '.join(FEEDBACK_LABELS)}", "invalid_request", param="labels")
        for k, v in labels.items():
            if not isinstance(k, str) or not (k in FEEDBACK_LABELS or (k.isidentifier() and len(k) <= 40)):
                raise GatewayError(400, f"labels: {k!r} is not a label name", "invalid_request", param="labels")
            if not isinstance(v, (bool, int, float, str)) or (isinstance(v, str) and len(v) > 500):
                raise GatewayError(400, f"labels.{k}: a boolean, number or short string", "invalid_request",
                                   param="labels")
        comment = body.get("comment")
        if comment is not None and (not isinstance(comment, str) or len(comment) > 2000):
            raise GatewayError(400, "comment: a string of at most 2000 characters", "invalid_request",
                               param="comment")
        self._own_trace(key, trace_id)
        entry = {"labels": labels, "key_id": key.id, "at": now_iso()}
        if comment:
            from rung.ops.guardrails.pii import redact

            entry["comment"] = redact(comment).text
        feedback = self.traces.add_feedback(trace_id, entry)
        return {"trace_id": trace_id, "feedback": len(feedback)}

    def _own_trace(self, key: ApiKey, trace_id: str) -> None:
        tenant = self.traces.tenant_of(trace_id)
        if tenant is None:
            raise GatewayError(404, f"no trace {trace_id!r}", "trace_not_found", param="trace_id")
        if tenant != key.tenant:
            raise GatewayError(403, "this trace belongs to another tenant", "trace_not_allowed", param="trace_id")

    def get_trace(self, key: ApiKey, trace_id: str) -> dict[str, Any]:
        self._own_trace(key, trace_id)
        row = self.traces.get(trace_id) or {}
        row.pop("key_id", None)
        return row


def _safe(fn: Any, default: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return default
