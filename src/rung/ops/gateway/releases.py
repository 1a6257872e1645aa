"""Serving releases: API key -> tenant -> channel -> the live release -> its pipeline.

- `model` "default" (or empty): the serving channel (`serving.channel`, "production"), as the
  tenant's channel `production@<tenant>` when that has a release of its own, else `production`.
- `model` naming a channel: `staging`, `production`, or `production@<tenant>` of the key's own
  tenant (another tenant's channel is 403).
- `model` naming a release id (or a unique prefix of 12+ characters): allowed only while that
  release is live on a channel the tenant can use (else 403).
- A channel's flags (`rung release flag`) apply per request (adapter off, required citations,
  refusal gate off); a running rollout (rung.ops.rollout) picks the arm: the canary release for
  the users in its share, or, in shadow mode, a copy of the request answered by the new release
  off the request path (trace arm "shadow", request.shadow_of the live trace).

A release is served from its own files: `materialize` writes its rung.yaml and the files it
copied by hash into `.rung/serving/<release id>/` once (content-addressed: never stale), and the
pipeline is built from there. Channel states are read from the store at most once a second per
channel, so a promotion or rollback is live within a second on every gateway replica.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rung.config import RungConfig
from rung.ops.gateway.routing import (
    DEFAULT_MODEL_NAMES,
    InjectionClassifiers,
    ModelHub,
    RoutingError,
    ServedTarget,
    build_target,
    serving_config,
)
from rung.ops.releases.store import CHANNEL_RE

CHANNEL_TTL_S = 1.0
_HEX = re.compile(r"^[0-9a-f]{12,64}$")


class ReleaseResolver:
    def __init__(self, config: RungConfig, store: Any, *, hub: ModelHub | None = None) -> None:
        self.config = config
        self.serving = serving_config(config)
        self.store = store  # rung.ops.releases.ReleaseStore
        self.hub = hub or ModelHub(self.serving, cache_path=config.resolve(config.paths.cache))
        self.injection = InjectionClassifiers()
        self.folder = config.resolve(".rung") / "serving"
        self._targets: dict[tuple, ServedTarget] = {}
        self._views: dict[tuple, ServedTarget] = {}
        self._configs: dict[str, RungConfig] = {}
        self._channels: dict[str, tuple[float, Any]] = {}
        self._lock = threading.RLock()
        from rung.ops.rollout.assign import RolloutCache

        self.rollouts = RolloutCache(store, ttl_s=CHANNEL_TTL_S)  # running rollouts: the arm per request

    # ------------------------------------------------------------ channels

    def _state(self, channel: str) -> tuple[str | None, dict[str, str]]:
        """(live release id, flags) of a channel, cached CHANNEL_TTL_S."""
        now = time.monotonic()
        hit = self._channels.get(channel)
        if hit is not None and now - hit[0] < CHANNEL_TTL_S:
            return hit[1]
        from rung.ops.releases import channel_flags

        value = (self.store.state(channel).release_id, channel_flags(self.store, channel))
        self._channels[channel] = (now, value)
        return value

    def _effective(self, tenant: str, base: str) -> tuple[str, str | None, dict[str, str]]:
        """(channel, release id, flags) for `tenant` on base channel `base`: the tenant channel
        when it has a release of its own, else the base channel with the tenant channel's flags
        (which inherit the base channel's)."""
        own = f"{base}@{tenant}"
        if CHANNEL_RE.match(own):
            rid, flags = self._state(own)
            if rid is not None:
                return own, rid, flags
            return base, self._state(base)[0], flags
        return base, *self._state(base)

    def _visible(self, tenant: str) -> list[str]:
        """Channels a tenant may use: every channel without a tenant, and its own."""
        out = []
        for ch in self.store.channels():
            _, at, owner = ch.partition("@")
            if not at or owner == tenant:
                out.append(ch)
        return out

    # ------------------------------------------------------------ the Resolver interface

    def resolve(self, tenant: str, model: str | None, *, user: str | None = None,
                request_id: str | None = None) -> ServedTarget:
        from rung.ops.releases import ReleaseError

        name = (model or "").strip()
        if name in DEFAULT_MODEL_NAMES:
            name = self.serving.channel
        if _HEX.match(name) and name not in self.store.channels():
            try:
                rel = self.store.load_release(name)
            except ReleaseError:
                raise RoutingError(f"model {name!r}: no such channel or release (see GET /v1/models)", 404,
                                   "model_not_found") from None
            for ch in self._visible(tenant):
                if self._state(ch)[0] == rel.id:
                    return self._target(rel.id, ch, self._state(ch)[1], name)
            raise RoutingError(f"release {rel.short} is not live on a channel this API key's tenant uses", 403,
                               "model_not_allowed")
        if not CHANNEL_RE.match(name):
            raise RoutingError(f"model {name!r}: no such channel or release (see GET /v1/models)", 404,
                               "model_not_found")
        base, at, owner = name.partition("@")
        if at and owner != tenant:
            raise RoutingError(f"channel {name!r} belongs to another tenant", 403, "model_not_allowed")
        if at:
            channel = name
            rid, flags = self._state(name)
            if rid is None:
                channel, rid, flags = self._effective(tenant, base)
        else:
            channel, rid, flags = self._effective(tenant, base)
        if rid is None:
            raise RoutingError(f"channel {name!r} has no live release (rung release promote)", 404,
                               "model_not_found")
        choice = self.rollouts.choose(channel, tenant, user, request_id, rid)
        if choice.release in (None, rid) and choice.arm == "stable" and not choice.shadow:
            return self._target(rid, channel, flags, name)
        target = self._target(choice.release or rid, channel, flags, name, arm=choice.arm)
        if choice.shadow:
            shadow = self._target(choice.shadow, channel, flags, name, arm="shadow")
            target = replace(target, shadow=shadow)
        return target

    def models(self, tenant: str) -> list[dict[str, Any]]:
        out = []
        for ch in self._visible(tenant):
            rid = self._state(ch)[0]
            if rid is None:
                continue
            rel = self.store.load_release(rid)
            out.append({"id": ch, "owned_by": tenant if "@" in ch else "rung",
                        "rung": {"channel": ch, "release": rel.id, "candidate": rel.candidate, "level": rel.level,
                                 "flags": self._state(ch)[1]}})
        return out

    def targets(self) -> list[ServedTarget]:
        with self._lock:
            return list(self._targets.values())

    def tenants(self) -> list[str]:
        return sorted({ch.split("@", 1)[1] for ch in self.store.channels() if "@" in ch})

    def warm(self, progress: Callable[[str], None] | None = None) -> None:
        """Load the release live on every channel without a tenant (tenant channels on first use)."""
        for ch in self.store.channels():
            if "@" in ch:
                continue
            rid, flags = self._state(ch)
            if rid is None:
                continue
            if progress is not None:
                progress(ch)
            self._target(rid, ch, flags, ch).guardrails.warm()
        self.hub.warm()

    def close(self) -> None:
        self.hub.close()

    # ------------------------------------------------------------ targets

    def _target(self, release_id: str, channel: str, flags: dict[str, str], served_as: str,
                arm: str | None = None) -> ServedTarget:
        key = (release_id, tuple(sorted(flags.items())))
        view_key = (*key, channel, served_as, arm)
        with self._lock:
            view = self._views.get(view_key)
            if view is not None:
                return view
            base = self._targets.get(key)
            if base is None:
                base = self._build(release_id, flags)
                self._targets[key] = base
            view = replace(base, name=served_as, channel=channel, arm=arm)
            if len(self._views) > 1024:
                self._views.clear()
            self._views[view_key] = view
            return view

    def _build(self, release_id: str, flags: dict[str, str]) -> ServedTarget:
        from rung.ops.releases import apply_flags

        rel = self.store.load_release(release_id)
        cfg = self._release_config(rel)
        cand = apply_flags(cfg.candidates[rel.candidate], flags)
        return build_target(cfg, rel.candidate, self.hub, self.injection, release=rel.id, candidate=cand,
                            defaults_from=self.config)

    def _release_config(self, rel: Any) -> RungConfig:
        """The release's own rung.yaml and files, materialized once under .rung/serving/<id>/."""
        if rel.id in self._configs:
            return self._configs[rel.id]
        from rung.config import load_config
        from rung.ops.releases import materialize

        folder = self.folder / rel.id
        if not (folder / "rung.yaml").is_file():
            tmp = self.folder / f".{rel.id}.{threading.get_ident()}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            materialize(self.store, rel, tmp)
            try:
                tmp.rename(folder)
            except OSError:  # another worker won the race: theirs is the same content
                shutil.rmtree(tmp, ignore_errors=True)
        cfg = load_config(folder / "rung.yaml")
        self._configs[rel.id] = cfg
        return cfg


def has_live_release(store: Any, channel: str) -> bool:
    return store.state(channel).release_id is not None or any(
        c.startswith(channel + "@") and store.state(c).release_id for c in store.channels())


def open_release_store(config: RungConfig) -> Any:
    from rung.ops.releases import ReleaseStore

    return ReleaseStore.for_config(config)

