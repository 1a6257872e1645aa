"""Where the ops layer reads live traffic from: the gateway's trace rows (rung.ops.gateway.traces,
in the project's store) mapped to `TraceRecord`s, or a JSONL file of records (tests, exports,
traces from another system).

Mapping of a gateway row:
- request_id: `request.shadow_of` for a shadow answer (the live trace's id), else the trace id;
- arm: the row's arm (a request served outside any rollout is "stable");
- latency: timings.total; error: status "error" (a guardrail block is an answer, not an error);
- labels: the background labeller's online labels; feedback: the human entries merged in order
  (a later label wins), with `grounded` -> hallucination and `refusal_correct` + the online
  `refused` label -> should_refuse (so over- and under-refusal can be counted);
- retrieved / documents: the contexts' document ids and their `version` metadata.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.ops.records import STABLE, TraceRecord, normalise_labels

if TYPE_CHECKING:
    from rung.config import RungConfig


def _ts(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if not value:
        return 0.0
    d = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def _feedback(entries: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    if isinstance(entries, dict):
        entries = [entries]
    for e in entries or []:
        if not isinstance(e, dict):
            continue
        labels = e.get("labels") if isinstance(e.get("labels"), dict) else e
        merged.update({k: v for k, v in labels.items() if k not in ("at", "who", "trace_id", "note")})
    return merged


def record_from_row(row: dict[str, Any]) -> TraceRecord:
    """One gateway trace row -> TraceRecord (see the module doc)."""
    request = row.get("request") or {}
    messages = request.get("messages") or []
    question = next((m.get("content", "") for m in reversed(messages)
                     if isinstance(m, dict) and m.get("role") == "user"), "")
    timings = row.get("timings") or {}
    labels = dict(row.get("labels") or {})
    online = normalise_labels(labels)
    fb = _feedback(row.get("feedback"))
    if "grounded" in fb and "hallucination" not in fb:
        g = normalise_labels({"g": fb["grounded"]}).get("g")
        fb["hallucination"] = None if g is None else 1.0 - g
    if "refusal_correct" in fb and "should_refuse" not in fb:
        rc = normalise_labels({"x": fb["refusal_correct"]}).get("x")
        refused = normalise_labels({"x": fb.get("refused", online.get("refused"))}).get("x")
        if rc is not None and refused is not None:
            fb["should_refuse"] = refused if rc >= 0.5 else 1.0 - refused
    contexts = row.get("contexts") or []
    docs: dict[str, str] = {}
    retrieved: list[str] = []
    for c in contexts:
        if not isinstance(c, dict):
            continue
        doc = c.get("doc_id") or str(c.get("id", "")).split("#", 1)[0]
        if doc and doc not in retrieved:
            retrieved.append(doc)
        version = (c.get("metadata") or {}).get("version")
        if doc and version is not None:
            docs[doc] = str(version)
    meta = dict(request.get("metadata") or {})
    return TraceRecord(
        id=str(row["id"]),
        request_id=str(request.get("shadow_of") or row["id"]),
        ts=_ts(row.get("created_at")),
        release=row.get("release") or "",
        channel=row.get("channel") or "",
        arm=row.get("arm") or STABLE,
        tenant=row.get("tenant"),
        user=request.get("user") or meta.get("user"),
        latency_ms=timings.get("total"),
        ttft_ms=timings.get("ttft", timings.get("ttft_ms")),
        tokens_in=int(row.get("tokens_in") or 0),
        tokens_out=int(row.get("tokens_out") or 0),
        cost=row.get("cost"),
        error=row.get("status") == "error",
        labels=labels,
        feedback=fb,
        guardrails=list(row.get("guardrails") or []),
        retrieved=retrieved,
        citations=[str(c) for c in row.get("citations") or []],
        documents=docs,
        input=question,
        messages=[m for m in messages if isinstance(m, dict)],
        output=row.get("output") or "",
        metadata=meta,
    )


def read_jsonl(path: str | Path) -> list[TraceRecord]:
    """TraceRecords from a JSONL file: either records (`TraceRecord.to_dict`) or gateway rows."""
    from rung.errors import DataError

    out = []
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"{p}: cannot read traces ({e.strerror or e})") from None
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            out.append(TraceRecord.from_dict(d) if "request_id" in d else record_from_row(d))
        except (ValueError, TypeError, KeyError) as e:
            raise DataError(f"{p}:{i}: not a trace record ({e})") from None
    return out


def write_jsonl(records: Iterable[TraceRecord], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False, default=str) + "\n")
    return p


def load_records(config: RungConfig, *, since: float | None = None, file: str | Path | None = None,
                 channel: str | None = None) -> list[TraceRecord]:
    """The project's live traces since a unix time (the gateway's store), or those of `file`;
    oldest first; only `channel` (and its tenant channels) when given."""
    if file is not None:
        records = read_jsonl(file)
    else:
        from rung.ops.gateway.db import open_engine
        from rung.ops.gateway.traces import TraceStore

        engine = open_engine(config.store_target())
        try:
            since_iso = (datetime.fromtimestamp(since, timezone.utc).isoformat(timespec="milliseconds")
                         if since is not None else None)
            records = [record_from_row(r) for r in TraceStore(engine).iter_all(since=since_iso)]
        finally:
            engine.dispose()
    if since is not None:
        records = [r for r in records if r.ts >= since]
    if channel:
        records = [r for r in records if r.channel == channel or r.channel.split("@", 1)[0] == channel]
    return sorted(records, key=lambda r: r.ts)
