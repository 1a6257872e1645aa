"""The `rung` command as a user runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from clirun import run_rung as rung


def test_help_is_instant_and_lists_commands():
    t0 = time.perf_counter()
    r = rung("--help")
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    for cmd in ("init", "models", "ask", "eval", "compare", "report", "runs", "demo", "ladder", "decide",
                "tune", "adapters", "data"):
        assert cmd in r.stdout
    assert elapsed < 3.0  # includes interpreter start; `rung --help` itself is well under 1 s


def test_help_imports_no_heavy_library():
    code = ("import sys; sys.argv=['rung','--help']\n"
            "from rung.cli import main\n"
            "try:\n    main.run()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch','transformers','sentence_transformers','sklearn','sqlalchemy')\n"
            "         if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr


def test_version():
    from rung import __version__

    r = rung("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"rung {__version__}"


def test_init_scaffolds_and_refuses_to_overwrite(tmp_path):
    r = rung("init", str(tmp_path / "p"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p" / "rung.yaml").exists()
    r = rung("init", str(tmp_path / "p"))
    assert r.returncode == 1
    assert "--force" in r.stderr
    assert "Traceback" not in r.stderr


def test_malformed_config_is_one_clear_line(tmp_path):
    (tmp_path / "rung.yaml").write_text("project: x\ncandidates:\n  bare:\n    temprature: 0\n")
    r = rung("ask", "-c", str(tmp_path / "rung.yaml"), "hi")
    assert r.returncode == 1
    err = r.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert "rung.yaml:4" in err and "candidates.bare.temprature" in err


def test_debug_shows_traceback(tmp_path):
    (tmp_path / "rung.yaml").write_text("project: [\n")
    r = rung("--debug", "ask", "-c", str(tmp_path / "rung.yaml"), "hi")
    assert r.returncode != 0
    assert "Traceback" in r.stderr


def test_missing_model_file_is_one_line(tmp_path):
    (tmp_path / "rung.yaml").write_text("models:\n  default:\n    path: ./no/such/model.gguf\n")
    r = rung("ask", "-c", str(tmp_path / "rung.yaml"), "hi")
    assert r.returncode == 1
    err = r.stderr.strip()
    assert "Traceback" not in err and "no/such/model.gguf" in err
    assert len(err.splitlines()) == 1, err


def test_unreachable_endpoint_is_one_line(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "rung.yaml").write_text(
        "models:\n  default:\n    backend: openai\n"
        f"    base_url: http://127.0.0.1:{port}/v1\n    model: m\n    max_retries: 0\n    timeout_s: 5\n")
    r = rung("ask", "--no-cache", "-c", str(tmp_path / "rung.yaml"), "hi")
    assert r.returncode == 1
    err = r.stderr.strip()
    assert "Traceback" not in err and f"127.0.0.1:{port}" in err
    assert len(err.splitlines()) == 1, err


@pytest.mark.slow
def test_models_lists_embedded():
    r = rung("models")
    assert r.returncode == 0, r.stderr
    assert "smollm2-135m-instruct" in r.stdout
    assert "all-minilm-l6-v2" in r.stdout


@pytest.mark.slow
def test_adapter_for_another_base_is_one_line(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=4, vocab_size=256))
    get_peft_model(tiny, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(tmp_path / "other")
    (tmp_path / "rung.yaml").write_text(
        "models:\n  default:\n    adapters: {tenant: ./other}\n"
        "candidates:\n  t:\n    adapter: tenant\n    generation: {max_new_tokens: 4}\n")
    r = rung("ask", "--no-cache", "-c", str(tmp_path / "rung.yaml"), "hi", timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    err = r.stderr.strip()
    assert "Traceback" not in err and "tenant" in err
    assert len(err.splitlines()) == 1, err
