"""rung.yaml validation: errors name the file, the line, the key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from rung.config import load_config
from rung.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rung.yaml"
    p.write_text(text)
    return p


def test_minimal_file_gets_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "project: demo\n"))
    assert cfg.project == "demo"
    assert cfg.models["default"].backend == "local"
    assert cfg.root == tmp_path.resolve()
    assert cfg.resolve("cases.jsonl") == tmp_path.resolve() / "cases.jsonl"


def test_folder_is_accepted(tmp_path):
    write(tmp_path, "project: demo\n")
    assert load_config(tmp_path).project == "demo"


def test_unknown_key_says_did_you_mean_with_line(tmp_path):
    p = write(tmp_path, "project: x\ncandidates:\n  bare:\n    modle: default\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert f"{p}:4" in msg
    assert "candidates.bare.modle" in msg
    assert "did you mean 'model'" in msg


def test_unknown_top_level_key(tmp_path):
    p = write(tmp_path, "project: x\ncandiates: {}\n")
    with pytest.raises(ConfigError, match="did you mean 'candidates'"):
        load_config(p)


def test_wrong_type_names_key_and_value(tmp_path):
    p = write(tmp_path, "models:\n  default:\n    max_batch_size: lots\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert f"{p}:3: models.default.max_batch_size" in msg
    assert "'lots'" in msg


def test_candidate_must_name_existing_model(tmp_path):
    p = write(tmp_path, "candidates:\n  a:\n    model: defualt\n")
    with pytest.raises(ConfigError, match="did you mean 'default'"):
        load_config(p)


def test_openai_backend_needs_base_url(tmp_path):
    p = write(tmp_path, "models:\n  r:\n    backend: openai\n    model: m\n")
    with pytest.raises(ConfigError, match="base_url"):
        load_config(p)


def test_yaml_syntax_error_has_line(tmp_path):
    p = write(tmp_path, "project: x\nmodels: [\n  oops\n")
    with pytest.raises(ConfigError, match=r"rung.yaml:\d+: not valid YAML"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_candidate_lookup(tmp_path):
    cfg = load_config(write(tmp_path, "candidates:\n  bare: {}\n  rag: {}\n"))
    assert cfg.candidate("bare")[0] == "bare"
    with pytest.raises(ConfigError, match="several candidates"):
        cfg.candidate(None)
    with pytest.raises(ConfigError, match="did you mean 'rag'"):
        cfg.candidate("rga")


def test_level_follows_from_content(tmp_path):
    cfg = load_config(write(tmp_path, "models:\n  default:\n    adapters: {t1: ./a}\n"
                                      "candidates:\n  l0: {}\n  l1: {adapter: t1}\n"))
    assert cfg.candidates["l0"].effective_level == 0
    assert cfg.candidates["l1"].effective_level == 1


def test_gate_threshold_needs_a_bound(tmp_path):
    p = write(tmp_path, "gate:\n  thresholds:\n    task_success: {}\n")
    with pytest.raises(ConfigError, match="min or max"):
        load_config(p)


def test_scaffolded_project_is_valid(tmp_path):
    from rung.scaffold import scaffold

    scaffold(tmp_path / "proj")
    cfg = load_config(tmp_path / "proj" / "rung.yaml")
    assert cfg.project == "proj"
    assert {"bare", "policy-prompt"} <= set(cfg.candidates)
    assert cfg.resolve(cfg.suites["eval"].path).exists()
