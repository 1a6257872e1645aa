"""Pipelines share models (rung.models.pool): every pipeline on one base gets the same model
object, loaded once, with every pipeline's adapters resident on it; building a pipeline loads
nothing; `climb` leaves the caller's config alone."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from rung.config import load_config
from rung.models.local import LocalModel
from rung.models.pool import ModelPool, model_key, model_pool
from rung.pipeline.pipeline import build_pipeline


def _endpoint_project(root: Path, stub, tenants: int = 10) -> Path:
    cands = "".join(f"  tenant-{i}:\n    system_prompt: You answer for tenant {i}.\n"
                    for i in range(tenants))
    root.mkdir(parents=True, exist_ok=True)
    (root / "rung.yaml").write_text(f"""
project: pool
models:
  default: {{backend: openai, base_url: {stub.url}, model: stub-model, max_retries: 0}}
candidates:
{cands}""")
    return root / "rung.yaml"


def _local_project(root: Path, adapters: dict[str, str]) -> Path:
    """A project on a local HF folder (config + tokenizer files only: nothing here loads it)."""
    weights = root.parent / "weights"
    weights.mkdir(exist_ok=True)
    (weights / "config.json").write_text(json.dumps({"model_type": "llama"}))
    root.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"      {name}: {path}\n" for name, path in adapters.items())
    cands = "".join(f"  with-{name}:\n    adapter: {name}\n" for name in adapters)
    (root / "rung.yaml").write_text(f"""
project: pool-local
models:
  default:
    backend: local
    path: {weights}
    adapters:
{lines or "      {}"}
candidates:
  base: {{system_prompt: hello}}
{cands}""")
    return root / "rung.yaml"


@pytest.fixture
def pool(monkeypatch) -> ModelPool:
    """A fresh process pool for the test (the module's pool is what build_pipeline uses)."""
    fresh = ModelPool()
    monkeypatch.setattr("rung.models.pool._POOL", fresh)
    return fresh


def test_ten_tenants_on_one_base_cost_one_load(tmp_path: Path, stub, pool: ModelPool) -> None:
    cfg = load_config(_endpoint_project(tmp_path, stub))
    pipes = [build_pipeline(cfg, name, use_cache=False) for name in cfg.candidates]
    assert len(pipes) == 10 and pool.loads == 1 and len(pool) == 1
    assert all(p.model is pipes[0].model for p in pipes)
    # another project on the same endpoint shares it too; behind the response cache as well
    other = load_config(_endpoint_project(tmp_path / "other", stub, tenants=2))
    cached = build_pipeline(other, "tenant-1")
    assert cached.model.inner is pipes[0].model and pool.loads == 1
    assert [a.text for a in pipes[3].answer_batch([_req("hi")])][0].startswith("echo: hi")


def test_local_pipelines_share_one_base_with_all_their_adapters(tmp_path: Path, pool: ModelPool,
                                                                monkeypatch) -> None:
    for name in ("a", "b", "a2"):
        _fake_adapter(tmp_path / name)
    loads: list[LocalModel] = []

    def fake_load(self: LocalModel) -> None:  # stands for reading the weights
        loads.append(self)
        self._model = object()

    monkeypatch.setattr(LocalModel, "_load", fake_load)
    cfg_a = load_config(_local_project(tmp_path / "pa", {"a": str(tmp_path / "a")}))
    cfg_b = load_config(_local_project(tmp_path / "pb", {"b": str(tmp_path / "b")}))
    base = build_pipeline(cfg_a, "base", use_cache=False)
    with_a = build_pipeline(cfg_a, "with-a", use_cache=False)
    with_b = build_pipeline(cfg_b, "with-b", use_cache=False)
    assert not loads  # building pipelines loads nothing
    assert base.model is with_a.model is with_b.model and pool.loads == 1
    assert sorted(base.model.adapters()) == ["a", "b"]
    for p in (base, with_a, with_b):
        p.model.load()
    assert len(loads) == 1
    assert with_a.hash != with_b.hash != base.hash  # identity still per candidate

    # one adapter name, two folders: another model, not a silent swap
    cfg_c = load_config(_local_project(tmp_path / "pc", {"a": str(tmp_path / "a2")}))
    other = build_pipeline(cfg_c, "with-a", use_cache=False)
    assert other.model is not base.model and pool.loads == 2


def test_a_model_lives_while_used_or_held(tmp_path: Path, stub, pool: ModelPool) -> None:
    cfg = load_config(_endpoint_project(tmp_path, stub, tenants=2))
    build_pipeline(cfg, "tenant-0", use_cache=False)
    gc.collect()
    assert len(pool) == 0  # nobody uses it: freed
    build_pipeline(cfg, "tenant-0", use_cache=False)
    assert pool.loads == 2
    with pool.hold():  # one pipeline after another (the ladder's steps) share the base
        first = id(build_pipeline(cfg, "tenant-0", use_cache=False).model)
        gc.collect()
        assert id(build_pipeline(cfg, "tenant-1", use_cache=False).model) == first
    assert pool.loads == 3


def test_the_pool_key_is_the_weights_not_the_name(tmp_path: Path) -> None:
    cfg = load_config(_local_project(tmp_path / "p", {}))
    m = cfg.models["default"]
    twin = m.model_copy(update={"adapters": {"x": "anywhere"}})
    assert model_key(m, cfg.root) == model_key(twin, tmp_path)  # adapters are not in the key
    assert model_key(m, cfg.root) != model_key(m.model_copy(update={"dtype": "float32"}), cfg.root)
    assert model_pool() is model_pool()


def test_climb_returns_a_new_config_and_leaves_the_callers_alone(tmp_path: Path, stub) -> None:
    from rung.evals.store import RunStore
    from rung.ladder import climb

    (tmp_path / "cases.jsonl").write_text(json.dumps({"id": "q", "input": "hi", "reference": "hi"}) + "\n")
    path = _endpoint_project(tmp_path, stub, tenants=2)
    path.write_text(path.read_text() + "suites:\n  main: {path: cases.jsonl, scorers: [contains]}\n")
    cfg = load_config(path)
    before = cfg.model_dump()
    result = climb(cfg, RunStore(tmp_path / "runs.db"))
    assert result.config is not None and result.config is not cfg
    assert result.config.candidates is not cfg.candidates and result.config.models is not cfg.models
    assert cfg.model_dump() == before


def _fake_adapter(folder: Path) -> None:
    """What the fingerprint reads of a PEFT adapter folder (never loaded here)."""
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "folder": folder.name}))
    (folder / "adapter_model.safetensors").write_bytes(folder.name.encode())


def _req(text: str):
    from rung.core import Request

    return Request(id="r", input=text)
