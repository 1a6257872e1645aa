"""Traces of live requests, in the store's `gateway_traces` table.

Write-ahead: the gateway sends an answer only after its trace is committed (one writer thread
groups the traces of concurrent requests into one transaction, so a burst costs one commit, not
one per request). SQLite runs in WAL mode with synchronous=NORMAL: a committed transaction
survives the process being killed (kill -9); only a power loss or an OS crash may drop the last
commits. So what a kill can lose is exactly the requests whose answers were never sent: those
still being answered, whose client sees the connection drop.

Stored per request: tenant, key id, the served target (candidate, release, channel, arm,
adapter, model), status (ok / blocked / error), finish reason, the request (messages with PII
redacted when the pii guardrail is on, metadata, response format), the output (redacted the same
way), the retrieved chunks, citations, guardrail events, timings by step, tokens and cost; then
online labels (the background labeller) and human feedback (POST /v1/feedback).

`export_jsonl` writes what `rung score` reads (rung.evals.score_file): one line per trace with
id, messages, output, contexts (the retrieved chunks), citations, latency, tokens, model, tags,
and metadata (the request's own, plus `trace`: tenant, release, channel, guardrail events,
timings, cost, online labels, feedback).
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
    update,
)

from rung.errors import StoreError
from rung.ops.gateway.db import metadata

traces_table = Table(
    "gateway_traces", metadata,
    Column("id", String(48), primary_key=True),
    Column("created_at", String(40), nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("key_id", String(16), nullable=False, default=""),
    Column("model", String(200), nullable=False, default=""),  # what the request's `model` resolved to
    Column("candidate", String(200), nullable=False, default=""),
    Column("release", String(200)),
    Column("channel", String(200)),
    Column("arm", String(40)),
    Column("adapter", String(200)),
    Column("model_id", Text, nullable=False, default=""),
    Column("status", String(20), nullable=False),  # ok | blocked | error
    Column("finish_reason", String(40), nullable=False, default="stop"),
    Column("request", JSON, nullable=False),
    Column("output", Text, nullable=False, default=""),
    Column("contexts", JSON, nullable=False),
    Column("citations", JSON, nullable=False),
    Column("guardrails", JSON, nullable=False),
    Column("timings", JSON, nullable=False),
    Column("tokens_in", Integer, nullable=False, default=0),
    Column("tokens_out", Integer, nullable=False, default=0),
    Column("cost", Float, nullable=False, default=0.0),
    Column("labels", JSON, nullable=False),
    Column("labels_status", String(20), nullable=False, default="none"),  # none | pending | done | error
    Column("feedback", JSON, nullable=False),
    Index("ix_gateway_traces_tenant_time", "tenant", "created_at"),
    Index("ix_gateway_traces_labels_status", "labels_status"),
)

FEEDBACK_LABELS = ("success", "refusal_correct", "grounded", "safety_violation", "helpful")


def new_trace_id() -> str:
    """Time-sortable: "tr-YYYYMMDDHHMMSS-" + 12 random hex digits."""
    return "tr-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S-") + secrets.token_hex(6)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class TraceRecord:
    id: str
    tenant: str
    request: dict[str, Any]
    status: str = "ok"
    key_id: str = ""
    model: str = ""
    candidate: str = ""
    release: str | None = None
    channel: str | None = None
    arm: str | None = None
    adapter: str | None = None
    model_id: str = ""
    finish_reason: str = "stop"
    output: str = ""
    contexts: list[dict[str, Any]] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)
    guardrails: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    labels: dict[str, Any] = field(default_factory=dict)
    labels_status: str = "none"
    feedback: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = ""

    def row(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["created_at"] = d["created_at"] or now_iso()
        return d


class TraceStore:
    """Write (grouped, write-ahead), read, label and export traces."""

    def __init__(self, engine: Any, max_group: int = 256) -> None:
        self.engine = engine
        self.max_group = max_group
        self._queue: queue.Queue[tuple[dict[str, Any], Future] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.commits = 0  # transactions written (for tests and benchmarks)

    # ------------------------------------------------------------ writing

    def submit(self, record: TraceRecord) -> Future:
        """Queue a trace; the future completes once it is committed (or fails with StoreError)."""
        self._ensure_writer()
        fut: Future = Future()
        self._queue.put((record.row(), fut))
        return fut

    def write(self, record: TraceRecord, timeout: float = 30.0) -> None:
        """Store a trace and wait until it is committed."""
        self.submit(record).result(timeout)

    def _ensure_writer(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._writer, name="rung-trace-writer",
                                                    daemon=True)
                    self._thread.start()

    def _writer(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            while len(group) < self.max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(nxt)
            try:
                with self.engine.begin() as conn:
                    conn.execute(traces_table.insert(), [row for row, _ in group])
                self.commits += 1
                for _, fut in group:
                    fut.set_result(None)
            except Exception as e:  # noqa: BLE001 - every waiting request learns it failed
                err = StoreError(f"cannot store traces: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
                for _, fut in group:
                    if not fut.done():
                        fut.set_exception(err)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    # ------------------------------------------------------------ labels and feedback

    def set_labels(self, trace_id: str, labels: dict[str, Any], status: str = "done") -> None:
        with self.engine.begin() as conn:
            conn.execute(update(traces_table).where(traces_table.c.id == trace_id)
                         .values(labels=labels, labels_status=status))

    def pending_labels(self, limit: int = 100) -> list[str]:
        """Ids of traces sampled for labels but not labelled yet (say, after a restart)."""
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(
                select(traces_table.c.id).where(traces_table.c.labels_status == "pending")
                .order_by(traces_table.c.created_at).limit(limit))]

    def add_feedback(self, trace_id: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """Append one human feedback entry; returns all of the trace's feedback."""
        with self.engine.begin() as conn:
            row = conn.execute(select(traces_table.c.feedback).where(traces_table.c.id == trace_id)
                               .with_for_update()).first()
            if row is None:
                raise StoreError(f"no trace {trace_id!r}")
            feedback = list(row[0] or []) + [entry]
            conn.execute(update(traces_table).where(traces_table.c.id == trace_id).values(feedback=feedback))
        return feedback

    # ------------------------------------------------------------ reading

    def get(self, trace_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(traces_table).where(traces_table.c.id == trace_id)).mappings().first()
        return dict(row) if row else None

    def tenant_of(self, trace_id: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(traces_table.c.tenant).where(traces_table.c.id == trace_id)).first()
        return row[0] if row else None

    def list(self, tenant: str | None = None, limit: int | None = 50, since: str | None = None,
             status: str | None = None, candidate: str | None = None) -> list[dict[str, Any]]:
        """The most recent first."""
        q = select(traces_table).order_by(traces_table.c.created_at.desc(), traces_table.c.id.desc())
        if tenant is not None:
            q = q.where(traces_table.c.tenant == tenant)
        if since is not None:
            q = q.where(traces_table.c.created_at >= since)
        if status is not None:
            q = q.where(traces_table.c.status == status)
        if candidate is not None:
            q = q.where(traces_table.c.candidate == candidate)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def count(self) -> int:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(traces_table)).scalar_one())

    def ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(traces_table.c.id))}

    def iter_all(self, tenant: str | None = None, since: str | None = None,
                 batch: int = 500) -> Iterator[dict[str, Any]]:
        """Every trace, oldest first, read in pages."""
        last = ("", "")
        while True:
            q = (select(traces_table).where((traces_table.c.created_at > last[0])
                                            | ((traces_table.c.created_at == last[0]) & (traces_table.c.id > last[1])))
                 .order_by(traces_table.c.created_at, traces_table.c.id).limit(batch))
            if tenant is not None:
                q = q.where(traces_table.c.tenant == tenant)
            if since is not None:
                q = q.where(traces_table.c.created_at >= since)
            with self.engine.connect() as conn:
                rows = [dict(r) for r in conn.execute(q).mappings()]
            yield from rows
            if len(rows) < batch:
                return
            last = (rows[-1]["created_at"], rows[-1]["id"])

    def export_jsonl(self, path: str | Path, tenant: str | None = None, since: str | None = None) -> int:
        """Write traces in the `rung score` format; returns how many."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with out.open("w", encoding="utf-8") as f:
            for row in self.iter_all(tenant, since):
                f.write(json.dumps(score_line(row), ensure_ascii=False, default=str) + "\n")
                n += 1
        return n


_META_KEYS = ("created_at", "tenant", "model", "candidate", "release", "channel", "arm", "adapter",
              "model_id", "status", "finish_reason", "guardrails", "timings", "cost", "feedback", "labels",
              "labels_status")


def score_line(row: dict[str, Any]) -> dict[str, Any]:
    """One trace as a `rung score` input line (rung.evals.score_file): id, messages, output,
    contexts (the retrieved chunks: id, doc_id, text, score, metadata), citations, latency_ms,
    tokens, model, tags (tenant, candidate, a guardrail block) and metadata (the request's own
    metadata, plus the trace's tenant, release, channel, guardrail events, timings, cost, online
    labels and human feedback)."""
    request = row.get("request") or {}
    meta: dict[str, Any] = dict(request.get("metadata") or {})
    meta["trace"] = {k: row.get(k) for k in _META_KEYS}
    if request.get("response_format"):
        meta["trace"]["response_format"] = request["response_format"]
    tags = [f"tenant:{row.get('tenant')}", f"candidate:{row.get('candidate')}"]
    blocked = [g.get("reason") for g in row.get("guardrails") or [] if g.get("action") == "block"]
    if blocked:
        tags.append(f"blocked:{blocked[0]}")
    contexts = [{"id": c.get("id", ""), "doc_id": c.get("doc_id", ""), "text": c.get("text", ""),
                 "score": c.get("score") or 0.0, "metadata": c.get("metadata") or {}}
                for c in row.get("contexts") or []]
    line: dict[str, Any] = {"id": row["id"], "messages": request.get("messages") or [],
                            "output": row.get("output") or "", "contexts": contexts,
                            "citations": list(row.get("citations") or []),
                            "latency_ms": (row.get("timings") or {}).get("total"),
                            "tokens_in": row.get("tokens_in") or 0, "tokens_out": row.get("tokens_out") or 0,
                            "model": row.get("model_id") or row.get("model") or "", "tags": tags, "metadata": meta}
    if line["latency_ms"] is None:
        del line["latency_ms"]
    return line
