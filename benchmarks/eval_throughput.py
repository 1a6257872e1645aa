"""Eval throughput on the embedded model: batched vs sequential, and the cached re-run.

Runs the same cases of the bundled example (bare candidate, greedy) through the real runner
three ways, in one process:

  1. sequential: batch size 1, no response cache
  2. batched:    batch size 8, no response cache          -> cases/s ratio (target >= 3x)
  3. cached:     batched with the response cache, twice   -> re-run time / first run (target <= 5%)

and checks that sequential and batched answers are the same text (greedy). Prints aggregate
generated tokens/s (the anchor: llama.cpp's single stream, 91 tok/s on this model and machine).

    python benchmarks/eval_throughput.py [--cases 16] [--max-new-tokens 48] [--dtype float32]

--dtype auto (the default) is what rung uses: bf16 weights on CPUs with bf16 instructions,
decoded batch-invariantly (rung.models.invariant), so batched and sequential greedy answers are
the same text; --plain measures transformers' plain batched generate instead (faster in batch,
but its answers depend on which requests share a batch).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "support-desk"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--plain", action="store_true", help="batch_invariant: false (transformers' plain generate)")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    from rung.config import RungConfig
    from rung.evals.runner import build_scorers, make_context, run_suite
    from rung.evals.store import RunStore
    from rung.evals.suite import load_suite
    from rung.models.cache import CachedModel, ResponseCache
    from rung.pipeline.pipeline import Pipeline, build_pipeline

    tmp = Path(tempfile.mkdtemp(prefix="rung-bench-"))
    cases = [json.loads(x) for x in (EXAMPLE / "cases" / "eval.jsonl").read_text().splitlines() if x.strip()]
    cases = [c for c in cases if "input" in c][: args.cases]
    (tmp / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    cfg = RungConfig.model_validate({
        "project": "bench",
        "models": {"default": {"dtype": args.dtype, "max_batch_size": args.batch_size,
                               "batch_invariant": not args.plain}},
        "candidates": {"bare": {"generation": {"max_new_tokens": args.max_new_tokens}}},
        "suites": {"s": {"path": "cases.jsonl", "scorers": ["contains"]}},
        "paths": {"store": str(tmp / "rung.db"), "cache": str(tmp / "cache.db")},
    })
    cfg.root = tmp
    suite = load_suite(tmp / "cases.jsonl")
    scorers = build_scorers(cfg.suites["s"], suite)
    ctx = make_context(cfg, "bare")
    store = RunStore(tmp / "rung.db")

    t0 = time.perf_counter()
    plain = build_pipeline(cfg, "bare", use_cache=False)
    plain.model.load()
    print(f"model loaded in {time.perf_counter() - t0:.1f} s ({plain.model.dtype}, "
          f"{'plain' if args.plain else 'batch-invariant'}); {len(suite.cases)} cases, "
          f"greedy, max_new_tokens={args.max_new_tokens}")
    plain.answer_batch(suite.cases[:1])  # warm-up

    def timed(pipeline, batch_size):
        t = time.perf_counter()
        run = run_suite(pipeline, suite, scorers, ctx, store, batch_size=batch_size)
        return run, time.perf_counter() - t

    seq, t_seq = timed(plain, 1)
    bat, t_bat = timed(plain, args.batch_size)
    tok = lambda run: sum(r.answer.tokens_out for r in run.results)  # noqa: E731
    same = sum(a.answer.text == b.answer.text for a, b in zip(seq.results, bat.results))

    # the same loaded model behind a fresh response cache
    cached = Pipeline("bare", plain.candidate, CachedModel(plain.model, ResponseCache(tmp / "cache.db")),
                      plain.model_config, plain.components)
    first, t_first = timed(cached, args.batch_size)
    again, t_again = timed(cached, args.batch_size)
    n = len(suite.cases)
    rows = [
        ("sequential (batch 1)", t_seq, n / t_seq, tok(seq) / t_seq),
        (f"batched (batch {args.batch_size})", t_bat, n / t_bat, tok(bat) / t_bat),
        ("cached, first run", t_first, n / t_first, tok(first) / t_first),
        ("cached, re-run", t_again, n / t_again, float("nan")),
    ]
    print(f"\n{'mode':<24}{'seconds':>10}{'cases/s':>10}{'gen tok/s':>11}")
    for name, t, cps, tps in rows:
        print(f"{name:<24}{t:>10.2f}{cps:>10.2f}{tps:>11.1f}")
    print(f"\nbatched / sequential cases/s: {t_seq / t_bat:.2f}x (target >= 3x)")
    print(f"same answers batched vs sequential: {same}/{n}")
    print(f"cached re-run time / first run: {100 * t_again / t_first:.1f}% (target <= 5%)")
    print(f"aggregate generated tok/s batched: {tok(bat) / t_bat:.1f} "
          f"(llama.cpp single stream anchor: 91 tok/s -> {tok(bat) / t_bat / 91:.2f}x)")


if __name__ == "__main__":
    main()
