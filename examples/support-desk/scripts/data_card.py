"""Print the count tables of DATA_CARD.md from the files themselves, so the card stays true.

    python examples/support-desk/scripts/data_card.py           # print the tables
    python examples/support-desk/scripts/data_card.py --write   # replace them in DATA_CARD.md
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import textsim  # noqa: E402
from make_train import question_of  # noqa: E402

ROOT = HERE.parent
CARD = ROOT / "DATA_CARD.md"
BEGIN, END = "<!-- data_card.py: begin -->", "<!-- data_card.py: end -->"
CATEGORIES = ["factual", "troubleshooting", "conflicting-policy", "adversarial", "injection", "long-context",
              "multilingual", "out-of-scope", "must-refuse", "triage", "multi-turn"]


def _cases(split: str) -> list[dict[str, Any]]:
    path = ROOT / "cases" / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _docs() -> list[dict[str, Any]]:
    metas = []
    for path in sorted((ROOT / "knowledge").glob("*.md")):
        head = path.read_text(encoding="utf-8")[4:].partition("\n---\n")[0]
        metas.append(yaml.safe_load(head))
    return metas


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _by(splits: dict[str, list[dict[str, Any]]], key) -> list[list[Any]]:
    counts = {name: Counter(v for row in rows for v in key(row)) for name, rows in splits.items()}
    values = sorted(set().union(*counts.values()), key=lambda v: (-counts["eval"][v], str(v)))
    return [[v, *(counts[name][v] for name in splits)] for v in values]


def render() -> str:
    ev, tr = _cases("eval"), _cases("train")
    splits = {"eval": ev, "train": tr}
    docs = _docs()
    out = ["### Knowledge documents", "",
           _table(["type", "EU", "US", "global", "total"],
                  [[t, *(sum(d["type"] == t and d["jurisdiction"] == j for d in docs) for j in ("EU", "US", "global")),
                    sum(d["type"] == t for d in docs)] for t in ("policy", "guide", "faq", "pricing")]
                  + [["all", *(sum(d["jurisdiction"] == j for d in docs) for j in ("EU", "US", "global")), len(docs)]]),
           "",
           f"Untrusted (planted instructions): {sum(bool(d.get('untrusted')) for d in docs)}. "
           f"Superseded by a newer version: {sum(bool(d.get('supersedes')) for d in docs)}.", "",
           "### Cases by split", "",
           _table(["", "eval", "train"], [
               ["cases", len(ev), len(tr)],
               ["should_refuse: true", sum(r["should_refuse"] for r in ev), sum(r["should_refuse"] for r in tr)],
               ["chat form (messages)", sum("messages" in r for r in ev), sum("messages" in r for r in tr)],
               ["structured (schema: triage)", sum(r.get("schema") == "triage" for r in ev),
                sum(r.get("schema") == "triage" for r in tr)],
           ]), "",
           "### By case type (a case can have several)", "",
           _table(["tag", "eval", "train"], [[c, sum(c in r["tags"] for r in ev), sum(c in r["tags"] for r in tr)]
                                             for c in CATEGORIES]), "",
           "### By language, product and jurisdiction", "",
           _table(["tag", "eval", "train"],
                  _by(splits, lambda r: [t for t in r["tags"] if t.startswith(("lang:", "product:", "jurisdiction:"))])
                  + [["English (no lang tag)", sum(not r["metadata"].get("lang") for r in ev),
                      sum(not r["metadata"].get("lang") for r in tr)]]), "",
           "### By intent", "",
           _table(["intent", "eval", "train"], _by(splits, lambda r: [r["metadata"]["intent"]])), ""]
    index = textsim.Index([(r["id"], question_of(r)) for r in ev])
    worst, near = max(index.nearest(question_of(r)) for r in tr)
    train_facts = {(s, f.casefold()) for r in tr for s in r["sources"] for f in r["metadata"]["must_include"]}
    answered = [r for r in ev if not r["should_refuse"]]
    shared = sum(any((s, f.casefold()) in train_facts for s in r["sources"] for f in r["metadata"]["must_include"])
                 for r in answered)
    out += ["### Overlap between the splits", "",
            f"- Highest TF-IDF similarity of a train question to an eval question: {worst:.2f} "
            f"(near-duplicate threshold 0.5).",
            f"- Eval cases (answerable) whose key fact, from the same document, is also taught by a train example: "
            f"{shared} of {len(answered)}."]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"replace the tables in {CARD.name}")
    args = parser.parse_args(argv)
    tables = render()
    if not args.write:
        print(tables)
        return 0
    card = CARD.read_text(encoding="utf-8")
    head, _, rest = card.partition(BEGIN)
    _, _, tail = rest.partition(END)
    CARD.write_text(f"{head}{BEGIN}\n{tables}\n{END}{tail}", encoding="utf-8")
    print(f"updated {CARD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
