"""What a finished job leaves in `<paths.artifacts>/<job id>/`, and reading it back.

- lora / prefix: the adapter in PEFT format (adapter_config.json + adapter_model.safetensors),
  loadable by LocalModel.load_adapter, PEFT, vLLM (`--lora-modules`) and LoRAX;
- full: the weights in safetensors + config.json + the tokenizer (a Hugging Face model folder);
- rung-lineage.json: base model id and weights hash, dataset version, path and lineage counts,
  method and hyperparameters, seed, metrics (the curve and the best evaluation), code version
  (rung version + git commit), created_at;
- metrics.jsonl (one line per step and per evaluation) and job.json;
- merged/ with `--merge` (lora only): the base with the adapter folded in, for latency
  comparisons and for servers without adapter support.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rung.errors import ArtifactError, RungError
from rung.tune.example import Dataset
from rung.tune.train.job import TuneJob

LINEAGE_FILE = "rung-lineage.json"
WEIGHT_FILES = ("adapter_config.json", "adapter_model.safetensors", "model.safetensors")


def save_weights(accelerator: Any, model: Any, tok: Any, job: TuneJob, folder: Path) -> None:
    """The trainable weights (adapter, or full model + tokenizer) into `folder` (safetensors).
    Every process calls it (gathering sharded FSDP / ZeRO-3 weights is collective); the main
    process writes."""
    state = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return
    folder.mkdir(parents=True, exist_ok=True)
    accelerator.unwrap_model(model).save_pretrained(str(folder), state_dict=state, safe_serialization=True)
    if job.method == "full":
        tok.save_pretrained(str(folder))


def install_weights(source: Path, folder: Path) -> None:
    """Move the files of a saved-weights folder (best/) to the artifact folder's top level."""
    for f in source.iterdir():
        if f.is_file():
            f.replace(folder / f.name)
    shutil.rmtree(source, ignore_errors=True)


def lineage_summary(dataset: Dataset) -> dict[str, Any]:
    by_source = Counter(ex.lineage.source for ex in dataset.examples)
    by_label = Counter(ex.label for ex in dataset.examples)
    products = Counter(ex.lineage.product_version for ex in dataset.examples if ex.lineage.product_version)
    policies = Counter(ex.lineage.policy_version for ex in dataset.examples if ex.lineage.policy_version)
    generators = Counter(ex.lineage.generator for ex in dataset.examples if ex.lineage.generator)
    return {"examples": len(dataset), "by_source": dict(by_source), "by_label": dict(by_label),
            "product_versions": dict(products), "policy_versions": dict(policies),
            "negative_generators": dict(generators)}


def code_version() -> dict[str, Any]:
    from rung import __version__
    from rung.evals.runner import git_commit

    return {"rung": __version__, "git_commit": git_commit(Path(__file__).resolve().parent)}


def write_lineage(folder: Path, job: TuneJob, *, base_hash: str, dataset: Dataset, splits: dict[str, int],
                  curve: list[dict[str, Any]], best: dict[str, Any] | None, steps: int,
                  stopped_early: bool, trainable: tuple[int, int], train_seconds: float) -> dict[str, Any]:
    lineage = {
        "job_id": job.id,
        "method": job.method,
        "level": job.level,
        "base_model": {"name": job.base.name, "id": job.base.path, "gguf_file": job.base.gguf_file,
                       "weights_sha256": base_hash},
        "dataset": {"version": job.dataset_version, "path": job.dataset_path, "name": dataset.name,
                    "splits": splits, "lineage": lineage_summary(dataset)},
        "candidate": job.candidate,
        "system_prompt": job.system_prompt,
        "hyperparameters": job.hyperparameters(),
        "seed": job.train.seed,
        "parameters": {"trainable": trainable[0], "total": trainable[1]},
        "train_seconds": round(train_seconds, 2),  # the training loop of this process (the decision's cost)
        "metrics": {"steps": steps, "stopped_early": stopped_early, "eval_metric": job.train.eval_metric,
                    "best": best, "curve": curve},
        "code": code_version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (folder / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, ensure_ascii=False), encoding="utf-8")
    return lineage


def merge_lora(folder: Path, job: TuneJob) -> Path:
    """The base with the LoRA adapter of `folder` merged in, saved to `folder/merged`."""
    if job.method != "lora":
        raise ArtifactError(f"--merge: only LoRA adapters can be merged into the base (this job is {job.method}"
                        f"{'; its folder already holds full weights' if job.method == 'full' else ''})")
    from peft import PeftModel

    from rung.tune.train.methods import load_base

    base, tok, _ = load_base(job)
    merged = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
    out = folder / "merged"
    merged.config.use_cache = True
    merged.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return out


# ---------------------------------------------------------------- listing

@dataclass
class ArtifactInfo:
    job_id: str
    path: Path
    method: str
    base: str
    dataset_version: str
    best_metric: str | None
    best_value: float | None
    best_step: int | None
    created_at: str
    complete: bool  # False: a job still running, killed, or never finished


def read_lineage(folder: Path) -> dict[str, Any]:
    f = folder / LINEAGE_FILE
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{f}: not a rung artifact lineage file ({e})") from None


def list_artifacts(root: Path) -> list[ArtifactInfo]:
    """Every job folder under `root`, newest first (unfinished ones from their job.json)."""
    out: list[ArtifactInfo] = []
    if not root.is_dir():
        return out
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if (d / LINEAGE_FILE).is_file():
            lin = read_lineage(d)
            best = lin.get("metrics", {}).get("best") or {}
            metric = lin.get("metrics", {}).get("eval_metric")
            out.append(ArtifactInfo(d.name, d, lin.get("method", "?"), lin.get("base_model", {}).get("id", "?"),
                                    lin.get("dataset", {}).get("version", "?"), metric if best else None,
                                    best.get(metric) if best else None, best.get("step") if best else None,
                                    lin.get("created_at", ""), True))
        elif (d / "job.json").is_file():
            try:
                job = TuneJob.load(d / "job.json")
            except RungError:
                continue
            out.append(ArtifactInfo(d.name, d, job.method, job.base.path, job.dataset_version, None, None,
                                    None, "", False))
    out.sort(key=lambda a: (a.complete, a.created_at), reverse=True)
    return out


def serving_snippet(job: TuneJob, folder: Path, root: Path) -> str:
    """The rung.yaml lines that serve a trained artifact (paths relative to `root`, the folder of
    rung.yaml, when the artifact is under it)."""
    try:
        shown = str(folder.resolve().relative_to(root.resolve()))
    except ValueError:
        shown = str(folder)
    cand = job.candidate or "tuned"
    name = job.id
    if job.method == "full":
        return (f"models:\n  {name}:\n    path: {shown}\n"
                f"candidates:\n  {cand}-{job.method}:\n    model: {name}\n    level: 2\n")
    return (f"models:\n  {job.base.name}:\n    adapters:\n      {name}: {shown}\n"
            f"candidates:\n  {cand}-{job.method}:\n    model: {job.base.name}\n    adapter: {name}\n")
