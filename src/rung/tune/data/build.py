"""`build_dataset`: sources -> hard negatives -> checks -> balance -> card -> save.

Sources, in this order: the train cases (`tune.data.train`), the scored answers of runs
(`tune.data.runs` plus `runs=`), user files (`tune.data.files` plus `files=`). Hard negatives
(`tune.data.negatives`) are derived from those by rung.tune.negatives. The checks run on
everything sourced; blocking findings raise a DataError unless allowed. Balancing only removes
examples. The dataset is saved under `paths.datasets/<version>/` with its card.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from rung.config import RungConfig
from rung.core import Case
from rung.errors import DataError
from rung.tune.data.balance import balance
from rung.tune.data.card import make_card
from rung.tune.data.cases import examples_from_cases
from rung.tune.data.catalog import datasets_root
from rung.tune.data.checks import raise_if_blocking, run_checks, validate_allow
from rung.tune.data.files import examples_from_file
from rung.tune.data.sources import LineageDefaults, Skipped
from rung.tune.data.traces import examples_from_runs
from rung.tune.example import Dataset, Example

Progress = Callable[[int, int], None]
STEPS = ("sources", "negatives", "checks", "balance", "card", "save")


def eval_cases(cfg: RungConfig) -> dict[str, list[Case]]:
    """The cases leakage is checked against, by suite name: `tune.data.checks.leakage_suites`, or
    every suite of rung.yaml except one that is the train split itself (same path)."""
    from rung.errors import did_you_mean
    from rung.evals.suite import load_suite

    dc = cfg.tune.data
    names = dc.checks.leakage_suites
    if names is None:
        train = cfg.resolve(dc.train).resolve() if dc.train else None
        names = [n for n, s in cfg.suites.items() if cfg.resolve(s.path).resolve() != train]
    for n in names:
        if n not in cfg.suites:
            raise DataError(f"tune.data.checks.leakage_suites: no suite named {n!r}"
                            f"{did_you_mean(n, cfg.suites)}; suites are {sorted(cfg.suites)}")
    return {n: load_suite(cfg.existing_path("suites", n, "path", what="suite file or folder"), name=n).cases
            for n in names}


def _unique_ids(examples: list[Example]) -> None:
    seen: dict[str, Example] = {}
    for ex in examples:
        if ex.id in seen:
            raise DataError(f"example id {ex.id!r} comes twice ({seen[ex.id].lineage.ref} and "
                            f"{ex.lineage.ref}): is the same file or run given twice?")
        seen[ex.id] = ex


def source_examples(cfg: RungConfig, *, runs: Sequence[str] = (), files: Sequence[str | Path] = (),
                    skipped: Skipped | None = None) -> tuple[list[Example], dict[str, Any]]:
    """Every example the sources give, and the inputs as the card records them."""
    dc = cfg.tune.data
    skipped = skipped if skipped is not None else Skipped()
    defaults = LineageDefaults.from_config(dc)
    examples: list[Example] = []
    if dc.train:
        examples += examples_from_cases(cfg.resolve(dc.train), defaults, dc.refusal_target, skipped)
    run_ids = list(dict.fromkeys([*dc.runs, *runs]))
    full_ids: list[str] = []
    if run_ids:
        from rung.evals.store import RunStore

        store = RunStore(cfg.store_target(), create=False)  # reads runs: never creates a store
        try:
            full_ids = [store.resolve_id(r) for r in run_ids]
            examples += examples_from_runs(store, full_ids, defaults, dc.refusal_target, skipped)
        finally:
            store.close()
    shown_files: list[str] = []
    for f in dc.files:
        examples += examples_from_file(cfg.resolve(f), defaults, shown=f)
        shown_files.append(f)
    for f in files:
        examples += examples_from_file(Path(f), defaults, shown=str(f))
        shown_files.append(str(f))
    inputs = {"config": str(cfg.source) if cfg.source else None, "train": dc.train, "runs": full_ids,
              "files": shown_files, "negatives": list(dc.negatives), "seed": dc.seed,
              "refusal_target": dc.refusal_target, "checks": dc.checks.model_dump(),
              "balance": dc.balance.model_dump()}
    return examples, inputs


def build_dataset(config: RungConfig, *, runs: Sequence[str] = (), files: Sequence[str | Path] = (),
                  allow: Iterable[str] = (), progress: Progress | None = None,
                  save: bool = True, name: str = "train",
                  extra: Sequence[Example] = ()) -> tuple[Dataset, dict[str, Any]]:
    """Build, check, balance, describe and (by default) save the project's training set.

    Returns the dataset and its card; the folder is `datasets_root(config) / dataset.version`.
    Raises DataError when a blocking check fails (unless its name is in `allow`) or when there
    is nothing to build from. `extra`: more examples (with their own lineage) checked, balanced
    and saved with the sourced ones.
    """
    dc = config.tune.data
    allow = validate_allow(allow)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(STEPS))

    if progress is not None:
        progress(0, len(STEPS))
    skipped = Skipped()
    examples, inputs = source_examples(config, runs=runs, files=files, skipped=skipped)
    if extra:  # examples made elsewhere with their own lineage (e.g. live traces: rung.ops.refresh)
        examples = examples + list(extra)
        inputs["extra"] = len(extra)
    if not examples:
        where = f"{config.source}: " if config.source else ""
        raise DataError(f"{where}no training examples: set tune.data.train, tune.data.files or "
                        f"tune.data.runs (or pass --run / --file)"
                        + (f"; skipped: {dict(skipped.counts)}" if skipped.counts else ""))
    _unique_ids(examples)
    tick()
    if dc.negatives:
        from rung.tune.negatives import apply_negatives  # another part of rung

        examples = examples + apply_negatives(examples, list(dc.negatives), config=config, seed=dc.seed)
    tick()
    findings = run_checks(examples, eval_cases(config), dc.checks, allow)
    raise_if_blocking(findings)
    tick()
    balanced, report = balance(examples, dc.balance, dc.seed)
    if not balanced:
        raise DataError(f"tune.data.balance: balancing left no examples of {len(examples)} "
                        f"(steps: {', '.join(s.step for s in report.steps)})")
    tick()
    dataset = Dataset(balanced, name=name)
    card = make_card(balanced, name=name, inputs=inputs, skipped=skipped, findings=findings,
                     balance=report, sourced=len(examples))
    card["version"] = dataset.version
    tick()
    if save:
        dataset.save(datasets_root(config), card=card)
    tick()
    return dataset, card
