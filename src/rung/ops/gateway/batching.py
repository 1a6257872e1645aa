"""Micro-batching: concurrent callers of `generate` share one batched call of the model below.

`BatchingModel` wraps a Model (the local backend: one base model, its adapters resident). Any
thread may call `generate(requests)`; the requests join a queue, and one dispatcher thread takes
what is queued when the first request has waited `max_wait_ms` (or as soon as `max_batch` are
queued) and answers them all with ONE `generate` call of the inner model, which batches them
itself (grouped by adapter and decoding parameters, see rung.models.local). Each caller gets its
own completions back, in order. Requests for different adapters go into the same call.

The pipeline above is unchanged: each HTTP request runs its own pipeline (retrieval, prompt,
gate, tools, schema retries) in a worker thread, and every model call it makes meets the other
requests' calls here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from rung.models.base import Completion, GenRequest, Model, ProgressCallback


@dataclass
class BatchStats:
    calls: int = 0  # generate calls of the inner model
    requests: int = 0  # requests answered
    max_batch_seen: int = 0
    sizes: list[int] = field(default_factory=list)  # the last 1000 batch sizes

    def record(self, n: int) -> None:
        self.calls += 1
        self.requests += n
        self.max_batch_seen = max(self.max_batch_seen, n)
        self.sizes.append(n)
        if len(self.sizes) > 1000:
            del self.sizes[:500]


@dataclass
class _Item:
    request: GenRequest
    future: Future
    queued: float


class BatchingModel:
    """A Model whose concurrent generate calls are answered together (see the module doc)."""

    def __init__(self, inner: Model, max_wait_ms: float = 5.0, max_batch: int = 16,
                 on_batch: Callable[[int, float, float], None] | None = None) -> None:
        self.inner = inner
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.max_batch = max(1, max_batch)
        self.on_batch = on_batch  # (batch size, oldest wait s, generate s) after each batch
        self.stats = BatchStats()
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.generate_lock = threading.Lock()  # held while the inner model generates (adapters load between)

    # ------------------------------------------------------------ Model protocol

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def fingerprint(self, adapter: str | None = None) -> str:
        return self.inner.fingerprint(adapter)

    def adapters(self) -> list[str]:
        return self.inner.adapters()

    def generate(self, requests: list[GenRequest], progress: ProgressCallback | None = None) -> list[Completion]:
        if not requests:
            return []
        futures = self.submit(requests)
        out = [f.result() for f in futures]
        if progress is not None:
            progress(len(out), len(out))
        return out

    # ------------------------------------------------------------ queue

    def submit(self, requests: list[GenRequest]) -> list[Future]:
        self._ensure_thread()
        now = time.perf_counter()
        items = [_Item(r, Future(), now) for r in requests]
        with self._cond:
            if self._closed:
                raise RuntimeError("the batching model is closed")
            self._queue.extend(items)
            self._cond.notify_all()
        return [i.future for i in items]

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._cond:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="rung-microbatch", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not self._queue:
                    return
                deadline = self._queue[0].queued + self.max_wait_s
                while len(self._queue) < self.max_batch and not self._closed:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                n = min(self.max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
            self._run(batch)

    def _run(self, batch: list[_Item]) -> None:
        start = time.perf_counter()
        waited = start - min(i.queued for i in batch)
        try:
            with self.generate_lock:
                completions = self.inner.generate([i.request for i in batch])
            if len(completions) != len(batch):
                raise RuntimeError(f"model returned {len(completions)} completions for {len(batch)} requests")
        except BaseException as e:  # noqa: BLE001 - every caller learns what happened
            for i in batch:
                i.future.set_exception(e)
            return
        took = time.perf_counter() - start
        self.stats.record(len(batch))
        for i, c in zip(batch, completions):
            c.extra = {**c.extra, "micro_batch": len(batch),
                       "queue_ms": round((start - i.queued) * 1000, 3)}
            i.future.set_result(c)
        if self.on_batch is not None:
            try:
                self.on_batch(len(batch), waited, took)
            except Exception:  # noqa: BLE001 - metrics never break generation
                pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
