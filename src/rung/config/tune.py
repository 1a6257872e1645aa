"""`tune:`: how training sets are built (`data`) and how adapters or weights are trained (`train`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rung.config.base import _Strict


class DataChecksConfig(_Strict):
    """Thresholds and severities of the dataset checks (rung.tune.data.checks)."""

    near_duplicate_threshold: float = Field(0.9, gt=0, le=1)  # TF-IDF cosine of two examples' text
    near_duplicates: Literal["error", "warning"] = "warning"
    leakage_threshold: float = Field(0.6, gt=0, le=1)  # TF-IDF cosine of a prompt and an eval case's
    # suites to check leakage against (None: every suite except one whose path is tune.data.train)
    leakage_suites: list[str] | None = None
    min_counter_fraction: float = Field(0.05, ge=0, le=1)  # share of label "counter" expected
    counter_examples: Literal["error", "warning"] = "warning"


class BalanceConfig(_Strict):
    """How `rung data build` rebalances the examples (downsampling only, deterministic with `seed`)."""

    long_words: int = Field(120, ge=1)  # an example with more words (prompt + target) is "long"
    long_fraction: float | None = Field(None, ge=0, le=1)  # target share of long examples
    counter_fraction: float | None = Field(None, ge=0, le=1)  # target share of label "counter"
    # tag quotas: "product:" (a prefix: every value) or "product:router" (one tag) -> the most
    # examples to keep, or "equal" (every value of the prefix capped at the smallest one's count)
    tags: dict[str, int | Literal["equal"]] = Field(default_factory=dict)
    max_examples: int | None = Field(None, ge=1)


class DatasetConfig(_Strict):
    """How `rung data build` assembles a training set (rung.tune.data)."""

    train: str | None = None  # train cases, same format as a suite (JSONL / YAML)
    files: list[str] = Field(default_factory=list)  # chat JSONL, prompt/completion JSONL, HF datasets on disk
    runs: list[str] = Field(default_factory=list)  # run ids whose scored answers become examples
    negatives: list[str] = Field(default_factory=list)  # hard-negative generators to apply
    # hard negatives (rung.tune.negatives): variants per parent, share of eligible parents used,
    # long_context's prompt length (approx. tokens), multilingual's languages and translator model
    negatives_per_example: int = Field(1, ge=1, le=10)
    negatives_fraction: float = Field(1.0, gt=0, le=1)
    long_context_tokens: int = Field(2000, ge=64)
    languages: list[str] = Field(default_factory=lambda: ["es", "fr", "de"])
    translator: str | None = None  # a name in `models`; None: curated templates (refusals only)
    product_version: str = ""
    policy_version: str = ""
    annotator: str = ""
    seed: int = 0
    # the target of a should_refuse case (or trace) that has no reference
    refusal_target: str = "I'm sorry, I can't help with that."
    checks: DataChecksConfig = Field(default_factory=DataChecksConfig)
    balance: BalanceConfig = Field(default_factory=BalanceConfig)


class TrainConfig(_Strict):
    """Defaults of `rung tune` (rung.tune.train); command-line flags override them.

    The defaults suit the 135M embedded model on a small CPU (docs/tuning.md has the numbers)."""

    method: Literal["lora", "prefix", "full"] = "lora"
    model: str = "default"  # a name in `models` (a local backend): the base model
    seed: int = 0
    # schedule
    max_steps: int | None = Field(None, ge=1)  # None: `epochs` passes over the train split
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    learning_rate: float | None = Field(None, gt=0)  # None: lora 2e-4, prefix 1e-2, full 5e-5
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    bf16: Literal["auto", "on", "off"] = "auto"  # autocast; auto: on for GPUs and bf16 CPUs
    # sequences
    max_seq_len: int = Field(512, ge=16)
    packing: bool = False  # concatenate examples into max_seq_len blocks (not for prefix)
    # methods
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: list[str] | Literal["all-linear"] = "all-linear"
    prefix_tokens: int = Field(16, ge=1)  # prefix tuning: virtual tokens
    # evaluation during training (on a held-out dev split of the dataset)
    dev_size: int = Field(8, ge=0)  # 0: no dev split, no evaluation, the last step is kept
    eval_every: int = Field(50, ge=1)
    eval_max_new_tokens: int = Field(96, ge=1)
    eval_metric: str = "token_f1"  # token_f1 | eval_loss | a score name of eval_suite's scorers
    eval_suite: str | None = None  # a suite in `suites` whose scorers score the dev answers
    patience: int = Field(3, ge=0)  # stop after N evaluations without improvement (0: never)
    # checkpoints
    save_every: int = Field(50, ge=1)
    keep_checkpoints: int = Field(2, ge=1)


class TuneConfig(_Strict):
    data: DatasetConfig = Field(default_factory=DatasetConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
