"""`rung serve` over releases: API key -> tenant -> channel (production@tenant, else production)
-> the live release, with flags and promotions taking effect while serving."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")

from gateway_support import InProcessGateway, make_key, write_project
from openai_stub import StubState, serve


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, StubState, dict]]:
    from rung.config import load_config
    from rung.ops.releases import ReleaseStore, create_release, promote

    state = StubState()
    with serve(state) as url:
        root = write_project(tmp_path_factory.mktemp("releases"), url, public="[assistant]")
        cfg = load_config(root)
        store = ReleaseStore.for_config(cfg)
        ids = {}
        for cand, channel in (("assistant", "production"), ("acme-bot", "production@acme")):
            rel = create_release(cfg, cand, store).release
            promote(store, rel.id, channel, cfg.gate, force=True, reason="test")
            ids[cand] = rel.id
        store.close()
        yield root, state, ids


def _ask(url: str, key: str, model: str = "default", text: str = "hello there"):
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def test_tenant_channel_then_base_channel(project) -> None:
    root, stub, ids = project
    acme, globex = make_key(root, "acme"), make_key(root, "globex")
    with InProcessGateway(root) as gw:
        assert type(gw.gateway.resolver).__name__ == "ReleaseResolver"
        r = _ask(gw.url, acme)
        extra = r.model_extra["rung"]
        assert extra["release"] == ids["acme-bot"] and extra["channel"] == "production@acme"
        assert extra["adapter"] == "support" and stub.requests[-1]["model"].startswith("support-")
        r = _ask(gw.url, globex)
        extra = r.model_extra["rung"]
        assert extra["release"] == ids["assistant"] and extra["channel"] == "production"
        assert stub.requests[-1]["model"] == "stub-model"
        # a channel or release of another tenant
        with pytest.raises(openai.PermissionDeniedError):
            _ask(gw.url, globex, "production@acme")
        with pytest.raises(openai.PermissionDeniedError):
            _ask(gw.url, globex, ids["acme-bot"])
        assert _ask(gw.url, acme, ids["acme-bot"][:16]).model_extra["rung"]["release"] == ids["acme-bot"]
        assert _ask(gw.url, acme, "production").model_extra["rung"]["channel"] == "production@acme"
        with pytest.raises(openai.NotFoundError):
            _ask(gw.url, acme, "staging")
        listed = {m.id for m in openai.OpenAI(base_url=f"{gw.url}/v1", api_key=globex).models.list()}
        assert listed == {"production"}


def test_flags_and_promotions_apply_while_serving(project) -> None:
    from rung.config import load_config
    from rung.ops.releases import ReleaseStore, create_release, promote, set_flag

    root, stub, ids = project
    acme = make_key(root, "acme")
    cfg = load_config(root)
    store = ReleaseStore.for_config(cfg)
    with InProcessGateway(root) as gw:
        assert _ask(gw.url, acme).model_extra["rung"]["adapter"] == "support"
        set_flag(store, "production@acme", "adapter", "off", reason="test")
        time.sleep(1.1)  # channel states are re-read at most once a second
        r = _ask(gw.url, acme)
        assert r.model_extra["rung"]["adapter"] is None and stub.requests[-1]["model"] == "stub-model"
        set_flag(store, "production@acme", "adapter", "on", reason="test")
        rel = create_release(cfg, "globex-bot", store).release
        promote(store, rel.id, "production", cfg.gate, force=True, reason="test")
        time.sleep(1.1)
        globex = make_key(root, "globex")
        r = _ask(gw.url, globex)
        assert r.model_extra["rung"]["release"] == rel.id
        row = gw.gateway.traces.get(r.model_extra["rung"]["trace_id"])
        assert row["release"] == rel.id and row["channel"] == "production" and row["candidate"] == "globex-bot"
    store.close()


def test_rollouts_canary_arm_and_shadow_copies(tmp_path: Path) -> None:
    from rung.config import load_config
    from rung.config.operations import RolloutConfig
    from rung.ops.releases import ReleaseStore, create_release, promote
    from rung.ops.rollout.machine import abort_rollout, start_rollout

    state = StubState()
    with serve(state) as url:
        root = write_project(tmp_path / "rollout", url, public="[assistant]")
        cfg = load_config(root)
        store = ReleaseStore.for_config(cfg)
        stable = create_release(cfg, "assistant", store).release
        promote(store, stable.id, "production", cfg.gate, force=True, reason="test")
        new = create_release(cfg, "globex-bot", store).release
        start_rollout(store, "production", new.id, RolloutConfig(mode="canary", steps=[100.0]))
        key = make_key(root, "acme")
        with InProcessGateway(root) as gw:
            r = _ask(gw.url, key)
            row = gw.gateway.traces.get(r.model_extra["rung"]["trace_id"])
            assert row["release"] == new.id and row["arm"] == "canary"
            abort_rollout(store, "production", reason="test")
            start_rollout(store, "production", new.id, RolloutConfig(mode="shadow", steps=[100.0]))
            time.sleep(1.1)
            r = _ask(gw.url, key, text="shadow me")
            live_id = r.model_extra["rung"]["trace_id"]
            assert r.model_extra["rung"]["release"] == stable.id
            deadline = time.monotonic() + 10
            shadows: list = []
            while not shadows and time.monotonic() < deadline:
                shadows = [t for t in gw.gateway.traces.list(limit=20)
                           if (t["request"] or {}).get("shadow_of") == live_id]
                time.sleep(0.05)
            assert shadows and shadows[0]["arm"] == "shadow" and shadows[0]["release"] == new.id
            assert gw.gateway.traces.get(live_id)["arm"] == "stable"
        store.close()
