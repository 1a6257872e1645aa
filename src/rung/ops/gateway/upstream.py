"""Upstream engines: an OpenAI-compatible model (vLLM, LoRAX, llama.cpp server) served by
several replicas.

`ReplicaPool` is a Model over N base URLs (the model's `base_url` plus `serving.upstreams.NAME.
replicas`). Each request goes to the healthy replica with the fewest requests in flight; a
retryable failure (5xx, 429, timeout, connection refused or dropped) is retried on the next
least-busy replica, up to `max_attempts` in all, and takes the failing replica out until its
next good health check. Any other 4xx fails the request at once. A background thread checks
every replica's GET /models each `health_check_s`.

Adapters: the request's `model` carries the adapter (as vLLM's --enable-lora and LoRAX expect),
under a name that includes the adapter's content digest when rung.yaml gives its folder
(`models.NAME.adapters: {support: path}` -> "support-3f9a2c1b7d0e"): an updated adapter gets a
new name, so a replica can never answer with a stale copy loaded under the old one. Start vLLM
with the names `served_adapter_names` returns (docs/serving.md).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from rung.config import ModelConfig
from rung.errors import EndpointError
from rung.models.base import Completion, GenRequest, ProgressCallback


@dataclass
class Replica:
    url: str
    model: object  # rung.models.openai.OpenAIModel
    in_flight: int = 0
    healthy: bool = True
    failures: int = 0
    answered: int = 0
    last_error: str = ""


def adapter_digest_name(name: str, path: Path) -> str:
    """`name-<12 hex digits of the adapter's content hash>`."""
    from rung.models.adapters import adapter_fingerprint

    return f"{name}-{adapter_fingerprint(name, path)[:12]}"


def served_adapter_names(cfg: ModelConfig, root: Path) -> dict[str, str]:
    """Adapter name in rung.yaml -> the name sent upstream (with its content digest when the
    adapter's folder exists here; else the name as it is)."""
    out: dict[str, str] = {}
    for name, p in cfg.adapters.items():
        path = Path(p).expanduser()
        path = path if path.is_absolute() else root / path
        out[name] = adapter_digest_name(name, path) if path.is_dir() else name
    return out


def _retryable(e: Exception) -> bool:
    """OpenAIModel (max_retries=0) says "gave up after 1 attempt" exactly when its one attempt
    failed in a retryable way (5xx, 429, timeout, dropped connection), and "cannot reach" when
    the replica refused the connection: both are worth another replica."""
    text = str(e)
    return "gave up after" in text or "cannot reach" in text


class ReplicaPool:
    """A Model over several OpenAI-compatible replicas (see the module doc)."""

    def __init__(self, urls: Sequence[str], model: str, *, api_key: str | None = None,
                 timeout_s: float = 60.0, max_attempts: int = 3, health_check_s: float = 10.0,
                 adapter_names: dict[str, str] | None = None, concurrency: int = 64) -> None:
        from rung.models.openai import OpenAIModel

        if not urls:
            raise EndpointError("an upstream needs at least one replica URL")
        self.model = model
        self.replicas = [Replica(u.rstrip("/"), OpenAIModel(u, model, api_key=api_key, concurrency=concurrency,
                                                           timeout_s=timeout_s, max_retries=0))
                         for u in dict.fromkeys(urls)]
        self.max_attempts = max(1, max_attempts)
        self.health_check_s = health_check_s
        self.adapter_names = dict(adapter_names or {})
        self._api_key = api_key
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rung-upstream")
        self._stop = threading.Event()
        self._checker: threading.Thread | None = None

    @classmethod
    def from_config(cls, cfg: ModelConfig, root: Path, replicas: Sequence[str] = (),
                    max_attempts: int = 3, health_check_s: float = 10.0) -> ReplicaPool:
        import os

        api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if cfg.api_key_env and not api_key:
            raise EndpointError(f"api_key_env names {cfg.api_key_env!r} but that environment variable is not set")
        urls = [cfg.base_url or "", *replicas]
        return cls([u for u in urls if u], cfg.model or "", api_key=api_key, timeout_s=cfg.timeout_s,
                   max_attempts=max_attempts, health_check_s=health_check_s,
                   adapter_names=served_adapter_names(cfg, root), concurrency=max(8, cfg.concurrency * 4))

    # ------------------------------------------------------------ Model protocol

    @property
    def model_id(self) -> str:
        return self.model

    def fingerprint(self, adapter: str | None = None) -> str:
        return self.replicas[0].model.fingerprint(self.adapter_names.get(adapter, adapter) if adapter else None)

    def adapters(self) -> list[str]:
        return list(self.adapter_names)

    def generate(self, requests: list[GenRequest], progress: ProgressCallback | None = None) -> list[Completion]:
        if not requests:
            return []
        self.start_health_checks()
        if len(requests) == 1:
            out = [self._one(requests[0])]
        else:
            out = list(self._pool.map(self._one, requests))
        if progress is not None:
            progress(len(out), len(out))
        return out

    # ------------------------------------------------------------ routing

    def pick(self, exclude: set[str] = frozenset()) -> Replica:
        """The healthy replica with the fewest requests in flight (any, when none is healthy)."""
        with self._lock:
            pool = [r for r in self.replicas if r.url not in exclude] or list(self.replicas)
            healthy = [r for r in pool if r.healthy] or pool
            best = min(healthy, key=lambda r: (r.in_flight, r.failures))
            best.in_flight += 1
            return best

    def _one(self, request: GenRequest) -> Completion:
        upstream = request
        if request.adapter is not None:
            upstream = replace(request, adapter=self.adapter_names.get(request.adapter, request.adapter))
        tried: set[str] = set()
        last: Exception | None = None
        for attempt in range(self.max_attempts):
            rep = self.pick(tried)
            tried.add(rep.url)
            try:
                c = rep.model.generate([upstream])[0]
            except EndpointError as e:
                with self._lock:
                    rep.in_flight -= 1
                    rep.last_error = str(e)[:300]
                    if _retryable(e):
                        rep.healthy = False
                        rep.failures += 1
                last = e
                if not _retryable(e):
                    raise
                continue
            with self._lock:
                rep.in_flight -= 1
                rep.answered += 1
                rep.failures = 0
            c.adapter = request.adapter
            c.extra = {**c.extra, "replica": rep.url, "upstream_model": upstream.adapter or self.model}
            if attempt:
                c.extra["failovers"] = attempt
            return c
        raise EndpointError(f"all {len(tried)} replica(s) of {self.model!r} failed; last: {last}")

    # ------------------------------------------------------------ health

    def check_health(self) -> dict[str, bool]:
        """GET /models on every replica now; returns url -> healthy."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        out: dict[str, bool] = {}
        for rep in self.replicas:
            try:
                ok = httpx.get(f"{rep.url}/models", headers=headers, timeout=5.0).status_code < 500
            except httpx.HTTPError:
                ok = False
            with self._lock:
                rep.healthy = ok
                if ok:
                    rep.failures = 0
            out[rep.url] = ok
        return out

    def start_health_checks(self) -> None:
        if self._checker is None and len(self.replicas) > 1:
            with self._lock:
                if self._checker is None:
                    self._checker = threading.Thread(target=self._health_loop, name="rung-upstream-health",
                                                     daemon=True)
                    self._checker.start()

    def _health_loop(self) -> None:
        while not self._stop.wait(self.health_check_s):
            self.check_health()

    def status(self) -> list[dict[str, object]]:
        with self._lock:
            return [{"url": r.url, "healthy": r.healthy, "in_flight": r.in_flight, "answered": r.answered,
                     "last_error": r.last_error} for r in self.replicas]

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for r in self.replicas:
            r.model.close()

    @property
    def ready(self) -> bool:
        return any(r.healthy for r in self.replicas)

