"""Latency as served, apart from the batched evaluation's throughput.

An evaluation answers its cases in batches (`batch_size`, 8 by default): every case of a batch
waits for the whole batch, so the latency it records is the batch's wall time. That is a
throughput figure, not what one user waits for. Two numbers are kept apart:

- **latency as served**: the latency probe answers a sample of the run's cases again, at the
  serving concurrency (`constraints.latency_probe.concurrency`: requests that arrive together
  and are answered together; 1 by default, one request at a time), with the model *uncached*:
  a replayed answer's latency is not a measurement. Each request's latency is the wall time of
  the `Pipeline.answer_batch` call it was in (retrieve, gate, prompt, generate, postprocess).
  One untimed request first warms the pipeline (model weights, embedder, refusal gate). The
  record is stored with the run (`RunInfo.metadata["latency_probe"]`), so a reused run keeps it.
- **throughput (batched)**: what the evaluation measured: requests answered per second of
  `answer_batch` time, at its batch size (`RunInfo.metadata["throughput"]`, written by the
  runner). Answers replayed from the response cache are counted apart: throughput over a run
  with replayed answers is not a measurement either.

The sample is spread over the cases' prompt lengths (evenly spaced in length order, shortest and
longest included), so a suite of long messages is probed with long messages.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rung.core import Case
    from rung.pipeline.pipeline import Pipeline

PROBE_KEY = "latency_probe"
THROUGHPUT_KEY = "throughput"


def request_chars(case: Case) -> int:
    """How long a request is, in characters of its conversation (the prompt-length proxy used
    before retrieval and templates are known)."""
    return sum(len(str(m.get("content", ""))) for m in case.chat())


def order_by_length(cases: Sequence[Case]) -> list[int]:
    """Positions of `cases`, shortest request first (ties keep their order): batches cut from this
    order hold requests of similar length, so one long prompt does not pad seven short ones."""
    return sorted(range(len(cases)), key=lambda i: (request_chars(cases[i]), i))


def sample_for_probe(cases: Sequence[Case], n: int) -> list[Case]:
    """`n` cases spread evenly over the length order (shortest and longest included), in that
    order; all of them when there are no more than `n`. Deterministic."""
    if n <= 0 or not cases:
        return []
    order = order_by_length(cases)
    if n >= len(order):
        return [cases[i] for i in order]
    if n == 1:
        return [cases[order[len(order) // 2]]]
    picks = sorted({round(k * (len(order) - 1) / (n - 1)) for k in range(n)})
    return [cases[order[p]] for p in picks]


@dataclass
class LatencyProbe:
    """Latency as served: one measured latency per sampled case."""

    concurrency: int
    requested: int  # constraints.latency_probe.cases when it was measured
    case_ids: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    model_id: str = ""
    measured_at: str = ""
    wall_s: float = 0.0
    errors: int = 0  # probe answers with an error (their latency still counts)
    same_text: int | None = None  # probe answers equal to the run's answer for that case

    @property
    def n(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.percentile(np.asarray(self.latencies_ms, dtype=float), q))

    @property
    def p50_ms(self) -> float | None:
        return self.percentile(50)

    @property
    def p95_ms(self) -> float | None:
        return self.percentile(95)

    @property
    def mean_ms(self) -> float | None:
        return float(np.mean(self.latencies_ms)) if self.latencies_ms else None

    def matches(self, cases: int, concurrency: int) -> bool:
        """Measured with these settings (a changed setting calls for a new probe)."""
        return self.requested == cases and self.concurrency == concurrency

    def describe(self) -> str:
        one = "one request at a time" if self.concurrency == 1 else \
            f"{self.concurrency} requests at a time"
        return f"as served: {self.n} sampled cases, {one}, uncached"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(p50_ms=self.p50_ms, p95_ms=self.p95_ms, mean_ms=self.mean_ms, n=self.n)
        return d

    @staticmethod
    def from_dict(d: Any) -> LatencyProbe | None:
        """The stored record, or None when it is missing or not a probe record."""
        if not isinstance(d, dict) or not isinstance(d.get("latencies_ms"), list):
            return None
        try:
            return LatencyProbe(
                concurrency=int(d.get("concurrency", 1)), requested=int(d.get("requested", 0)),
                case_ids=[str(c) for c in d.get("case_ids", [])],
                latencies_ms=[float(v) for v in d["latencies_ms"]],
                model_id=str(d.get("model_id", "")), measured_at=str(d.get("measured_at", "")),
                wall_s=float(d.get("wall_s", 0.0)), errors=int(d.get("errors", 0)),
                same_text=None if d.get("same_text") is None else int(d["same_text"]))
        except (TypeError, ValueError):
            return None


@dataclass
class Throughput:
    """The batched evaluation's rate: requests per second of answer_batch time."""

    requests: int
    answer_s: float
    batch_size: int
    cached: int = 0  # answers replayed from the response cache (no generation measured)

    @property
    def requests_per_s(self) -> float | None:
        """None when nothing was generated (every answer replayed) or no time was measured."""
        if self.answer_s <= 0 or self.requests <= self.cached:
            return None
        return self.requests / self.answer_s

    @property
    def measured(self) -> bool:
        """Every answer was generated in the run (none replayed from the cache)."""
        return self.cached == 0 and self.requests_per_s is not None

    def describe(self) -> str:
        rate = self.requests_per_s
        if rate is None:
            return f"batched: not measured ({self.cached} of {self.requests} answers replayed)"
        text = f"batched: {rate:.3g} requests/s at batch {self.batch_size}"
        if self.cached:
            text += f" ({self.cached} of {self.requests} answers replayed from the cache: not a measurement)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "requests_per_s": self.requests_per_s}

    @staticmethod
    def from_dict(d: Any) -> Throughput | None:
        if not isinstance(d, dict):
            return None
        try:
            return Throughput(int(d.get("requests", 0)), float(d.get("answer_s", 0.0)),
                              int(d.get("batch_size", 1)), int(d.get("cached", 0)))
        except (TypeError, ValueError):
            return None


def add_throughput(metadata: dict[str, Any], requests: int, answer_s: float, cached: int,
                   batch_size: int) -> None:
    """Add one batch's answers to the run's throughput record (a resumed run keeps counting)."""
    old = Throughput.from_dict(metadata.get(THROUGHPUT_KEY)) or Throughput(0, 0.0, batch_size)
    new = Throughput(old.requests + requests, round(old.answer_s + answer_s, 4), batch_size,
                     old.cached + cached)
    metadata[THROUGHPUT_KEY] = new.to_dict()


def uncached(pipeline: Pipeline) -> Pipeline:
    """The same pipeline on the model behind its response cache (if any)."""
    from rung.models.cache import CachedModel
    from rung.pipeline.pipeline import Pipeline

    model = pipeline.model
    if not isinstance(model, CachedModel):
        return pipeline
    return Pipeline(pipeline.name, pipeline.candidate, model.inner,
                    model_config=pipeline.model_config, components=pipeline.components)


def probe_latency(pipeline: Pipeline, cases: Sequence[Case], *, n: int, concurrency: int = 1,
                  answers: dict[str, str] | None = None, warm_up: bool = True) -> LatencyProbe:
    """Answer `n` sampled cases (spread over their lengths) with the uncached pipeline,
    `concurrency` at a time, and time each call; one untimed request first unless the model is
    loaded already. `answers` (case id -> the run's answer text)
    counts how many probe answers equal the run's."""
    if concurrency < 1:
        from rung.errors import ConfigError

        raise ConfigError(f"latency probe concurrency must be at least 1, got {concurrency}")
    live = uncached(pipeline)
    sample = sample_for_probe(cases, n)
    probe = LatencyProbe(concurrency=concurrency, requested=n, model_id=live.model.model_id,
                         measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if not sample:
        return probe
    t_all = time.perf_counter()
    if warm_up and not getattr(live.model, "loaded", False):
        # weights, embedder, refusal gate: not what a request waits for (a model that is loaded
        # has just answered the run: all of them are warm)
        live.answer_batch([sample[0]])
    same = 0
    for start in range(0, len(sample), concurrency):
        chunk = list(sample[start:start + concurrency])
        t0 = time.perf_counter()
        out = live.answer_batch(chunk)
        wall_ms = (time.perf_counter() - t0) * 1000.0
        for case, answer in zip(chunk, out):
            probe.case_ids.append(case.id)
            probe.latencies_ms.append(round(wall_ms, 3))
            probe.errors += 1 if answer.error else 0
            if answers is not None and answers.get(case.id) == answer.text:
                same += 1
    probe.same_text = same if answers is not None else None
    probe.wall_s = round(time.perf_counter() - t_all, 3)
    return probe
