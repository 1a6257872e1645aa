"""A tuning job: what to train (method, base model, dataset version, hyperparameters, seed) and
where its files go. The job id is derived from all of it, so the same request names the same job
folder (which is what makes `--resume` find it) and any change makes a new one.

A job is plain data, written as `job.json` into its folder: `rung.tune.worker job.json` runs it in
another process (e.g. under `accelerate launch`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rung.config import TrainConfig, paths
from rung.errors import ConfigError

Method = Literal["lora", "prefix", "full"]
METHODS: tuple[str, ...] = ("lora", "prefix", "full")
DEFAULT_LR = {"lora": 2e-4, "prefix": 1e-2, "full": 5e-5}
LEVEL = {"lora": 1, "prefix": 1, "full": 2}


@dataclass
class BaseModelSpec:
    """The base model as rung.yaml names it (resolved with rung.models.embedded.resolve_llm)."""

    name: str  # the key in `models`
    path: str  # embedded:..., a folder, a .gguf file or a hub id
    root: str  # the folder relative paths are taken from
    gguf_file: str | None = None


@dataclass
class TuneJob:
    """Everything that decides a training run's result, plus where it runs and is written."""

    method: Method
    base: BaseModelSpec
    dataset_path: str  # the dataset folder (holding examples.jsonl)
    dataset_version: str
    train: TrainConfig
    system_prompt: str = ""  # the candidate's: prepended to examples that have no system message
    candidate: str | None = None
    config_path: str | None = None  # rung.yaml, for the eval suite's scorers
    artifacts_root: str = paths.ARTIFACTS
    max_steps: int | None = None  # overrides train.max_steps
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"tune method {self.method!r}: expected one of {', '.join(METHODS)}")
        if self.method == "prefix" and self.train.packing:
            raise ConfigError("tune.train.packing: prefix tuning cannot pack examples (the virtual "
                              "tokens would be shared by unrelated examples); set packing: false")
        if self.train.eval_metric not in ("token_f1", "eval_loss") and not self.train.eval_suite:
            raise ConfigError(f"tune.train.eval_metric: {self.train.eval_metric!r} needs tune.train.eval_suite "
                              f"(a suite whose scorers measure it); without one use token_f1 or eval_loss")

    @property
    def learning_rate(self) -> float:
        return self.train.learning_rate or DEFAULT_LR[self.method]

    @property
    def level(self) -> int:
        return LEVEL[self.method]

    def hyperparameters(self) -> dict[str, Any]:
        """The settings that change the trained weights (what the job id hashes, with the rest)."""
        hp = self.train.model_dump(exclude={"model", "method", "seed"})
        hp["learning_rate"] = self.learning_rate
        if self.max_steps is not None:
            hp["max_steps"] = self.max_steps
        if self.method != "lora":
            for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_targets"):
                hp.pop(k)
        if self.method != "prefix":
            hp.pop("prefix_tokens")
        return hp

    @property
    def id(self) -> str:
        """<method>-<dataset version>-<hash of base, hyperparameters, seed, system prompt>."""
        key = json.dumps({"base": self.base.path, "gguf": self.base.gguf_file, "hp": self.hyperparameters(),
                          "seed": self.train.seed, "system": self.system_prompt,
                          "dataset": self.dataset_version}, sort_keys=True)
        return f"{self.method}-{self.dataset_version[:8]}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"

    @property
    def folder(self) -> Path:
        return Path(self.artifacts_root) / self.id

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.model_dump()
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TuneJob:
        d = dict(d)
        d["base"] = BaseModelSpec(**d["base"])
        d["train"] = TrainConfig.model_validate(d["train"])
        return TuneJob(**d)

    def save(self, path: Path | None = None) -> Path:
        """Write job.json (into the job folder by default); returns its path."""
        path = path or self.folder / "job.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return path

    @staticmethod
    def load(path: str | Path) -> TuneJob:
        p = Path(path)
        try:
            return TuneJob.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"{p}: not a tuning job file ({e})") from None
