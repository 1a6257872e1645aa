"""The training loop: a thin loop over accelerate's Accelerator.

Why not trl.SFTTrainer: measured on the 2-core AVX512-BF16 CPU (benchmarks/training.py, LoRA
all-linear r=8, batch 4 x 128 tokens, 1 thread, docs/tuning.md), this loop ran about 1.5x
SFTTrainer's tokens/s (141 vs 90 with bf16 autocast, 95 vs 62 in float32; 119 vs 80 in a later
run). A plain transformers.Trainer on the same PEFT model, labels and collator runs at the same
speed (rung 0.85x and 1.04x of it in two loaded runs), so the reason for this loop is not speed
against Trainer: it lets the dev evaluation generate through rung's own LocalModel and
scorers between steps, keeps rung's loop state beside accelerate's checkpoints, and runs
unchanged under `accelerate launch` (DDP, FSDP, DeepSpeed: accelerate distributes, not rung).

Determinism: the seed fixes LoRA/prefix initialisation, dropout and the data order (each epoch
is a seeded permutation), so two runs on the same CPU, data and seed give the same weights.
Evaluation runs inside torch.random.fork_rng, so it does not move the training RNG.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rung.errors import TrainingError
from rung.text.jsonx import json_objects
from rung.tune.example import Dataset
from rung.tune.train import artifacts, checkpoints
from rung.tune.train.checkpoints import LoopState
from rung.tune.train.job import TuneJob


@dataclass
class TrainProgress:
    """What the progress callback receives after every step (and at stages)."""

    event: str  # "stage" | "step" | "eval" | "checkpoint" | "done"
    step: int
    max_steps: int
    loss: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    last_eval: dict[str, Any] | None = None
    message: str = ""


ProgressFn = Callable[[TrainProgress], None]


@dataclass
class TrainResult:
    job: TuneJob
    folder: Path
    steps: int
    best: dict[str, Any] | None
    stopped_early: bool
    lineage: dict[str, Any]
    merged: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _mixed_precision(job: TuneJob, device: str) -> str | None:
    """bf16 autocast: on the 2-core AVX512-BF16 CPU, LoRA steps ran 1.5x faster with it than in
    float32 (3.6 vs 5.4 s, docs/tuning.md); CPUs without native bf16 emulate it, so auto is off there."""
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launched != "no" and job.train.bf16 == "auto":
        return None  # accelerate launch with mixed_precision in its config: that decides
    if job.train.bf16 == "off":
        return "no"
    if job.train.bf16 == "on":
        return "bf16"
    if device == "cpu":
        from rung.models.device import cpu_has_bf16

        return "bf16" if cpu_has_bf16() else "no"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _fresh_accelerate_state() -> None:
    """accelerate keeps one AcceleratorState per process and refuses a second Accelerator with
    other settings; a process that trains twice (tests, notebooks) starts each job afresh. The
    process-group part (PartialState) is kept: it is the same for every job of a process."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()


def _set_threads() -> None:
    from rung.models.device import env_threads

    if (n := env_threads()) is not None:
        import torch

        torch.set_num_threads(n)


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def _trim_metrics(path: Path, step: int) -> None:
    """Drop metric lines after `step` (a resumed job redoes those steps)."""
    if not path.exists():
        return
    keep = [row for row in json_objects(path.read_text(encoding="utf-8").splitlines())
            if row.get("step", 0) <= step]  # a line cut by a kill mid-write is dropped too
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in keep), encoding="utf-8")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings or library log lines on the console while training (the library never prints)."""
    from rung.models.embedded import quiet_loading

    loggers = [logging.getLogger(n) for n in ("accelerate", "peft", "trl")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), quiet_loading():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def train(job: TuneJob, *, resume: bool = False, merge: bool = False,
          progress: ProgressFn | None = None) -> TrainResult:
    """Run a tuning job to the end (or early stop) and write its artifact; see the module docs."""
    with _quiet():
        return _train(job, resume, merge, progress)


def _train(job: TuneJob, resume: bool, merge: bool, progress: ProgressFn | None) -> TrainResult:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    from rung.tune.train import collate, evaluate, methods

    def emit(p: TrainProgress) -> None:
        if progress is not None and accelerator.is_main_process:
            progress(p)

    _set_threads()
    t_start = time.perf_counter()
    folder = job.folder
    if (folder / artifacts.LINEAGE_FILE).is_file():
        raise TrainingError(f"{folder}: this job has already finished (same base, data, method, "
                        f"hyperparameters and seed); delete the folder to train it again")
    last = checkpoints.latest(folder) if resume else None
    dataset = Dataset.load(job.dataset_path)
    if dataset.version != job.dataset_version:
        raise TrainingError(f"{job.dataset_path}: the dataset's version is {dataset.version}, the job expects "
                        f"{job.dataset_version} (the files changed since the job was made)")
    train_ex, dev_ex = evaluate.split_dev(dataset.examples, job.train.dev_size, job.train.seed)
    if not train_ex:
        raise TrainingError(f"{job.dataset_path}: no training examples")

    device = "cuda" if torch.cuda.is_available() else "cpu"
    _fresh_accelerate_state()
    accelerator = Accelerator(mixed_precision=_mixed_precision(job, device), cpu=device == "cpu",
                              gradient_accumulation_steps=job.train.grad_accum)
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        job.save()
        if last is None:
            checkpoints.remove_all(folder)
            (folder / "metrics.jsonl").unlink(missing_ok=True)
            shutil.rmtree(folder / "best", ignore_errors=True)
    emit(TrainProgress("stage", 0, 0, message="loading the base model"))
    set_seed(job.train.seed)
    model, tok, resolved = methods.load_base(job)
    set_seed(job.train.seed)
    model = methods.prepare(model, job)
    trainable = methods.trainable_parameters(model)
    feats = collate.encode_all(tok, train_ex, job.train.max_seq_len, job.system_prompt, job.train.packing)
    dev_feats = collate.encode_all(tok, dev_ex, job.train.max_seq_len, job.system_prompt)
    collator = collate.Collator(tok.pad_token_id)
    scoring = evaluate.suite_scoring(job) if dev_ex else None

    bs = job.train.batch_size
    n_batches = len(accelerator.prepare_data_loader(DataLoader(feats, batch_size=bs, collate_fn=collator)))
    updates_per_epoch = max(1, math.ceil(n_batches / job.train.grad_accum))
    max_steps = job.max_steps or job.train.max_steps or updates_per_epoch * job.train.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=job.learning_rate,
                                  weight_decay=job.train.weight_decay)
    scheduler = get_scheduler(job.train.lr_scheduler, optimizer,
                              num_warmup_steps=int(job.train.warmup_ratio * max_steps),
                              num_training_steps=max_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    if job.method != "full":
        checkpoints.adapter_only(accelerator)

    state = LoopState()
    metrics_file = folder / "metrics.jsonl"
    if last is not None:
        emit(TrainProgress("stage", 0, max_steps, message=f"resuming from {last.name}"))
        state = checkpoints.load(accelerator, last)
        if accelerator.is_main_process:
            _trim_metrics(metrics_file, state.step)

    def micro_batches(start: int) -> Iterator[dict[str, Any]]:
        epoch, skip = divmod(start, n_batches)
        while True:
            order = torch.randperm(len(feats), generator=torch.Generator().manual_seed(job.train.seed + epoch))
            dl = accelerator.prepare_data_loader(
                DataLoader([feats[i] for i in order.tolist()], batch_size=bs, collate_fn=collator))
            if skip:
                dl = accelerator.skip_first_batches(dl, skip)
                skip = 0
            yield from dl
            epoch += 1

    def dev_loss() -> float | None:
        if not dev_feats:
            return None
        losses = []
        model.eval()
        with torch.no_grad():
            for k in range(0, len(dev_feats), bs):
                batch = {n: t.to(accelerator.device) for n, t in collator(dev_feats[k:k + bs]).items()}
                with accelerator.autocast():
                    losses.append(float(model(**batch).loss))
        model.train()
        return round(sum(losses) / len(losses), 4)

    metric = job.train.eval_metric

    def run_eval(step: int) -> dict[str, Any]:
        with torch.random.fork_rng(devices=[]):
            result = evaluate.evaluate(accelerator.unwrap_model(model), tok, job, dev_ex, scoring)
        result["eval_loss"] = dev_loss()
        if metric not in result:
            raise TrainingError(f"tune.train.eval_metric: {metric!r} is not measured on the dev split; "
                            f"measured: {', '.join(k for k in result if k not in ('n', 'samples'))}")
        return {"step": step, **result}

    def better(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
        if new.get(metric) is None:
            return False
        if old is None or old.get(metric) is None:
            return True
        if evaluate.higher_is_better(metric, scoring):
            return new[metric] > old[metric]
        return new[metric] < old[metric]

    batches = micro_batches(state.step * job.train.grad_accum)
    model.train()
    t0 = time.perf_counter()
    start_step, tokens = state.step, 0
    stopped_early = False
    emit(TrainProgress("stage", state.step, max_steps, message="training"))
    busy = 0.0  # seconds spent in forward/backward/optimizer steps (tokens/s excludes evaluations)
    while state.step < max_steps:
        t_step = time.perf_counter()
        loss_sum, micro = 0.0, 0
        for _ in range(job.train.grad_accum):
            batch = next(batches)
            with accelerator.accumulate(model):
                out = model(**batch)
                accelerator.backward(out.loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), job.train.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            loss_sum += float(out.loss.detach())
            micro += 1
            tokens += int(batch["attention_mask"].sum())
        state.step += 1
        loss = loss_sum / micro
        busy += time.perf_counter() - t_step
        elapsed = time.perf_counter() - t0
        done = state.step - start_step
        tps = tokens * accelerator.num_processes / busy if busy > 0 else None
        eta = elapsed / done * (max_steps - state.step)
        if accelerator.is_main_process:
            _append(metrics_file, {"step": state.step, "loss": round(loss, 4),
                                   "lr": scheduler.get_last_lr()[0], "tokens_per_s": round(tps or 0, 1)})
        emit(TrainProgress("step", state.step, max_steps, loss, tps, eta, state.curve[-1] if state.curve else None))
        if dev_ex and (state.step % job.train.eval_every == 0 or state.step == max_steps):
            result = run_eval(state.step)
            state.curve.append({k: v for k, v in result.items() if k != "samples"})
            if better(result, state.best):
                state.best, state.bad_evals = state.curve[-1], 0
                artifacts.save_weights(accelerator, model, tok, job, folder / "best")
            else:
                state.bad_evals += 1
            if accelerator.is_main_process:
                _append(metrics_file, {"step": state.step, "eval": result})
            emit(TrainProgress("eval", state.step, max_steps, loss, tps, eta, state.curve[-1]))
            if job.train.patience and state.bad_evals >= job.train.patience:
                stopped_early = state.step < max_steps
                break
        if state.step % job.train.save_every == 0 and state.step < max_steps:
            checkpoints.save(accelerator, folder, state, job.train.keep_checkpoints)
            emit(TrainProgress("checkpoint", state.step, max_steps, loss, tps, eta,
                               state.curve[-1] if state.curve else None, f"checkpoint at step {state.step}"))
    train_s = time.perf_counter() - t0

    accelerator.wait_for_everyone()
    lineage: dict[str, Any] = {}
    merged = None
    best_dir = folder / "best"
    if state.best is None or not best_dir.is_dir():
        artifacts.save_weights(accelerator, model, tok, job, folder)
    if accelerator.is_main_process:
        if state.best is not None and best_dir.is_dir():
            artifacts.install_weights(best_dir, folder)
        splits = {"train": len(train_ex), "dev": len(dev_ex), "train_sequences": len(feats)}
        lineage = artifacts.write_lineage(folder, job, base_hash=resolved.fingerprint(), dataset=dataset,
                                          splits=splits, curve=state.curve, best=state.best, steps=state.step,
                                          stopped_early=stopped_early, trainable=trainable,
                                          train_seconds=train_s)
        checkpoints.remove_all(folder)
        if merge:
            emit(TrainProgress("stage", state.step, max_steps, message="merging the adapter into the base"))
            merged = artifacts.merge_lora(folder, job)
    timings = {"train_s": round(train_s, 2), "total_s": round(time.perf_counter() - t_start, 2),
               "tokens_per_s": round(tokens * accelerator.num_processes / busy, 1) if busy > 0 else 0.0}
    emit(TrainProgress("done", state.step, max_steps, last_eval=state.best, message=str(folder)))
    return TrainResult(job, folder, state.step, state.best, stopped_early, lineage, merged, timings)
