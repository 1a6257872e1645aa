"""One loaded model per base, shared by every pipeline in the process.

Building a pipeline does not load a model: it asks the process-wide `ModelPool` for the model its
candidate names and gets the same object every other pipeline on that base got, with their
adapters resident side by side (a local model loads its weights once, on first use; an endpoint
keeps one connection pool). So ten tenants, or the ladder's six candidates, on one base model
cost one load.

A model's pool key is its weights fingerprint (the content hash of its files, memoised by path,
size and time: nothing is loaded to compute it; a hub id not in the local cache is keyed by its
name) plus the settings that change how it runs (dtype, device, threads, batch size). An endpoint
is keyed by its configuration (URL, model name, key variable, concurrency, timeouts). Adapters are
not part of the key: they are merged onto the shared base, one name per folder; two projects that
give one adapter name two different folders get two models.

The pool holds its models weakly: a model lives as long as some pipeline uses it, so pipelines
alive together share one, and a base nobody uses any more is freed. Work that builds pipelines
one after another on the same bases (the ladder: one candidate at a time) keeps them in
`with pool.hold():`, so the second pipeline gets the first one's loaded model. The response
cache is not pooled: each pipeline wraps the shared model in its own `CachedModel`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.errors import ModelError

if TYPE_CHECKING:
    from rung.config import ModelConfig, RungConfig
    from rung.models.base import Model

# settings of an endpoint that decide which server answers and how
_ENDPOINT_KEYS = ("base_url", "model", "api_key_env", "concurrency", "timeout_s", "max_retries")
# settings of a local model that change how its weights run
_LOCAL_KEYS = ("gguf_file", "dtype", "device", "threads", "max_batch_size")


def model_key(cfg: ModelConfig, root: Path) -> str:
    """The pool key of a `models:` entry (see the module docstring); ModelError (for instance
    ModelNotFoundError) when its weights cannot be found."""
    if cfg.backend == "local":
        from rung.models.embedded import resolve_llm

        resolved = resolve_llm(cfg.path, root, cfg.gguf_file)
        ident: dict[str, Any] = {"backend": "local", "weights": resolved.fingerprint(),
                                 **{k: getattr(cfg, k) for k in _LOCAL_KEYS}}
    else:
        ident = {"backend": cfg.backend, **{k: getattr(cfg, k) for k in _ENDPOINT_KEYS}}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


class ModelPool:
    """Models by pool key; thread-safe. `loads` counts the models it built (not the cache hits)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._models: dict[str, list[weakref.ref[Model]]] = {}
        self._holds: list[list[Model]] = []
        self.loads = 0

    def get(self, cfg: ModelConfig, *, root: Path,
            build: Callable[[], Model] | None = None) -> Model:
        """The shared model of `cfg` (relative paths from `root`, the folder of rung.yaml), built
        with `build` (default: rung.models.factory.load_model, uncached) the first time; the
        entry's adapters are made resident on it."""
        key = model_key(cfg, root)
        adapters = {name: _from(root, path) for name, path in cfg.adapters.items()}
        with self._lock:
            alive = [m for m in (ref() for ref in self._models.get(key, [])) if m is not None]
            for model in alive:
                if _take_adapters(model, adapters):
                    return self._held(model)
            if build is None:
                from rung.models.factory import load_model

                model = load_model(cfg, root=root)
            else:
                model = build()
            self.loads += 1
            self._models[key] = [weakref.ref(m) for m in alive] + [weakref.ref(model)]
            return self._held(model)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep every model handed out inside the block alive until it ends, even when no
        pipeline holds it in between."""
        held: list[Model] = []
        with self._lock:
            self._holds.append(held)
        try:
            yield
        finally:
            with self._lock:
                self._holds.remove(held)

    def _held(self, model: Model) -> Model:
        for held in self._holds:
            if not any(m is model for m in held):
                held.append(model)
        return model

    def project_model(self, config: RungConfig, name: str, use_cache: bool = True) -> Model:
        """The model named `name` in rung.yaml's `models:`, shared, wrapped in the project's
        response cache (`paths.cache`) unless use_cache is False. Errors are the factory's
        (rung.models.factory.load_project_model): they name the rung.yaml key that is wrong."""
        from rung.models.factory import load_project_model

        cfg = config.models.get(name)
        if cfg is None:
            return load_project_model(config, name, use_cache)  # ConfigError: no such model
        try:
            model_key(cfg, config.root)
        except ModelError:
            return load_project_model(config, name, use_cache)  # the same error, naming rung.yaml
        model = self.get(cfg, root=config.root,
                         build=lambda: load_project_model(config, name, use_cache=False))
        if not use_cache:
            return model
        from rung.models.cache import CachedModel, ResponseCache

        return CachedModel(model, ResponseCache(config.resolve(config.paths.cache)))

    def clear(self) -> None:
        """Forget every model (each is freed when nothing else holds it)."""
        with self._lock:
            self._models.clear()

    def __len__(self) -> int:
        """The number of pooled models still alive."""
        with self._lock:
            return sum(ref() is not None for refs in self._models.values() for ref in refs)


def _from(root: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


def _take_adapters(model: Model, adapters: dict[str, Path]) -> bool:
    """Make `adapters` resident on a pooled model; False when one of their names is already
    resident with another folder (the caller then builds another model)."""
    conflicts = getattr(model, "adapter_conflicts", None)
    if conflicts is None:  # an endpoint: adapters are model names on the server
        return True
    if conflicts(adapters):
        return False
    model.add_adapters(adapters)  # type: ignore[attr-defined]  # loaded now if the base is loaded
    return True


_POOL = ModelPool()


def model_pool() -> ModelPool:
    """The process-wide pool."""
    return _POOL
