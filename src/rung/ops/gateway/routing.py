"""Routing: (tenant, the request's `model`) -> a served target (candidate or release, channel,
its pipeline and guardrails).

`Resolver` is the interface the gateway uses. `ConfigResolver` serves the candidates of
rung.yaml as they are (`serving.candidates` public, `serving.tenants.T.candidates` private to
T); a release-backed resolver (channels -> releases) implements the same interface.

Models are shared: every candidate over the same `models:` entry uses ONE model object, a local
model wrapped in the micro-batcher (one base in memory, its adapters resident and chosen per
request) or an upstream replica pool.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from rung.config import ModelConfig, Price, RungConfig
from rung.config.serving import ServingConfig
from rung.errors import ConfigError, RungError, did_you_mean

if TYPE_CHECKING:
    from rung.ops.guardrails import Guardrails
    from rung.pipeline.pipeline import Pipeline

DEFAULT_MODEL_NAMES = ("", "default", "rung")


class RoutingError(RungError):
    """The request's model cannot be served to this tenant. `status` is 404 (no such model)
    or 403 (exists, not for this tenant)."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class ServedTarget:
    """What one name in the request's `model` is served by."""

    name: str
    candidate: str
    pipeline: Pipeline
    guardrails: Guardrails
    level: int
    hash: str
    price: Price
    model_key: str  # the `models:` entry
    adapter: str | None = None  # the adapter's name in rung.yaml
    served_adapter: str | None = None  # the name requests carry: with its content digest
    release: str | None = None
    channel: str | None = None
    arm: str | None = None
    owners: frozenset[str] | None = None  # tenants that may use it; None: every tenant
    shadow: ServedTarget | None = None  # a rollout in shadow mode: answers a copy, off the request path
    schema_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _schema_pipeline: Pipeline | None = field(default=None, repr=False)

    @property
    def label_release(self) -> str:
        """What metrics and traces call the served version: the release id, else candidate@hash."""
        return self.release or f"{self.candidate}@{self.hash[:12]}"

    def allowed(self, tenant: str) -> bool:
        return self.owners is None or tenant in self.owners

    def info(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "release": self.release, "channel": self.channel,
                "level": self.level, "adapter": self.adapter, "hash": self.hash[:16],
                "guardrails": self.guardrails.enabled}

    def schema_pipeline(self, schema: dict[str, Any]) -> tuple[Pipeline, str]:
        """A pipeline that answers in `schema` (a request's response_format), and the schema's
        name in it: the candidate's own steps (prompt with the output format, validate, repair,
        retry, constrained decoding when the candidate uses it)."""
        blob = json.dumps(schema, sort_keys=True, ensure_ascii=False)
        name = "request-" + hashlib.sha256(blob.encode()).hexdigest()[:12]
        with self.schema_lock:
            if self._schema_pipeline is None:
                from rung.pipeline.pipeline import Pipeline

                base = self.pipeline
                cand = base.candidate.model_copy(update={"output_schema": "case"})
                comps = replace(base.components, candidate=cand, schemas=dict(base.components.schemas),
                                _builders={}, _enforcers={})
                self._schema_pipeline = Pipeline(base.name, cand, base.model, base.model_config, comps)
            comps = self._schema_pipeline.components
            if name not in comps.schemas:
                if len(comps.schemas) > 256:  # bounded: drop the request schemas seen so far
                    for k in [k for k in comps.schemas if k.startswith("request-")]:
                        comps.schemas.pop(k, None)
                        comps._builders.pop(k, None)
                        comps._enforcers.pop(k, None)
                comps.schemas[name] = schema
        return self._schema_pipeline, name


class Resolver(Protocol):
    def targets(self) -> list[ServedTarget]:
        """Every target loaded."""
        ...

    def models(self, tenant: str) -> list[dict[str, Any]]:
        """What GET /v1/models lists for `tenant`: {"id", "owned_by", "rung": {...}} each."""
        ...

    def resolve(self, tenant: str, model: str | None, *, user: str | None = None,
                request_id: str | None = None) -> ServedTarget:
        """The target for the request's `model` (user and request id choose a rollout's arm);
        RoutingError 404 / 403."""
        ...

    def tenants(self) -> list[str]:
        """The tenants the configuration names (for bounded metric labels)."""
        ...

    def warm(self, progress: Callable[[str], None] | None = None) -> None:
        """Load everything a first request would (models, indexes, classifiers)."""
        ...

    def close(self) -> None:
        ...


@dataclass
class _HubEntry:
    model: Any  # what pipelines call: ObservedModel over (cache over) batcher / replica pool
    raw: Any  # LocalModel or ReplicaPool
    batching: Any = None  # the BatchingModel of a local model
    lock: threading.Lock = field(default_factory=threading.Lock)


class ModelHub:
    """One Model per distinct model (same weights and settings, or same endpoint), shared by
    every candidate and release that uses it, whatever its `models:` entry is called: a local
    base is loaded once and each adapter joins it as a resident adapter named after its content
    digest ("support-3f9a2c1b7d0e"), so two releases' different "support" adapters never mix."""

    def __init__(self, serving: ServingConfig, on_batch: Callable[[str, int, float, float], None] | None = None,
                 cache_path: Any = None) -> None:
        self.serving = serving
        self.on_batch = on_batch
        self.cache_path = cache_path
        self._entries: dict[tuple, _HubEntry] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(config: RungConfig, name: str, cfg: ModelConfig) -> tuple:
        if cfg.backend == "openai":
            return ("openai", cfg.base_url, cfg.model, cfg.api_key_env, name)
        path = cfg.path
        if not path.startswith("embedded:"):
            resolved = config.resolve(path)
            path = str(resolved.resolve()) if resolved.exists() else path
        return ("local", path, cfg.gguf_file, cfg.dtype, cfg.device, cfg.max_batch_size, cfg.threads)

    def entry(self, config: RungConfig, name: str) -> _HubEntry:
        cfg = config.models[name]
        key = self._key(config, name, cfg)
        with self._lock:
            if key not in self._entries:
                self._entries[key] = self._build(config, name, cfg)
            return self._entries[key]

    def model_for(self, config: RungConfig, candidate: Any) -> tuple[Any, str | None]:
        """(the shared model, the adapter name to request) for a candidate of `config`."""
        entry = self.entry(config, candidate.model)
        if not candidate.adapter:
            return entry.model, None
        cfg = config.models[candidate.model]
        rel = cfg.adapters.get(candidate.adapter)
        path = config.resolve(rel) if rel else None
        if path is None or not path.is_dir():
            if cfg.backend == "local":
                from rung.errors import AdapterError

                raise AdapterError(f"{config.source}: models.{candidate.model}.adapters.{candidate.adapter}: "
                                   f"no adapter folder {path or '(not configured)'}")
            return entry.model, candidate.adapter  # an adapter the endpoint knows by name
        from rung.ops.gateway.upstream import adapter_digest_name

        served = adapter_digest_name(candidate.adapter, path)
        if cfg.backend == "local":
            with entry.lock:
                if served not in entry.raw.adapters():
                    guard = entry.batching.generate_lock if entry.batching is not None else threading.Lock()
                    with guard:  # never while a batch is being generated
                        entry.raw.load_adapter(served, path)
        return entry.model, served

    def _build(self, config: RungConfig, name: str, cfg: ModelConfig) -> _HubEntry:
        model: Any
        batching = None
        if cfg.backend == "openai":
            from rung.ops.gateway.upstream import ReplicaPool

            up = self.serving.upstreams.get(name)
            raw = ReplicaPool.from_config(cfg.model_copy(update={"adapters": {}}), config.root,
                                          up.replicas if up else (), up.max_attempts if up else 3,
                                          up.health_check_s if up else 10.0)
            model = raw
        else:
            from rung.models.local import LocalModel
            from rung.ops.gateway.batching import BatchingModel

            raw = LocalModel.from_config(cfg.model_copy(update={"adapters": {}}), config.root)
            b = self.serving.batching
            cb = None
            if self.on_batch is not None:
                hook = self.on_batch
                cb = lambda n, wait, took, _m=name: hook(_m, n, wait, took)  # noqa: E731
            # a local model answers one generate call at a time (it is not thread-safe: the
            # resident adapter is switched per batch); without batching, one request per call
            model = batching = (BatchingModel(raw, b.max_wait_ms, b.max_batch, cb) if b.enabled
                                else BatchingModel(raw, 0.0, 1, cb))
        if self.serving.cache and self.cache_path is not None:
            from rung.models.cache import CachedModel, ResponseCache

            model = CachedModel(model, ResponseCache(self.cache_path))
        from rung.ops.gateway.observe import ObservedModel

        return _HubEntry(ObservedModel(model), raw, batching)

    def warm(self) -> None:
        for e in list(self._entries.values()):
            load = getattr(e.raw, "load", None)
            if callable(load):
                load()

    def raw_models(self) -> list[Any]:
        return [e.raw for e in self._entries.values()]

    def close(self) -> None:
        for e in list(self._entries.values()):
            for m in (e.model, e.raw):
                close = getattr(m, "close", None)
                if callable(close):
                    try:
                        close()
                    except Exception:  # noqa: BLE001 - closing is best effort
                        pass


class InjectionClassifiers:
    """One prompt-injection classifier per set of project examples, shared by candidates."""

    def __init__(self) -> None:
        self._by_examples: dict[tuple[str | None, int], Any] = {}
        self._lock = threading.Lock()

    def factory(self, config: RungConfig, examples: str | None, weight: int) -> Callable[[], Any]:
        def make() -> Any:
            with self._lock:
                key = (str(config.resolve(examples)) if examples else None, weight)
                if key not in self._by_examples:
                    from rung.ops.guardrails.injection import (
                        ExampleSet,
                        InjectionClassifier,
                    )

                    ex = ExampleSet()
                    if examples:
                        from rung.evals.suite import load_suite

                        path = config.resolve(examples)
                        if not path.exists():
                            raise ConfigError(f"{config.source}: guardrails.injection.examples: "
                                              f"{path} does not exist")
                        ex = ExampleSet.from_cases(load_suite(path).cases, weight)
                    self._by_examples[key] = InjectionClassifier(ex)
                return self._by_examples[key]
        return make


def serving_config(config: RungConfig) -> ServingConfig:
    return getattr(config, "serving", None) or ServingConfig()


def build_target(config: RungConfig, name: str, hub: ModelHub, injection: InjectionClassifiers, *,
                 served_as: str | None = None, owners: frozenset[str] | None = None,
                 release: str | None = None, channel: str | None = None, candidate: Any = None,
                 defaults_from: RungConfig | None = None) -> ServedTarget:
    """A candidate of `config` (or `candidate`, e.g. with a channel's flags applied) made
    servable: its pipeline over the shared model, its guardrails (its own, else serving.guardrails
    of `defaults_from`, the project being served, or of `config`)."""
    from rung.ops.guardrails import Guardrails
    from rung.pipeline.components import build_components
    from rung.pipeline.pipeline import Pipeline

    cand = candidate if candidate is not None else config.candidates[name]
    gcfg, gconfig = cand.guardrails, config
    if gcfg is None:  # the default of the project being served (its files resolve from there)
        gconfig = defaults_from or config
        gcfg = serving_config(gconfig).guardrails
    components = build_components(config, cand)
    gate = None
    if gcfg is not None and gcfg.refusal_gate is not None and components.refusal_gate is not None:
        gate = components.refusal_gate
        components = replace(components, refusal_gate=None)  # the guardrail runs it, once
    inj = None
    if gcfg is not None and gcfg.injection is not None:
        inj = injection.factory(gconfig, gcfg.injection.examples, gcfg.injection.examples_weight)
    guards = Guardrails(gcfg, refusal_gate=gate, injection=inj,
                        pipeline_requires_citations=cand.require_citations)
    model, served_adapter = hub.model_for(config, cand)
    run_cand = cand if served_adapter == cand.adapter else cand.model_copy(update={"adapter": served_adapter})
    pipeline = Pipeline(name, run_cand, model, model_config=config.models[cand.model], components=components)
    return ServedTarget(name=served_as or name, candidate=name, pipeline=pipeline, guardrails=guards,
                        level=cand.effective_level, hash=pipeline.hash, price=config.models[cand.model].price,
                        model_key=cand.model, adapter=cand.adapter, served_adapter=served_adapter,
                        release=release, channel=channel, owners=owners)


def make_resolver(config: RungConfig, on_batch: Callable[[str, int, float, float], None] | None = None
                  ) -> Resolver:
    """The resolver `serving.source` asks for: releases (channels of the release store),
    candidates (rung.yaml), or auto: releases once `serving.channel` has a live release."""
    serving = serving_config(config)
    hub = ModelHub(serving, on_batch, cache_path=config.resolve(config.paths.cache))
    if serving.source != "candidates":
        from rung.ops.gateway.releases import (
            ReleaseResolver,
            has_live_release,
            open_release_store,
        )

        store = open_release_store(config)
        if serving.source == "releases" or has_live_release(store, serving.channel):
            return ReleaseResolver(config, store, hub=hub)
        store.close()
    return ConfigResolver(config, hub=hub)


class ConfigResolver:
    """Serves rung.yaml's candidates (see the module doc)."""

    def __init__(self, config: RungConfig, *, hub: ModelHub | None = None) -> None:
        self.config = config
        self.serving = serving_config(config)
        self.hub = hub or ModelHub(self.serving, cache_path=config.resolve(config.paths.cache))
        self.injection = InjectionClassifiers()
        s = self.serving
        known = config.candidates
        where = f"{config.source or 'rung.yaml'}: serving"
        owned: dict[str, set[str]] = {}
        for tenant, t in s.tenants.items():
            for c in t.candidates:
                if c not in known:
                    raise ConfigError(f"{where}.tenants.{tenant}.candidates: no candidate named {c!r}"
                                      f"{did_you_mean(c, known)}")
                owned.setdefault(c, set()).add(tenant)
        public = list(s.candidates) if s.candidates is not None else [c for c in known if c not in owned]
        for c in public:
            if c not in known:
                raise ConfigError(f"{where}.candidates: no candidate named {c!r}{did_you_mean(c, known)}")
        for c, tenants in owned.items():
            if c in public and s.candidates is not None:
                raise ConfigError(f"{where}: candidate {c!r} is both public (serving.candidates) and "
                                  f"private to {sorted(tenants)}")
        if not public and not owned:
            raise ConfigError(f"{where}: nothing to serve (rung.yaml has no candidates)")
        for label, value in [("default", s.default)] + [(f"tenants.{t}.default", tc.default)
                                                        for t, tc in s.tenants.items()]:
            if value is not None and value not in known:
                raise ConfigError(f"{where}.{label}: no candidate named {value!r}{did_you_mean(value, known)}")
        for m in s.upstreams:
            if m not in config.models or config.models[m].backend != "openai":
                raise ConfigError(f"{where}.upstreams.{m}: not a model with backend openai under `models`")
        self._public = public
        self._owned = {c: frozenset(t) for c, t in owned.items()}
        self._targets: dict[str, ServedTarget] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self._public) + [c for c in self._owned if c not in self._public]

    def _target(self, name: str) -> ServedTarget:
        with self._lock:
            if name not in self._targets:
                self._targets[name] = build_target(self.config, name, self.hub, self.injection,
                                                   owners=self._owned.get(name))
            return self._targets[name]

    def targets(self) -> list[ServedTarget]:
        return [self._target(n) for n in self.names()]

    def models(self, tenant: str) -> list[dict[str, Any]]:
        return [{"id": t.name, "owned_by": tenant if t.owners else "rung", "rung": t.info()}
                for t in self.targets() if t.allowed(tenant)]

    def _default_for(self, tenant: str) -> str:
        t = self.serving.tenants.get(tenant)
        if t is not None and t.default:
            return t.default
        if t is not None and len(t.candidates) == 1:
            return t.candidates[0]
        if self.serving.default:
            return self.serving.default
        if len(self._public) == 1:
            return self._public[0]
        raise RoutingError("no default model: name one in `model` (see GET /v1/models)", 404,
                           "model_not_found")

    def resolve(self, tenant: str, model: str | None, *, user: str | None = None,
                request_id: str | None = None) -> ServedTarget:
        name = (model or "").strip()
        if name in DEFAULT_MODEL_NAMES:
            name = self._default_for(tenant)
        if name not in self._public and name not in self._owned:
            raise RoutingError(f"model {name!r} does not exist (see GET /v1/models)", 404, "model_not_found")
        owners = self._owned.get(name)
        if owners is not None and tenant not in owners:
            raise RoutingError(f"model {name!r} is not available to this API key's tenant", 403,
                               "model_not_allowed")
        return self._target(name)

    def tenants(self) -> list[str]:
        return sorted(self.serving.tenants)

    def warm(self, progress: Callable[[str], None] | None = None) -> None:
        for t in self.targets():
            if progress is not None:
                progress(t.name)
            t.guardrails.warm()
        self.hub.warm()

    def close(self) -> None:
        self.hub.close()
