"""Online labels: the reference-free scorers run on stored traces, off the request path.

A request sampled for labels (`serving.traces.label_sample_rate`) is stored with labels_status
"pending"; a background thread reads it back, scores it and writes the labels:

    refused            1.0 when the answer refuses (refusal phrases; the embedder when loaded)
    hallucination,     claims not supported by what was retrieved (groundedness scorer)
    claim_support
    citation_correct   cited ids exist, were retrieved and support their sentence
    safety_violation   the safety scorer's rules
    schema_valid       for requests that asked for a schema

A label that cannot be measured is stored as null (never as a pass or a fail). Pending traces
left by a stopped server are labelled when it starts again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from rung.core import Answer, Case, RetrievedChunk, Trace
from rung.ops.gateway.traces import TraceStore

LABEL_SCORERS = ("refusal", "groundedness", "citation", "safety", "schema")


def trace_case_answer(row: dict[str, Any]) -> tuple[Case, Answer]:
    """The stored trace as the (Case, Answer) the scorers read (no expectations)."""
    req = row.get("request") or {}
    case = Case(id=row["id"], messages=list(req.get("messages") or []), metadata=dict(req.get("metadata") or {}),
                schema=req.get("schema_name"))
    chunks = [RetrievedChunk(id=c.get("id", ""), doc_id=c.get("doc_id", ""), text=c.get("text", ""),
                             score=float(c.get("score") or 0.0)) for c in row.get("contexts") or []]
    answer = Answer(text=row.get("output") or "", citations=list(row.get("citations") or []),
                    parsed=req.get("parsed"), trace=Trace(retrieved=chunks),
                    error=None if row.get("status") != "error" else "error")
    return case, answer


def compute_labels(row: dict[str, Any], wanted: list[str], ctx: Any) -> dict[str, float | None]:
    """{label: value or None} for one trace."""
    from rung.evals.scorers.base import build_scorer
    from rung.text.refusal import detect_refusal

    case, answer = trace_case_answer(row)
    labels: dict[str, float | None] = {}
    if "refusal" in wanted:
        labels["refused"] = 1.0 if detect_refusal(answer.text, ctx.embedder_if_loaded()).refused else 0.0
    for name in wanted:
        if name == "refusal":
            continue
        if name == "schema" and not case.schema:
            continue
        if name == "groundedness" and not answer.trace.retrieved:
            labels["hallucination"] = None  # nothing retrieved: nothing to check the claims against
            continue
        try:
            scores = build_scorer(name).score(case, answer, ctx.score_context)
        except Exception:  # noqa: BLE001 - a failing scorer is "not measured"
            labels[name] = None
            continue
        for s in scores:
            labels[s.name] = s.value
    return labels


class LabelContext:
    """What the scorers share: a lazily loaded embedder and the request schemas."""

    def __init__(self, embedder_factory: Callable[[], Any] | None, schemas: dict[str, Any] | None = None) -> None:
        from rung.evals.scorers.base import ScoreContext

        self.score_context = ScoreContext(embedder_factory=embedder_factory, schemas=dict(schemas or {}))

    def embedder_if_loaded(self) -> Any:
        return self.score_context._embedder


class OnlineLabeler:
    """The background worker (one thread) that labels pending traces."""

    def __init__(self, traces: TraceStore, wanted: list[str], ctx: LabelContext,
                 on_label: Callable[[dict[str, Any], dict[str, float | None]], None] | None = None) -> None:
        self.traces = traces
        self.wanted = [w for w in wanted if w in LABEL_SCORERS]
        self.ctx = ctx
        self.on_label = on_label
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.done = 0
        self.failed = 0
        self._pending = 0
        self._lock = threading.Lock()

    def start(self, resume: bool = True) -> None:
        if self._thread is not None:
            return
        if resume:
            try:
                for tid in self.traces.pending_labels(limit=10_000):
                    self.enqueue(tid)
            except Exception:  # noqa: BLE001 - a store hiccup at start leaves them pending
                pass
        self._thread = threading.Thread(target=self._loop, name="rung-labeller", daemon=True)
        self._thread.start()

    def enqueue(self, trace_id: str) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put(trace_id)

    @property
    def backlog(self) -> int:
        """Traces queued or being labelled."""
        return self._pending

    def _loop(self) -> None:
        while True:
            tid = self._queue.get()
            if tid is None:
                return
            try:
                self._label(tid)
            finally:
                with self._lock:
                    self._pending -= 1

    def _label(self, tid: str) -> None:
        try:
            row = self.traces.get(tid)
            if row is None or row.get("labels_status") == "done":
                return
            labels = compute_labels(row, self.wanted, self.ctx)
            self.traces.set_labels(tid, labels, "done")
            self.done += 1
            if self.on_label is not None:
                self.on_label(row, labels)
        except Exception:  # noqa: BLE001 - one bad trace never stops the worker
            self.failed += 1
            try:
                self.traces.set_labels(tid, {}, "error")
            except Exception:  # noqa: BLE001
                pass

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued trace is labelled (tests, shutdown)."""
        import time

        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.02)
        return self._pending == 0
