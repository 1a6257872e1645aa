"""Checks that stop a bad training set before it is trained on.

Each check returns a Finding: what it found (counts and a few example ids and texts) and how bad
it is. Severities (the defaults; rung.yaml `tune.data.checks` changes the ones marked *):

| check | what | default |
|---|---|---|
| empty_targets | the last turn is not the assistant's, or the target is blank | error |
| exact_duplicates | examples identical in what training sees (messages, label, rejected) | error |
| near_duplicates | TF-IDF cosine of two examples' text (system turns left out) >= near_duplicate_threshold (0.9); an example and the hard negatives derived from it are not compared | warning * |
| leakage | an example's user text equals (normalised) or is near (cosine >= leakage_threshold, 0.6) an eval case's question, in the suites of rung.yaml (all but the train split itself, or `leakage_suites`) | error |
| counter_examples | fewer than min_counter_fraction (5%) of the examples are counter-examples | warning * |

An error blocks the build (a DataError listing every blocking finding) unless the user allows
that check (`rung data build --allow CHECK`); an allowed finding stays in the card, marked so.
Too few counter-examples is a warning by default because a first dataset built from train cases
alone has none (they come from scored runs and hard negatives); set `counter_examples: error`
once runs or negatives feed the dataset.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rung.config import DataChecksConfig
from rung.core import Case
from rung.errors import DataError, did_you_mean
from rung.text import textnorm
from rung.tune.data.similarity import nearest_across, pairs_within, user_text
from rung.tune.example import Example

CHECKS = ("empty_targets", "exact_duplicates", "near_duplicates", "leakage", "counter_examples")
SAMPLES = 5
Severity = Literal["ok", "warning", "error"]


@dataclass
class Finding:
    check: str
    severity: Severity
    message: str
    count: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    allowed: bool = False  # an error the user allowed with --allow

    @property
    def blocking(self) -> bool:
        return self.severity == "error" and not self.allowed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _short(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _family(ex: Example) -> str:
    """The example a hard negative was derived from (or the example itself)."""
    return ex.lineage.parent or ex.id


def _full_text(ex: Example) -> str:
    return "\n".join(m.get("content", "") for m in ex.messages if m.get("role") != "system")


# ---------------------------------------------------------------- the checks

def check_empty_targets(examples: list[Example]) -> Finding:
    bad = [ex for ex in examples if not ex.target.strip()]
    if not bad:
        return Finding("empty_targets", "ok", "every example ends with a non-empty assistant target")
    samples = [{"id": ex.id, "last_role": ex.messages[-1].get("role") if ex.messages else None,
                "prompt": _short(user_text(ex.messages))} for ex in bad[:SAMPLES]]
    return Finding("empty_targets", "error",
                   f"{len(bad)} example(s) have no assistant target (empty, or the last turn is not "
                   f"the assistant's): {', '.join(ex.id for ex in bad[:SAMPLES])}", len(bad), samples)


def check_exact_duplicates(examples: list[Example]) -> Finding:
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[ex.content_hash()].append(ex)
    dups = [g for g in groups.values() if len(g) > 1]
    extra = sum(len(g) - 1 for g in dups)
    if not dups:
        return Finding("exact_duplicates", "ok", "no two examples are identical")
    samples = [{"ids": [ex.id for ex in g], "prompt": _short(user_text(g[0].messages))}
               for g in dups[:SAMPLES]]
    return Finding("exact_duplicates", "error",
                   f"{extra} example(s) repeat another one exactly ({len(dups)} group(s)), e.g. "
                   f"{' = '.join(ex.id for ex in dups[0][:3])}", extra, samples)


def check_near_duplicates(examples: list[Example], threshold: float, severity: Severity) -> Finding:
    candidates = [p for p in pairs_within([_full_text(ex) for ex in examples], threshold)
                  if examples[p.i].content_hash() != examples[p.j].content_hash()]
    # a hard negative is meant to be a variant of its parent (same question, new context):
    # pairs inside one family (an example, the negatives derived from it) are not duplicates
    pairs = [p for p in candidates if _family(examples[p.i]) != _family(examples[p.j])]
    family = len(candidates) - len(pairs)
    also = f" ({family} pair(s) of an example and its own hard negatives not counted)" if family else ""
    if not pairs:
        return Finding("near_duplicates", "ok",
                       f"no two examples have a TF-IDF cosine >= {threshold:g}{also}")
    pairs.sort(key=lambda p: -p.similarity)
    involved = len({p.i for p in pairs} | {p.j for p in pairs})
    samples = [{"ids": [examples[p.i].id, examples[p.j].id], "similarity": round(p.similarity, 3),
                "texts": [_short(user_text(examples[p.i].messages)),
                          _short(user_text(examples[p.j].messages))]} for p in pairs[:SAMPLES]]
    return Finding("near_duplicates", severity,
                   f"{len(pairs)} pair(s) of examples ({involved} examples) have a TF-IDF cosine >= "
                   f"{threshold:g}; the closest: {samples[0]['ids'][0]} ~ {samples[0]['ids'][1]} "
                   f"({samples[0]['similarity']}){also}", len(pairs), samples)


def check_leakage(examples: list[Example], eval_cases: dict[str, list[Case]], threshold: float) -> Finding:
    refs = [(suite, c) for suite, cases in eval_cases.items() for c in cases]
    if not refs:
        return Finding("leakage", "ok", "no eval suite in rung.yaml to compare with")
    prompts = [user_text(ex.prompt) for ex in examples]
    questions = [user_text(c.chat()) for _, c in refs]
    by_norm: dict[str, int] = {}
    for k, q in enumerate(questions):
        by_norm.setdefault(" ".join(textnorm.tokens(q)), k)
    hits: dict[int, tuple[int, float, str]] = {}  # example index -> (ref index, similarity, kind)
    for i, p in enumerate(prompts):
        k = by_norm.get(" ".join(textnorm.tokens(p)))
        if k is not None and p.strip():
            hits[i] = (k, 1.0, "exact")
    for pair in nearest_across(prompts, questions, threshold):
        if pair.i not in hits:
            hits[pair.i] = (pair.j, pair.similarity, "near")
    n_suites = len(eval_cases)
    if not hits:
        return Finding("leakage", "ok", f"no prompt repeats or nearly repeats (cosine >= {threshold:g}) "
                                        f"a question of the {len(refs)} eval case(s) in {n_suites} suite(s)")
    ordered = sorted(hits.items(), key=lambda kv: -kv[1][1])
    samples = []
    for i, (k, sim, kind) in ordered[:SAMPLES]:
        suite, case = refs[k]
        samples.append({"id": examples[i].id, "eval_case": f"{suite}/{case.id}", "kind": kind,
                        "similarity": round(sim, 3), "prompt": _short(prompts[i]),
                        "eval_question": _short(questions[k])})
    n_exact = sum(1 for _, _, kind in hits.values() if kind == "exact")
    first = samples[0]
    return Finding("leakage", "error",
                   f"{len(hits)} example(s) repeat an eval question ({n_exact} exactly, "
                   f"{len(hits) - n_exact} with cosine >= {threshold:g}), e.g. {first['id']} ~ "
                   f"{first['eval_case']} ({first['similarity']})", len(hits), samples)


def check_counter_examples(examples: list[Example], min_fraction: float, severity: Severity) -> Finding:
    n = len(examples)
    counters = [ex for ex in examples if ex.label == "counter"]
    share = len(counters) / n if n else 0.0
    by_source: dict[str, int] = defaultdict(int)
    for ex in counters:
        by_source[ex.lineage.source] += 1
    samples = [{"id": ex.id, "prompt": _short(user_text(ex.prompt))} for ex in counters[:SAMPLES]]
    what = (f"{len(counters)} of {n} examples ({share:.1%}) are counter-examples"
            + (f" (by source: {dict(by_source)})" if by_source else ""))
    if share >= min_fraction:
        return Finding("counter_examples", "ok", f"{what}; at least {min_fraction:.0%} expected",
                       len(counters), samples)
    return Finding("counter_examples", severity,
                   f"{what}; at least {min_fraction:.0%} expected (add scored runs with --run or "
                   "hard negatives in tune.data.negatives)", len(counters), samples)


# ---------------------------------------------------------------- running them

def validate_allow(allow: Iterable[str]) -> list[str]:
    """The --allow names, checked against the known checks."""
    names = list(allow)
    for name in names:
        if name not in CHECKS:
            raise DataError(f"--allow {name!r}: no such check{did_you_mean(name, CHECKS)}; "
                            f"checks are {', '.join(CHECKS)}")
    return names


def run_checks(examples: list[Example], eval_cases: dict[str, list[Case]], cfg: DataChecksConfig,
               allow: Iterable[str] = ()) -> list[Finding]:
    """Every check, in CHECKS order; allowed errors are marked `allowed`."""
    allowed = set(validate_allow(allow))
    findings = [
        check_empty_targets(examples),
        check_exact_duplicates(examples),
        check_near_duplicates(examples, cfg.near_duplicate_threshold, cfg.near_duplicates),
        check_leakage(examples, eval_cases, cfg.leakage_threshold),
        check_counter_examples(examples, cfg.min_counter_fraction, cfg.counter_examples),
    ]
    for f in findings:
        f.allowed = f.severity == "error" and f.check in allowed
    return findings


def raise_if_blocking(findings: list[Finding]) -> None:
    """A DataError listing every blocking finding (none: returns)."""
    blocking = [f for f in findings if f.blocking]
    if not blocking:
        return
    lines = [f"the dataset failed {len(blocking)} check(s) "
             f"(fix the data, or pass --allow {' --allow '.join(f.check for f in blocking)}):"]
    lines += [f"  {f.check}: {f.message}" for f in blocking]
    raise DataError("\n".join(lines))
