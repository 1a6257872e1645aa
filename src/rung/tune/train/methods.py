"""The three tuning methods over a loaded base model, and loading that base.

- lora: PEFT LoraConfig (r, alpha, dropout, target modules; "all-linear" adapts every linear
  layer but the output head), level 1.
- prefix: PEFT PrefixTuningConfig (virtual tokens prepended to every layer's keys and values),
  level 1. The base stays untouched.
- full: every weight is trained, level 2.

The base is loaded the way the local backend loads it (rung.models.embedded.resolve_llm: a GGUF
file, the embedded model included, is converted once into a cached HF folder), in float32: the
optimizer keeps float32 master weights and bf16 autocast does the arithmetic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rung.errors import ModelError
from rung.models.embedded import ResolvedModel, quiet_loading, resolve_llm
from rung.tune.train.job import TuneJob


def resolve_base(job: TuneJob) -> ResolvedModel:
    return resolve_llm(job.base.path, Path(job.base.root), job.base.gguf_file)


def load_base(job: TuneJob) -> tuple[Any, Any, ResolvedModel]:
    """(model in float32, tokenizer, resolved base) for the job's base model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_base(job)
    source = resolved.pretrained_path()
    try:
        with quiet_loading():
            tok = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"base model {job.base.path}: could not be loaded for training: {first}") from e
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.config.use_cache = False  # training: no KV cache
    return model, tok, resolved


def peft_config(job: TuneJob) -> Any:
    """The PEFT config of a lora / prefix job (None for full)."""
    from peft import LoraConfig, PrefixTuningConfig, TaskType

    t = job.train
    if job.method == "lora":
        targets = t.lora_targets if t.lora_targets == "all-linear" else list(t.lora_targets)
        return LoraConfig(task_type=TaskType.CAUSAL_LM, r=t.lora_r, lora_alpha=t.lora_alpha,
                          lora_dropout=t.lora_dropout, target_modules=targets,
                          base_model_name_or_path=job.base.path)
    if job.method == "prefix":
        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=t.prefix_tokens,
                                  base_model_name_or_path=job.base.path)
    return None


def prepare(model: Any, job: TuneJob) -> Any:
    """The trainable module: a PeftModel (lora, prefix; only the adapter trains) or the model."""
    cfg = peft_config(job)
    if cfg is None:
        model.train()
        return model
    from peft import get_peft_model

    peft_model = get_peft_model(model, cfg)
    # PEFT writes the folder it loaded from; the artifact names the base as rung.yaml does
    peft_model.peft_config["default"].base_model_name_or_path = job.base.path
    peft_model.train()
    return peft_model


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
