"""Checkpoints of a running job, in `<job folder>/checkpoints/step-<N>/`.

A checkpoint is accelerate's full training state (model, optimizer, scheduler, RNG states:
`Accelerator.save_state`) plus `rung-state.json` (the step, the metric history, the best
evaluation, evaluations without improvement). It is written in a temporary folder and renamed
into place, so a job killed while saving leaves the previous checkpoint intact; only the newest
`keep` are kept.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "rung-state.json"


@dataclass
class LoopState:
    step: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)  # the evaluations so far
    best: dict[str, Any] | None = None
    bad_evals: int = 0  # evaluations since the last improvement
    tokens: int = 0


def adapter_only(accelerator: Any) -> None:
    """Checkpoints of a PEFT model hold the adapter only, not the frozen base (accelerate would
    save the whole state dict: 540 MB per checkpoint for the 135M model, far more for big ones).
    Plain and DDP runs only; FSDP / DeepSpeed keep accelerate's own sharded checkpoints."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type not in (DistributedType.NO, DistributedType.MULTI_GPU,
                                            DistributedType.MULTI_CPU):
        return

    def save_hook(models: list[Any], weights: list[Any], output_dir: str) -> None:
        for i, m in enumerate(models):
            if accelerator.is_main_process:
                accelerator.unwrap_model(m).save_pretrained(str(Path(output_dir) / f"adapter-{i}"))
        weights.clear()  # accelerate then saves no model weights of its own

    def load_hook(models: list[Any], input_dir: str) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        for i, m in enumerate(list(models)):
            state = load_file(str(Path(input_dir) / f"adapter-{i}" / "adapter_model.safetensors"))
            set_peft_model_state_dict(accelerator.unwrap_model(m), state)
        models.clear()

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def checkpoint_dir(folder: Path) -> Path:
    return folder / "checkpoints"


def latest(folder: Path) -> Path | None:
    """The newest complete checkpoint of a job folder, or None."""
    root = checkpoint_dir(folder)
    if not root.is_dir():
        return None
    done = [d for d in root.glob("step-*") if (d / STATE_FILE).is_file()]
    return max(done, key=lambda d: int(d.name.split("-", 1)[1]), default=None)


def save(accelerator: Any, folder: Path, state: LoopState, keep: int) -> Path | None:
    """Write a checkpoint for state.step (main process writes the rung state); prune old ones."""
    root = checkpoint_dir(folder)
    final = root / f"step-{state.step}"
    tmp = root / f".tmp-step-{state.step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return None
    (tmp / STATE_FILE).write_text(json.dumps(asdict(state)), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    ordered = sorted((d for d in root.glob("step-*") if d.is_dir()), key=lambda d: int(d.name.split("-", 1)[1]))
    for old in ordered[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(accelerator: Any, checkpoint: Path) -> LoopState:
    """Restore the training state from a checkpoint; returns the loop state saved with it."""
    accelerator.load_state(str(checkpoint))
    data = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    return LoopState(**data)


def remove_all(folder: Path) -> None:
    shutil.rmtree(checkpoint_dir(folder), ignore_errors=True)
