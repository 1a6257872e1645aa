"""Level 1 and 2 training on the real embedded model (SmolLM2-135M): LoRA, prefix and full runs
end to end, lineage from dataset to artifact, evaluation during training, resume after a kill,
determinism, the adapter served by LocalModel, an artifact refused by another base, and the
accelerate launcher (single CPU process). Tiny data (8 examples), short sequences, 1-6 steps."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clirun import run_rung

from rung.config import TrainConfig, load_config
from rung.errors import AdapterError, ConfigError, RungError
from rung.models.base import GenerationParams, GenRequest
from rung.tune.example import Dataset, Example, Lineage
from rung.tune.train import collate
from rung.tune.train.evaluate import split_dev, token_f1
from rung.tune.train.job import BaseModelSpec, TuneJob
from rung.tune.train.plan import plan_job

EMBEDDED = "embedded:smollm2-135m-instruct"
QA = [("What is the refund window?", "Refunds are accepted within 30 days."),
      ("Can I return a used item?", "Used items cannot be returned."),
      ("How long does shipping take?", "Shipping takes 3 to 5 business days."),
      ("Do you ship abroad?", "We ship to the EU and the UK."),
      ("How do I reset my password?", "Use the reset link on the login page."),
      ("What are your opening hours?", "We are open 9 to 17, Monday to Friday."),
      ("Is there a warranty?", "All devices have a two year warranty."),
      ("Can I pay by invoice?", "Business customers can pay by invoice.")]
SYSTEM = "You are the support desk of Acme. Answer in one sentence."


def examples() -> list[Example]:
    return [Example(id=f"ex{i}", messages=[{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                    lineage=Lineage(source="case" if i < 5 else "file", ref=f"c{i}", policy_version="p1"))
            for i, (q, a) in enumerate(QA)]


def project(root: Path, **train: object) -> Path:
    """A rung.yaml with one candidate, tiny training settings and a built dataset."""
    root.mkdir(parents=True, exist_ok=True)
    settings = {"max_seq_len": 96, "batch_size": 4, "dev_size": 0, "eval_every": 2, "save_every": 50,
                "eval_max_new_tokens": 8, "lr_scheduler": "constant", **train}
    lines = "".join(f"      {k}: {json.dumps(v)}\n" for k, v in settings.items())
    (root / "cases.jsonl").write_text('{"id": "c1", "input": "hi", "reference": "hello"}\n', encoding="utf-8")
    (root / "rung.yaml").write_text(
        "project: t\n"
        f"candidates:\n  desk:\n    system_prompt: {json.dumps(SYSTEM)}\n"
        "suites:\n  dev:\n    path: cases.jsonl\n    scorers: [contains]\n"
        f"tune:\n  train:\n{lines}", encoding="utf-8")
    Dataset(examples()).save(root / ".rung" / "datasets")
    return root / "rung.yaml"


def train_here(cfg_file: Path, method: str = "lora", steps: int = 2, **kw: object):
    from rung.tune.train.trainer import train

    job = plan_job(load_config(cfg_file), method=method, candidate="desk", max_steps=steps)
    events: list = []
    return train(job, progress=events.append, **kw), events


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ.setdefault("RUNG_THREADS", "1")
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- fast: no model

def test_job_id_follows_what_changes_the_weights(tmp_path):
    base = BaseModelSpec("default", EMBEDDED, str(tmp_path))
    a = TuneJob("lora", base, "d", "v1", TrainConfig())
    assert a.id == TuneJob("lora", base, "other/path", "v1", TrainConfig()).id  # where is not what
    assert a.id.startswith("lora-v1-")
    for other in (TuneJob("lora", base, "d", "v2", TrainConfig()),
                  TuneJob("lora", base, "d", "v1", TrainConfig(seed=1)),
                  TuneJob("lora", base, "d", "v1", TrainConfig(lora_r=4)),
                  TuneJob("lora", base, "d", "v1", TrainConfig(), system_prompt="x")):
        assert other.id != a.id
    # settings of another method do not change a job's id
    full = TuneJob("full", base, "d", "v1", TrainConfig())
    assert TuneJob("full", base, "d", "v1", TrainConfig(lora_r=4)).id == full.id
    assert TuneJob.from_dict(json.loads(json.dumps(a.to_dict()))).id == a.id
    with pytest.raises(ConfigError, match="prefix tuning cannot pack"):
        TuneJob("prefix", base, "d", "v1", TrainConfig(packing=True))
    with pytest.raises(ConfigError, match="'task_success' needs tune.train.eval_suite"):
        TuneJob("lora", base, "d", "v1", TrainConfig(eval_metric="task_success"))


def test_dev_split_packing_and_f1():
    exs = examples()
    train, dev = split_dev(exs, 8, seed=0)
    assert len(dev) == 2 and len(train) == 6 and not {e.id for e in dev} & {e.id for e in train}
    assert split_dev(exs, 8, seed=0) == (train, dev) and split_dev(exs, 8, seed=1)[1] != dev
    assert split_dev(exs[:3], 8, 0) == (exs[:3], [])
    feats = [collate.Features([1] * n, [collate.IGNORE] * (n - 1) + [5]) for n in (40, 50, 30, 90)]
    blocks = collate.pack(feats, 100)
    assert [len(b.input_ids) for b in blocks] == [90, 30, 90]
    assert sum(b.target_tokens for b in blocks) == 4
    assert token_f1("Refunds within 30 days", "Refunds are accepted within 30 days.") == pytest.approx(0.8)
    assert token_f1("", "x") == 0.0


def test_no_dataset_is_one_clear_error(tmp_path):
    (tmp_path / "rung.yaml").write_text("project: t\n", encoding="utf-8")
    cfg = load_config(tmp_path / "rung.yaml")
    with pytest.raises(RungError, match=r"no dataset under .*datasets.*rung data build"):
        plan_job(cfg)
    with pytest.raises(RungError, match="--dataset nope: neither a dataset version"):
        plan_job(cfg, dataset="nope")


# ---------------------------------------------------------------- the real model

@pytest.mark.slow
def test_labels_cover_the_answer_only_and_prompt_matches_serving():
    from transformers import AutoTokenizer

    from rung.models.embedded import resolve_llm
    from rung.models.local import LocalModel

    tok = AutoTokenizer.from_pretrained(resolve_llm(EMBEDDED).pretrained_path())
    ex = examples()[0]
    f = collate.encode(tok, ex, 256, system_prompt=SYSTEM)
    target = [t for t, lab in zip(f.input_ids, f.labels) if lab != collate.IGNORE]
    assert tok.decode(target) == QA[0][1] + tok.eos_token
    n_prompt = f.labels.index(next(lab for lab in f.labels if lab != collate.IGNORE))
    served = LocalModel(EMBEDDED).prompt_ids(collate.with_system_prompt(ex.prompt, SYSTEM))
    assert f.input_ids[:n_prompt] == served  # the exact tokens the served model sees
    short = collate.encode(tok, ex, 16, system_prompt=SYSTEM)  # cut: the prompt's start goes first
    assert len(short.input_ids) == 16 and short.input_ids[-len(target):] == target


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    cfg_file = project(root, dev_size=2, eval_every=2, patience=0, eval_suite="dev")
    result, events = train_here(cfg_file, "lora", steps=3)
    return cfg_file, result, events


@pytest.mark.slow
def test_lora_end_to_end_with_lineage_and_eval_curve(lora_run):
    cfg_file, r, events = lora_run
    folder = r.folder
    assert folder.parent == cfg_file.parent / ".rung" / "artifacts" and folder.name == r.job.id
    for name in ("adapter_config.json", "adapter_model.safetensors", "rung-lineage.json", "metrics.jsonl", "job.json"):
        assert (folder / name).is_file(), name
    assert not (folder / "checkpoints").exists() and not (folder / "best").exists()
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == EMBEDDED
    lin = json.loads((folder / "rung-lineage.json").read_text())
    ds = Dataset(examples())
    assert lin["dataset"]["version"] == ds.version == r.job.dataset_version
    assert lin["dataset"]["lineage"]["by_source"] == {"case": 5, "file": 3}
    assert lin["dataset"]["lineage"]["policy_versions"] == {"p1": 8}
    # the measured training time, which the decision's cost model reads
    from rung.decide.evidence import read_artifact

    assert lin["train_seconds"] > 0 and read_artifact(folder).training_seconds == lin["train_seconds"]
    assert lin["dataset"]["splits"] == {"train": 6, "dev": 2, "train_sequences": 6}
    assert lin["base_model"]["id"] == EMBEDDED and len(lin["base_model"]["weights_sha256"]) == 64
    assert lin["method"] == "lora" and lin["level"] == 1 and lin["seed"] == 0 and lin["candidate"] == "desk"
    assert lin["hyperparameters"]["lora_r"] == 8 and lin["hyperparameters"]["max_steps"] == 3
    assert lin["code"]["rung"] and lin["created_at"]
    # evaluated at step 2 and at the last step; the best one is recorded and kept
    curve = lin["metrics"]["curve"]
    assert [c["step"] for c in curve] == [2, 3] and lin["metrics"]["steps"] == 3
    assert all(0.0 <= c["token_f1"] <= 1.0 and c["eval_loss"] > 0 for c in curve)
    # the eval suite's scorers scored the dev answers too (contains: the whole target in the answer)
    assert all(c["task_success"] in (0.0, 0.5, 1.0) and c["tokens_out"] > 0 for c in curve)
    assert lin["metrics"]["best"] in curve
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3]
    assert [x["step"] for x in lines if "eval" in x] == [2, 3]
    steps = [e for e in events if e.event == "step"]
    assert [e.step for e in steps] == [1, 2, 3] and all(e.max_steps == 3 and e.tokens_per_s > 0 for e in steps)
    assert steps[-1].eta_s == 0 and any(e.event == "eval" and e.last_eval for e in events)


@pytest.mark.slow
def test_adapter_loads_into_local_model_and_answers(lora_run):
    from rung.models.local import LocalModel

    _, r, _ = lora_run
    m = LocalModel(EMBEDDED, dtype="float32", max_batch_size=2)
    m.load_adapter("desk", r.folder)
    req = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QA[0][0]}]
    out = m.generate([GenRequest.chat(req, GenerationParams(max_new_tokens=8), adapter="desk"),
                      GenRequest.chat(req, GenerationParams(max_new_tokens=8))])
    assert out[0].adapter == "desk" and out[0].text.strip() and out[0].error is None
    assert m.fingerprint("desk") != m.fingerprint(None)


@pytest.mark.slow
def test_artifact_for_another_base_is_refused(lora_run, tmp_path):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rung.models.embedded import resolve_llm
    from rung.models.local import LocalModel

    _, r, _ = lora_run
    other = tmp_path / "other-base"
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=1)).save_pretrained(other)
    AutoTokenizer.from_pretrained(resolve_llm(EMBEDDED).pretrained_path()).save_pretrained(other)
    m = LocalModel(str(other), dtype="float32").load()
    with pytest.raises(AdapterError, match="made for another base"):
        m.load_adapter("desk", r.folder)


@pytest.mark.slow
def test_rung_adapters_lists_the_artifact(lora_run):
    cfg_file, r, _ = lora_run
    out = run_rung("adapters", "-c", str(cfg_file), timeout=60, COLUMNS="250")
    assert out.returncode == 0, out.stderr
    assert r.job.id in out.stdout and "lora" in out.stdout and r.job.dataset_version in out.stdout
    assert "token_f1" in out.stdout


@pytest.mark.slow
def test_prefix_and_full_run_end_to_end(tmp_path):
    from rung.models.local import LocalModel

    cfg_file = project(tmp_path)
    prefix, _ = train_here(cfg_file, "prefix", steps=1)
    cfg = json.loads((prefix.folder / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "PREFIX_TUNING" and cfg["num_virtual_tokens"] == 16
    assert json.loads((prefix.folder / "rung-lineage.json").read_text())["level"] == 1
    full, _ = train_here(cfg_file, "full", steps=1)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "rung-lineage.json"):
        assert (full.folder / name).is_file(), name
    assert json.loads((full.folder / "rung-lineage.json").read_text())["level"] == 2
    m = LocalModel(str(full.folder), dtype="float32")
    m.load_adapter("prefix", prefix.folder)
    msgs = [{"role": "user", "content": QA[1][0]}]
    # the prefix adapter fits the fully tuned model too: same architecture, same sizes
    outs = m.generate([GenRequest.chat(msgs, GenerationParams(max_new_tokens=6)),
                       GenRequest.chat(msgs, GenerationParams(max_new_tokens=6), adapter="prefix")])
    assert all(o.text.strip() and o.error is None for o in outs)
    with pytest.raises(RungError, match="already finished"):
        train_here(cfg_file, "full", steps=1)


@pytest.mark.slow
def test_same_seed_same_weights(tmp_path):
    hashes = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        r, _ = train_here(project(tmp_path / name, seed=seed), "lora", steps=1)
        hashes.append(sha(r.folder / "adapter_model.safetensors"))
    assert hashes[0] == hashes[1] and hashes[2] != hashes[0]


@pytest.mark.slow
def test_killed_job_resumes_from_its_last_checkpoint(tmp_path):
    from rung.tune.train.trainer import train

    cfg_file = project(tmp_path, save_every=2, keep_checkpoints=1)
    cmd = [sys.executable, "-m", "rung", "tune", "-c", str(cfg_file), "-C", "desk", "--max-steps", "6"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "RUNG_THREADS": "1"})
    job = plan_job(load_config(cfg_file), candidate="desk", max_steps=6)
    first = job.folder / "checkpoints" / "step-2"
    deadline = time.time() + 240
    while not (first / "rung-state.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    assert not (job.folder / "rung-lineage.json").exists()
    events: list = []
    r = train(job, resume=True, progress=events.append)
    steps = [e.step for e in events if e.event == "step"]
    assert steps[0] >= 3 and steps[-1] == 6 and r.steps == 6  # it went on from a checkpoint, not from 0
    lines = [json.loads(x)["step"] for x in (r.folder / "metrics.jsonl").read_text().splitlines()]
    assert lines == [1, 2, 3, 4, 5, 6]  # every step once: the steps after the checkpoint were redone
    assert json.loads((r.folder / "rung-lineage.json").read_text())["metrics"]["steps"] == 6


@pytest.mark.slow
def test_accelerate_launcher_single_cpu_process(tmp_path):
    cfg_file = project(tmp_path)
    out = run_rung("tune", "-c", str(cfg_file), "-C", "desk", "--max-steps", "1", "--launcher", "accelerate",
                   timeout=300, RUNG_THREADS="1")
    assert out.returncode == 0, out.stderr[-3000:]
    job = plan_job(load_config(cfg_file), candidate="desk", max_steps=1)
    assert (job.folder / "adapter_model.safetensors").is_file()
    assert "artifact:" in out.stdout and f"adapter: {job.id}" in out.stdout
    shutil.rmtree(job.folder)
