"""What the model did for the request being answered on this thread.

The gateway answers each request with the pipeline on one worker thread; `ObservedModel` wraps
the shared model and notes, per thread, every generate call (when it started, how long it took,
its completions: time to first token, cache hits, micro-batch size, replica). The Answer the
pipeline returns does not carry these, and the metrics need them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from rung.models.base import Completion, GenRequest, Model, ProgressCallback


@dataclass
class ModelCall:
    started: float  # perf_counter
    seconds: float
    completions: list[Completion]
    error: str | None = None


@dataclass
class Observation:
    calls: list[ModelCall] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.calls)

    def first_token_at(self) -> float | None:
        """perf_counter time of the first token of the first call, when there was a call."""
        for c in self.calls:
            if c.completions:
                return c.started + min(x.ttft_s for x in c.completions)
        return None

    @property
    def cached(self) -> bool:
        return bool(self.calls) and all(x.cached for c in self.calls for x in c.completions)

    @property
    def response_model(self) -> str:
        for c in self.calls:
            for x in c.completions:
                return x.extra.get("upstream_model") or x.model_id
        return ""

    def extra(self) -> dict[str, object]:
        """Micro-batch sizes, queue waits and replicas of the calls, for the trace."""
        out: dict[str, object] = {}
        sizes = [x.extra["micro_batch"] for c in self.calls for x in c.completions if "micro_batch" in x.extra]
        if sizes:
            out["micro_batch"] = sizes
            out["queue_ms"] = [x.extra.get("queue_ms") for c in self.calls for x in c.completions
                               if "queue_ms" in x.extra]
        replicas = [x.extra["replica"] for c in self.calls for x in c.completions if "replica" in x.extra]
        if replicas:
            out["replicas"] = replicas
        return out


class ObservedModel:
    """A Model that records its calls per thread (see the module doc)."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self._local = threading.local()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def fingerprint(self, adapter: str | None = None) -> str:
        return self.inner.fingerprint(adapter)

    def adapters(self) -> list[str]:
        return self.inner.adapters()

    def generate(self, requests: list[GenRequest], progress: ProgressCallback | None = None) -> list[Completion]:
        obs = getattr(self._local, "obs", None)
        start = time.perf_counter()
        try:
            out = self.inner.generate(requests, progress)
        except Exception as e:
            if obs is not None:
                obs.calls.append(ModelCall(start, time.perf_counter() - start, [], type(e).__name__))
            raise
        if obs is not None:
            obs.calls.append(ModelCall(start, time.perf_counter() - start, list(out)))
        return out

    def begin(self) -> Observation:
        """Start observing this thread's calls."""
        self._local.obs = Observation()
        return self._local.obs

    def end(self) -> Observation:
        obs = getattr(self._local, "obs", None) or Observation()
        self._local.obs = None
        return obs

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()
