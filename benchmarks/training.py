"""Training on the embedded model (SmolLM2-135M): rung's training path against a plain
transformers.Trainer + PEFT, and what evaluation during training costs. One process, one run:

  rung          rung.tune.train.trainer.train() on a TuneJob, no dev split (dev_size 0)
  rung+eval     the same job with dev_size --dev (8) and eval_every set so it evaluates twice
                (generation through LocalModel, --eval-new-tokens new tokens per answer)
  trainer       transformers.Trainer on get_peft_model(base) with the same examples, labels
                (rung.tune.train.collate: loss on the assistant answer only) and collator
  trl           trl.SFTTrainer (prompt/completion rows, completion-only loss); only with --trl

Every row: LoRA r=8 all-linear (rung's TrainConfig defaults), batch --batch, sequences cut at
--seq tokens, the same learning rate (constant), bf16 autocast where rung's `bf16: auto` would
use it (--precision to force), base loaded in float32. Each run does 1 + --steps optimizer steps;
the first is warm-up and not timed. tokens/s = batch x mean sequence length / seconds per step;
at the default --seq 128 every example is longer, so every sequence is exactly 128 tokens (no
padding, the same tokens in every row).

Eval overhead: the wall time of rung's training loop with evaluation vs without (both 1 + --steps
steps), and, timed inside the rung+eval run alone, its seconds in evaluation over its seconds in
training steps (one run, so less exposed to a shared CPU's load changing between runs).

    RUNG_THREADS=1 python benchmarks/training.py [--steps 12] [--seq 128] [--batch 4] [--trl]

Prints a table, the ratios, and one JSON line with every number (--json FILE appends it there).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

EMBEDDED = "embedded:smollm2-135m-instruct"
FILLER = ("Our support team answers within one business day. Orders ship from the EU warehouse. "
          "Refunds go back to the original payment method. ")


def make_dataset(root: Path, n: int) -> tuple[Any, Path]:
    from rung.tune.example import Dataset, Example, Lineage

    exs = []
    for i in range(n):
        q = f"Question {i}: what happens to order {1000 + i} if it arrives damaged? " + FILLER
        a = f"Order {1000 + i} is replaced for free if it arrives damaged. " + FILLER * 2
        exs.append(Example(id=f"b{i}", messages=[{"role": "user", "content": q},
                                                 {"role": "assistant", "content": a}],
                           lineage=Lineage(source="file", ref=f"bench:{i}")))
    ds = Dataset(exs)
    return ds, ds.save(root / "datasets")


def make_job(root: Path, ds: Any, ds_path: Path, args: argparse.Namespace, bf16: bool, name: str,
             dev_size: int = 0, eval_every: int = 10_000) -> Any:
    from rung.config import TrainConfig
    from rung.tune.train.job import BaseModelSpec, TuneJob

    tc = TrainConfig(max_seq_len=args.seq, batch_size=args.batch, dev_size=dev_size, eval_every=eval_every,
                     eval_max_new_tokens=args.eval_new_tokens, patience=0, save_every=10_000,
                     bf16="on" if bf16 else "off", lr_scheduler="constant", warmup_ratio=0.0)
    return TuneJob(method="lora", base=BaseModelSpec("default", EMBEDDED, str(root)), dataset_path=str(ds_path),
                   dataset_version=ds.version, train=tc, artifacts_root=str(root / f"art-{name}"),
                   max_steps=args.steps + 1)


def per_step(times: list[float]) -> float:
    """Seconds per step from the end times of steps 1..N (step 1, the warm-up, is the origin)."""
    return (times[-1] - times[0]) / (len(times) - 1)


def bench_rung(job: Any, tokens_per_step: float) -> dict[str, Any]:
    """rung's real train(); step and evaluation times from its progress events."""
    from rung.tune.train.trainer import train

    ends: dict[int, float] = {}  # step -> when its step event came
    evals: list[float] = []  # seconds inside each evaluation (step event -> eval event)
    train_ends: list[float] = []  # end of each step's training work (excludes evaluations)

    def progress(p: Any) -> None:
        now = time.perf_counter()
        if p.event == "step":
            ends[p.step] = now
            train_ends.append(now - sum(evals))
        elif p.event == "eval":
            evals.append(now - ends[p.step])

    t = time.perf_counter()
    result = train(job, progress=progress)
    wall = time.perf_counter() - t
    s = per_step(train_ends)
    return {"s_per_step": round(s, 3), "tokens_per_s": round(tokens_per_step / s, 1),
            "loop_s": result.timings["train_s"], "wall_s": round(wall, 1), "evals": len(evals),
            "eval_s": round(sum(evals), 1), "self_reported_tokens_per_s": result.timings["tokens_per_s"]}


class _StepClock:
    """A TrainerCallback (built lazily: transformers is imported inside the bench functions)."""

    @staticmethod
    def make(times: list[float]) -> Any:
        from transformers import TrainerCallback

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):  # noqa: ANN001, ANN003
                times.append(time.perf_counter())

        return Clock()


def bench_trainer(job: Any, examples: list[Any], tokens_per_step: float, bf16: bool) -> dict[str, Any]:
    """A standard transformers.Trainer on a LoRA-wrapped model, rung's labels and collator."""
    from peft import get_peft_model
    from transformers import PrinterCallback, Trainer, TrainingArguments
    from transformers.trainer_utils import set_seed

    from rung.tune.train import collate, methods

    t = time.perf_counter()
    set_seed(job.train.seed)
    model, tok, _ = methods.load_base(job)
    model = get_peft_model(model, methods.peft_config(job))
    feats = collate.encode_all(tok, examples, job.train.max_seq_len)
    times: list[float] = []
    out = tempfile.mkdtemp(prefix="rung-bench-trainer-")
    targs = TrainingArguments(output_dir=out, max_steps=job.max_steps, per_device_train_batch_size=job.train.batch_size,
                              learning_rate=job.learning_rate, lr_scheduler_type="constant", warmup_steps=0,
                              weight_decay=job.train.weight_decay, max_grad_norm=job.train.max_grad_norm,
                              bf16=bf16, use_cpu=True, report_to=[], save_strategy="no", eval_strategy="no",
                              logging_strategy="no", seed=job.train.seed, disable_tqdm=True,
                              dataloader_num_workers=0, remove_unused_columns=False)
    trainer = Trainer(model=model, args=targs, train_dataset=feats, data_collator=collate.Collator(tok.pad_token_id),
                      callbacks=[_StepClock.make(times)])
    trainer.remove_callback(PrinterCallback)  # no log dicts on the console
    trainer.train()
    wall = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    s = per_step(times)
    return {"s_per_step": round(s, 3), "tokens_per_s": round(tokens_per_step / s, 1), "wall_s": round(wall, 1)}


def bench_trl(job: Any, examples: list[Any], bf16: bool) -> dict[str, Any]:
    """trl.SFTTrainer: prompt/completion rows, completion-only loss, its own tokenization."""
    from datasets import Dataset as HFDataset
    from datasets.utils.logging import disable_progress_bar
    from transformers import PrinterCallback
    from transformers.trainer_utils import set_seed
    from trl import SFTConfig, SFTTrainer

    from rung.tune.train import methods

    disable_progress_bar()
    t = time.perf_counter()
    set_seed(job.train.seed)
    model, tok, _ = methods.load_base(job)
    rows = [{"prompt": ex.prompt, "completion": [ex.messages[-1]]} for ex in examples]
    times: list[float] = []
    out = tempfile.mkdtemp(prefix="rung-bench-trl-")
    cfg = SFTConfig(output_dir=out, max_steps=job.max_steps, per_device_train_batch_size=job.train.batch_size,
                    learning_rate=job.learning_rate, lr_scheduler_type="constant", warmup_steps=0,
                    max_grad_norm=job.train.max_grad_norm, bf16=bf16, use_cpu=True, report_to=[],
                    save_strategy="no", logging_strategy="no", max_length=job.train.max_seq_len,
                    completion_only_loss=True, seed=job.train.seed, disable_tqdm=True, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=HFDataset.from_list(rows), processing_class=tok,
                         peft_config=methods.peft_config(job), callbacks=[_StepClock.make(times)])
    trainer.remove_callback(PrinterCallback)
    lens = [min(len(r["input_ids"]), job.train.max_seq_len) for r in trainer.train_dataset]
    trainer.train()
    wall = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    s = per_step(times)
    tokens_per_step = job.train.batch_size * sum(lens) / len(lens)
    return {"s_per_step": round(s, 3), "tokens_per_s": round(tokens_per_step / s, 1), "wall_s": round(wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12, help="timed optimizer steps (after 1 warm-up step)")
    ap.add_argument("--seq", type=int, default=128, help="tokens per sequence")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--dev", type=int, default=8, help="dev examples evaluated in the rung+eval run")
    ap.add_argument("--evals", type=int, default=2, help="evaluations in the rung+eval run")
    ap.add_argument("--eval-new-tokens", type=int, default=32, help="max new tokens per dev answer")
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                    help="auto: bf16 autocast where the CPU has native bf16 (rung's default)")
    ap.add_argument("--trl", action="store_true", help="add a trl.SFTTrainer row")
    ap.add_argument("--json", type=Path, help="append the JSON line to this file too")
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be at least 2")

    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from rung.models.device import cpu_has_bf16
    from rung.models.embedded import resolve_llm
    from rung.tune.train import collate

    hf_logging.set_verbosity_error()
    for name in ("accelerate", "peft", "trl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from rung.models.device import env_threads

    if (threads := env_threads()) is not None:
        torch.set_num_threads(threads)
    bf16 = cpu_has_bf16() if args.precision == "auto" else args.precision == "bf16"

    root = Path(tempfile.mkdtemp(prefix="rung-bench-training-"))
    ds, ds_path = make_dataset(root, 48 + args.dev)
    tok = AutoTokenizer.from_pretrained(resolve_llm(EMBEDDED).pretrained_path())
    lens = [len(collate.encode(tok, ex, args.seq).input_ids) for ex in ds.examples]
    tokens_per_step = args.batch * sum(lens) / len(lens)
    eval_every = math.ceil((args.steps + 1) / args.evals)

    plain = make_job(root, ds, ds_path, args, bf16, "plain")
    with_eval = make_job(root, ds, ds_path, args, bf16, "eval", dev_size=args.dev, eval_every=eval_every)
    rows: dict[str, dict[str, Any]] = {}
    rows["rung"] = bench_rung(plain, tokens_per_step)
    rows["trainer"] = bench_trainer(plain, ds.examples, tokens_per_step, bf16)
    if args.trl:
        rows["trl"] = bench_trl(plain, ds.examples, bf16)
    rows["rung+eval"] = bench_rung(with_eval, tokens_per_step)
    shutil.rmtree(root, ignore_errors=True)

    speed = rows["rung"]["tokens_per_s"] / rows["trainer"]["tokens_per_s"]
    loop, loop_eval = rows["rung"]["loop_s"], rows["rung+eval"]["loop_s"]
    overhead = 100 * (loop_eval - loop) / loop
    eval_s = rows["rung+eval"]["eval_s"]
    share = 100 * eval_s / loop_eval
    direct = 100 * eval_s / (loop_eval - eval_s)  # the same overhead, timed inside one run (less noise)

    print(f"LoRA r=8 all-linear, batch {args.batch} x {args.seq} tokens ({tokens_per_step:.0f} tokens/step), "
          f"{'bf16 autocast' if bf16 else 'float32'}, torch threads {torch.get_num_threads()}, "
          f"1 warm-up + {args.steps} timed steps")
    print(f"{'row':<10} {'s/step':>7} {'tokens/s':>9} {'loop s':>7} {'wall s':>7}  evaluations")
    for name, r in rows.items():
        ev = f"{r['evals']} ({r['eval_s']} s)" if r.get("evals") else "-"
        print(f"{name:<10} {r['s_per_step']:>7.3f} {r['tokens_per_s']:>9.1f} {r.get('loop_s', '-'):>7} "
              f"{r['wall_s']:>7}  {ev}")
    print(f"rung / Trainer tokens/s: {speed:.2f}x")
    if "trl" in rows:
        print(f"rung / SFTTrainer tokens/s: {rows['rung']['tokens_per_s'] / rows['trl']['tokens_per_s']:.2f}x")
    print(f"eval overhead: +{overhead:.1f}% loop wall time, run with vs run without ({loop} -> {loop_eval} s)")
    print(f"  timed inside rung+eval: {rows['rung+eval']['evals']} evaluations of {args.dev} dev answers x "
          f"{args.eval_new_tokens} new tokens took {eval_s} s = +{direct:.1f}% over its training steps "
          f"({share:.1f}% of its loop)")
    record = {"bench": "training", "steps": args.steps, "seq": args.seq, "batch": args.batch,
              "precision": "bf16" if bf16 else "fp32", "threads": torch.get_num_threads(),
              "dev": args.dev, "eval_every": eval_every, "eval_new_tokens": args.eval_new_tokens,
              "rows": rows, "rung_over_trainer": round(speed, 3), "eval_overhead_pct": round(overhead, 1),
              "eval_overhead_in_run_pct": round(direct, 1), "eval_share_pct": round(share, 1)}
    line = json.dumps(record)
    print(line)
    if args.json:
        with args.json.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
