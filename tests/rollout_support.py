"""TEST HELPERS for the rollout / monitor / refresh tests (no tests here): releases with eval
runs stored directly in a ReleaseStore (no pipeline), and synthetic trace records."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from rung.core import Answer, Case, Score
from rung.evals.types import CaseResult, RunInfo
from rung.ops.records import TraceRecord


def make_release(store, name: str, *, refusal_correct: list[int] | None = None,
                 suite_hash: str = "s" * 64):  # noqa: ANN001, ANN201
    """A release of candidate `name` whose evidence is one finished run on `suite_hash`, with
    per-case `refusal_correct` scores (default: 20 cases, all correct)."""
    from rung.ops.releases import Release

    values = refusal_correct if refusal_correct is not None else [1] * 20
    info = RunInfo(id=f"run-{name}", candidate=name, candidate_hash=f"h-{name}",
                   candidate_config={}, suite="eval", suite_hash=suite_hash)
    store.runs.create_run(info)
    results = [CaseResult(case=Case(id=f"c{i}", input=f"q{i}"),
                          answer=Answer(text="a", timings_ms={"total": 100.0}),
                          scores=[Score("refusal_correct", float(v), True)])
               for i, v in enumerate(values)]
    store.runs.add_results(info.id, results)
    store.runs.finish_run(info.id)
    rid = hashlib.sha256(name.encode()).hexdigest()
    rel = Release(id=rid, candidate=name, level=0, created_at="2026-01-01T00:00:00+00:00",
                  created_by="test", note="", git_commit=None,
                  manifest={"content": {"candidate": name},
                            "evidence": {"runs": [{"id": info.id, "suite": "eval",
                                                   "suite_hash": suite_hash}]},
                            "provenance": {"candidate_hash": f"h-{name}"}})
    store.add_release(rel)
    return rel


def open_store(tmp_path: Path):  # noqa: ANN201
    from rung.ops.releases import ReleaseStore

    return ReleaseStore(tmp_path / "rung.db", tmp_path / "artifacts")


def traffic(n: int, *, release: str, arm: str, ts0: float, seed: int = 0, channel: str = "production",
            refuse_ids: set[int] | None = None, latency: float = 200.0, prefix: str = "q",
            id_prefix: str | None = None, dt: float = 1e-4) -> list[TraceRecord]:
    """n requests: refused when their index is in refuse_ids; lognormal latencies."""
    rng = random.Random(seed)
    refuse_ids = refuse_ids or set()
    out = []
    for i in range(n):
        refused = i in refuse_ids
        out.append(TraceRecord(
            id=f"{id_prefix or arm}-{prefix}{i}", request_id=f"{prefix}{i}", ts=ts0 + i * dt, release=release,
            channel=channel, arm=arm, tenant="acme", user=f"u{i % 17}",
            latency_ms=latency * rng.lognormvariate(0, 0.2), cost=0.0004,
            labels={"refused": refused, "hallucination": False, "safety_violation": False}))
    return out
