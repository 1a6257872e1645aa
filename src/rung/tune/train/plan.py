"""rung.yaml + command-line choices -> a TuneJob: which base, which dataset, which prompt.

- The base model is `tune.train.model` (a local model in `models`), or the candidate's model with
  `--candidate`; the candidate's system_prompt is then put in front of every example that has no
  system message, so the adapter is trained on the prompt it will be served with.
- The dataset is a version (a folder under paths.datasets), a path (a dataset folder or an
  examples.jsonl), or by default the newest folder under paths.datasets.
"""

from __future__ import annotations

from pathlib import Path

from rung.config import RungConfig
from rung.errors import ConfigError, TrainingError
from rung.tune.data.catalog import datasets_root
from rung.tune.example import Dataset
from rung.tune.train.job import BaseModelSpec, TuneJob


def artifacts_root(cfg: RungConfig) -> Path:
    return cfg.resolve(cfg.paths.artifacts)


def find_dataset(cfg: RungConfig, spec: str | None) -> Path:
    """The dataset folder (or file) for --dataset VERSION|PATH, or the newest one."""
    root = datasets_root(cfg)
    if spec:
        by_version = root / spec
        if (by_version / "examples.jsonl").is_file():
            return by_version
        p = Path(spec).expanduser()
        p = p if p.is_absolute() else Path.cwd() / p
        if (p / "examples.jsonl").is_file() or (p.is_file() and p.suffix == ".jsonl"):
            return p
        known = sorted(d.name for d in root.glob("*") if (d / "examples.jsonl").is_file()) if root.is_dir() else []
        raise TrainingError(f"--dataset {spec}: neither a dataset version under {root} nor a dataset folder or "
                        f"examples.jsonl (versions here: {', '.join(known) or 'none'})")
    found = [d for d in root.glob("*") if (d / "examples.jsonl").is_file()] if root.is_dir() else []
    if not found:
        raise TrainingError(f"no dataset under {root} (paths.datasets): build one with `rung data build -c "
                        f"{cfg.source or 'rung.yaml'}` or pass --dataset PATH")
    return max(found, key=lambda d: (d / "examples.jsonl").stat().st_mtime)


def plan_job(cfg: RungConfig, *, method: str | None = None, candidate: str | None = None,
             dataset: str | None = None, max_steps: int | None = None) -> TuneJob:
    """The job `rung tune` runs (see the module docstring)."""
    train = cfg.tune.train
    system_prompt = ""
    model_name = train.model
    if candidate is not None:
        _, cand = cfg.candidate(candidate)
        model_name, system_prompt = cand.model, cand.system_prompt
    if model_name not in cfg.models:
        raise ConfigError(f"{cfg.source}: tune.train.model: no model named {model_name!r}; "
                          f"models are {', '.join(cfg.models)}")
    m = cfg.models[model_name]
    if m.backend != "local":
        raise ConfigError(f"{cfg.source}: models.{model_name}: tuning needs a local model (backend: local); "
                          f"this one is an endpoint ({m.base_url})")
    path = find_dataset(cfg, dataset)
    version = Dataset.load(path).version
    return TuneJob(method=method or train.method,  # type: ignore[arg-type]
                   base=BaseModelSpec(model_name, m.path, str(cfg.root), m.gguf_file),
                   dataset_path=str(path.resolve()), dataset_version=version, train=train,
                   system_prompt=system_prompt, candidate=candidate,
                   config_path=str(cfg.source.resolve()) if cfg.source else None,
                   artifacts_root=str(artifacts_root(cfg).resolve()), max_steps=max_steps)
