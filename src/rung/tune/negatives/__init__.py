"""Hard-negative generators: new training examples derived from existing ones.

    new = apply_negatives(examples, ["adversarial", "long_context"], config=cfg, seed=0)
    result = run_negatives(examples, names, config=cfg, seed=0)   # + what was made and skipped

Generators are registered by name in GENERATORS; each is a module with one function
`generate(examples, *, config, rng, skipped=None, progress=None) -> list[Example]` that returns
only new examples. Every new example has lineage source "negative", ref "<generator>:<parent id>",
generator and parent set, the parent's product / policy version and annotator, and the tags
"negative:<generator>" plus the generator's own tag group (adversarial, conflicting-policy,
long-context, multilingual) plus the parent's tags. Its id is "<parent id>~<generator>-<key>".

Each generator gets its own random.Random seeded with "<seed>:<generator>", so the output is the
same for the same seed, examples, knowledge and configuration, and adding or removing one
generator does not change what the others make.

| name | what it makes |
|---|---|
| adversarial | the question wrapped in injection / role-play / override attacks (templates and real S-Labs attack strings); target: the parent's answer, or the refusal for an attack alone |
| conflicting | two clauses that disagree (versions, jurisdictions, untrusted documents) in the context; target: the parent's, which follows the clause the precedence rules pick |
| long_context | the prompt padded with distractor passages to `long_context_tokens`, the parent's sources kept as the needle |
| multilingual | es / fr / de variants: by a translator model, or curated refusal templates |

Settings live in rung.yaml under tune.data (negatives_per_example, negatives_fraction,
long_context_tokens, languages, translator); see docs/negatives.md.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from rung.config import RungConfig
from rung.errors import ConfigError, DataError, did_you_mean
from rung.models.base import ProgressCallback
from rung.tune.example import Example
from rung.tune.negatives import adversarial, conflicting, long_context, multilingual
from rung.tune.negatives._common import Generator

GENERATORS: dict[str, Generator] = {
    adversarial.NAME: adversarial.generate,
    conflicting.NAME: conflicting.generate,
    long_context.NAME: long_context.generate,
    multilingual.NAME: multilingual.generate,
}


@dataclass
class GeneratorReport:
    """What one generator made and why it left parents out (reason -> count)."""

    name: str
    made: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)  # multilingual: translation method -> count


@dataclass
class NegativesResult:
    examples: list[Example]
    reports: list[GeneratorReport]

    def card(self) -> dict[str, dict[str, object]]:
        """A JSON-ready summary for a dataset card: per generator, made / skipped by reason."""
        return {r.name: {"made": r.made, "skipped": dict(sorted(r.skipped.items())),
                         **({"methods": dict(r.methods)} if r.methods else {})} for r in self.reports}


def check_names(names: list[str]) -> None:
    """Raise ConfigError for an unknown or repeated generator name (with a did-you-mean)."""
    seen: set[str] = set()
    for name in names:
        if name not in GENERATORS:
            raise ConfigError(f"tune.data.negatives: unknown generator {name!r}{did_you_mean(name, GENERATORS)}; "
                            f"known: {', '.join(GENERATORS)}")
        if name in seen:
            raise ConfigError(f"tune.data.negatives: generator {name!r} is listed twice")
        seen.add(name)


def run_negatives(examples: list[Example], names: list[str], *, config: RungConfig, seed: int,
                  progress: ProgressCallback | None = None) -> NegativesResult:
    """Apply the named generators, in order, each to `examples` (never to another generator's
    output). `progress(done, total)` runs over all generators (per mille of parents done)."""
    check_names(names)
    out: list[Example] = []
    reports = []
    for index, name in enumerate(names):
        rng = random.Random(f"{seed}:{name}")
        report = GeneratorReport(name)
        step = None
        if progress is not None:
            def step(done: int, total: int, _i: int = index) -> None:
                progress(_i * 1000 + round(1000 * done / max(total, 1)), 1000 * len(names))
        made = GENERATORS[name](examples, config=config, rng=rng, skipped=report.skipped, progress=step)
        made = _drop_repeats(examples, out, made, report)
        report.made = len(made)
        for ex in made:
            method = ex.metadata.get("translation")
            if name == multilingual.NAME and method:
                report.methods[str(method)] += 1
        reports.append(report)
        out.extend(made)
    _check_unique(examples, out)
    return NegativesResult(out, reports)


def apply_negatives(examples: list[Example], names: list[str], *, config: RungConfig, seed: int,
                    progress: ProgressCallback | None = None) -> list[Example]:
    """Only the new examples the named generators make from `examples` (see run_negatives)."""
    return run_negatives(examples, names, config=config, seed=seed, progress=progress).examples


def _drop_repeats(examples: list[Example], earlier: list[Example], made: list[Example],
                  report: GeneratorReport) -> list[Example]:
    """A variant identical (messages, label, rejected) to an example or an earlier variant adds
    nothing to training: keep the first, count the others as skipped ("repeats another example";
    a fixed template applied to several parents of one kind does this)."""
    seen = {e.content_hash() for e in examples} | {e.content_hash() for e in earlier}
    kept = []
    for ex in made:
        h = ex.content_hash()
        if h in seen:
            report.skipped["repeats another example"] += 1
            continue
        seen.add(h)
        kept.append(ex)
    return kept


def _check_unique(examples: list[Example], made: list[Example]) -> None:
    ids = {e.id for e in examples}
    for ex in made:
        if ex.id in ids:
            raise DataError(f"hard negative {ex.id!r} has the id of another example (parent ids must be unique)")
        ids.add(ex.id)


__all__ = ["GENERATORS", "GeneratorReport", "NegativesResult", "apply_negatives", "check_names", "run_negatives"]
