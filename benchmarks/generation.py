"""Generation speed of the local backend on the embedded model (SmolLM2-135M-Instruct), measured.

For each compute mode, in its own child process (so each gets its own peak RSS):
  bf16            bfloat16 weights, batch-invariant decoding (the default on CPUs with bf16
                  instructions: dtype "auto", rung.models.invariant)
  bf16-plain      bfloat16 weights, transformers' plain batched generate (batch_invariant=False)
  float32         float32 weights, batch-invariant decoding
  bf16-autocast   float32 weights under torch.autocast(cpu, bfloat16), plain generate
it answers the same 8 chat prompts greedily with 64 new tokens, first one by one (sequential),
then all 8 in one call (LocalModel batches them with left padding), and reports generated
tokens per second (tokens_out summed over requests / wall time), time to first token, the
child's peak RSS (resource.getrusage), how many batched answers are the same text as the
sequential ones, and the batched tokens/s over the anchor: llama.cpp's single stream on the same
model and machine, 91 tok/s. One untimed warm-up (one request, then the batch) precedes the
timed calls.

Run: HF_HUB_OFFLINE=1 python benchmarks/generation.py [--threads N] [--tokens 64] [--prompts 8]
     [--modes bf16,bf16-plain,float32] [--json out.json]
The machine's load average is printed: on shared cores the numbers drop sharply.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

EMBEDDED = "embedded:smollm2-135m-instruct"
MODES = ("bf16", "bf16-plain", "float32", "bf16-autocast")
ANCHOR_TPS = 91.0  # llama.cpp, single stream, same GGUF model, this machine
PROMPTS = [
    "What is the capital of France?",
    "Write a short paragraph about the sea.",
    "Explain photosynthesis to a ten-year-old.",
    "List five tips for sleeping well.",
    "Who wrote Hamlet, and what is it about?",
    "Describe how a bicycle works.",
    "What are the benefits of regular exercise?",
    "Summarise the plot of Cinderella in a few sentences.",
]


def child(mode: str, threads: int | None, tokens: int, n_prompts: int) -> dict:
    import torch

    from rung.models.base import GenerationParams, GenRequest
    from rung.models.local import LocalModel

    if threads:
        torch.set_num_threads(threads)
    dtype = "bfloat16" if mode.startswith("bf16") and mode != "bf16-autocast" else "float32"
    invariant = mode in ("bf16", "float32")
    t0 = time.perf_counter()
    model = LocalModel(EMBEDDED, dtype=dtype, device="cpu", max_batch_size=n_prompts,
                       batch_invariant=invariant).load()
    load_s = time.perf_counter() - t0
    params = GenerationParams(max_new_tokens=tokens)
    reqs = [GenRequest.chat([{"role": "user", "content": p}], params) for p in PROMPTS[:n_prompts]]
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if mode == "bf16-autocast" \
        else contextlib.nullcontext
    with ctx():
        model.generate(reqs[:1])  # warm-up, untimed
        model.generate(reqs)
        t0 = time.perf_counter()
        seq = [model.generate([r])[0] for r in reqs]
        seq_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        bat = model.generate(reqs)
        bat_s = time.perf_counter() - t0
    return {
        "mode": mode, "threads": torch.get_num_threads(), "load_s": load_s,
        "seq_tokens": sum(c.tokens_out for c in seq), "seq_s": seq_s,
        "seq_ttft_s": sum(c.ttft_s for c in seq) / len(seq),
        "batch_tokens": sum(c.tokens_out for c in bat), "batch_s": bat_s, "batch_ttft_s": bat[0].ttft_s,
        "same": sum(a.text == b.text for a, b in zip(seq, bat)), "n": len(reqs),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.threads, args.tokens, args.prompts)))
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rung.models.embedded import convert_gguf, resolve_llm

    t0 = time.perf_counter()
    convert_gguf(Path(resolve_llm(EMBEDDED).source))  # once, not timed below
    print(f"GGUF -> cached HF folder ready in {time.perf_counter() - t0:.1f} s")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  (cpus: {os.cpu_count()})")
    rows = []
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, "--child", mode, "--tokens", str(args.tokens),
               "--prompts", str(args.prompts)] + (["--threads", str(args.threads)] if args.threads else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{mode}: failed\n{out.stderr[-2000:]}")
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    n = args.prompts
    threads = rows[0]["threads"] if rows else "?"
    print(f"\n{n} prompts, greedy, max {args.tokens} new tokens, cpu, torch threads={threads}")
    head = f"{'mode':<14} {'seq tok/s':>9} {'batch tok/s':>11} {'vs anchor':>9} {'same':>5} {'seq ttft':>9} " \
           f"{'batch ttft':>10} {'load s':>7} {'peak RSS MB':>11}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        r["seq_tps"] = r["seq_tokens"] / r["seq_s"]
        r["batch_tps"] = r["batch_tokens"] / r["batch_s"]
        same = f"{r['same']}/{r['n']}"
        anchor = r["batch_tps"] / ANCHOR_TPS
        print(f"{r['mode']:<14} {r['seq_tps']:>9.1f} {r['batch_tps']:>11.1f} {anchor:>8.2f}x {same:>5} "
              f"{r['seq_ttft_s']:>8.3f}s {r['batch_ttft_s']:>9.3f}s {r['load_s']:>7.2f} {r['peak_rss_mb']:>11.0f}")
    print(f"vs anchor: batched tok/s over llama.cpp's single stream ({ANCHOR_TPS:.0f} tok/s); same: batched "
          "answers identical to the sequential ones (greedy)")
    base = next((r for r in rows if r["mode"] == "bf16-plain"), None)
    if base:
        for r in rows:
            if r is not base:
                print(f"{r['mode']} vs bf16-plain: sequential {r['seq_tps'] / base['seq_tps']:.2f}x, "
                      f"batched {r['batch_tps'] / base['batch_tps']:.2f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
