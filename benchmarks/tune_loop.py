"""Training throughput on the embedded model: rung's thin accelerate loop vs trl.SFTTrainer, and
bf16 autocast vs float32, LoRA (all-linear, r=8), batch 4, sequences cut at --seq tokens.

Both trainers see the same examples, the same LoRA config, batch size and learning rate, and
compute the loss on the assistant answer only. Each is timed over --steps optimizer steps,
without the first step (warm-up); tokens/s counts every token of every sequence processed.

    RUNG_THREADS=2 python benchmarks/tune_loop.py [--steps 20] [--seq 128] [--only rung-bf16,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

FILLER = ("Our support team answers within one business day. Orders ship from the EU warehouse. "
          "Refunds go back to the original payment method. ")


def make_dataset(root: Path, n: int = 48):
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


def bench_rung(root: Path, ds_path: Path, steps: int, seq: int, bf16: str) -> dict:
    from rung.config import TrainConfig
    from rung.tune.example import Dataset
    from rung.tune.train.job import BaseModelSpec, TuneJob
    from rung.tune.train.trainer import train

    tc = TrainConfig(max_seq_len=seq, batch_size=4, dev_size=0, save_every=10_000, bf16=bf16, lr_scheduler="constant")
    job = TuneJob(method="lora", base=BaseModelSpec("default", "embedded:smollm2-135m-instruct", str(root)),
                  dataset_path=str(ds_path), dataset_version=Dataset.load(ds_path).version, train=tc,
                  artifacts_root=str(root / f"art-{bf16}"), max_steps=steps + 1)
    marks: list[tuple[int, float, float]] = []

    def progress(p):
        if p.event == "step":
            marks.append((p.step, time.perf_counter(), p.tokens_per_s or 0))

    train(job, progress=progress)
    from transformers import AutoTokenizer

    from rung.models.embedded import resolve_llm
    from rung.tune.train.collate import encode

    tok = AutoTokenizer.from_pretrained(resolve_llm("embedded:smollm2-135m-instruct").pretrained_path())
    lens = [len(encode(tok, ex, seq).input_ids) for ex in Dataset.load(ds_path).examples]
    (s1, t1, _), (sn, tn, _) = marks[0], marks[-1]
    per_step = (tn - t1) / (sn - s1)
    return {"s_per_step": round(per_step, 3), "tokens_per_s": round(4 * sum(lens) / len(lens) / per_step, 1)}


def bench_trl(ds, steps: int, seq: int, bf16: bool) -> dict:
    import torch
    from datasets import Dataset as HFDataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from rung.models.embedded import resolve_llm

    src = resolve_llm("embedded:smollm2-135m-instruct").pretrained_path()
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    rows = [{"prompt": ex.prompt, "completion": [ex.messages[-1]]} for ex in ds.examples]
    times: list[float] = []
    tokens: list[int] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter())

    out = tempfile.mkdtemp(prefix="rung-bench-trl-")
    cfg = SFTConfig(output_dir=out, max_steps=steps + 1, per_device_train_batch_size=4, learning_rate=2e-4,
                    lr_scheduler_type="constant", bf16=bf16, use_cpu=True, report_to=[], save_strategy="no",
                    logging_steps=10_000, max_length=seq, completion_only_loss=True, seed=0,
                    disable_tqdm=True, dataloader_num_workers=0)
    lora = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear")
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=HFDataset.from_list(rows), processing_class=tok,
                         peft_config=lora, callbacks=[Clock()])
    lens = [min(len(r["input_ids"]), seq) for r in trainer.train_dataset]
    trainer.train()
    per_step = (times[-1] - times[0]) / (len(times) - 1)
    tok_per_step = 4 * sum(lens) / len(lens)
    tokens.append(int(tok_per_step))
    return {"s_per_step": round(per_step, 3), "tokens_per_s": round(tok_per_step / per_step, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--only", default="rung-bf16,rung-fp32,trl-bf16,trl-fp32")
    args = ap.parse_args()
    env = os.environ.get("RUNG_THREADS", "")
    if env.isdigit():
        import torch

        torch.set_num_threads(int(env))
    root = Path(tempfile.mkdtemp(prefix="rung-bench-"))
    ds, path = make_dataset(root)
    results = {}
    for name in args.only.split(","):
        t = time.perf_counter()
        if name.startswith("rung"):
            r = bench_rung(root, path, args.steps, args.seq, "on" if name.endswith("bf16") else "off")
        else:
            r = bench_trl(ds, args.steps, args.seq, name.endswith("bf16"))
        r["wall_s"] = round(time.perf_counter() - t, 1)
        results[name] = r
        print(name, json.dumps(r), flush=True)
    print(json.dumps({"steps": args.steps, "seq": args.seq, "threads": env or "default", "results": results}))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
