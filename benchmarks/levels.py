"""Level 0 vs level 1 on the bundled example, measured by the harness: quality, latency, cost.

Trains (or reuses) the LoRA adapter `rung tune` makes for one level-0 candidate of
examples/support-desk (tune.train in its rung.yaml, the newest built dataset), then evaluates on
the eval suite, held out from training:

  base      the level-0 candidate as configured (its full prompt)
  adapter   the same candidate + the LoRA adapter (per-request adapter on the base)
  merged    the same candidate on the base with the adapter merged in (no adapter overhead)
  rag       the level-0 retrieval candidate (the long prompt a level-0 team ships), for latency

and prints each candidate's metrics with 95% intervals, P50/P95 latency and tokens in, plus the
paired comparison base -> adapter (McNemar / Wilcoxon per metric). Runs are stored in the
example's run store; re-running reuses finished runs of unchanged candidates.

    RUNG_THREADS=2 python benchmarks/levels.py [--candidate policy-prompt] [--sample 64 | --all] [--fresh]

Use --fresh on a quiet machine for latency: reused runs and cached answers keep the timings of
the run that first produced them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "support-desk" / "rung.yaml"
SHOWN = ("task_success", "hallucination", "refusal_correct", "answered_when_should",
         "refused_when_should", "safety_violation", "schema_valid")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidate", default="policy-prompt")
    ap.add_argument("--sample", type=int, default=64)
    ap.add_argument("--all", action="store_true", help="every eval case (slow)")
    ap.add_argument("--fresh", action="store_true",
                    help="new runs without the response cache (clean latency), instead of reusing")
    ap.add_argument("--latency-rows", default="base,adapter,merged,rag",
                    help="which rows to evaluate (comma separated)")
    args = ap.parse_args()

    from rung.config import load_config
    from rung.evals.aggregate import aggregate
    from rung.evals.compare import compare
    from rung.evals.runner import evaluate_candidate
    from rung.evals.store import RunStore
    from rung.evals.suite import load_suite, spread_sample
    from rung.tune.train.artifacts import merge_lora
    from rung.tune.train.plan import plan_job
    from rung.tune.train.trainer import train

    cfg = load_config(EXAMPLE)
    base = args.candidate
    cand = cfg.candidates[base]
    job = plan_job(cfg, method="lora", candidate=base)
    train_s = None
    if not (job.folder / "rung-lineage.json").is_file():
        print(f"training {job.id} ...", flush=True)
        t0 = time.perf_counter()
        train(job)
        train_s = time.perf_counter() - t0
        print(f"trained in {train_s:.0f} s", flush=True)
    lineage = json.loads((job.folder / "rung-lineage.json").read_text())
    merged = job.folder / "merged"
    if not (merged / "config.json").is_file():
        merge_lora(job.folder, job)

    cfg.models[cand.model].adapters["lora"] = str(job.folder)
    cfg.models["merged"] = cfg.models[cand.model].model_copy(update={"path": str(merged), "adapters": {}})
    rows = {"base": base, "adapter": f"{base}-lora", "merged": f"{base}-merged", "rag": "rag"}
    cfg.candidates[rows["adapter"]] = cand.model_copy(update={"adapter": "lora"})
    cfg.candidates[rows["merged"]] = cand.model_copy(update={"model": "merged", "level": 1})

    suite_name, suite_cfg = cfg.suite(None)
    cases = load_suite(cfg.resolve(suite_cfg.path), name=suite_name).cases
    ids = None if args.all else [c.id for c in spread_sample(cases, args.sample)]
    store = RunStore(cfg.resolve(cfg.paths.store))
    runs = {}
    for key in args.latency_rows.split(","):
        name = rows[key]
        t0 = time.perf_counter()
        run, reused = evaluate_candidate(cfg, name, store, ids=ids, reuse=not args.fresh,
                                         resume=not args.fresh, use_cache=not args.fresh)
        runs[key] = run
        print(f"{key:8s} {name:24s} run {run.info.id} {'(reused)' if reused else ''} "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    print(f"\nadapter {job.id}: dataset {lineage.get('dataset', {}).get('version')}, "
          f"best dev {lineage.get('metrics', {}).get('best')}"
          + (f", trained in {train_s:.0f} s" if train_s else ""))
    n = len(ids) if ids else len(cases)
    print(f"{n} held-out eval cases (the eval suite; training used cases/train.jsonl + hard negatives)\n")
    header = (f"{'row':8s} " + " ".join(f"{m[:18]:>20s}" for m in SHOWN)
              + f" {'p50 ms':>8s} {'p95 ms':>8s} {'tok in':>7s}")
    print(header)
    summaries = {k: aggregate(r) for k, r in runs.items()}
    for k, s in summaries.items():
        cells = []
        for m in SHOWN:
            ms = s.metrics.get(m)
            cells.append("-" if ms is None or ms.mean is None else
                         f"{ms.mean:.3f} [{ms.ci_low:.2f},{ms.ci_high:.2f}]")
        print(f"{k:8s} " + " ".join(f"{c:>20s}" for c in cells)
              + f" {s.p50_latency_ms or 0:8.0f} {s.p95_latency_ms or 0:8.0f} {s.tokens_in_mean or 0:7.0f}")
    if "base" in runs and "adapter" in runs:
        c = compare(runs["base"], runs["adapter"])
        print("\nbase -> adapter, paired by case:")
        for m in SHOWN:
            d = c.metrics.get(m)
            if d is not None and d.delta is not None:
                p = "-" if d.p_value is None else f"{d.p_value:.3g}"
                print(f"  {m:22s} {d.mean_a:.3f} -> {d.mean_b:.3f}  delta {d.delta:+.3f}  p={p}  "
                      f"({d.test}, n={d.n_pairs})")
    if "base" in summaries and "merged" in summaries and "adapter" in summaries:
        b, a, mg = (summaries[k].p95_latency_ms or 0 for k in ("base", "adapter", "merged"))
        print(f"\nP95 latency: adapter / base {a / b:.2f}x, merged / base {mg / b:.2f}x")
    if "rag" in summaries and "adapter" in summaries:
        r, a = summaries["rag"], summaries["adapter"]
        print(f"rag (long prompt) tokens in {r.tokens_in_mean:.0f} vs adapter {a.tokens_in_mean:.0f}; "
              f"P95 rag {r.p95_latency_ms:.0f} ms vs adapter {a.p95_latency_ms:.0f} ms")
    print(json.dumps({"bench": "levels", "job": job.id, "cases": n, "train_s": train_s,
                      "rows": {k: {m: (s.metrics[m].mean if m in s.metrics else None) for m in SHOWN}
                               | {"p50_ms": s.p50_latency_ms, "p95_ms": s.p95_latency_ms,
                                  "tokens_in": s.tokens_in_mean, "run": runs[k].info.id}
                               for k, s in summaries.items()}}))


if __name__ == "__main__":
    main()
