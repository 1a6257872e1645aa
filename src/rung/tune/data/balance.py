"""Balancing: per-tag quotas, the positive/counter mix and the short/long mix.

Balancing only removes examples (it never repeats one: a repeated example would be an exact
duplicate and over-weight it silently). Steps run in a fixed order, each on what the previous one
kept: tag quotas, then labels (`counter_fraction`), then lengths (`long_fraction`), then
`max_examples`. Which examples go is drawn with `random.Random("<seed>:<step>")` from each
over-full group, so the same examples and seed always give the same result; kept examples keep
their order. The report has the counts before and after each step and overall.

Tag quotas (rung.yaml `tune.data.balance.tags`): a key ending with ":" is a prefix and applies to
every value under it (an example counts under its first tag with that prefix; examples with no
such tag are not touched); any other key is one exact tag. The value is the most examples to
keep, or "equal" (prefixes only): every value capped at the count of the smallest one.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from rung.config import BalanceConfig
from rung.errors import DataError
from rung.tune.example import Example


def word_count(ex: Example) -> int:
    return sum(len((m.get("content") or "").split()) for m in ex.messages)


def length_class(ex: Example, long_words: int) -> str:
    return "long" if word_count(ex) > long_words else "short"


def tag_value(ex: Example, key: str) -> str | None:
    """The group of `ex` under a quota key: its first tag with the prefix, or the exact tag."""
    if key.endswith(":"):
        return next((t for t in ex.tags if t.startswith(key)), None)
    return key if key in ex.tags else None


@dataclass
class BalanceStep:
    step: str  # "tags:product:", "labels", "length", "max_examples"
    rule: str  # the rule in words
    before: dict[str, int]
    after: dict[str, int]
    dropped: int
    note: str = ""


@dataclass
class BalanceReport:
    seed: int
    before: int = 0
    after: int = 0
    steps: list[BalanceStep] = field(default_factory=list)
    counts_before: dict[str, dict[str, int]] = field(default_factory=dict)
    counts_after: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _counts(examples: list[Example], cfg: BalanceConfig) -> dict[str, dict[str, int]]:
    out = {"label": dict(Counter(ex.label for ex in examples)),
           "length": dict(Counter(length_class(ex, cfg.long_words) for ex in examples))}
    for key in cfg.tags:
        out[f"tag {key}"] = dict(Counter(tag_value(ex, key) or "(none)" for ex in examples))
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def _cap(examples: list[Example], groups: list[str | None], caps: dict[str, int], rng: random.Random) -> list[Example]:
    """Keep at most caps[g] examples of each group g (drawn with rng); other groups untouched."""
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        if g is not None and g in caps:
            members.setdefault(g, []).append(i)
    drop: set[int] = set()
    for g in sorted(members):
        idx = members[g]
        if len(idx) > caps[g]:
            keep = set(rng.sample(idx, caps[g]))
            drop.update(i for i in idx if i not in keep)
    return [ex for i, ex in enumerate(examples) if i not in drop]


def _share_caps(counts: Counter[str], a: str, b: str, fraction: float) -> tuple[dict[str, int], str]:
    """Caps so that group a makes `fraction` of a + b (removing from the larger side only)."""
    na, nb = counts.get(a, 0), counts.get(b, 0)
    if na + nb == 0:
        return {}, "no examples"
    if fraction <= 0:
        return {a: 0}, ""
    if fraction >= 1:
        return {b: 0}, ""
    if na / (na + nb) < fraction:  # too few a: fewer b
        if na == 0:
            return {}, f"not possible: no {a!r} examples"
        return {b: math.floor(na * (1 - fraction) / fraction)}, ""
    return {a: math.floor(nb * fraction / (1 - fraction))}, ""


def balance(examples: list[Example], cfg: BalanceConfig, seed: int) -> tuple[list[Example], BalanceReport]:
    """The balanced examples and a before/after report (see the module doc)."""
    report = BalanceReport(seed=seed, before=len(examples), counts_before=_counts(examples, cfg))
    current = list(examples)

    def step(name: str, rule: str, groups: list[str | None], caps: dict[str, int], note: str = "") -> None:
        nonlocal current
        before = dict(sorted(Counter(g or "(none)" for g in groups).items()))
        kept = _cap(current, groups, caps, random.Random(f"{seed}:{name}")) if caps else current
        kept_ids = {id(ex) for ex in kept}
        after = dict(sorted(Counter(g or "(none)" for g, ex in zip(groups, current)
                                    if id(ex) in kept_ids).items()))
        report.steps.append(BalanceStep(name, rule, before, after, len(current) - len(kept), note))
        current = kept

    for key, quota in cfg.tags.items():
        groups = [tag_value(ex, key) for ex in current]
        present = Counter(g for g in groups if g is not None)
        if quota == "equal":
            if not key.endswith(":"):
                raise DataError(f"tune.data.balance.tags.{key}: 'equal' applies to a prefix ending "
                                f"with ':' (e.g. 'product:'), not to one tag")
            cap = min(present.values()) if present else 0
            step(f"tags:{key}", f"every {key}* value capped at the smallest ({cap})", groups,
                 {g: cap for g in present}, "" if present else f"no example has a {key}* tag")
        else:
            step(f"tags:{key}", f"at most {quota} per {key}* value" if key.endswith(":")
                 else f"at most {quota} tagged {key}", groups, {g: int(quota) for g in present},
                 "" if present else f"no example has the tag {key}")

    if cfg.counter_fraction is not None:
        groups = [ex.label for ex in current]
        caps, note = _share_caps(Counter(groups), "counter", "positive", cfg.counter_fraction)
        step("labels", f"counter-examples make {cfg.counter_fraction:.0%} of the examples", groups, caps, note)

    if cfg.long_fraction is not None:
        groups = [length_class(ex, cfg.long_words) for ex in current]
        caps, note = _share_caps(Counter(groups), "long", "short", cfg.long_fraction)
        step("length", f"long examples (> {cfg.long_words} words) make {cfg.long_fraction:.0%}",
             groups, caps, note)

    if cfg.max_examples is not None:
        groups = ["all"] * len(current)
        step("max_examples", f"at most {cfg.max_examples} examples", groups, {"all": cfg.max_examples})

    report.after = len(current)
    report.counts_after = _counts(current, cfg)
    return current, report
