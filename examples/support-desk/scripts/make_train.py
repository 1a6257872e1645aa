"""Build cases/train.jsonl, the train split for adapter and full fine-tuning.

Deterministic (fixed seed): running it twice gives the same file. Examples come from templates
filled with facts of the knowledge documents (train_facts, train_product, train_refusals,
train_formats). Every question is decontaminated against cases/eval.jsonl: an example whose
question is a near-duplicate of an eval question (TF-IDF word-bigram cosine >= NEAR_DUPLICATE)
is dropped and reported. The templates are written so that nothing is dropped; the filter is the
guard that keeps it so.

    python examples/support-desk/scripts/make_train.py            # writes cases/train.jsonl
    python examples/support-desk/scripts/make_train.py --check    # exit 1 if the file is stale
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import textsim  # noqa: E402
import train_facts  # noqa: E402
import train_formats  # noqa: E402
import train_product  # noqa: E402
import train_refusals  # noqa: E402

SEED = 20260415
NEAR_DUPLICATE = 0.5
ROOT = HERE.parent
EVAL = ROOT / "cases" / "eval.jsonl"
TRAIN = ROOT / "cases" / "train.jsonl"


def question_of(case: dict[str, Any]) -> str:
    """The text a near-duplicate check compares: the input, or the last user message."""
    if case.get("input") is not None:
        return case["input"]
    users = [m["content"] for m in case.get("messages") or [] if m.get("role") == "user"]
    return users[-1] if users else ""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build(eval_cases: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The train examples (ids assigned) and a note for each one dropped by decontamination."""
    rng = random.Random(SEED)
    examples: list[dict[str, Any]] = []
    for module in (train_facts, train_product, train_refusals, train_formats):
        examples += module.generate(rng)
    index = textsim.Index([(c["id"], question_of(c)) for c in eval_cases])
    kept, dropped = [], []
    for ex in examples:
        sim, near = index.nearest(question_of(ex))
        if sim >= NEAR_DUPLICATE:
            dropped.append(f"{sim:.2f} {near}: {question_of(ex)[:80]}")
        else:
            kept.append(ex)
    counters: Counter[str] = Counter()
    for ex in kept:
        category = ex["tags"][0]
        counters[category] += 1
        ex["id"] = f"train-{category}-{counters[category]:03d}"
    return kept, dropped


def render(examples: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(ex, ensure_ascii=False) + "\n" for ex in examples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TRAIN)
    parser.add_argument("--check", action="store_true", help="fail if the file differs from a fresh build")
    args = parser.parse_args(argv)
    examples, dropped = build(read_jsonl(EVAL))
    for note in dropped:
        print(f"dropped (near-duplicate of eval): {note}", file=sys.stderr)
    text = render(examples)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run scripts/make_train.py", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date ({len(examples)} examples)")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {len(examples)} examples to {args.out} ({len(dropped)} dropped as near-duplicates)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
