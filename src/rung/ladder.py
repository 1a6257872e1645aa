"""The ladder: evaluate level-0 candidates from the simplest to the richest, climb to level 1 (and
2) only when the decision checklist says level 0 cannot close the gap, then decide.

Every step is a stored run. A step whose candidate (content hash), cases and scorers did not
change since its last finished run is reused without loading the model, so a re-run only does
what changed; a step that was interrupted (Ctrl-C, a crash) continues where it stopped.
Training (when the ladder climbs and the user allows it) goes through `rung.tune`; the tuned
candidate is then evaluated like any other.

The library never prints: `LadderEvents` callbacks let the CLI draw progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rung.errors import ConfigError

if TYPE_CHECKING:
    from rung.config import RungConfig
    from rung.decide.evidence import Gathered
    from rung.decide.recommend import Decision
    from rung.evals.store import RunStore

Progress = Callable[[int, int], None]


@dataclass
class LadderEvents:
    """Callbacks the CLI turns into output. `step` is called before each evaluation and returns
    the progress callback for it (or None)."""

    step: Callable[[str, int, int, int], Progress | None] | None = None  # name, level, index, total
    step_done: Callable[[LadderStep], None] | None = None
    note: Callable[[str], None] | None = None
    loading: Callable[[str], None] | None = None
    tuning: Callable[[str], Callable[..., None] | None] | None = None  # what -> training progress


@dataclass
class LadderStep:
    candidate: str
    level: int
    run_id: str
    reused: bool
    wall_s: float
    n_cases: int


@dataclass
class LadderResult:
    """What `climb` did and decided. `config` is the project as climbed: the caller's config plus
    the candidates the ladder added (a LoRA adapter it trained); the caller's is never changed."""

    steps: list[LadderStep]
    decision: Decision
    gathered: Gathered
    notes: list[str] = field(default_factory=list)
    config: RungConfig | None = None


def level_order(config: RungConfig, level: int) -> list[str]:
    """The candidates at `level`, simplest first (rung.pipeline.candidate's complexity order, the
    one the decision checklist ranks by; ties keep the order of rung.yaml)."""
    from rung.pipeline.candidate import level_order as order

    return order(config.candidates, level)


def climb(config: RungConfig, store: RunStore | None = None, *, suite: str | None = None,
          ids: list[str] | None = None, reuse: bool = True, use_cache: bool = True,
          allow_training: bool = False, events: LadderEvents | None = None) -> LadderResult:
    """Run the ladder on the project and decide (`rung ladder`); runs go to `store` (default: the
    project's, `paths.store`). `ids` restricts every step to those cases (a fixed sample);
    `allow_training` lets the ladder train an adapter when it must climb and no level-1
    candidate is declared. The caller's `config` is not changed: a trained adapter's candidate
    goes into a copy, `LadderResult.config`."""
    from rung.decide.checklist import NONE
    from rung.decide.recommend import decide
    from rung.evals.runner import evaluate_candidate
    from rung.models.pool import model_pool

    ev = events or LadderEvents()
    if store is None:
        from rung.evals.store import RunStore

        store = RunStore(config.store_target())
    runs_store = store  # not None, also inside the helpers below
    config = config.model_copy(update={"models": dict(config.models),
                                       "candidates": dict(config.candidates)})
    l0 = level_order(config, 0)
    if not l0:
        raise ConfigError(f"{config.source}: the ladder needs at least one level-0 candidate "
                          "(a model and a prompt) under `candidates`")
    steps: list[LadderStep] = []
    notes: list[str] = []

    def run_level(names: list[str], level: int) -> None:
        # the candidates of a level share their base models: loaded once for the whole level
        # (and freed before training, which loads its own copy)
        with model_pool().hold():
            for i, name in enumerate(names):
                bar = ev.step(name, level, i, len(names)) if ev.step else None
                t0 = time.perf_counter()
                run, reused = evaluate_candidate(config, name, runs_store, suite=suite, ids=ids,
                                                 reuse=reuse, resume=True, use_cache=use_cache,
                                                 progress=bar, on_loading=ev.loading)
                step = LadderStep(name, level, run.info.id, reused, time.perf_counter() - t0,
                                  len({r.case.id for r in run.results}))
                steps.append(step)
                if ev.step_done:
                    ev.step_done(step)

    def current() -> tuple[Decision, Gathered]:
        return decide(config, runs_store, suite=suite, runs=[s.run_id for s in steps])

    run_level(l0, 0)
    decision, gathered = current()
    for level, allowed in ((1, config.constraints.allow_level1), (2, config.constraints.allow_level2)):
        if decision.action != NONE:
            break  # shipped, fix level 0 first, or cannot evaluate: the checklist says stop here
        if not allowed:
            notes.append(f"level {level} not tried: constraints.allow_level{level} is false")
            break
        names = level_order(config, level)
        if not names and level == 1 and allow_training:
            names = [_train_level1(config, decision, ev, notes)]
        if not names:
            notes.append(f"level {level} not tried: no level-{level} candidate in rung.yaml"
                         + (" (run with --train to train an adapter)" if level == 1 else ""))
            break
        if ev.note:
            ev.note(f"level 0 does not meet the targets: climbing to level {level}")
        run_level(names, level)
        decision, gathered = current()
    return LadderResult(steps, decision, gathered, notes, config)


def _train_level1(config: RungConfig, decision: Decision, ev: LadderEvents, notes: list[str]) -> str:
    """Train a LoRA adapter for the level-0 candidate closest to the targets (tune.data builds the
    dataset, tune.train the job) and add `<candidate>-lora` to `config` (climb's own copy: its
    `models` and `candidates` dicts are not the caller's); returns its name. A finished artifact
    of the same job (same dataset version, base, hyperparameters, seed and prompt) is reused
    instead of training again."""
    from rung.tune.data import build_dataset, datasets_root
    from rung.tune.train.artifacts import LINEAGE_FILE
    from rung.tune.train.plan import plan_job

    base = _base_for_adapter(config, decision)
    cand = config.candidates[base]
    if config.models[cand.model].backend != "local":
        raise ConfigError(f"{config.source}: the ladder can only train an adapter for a local model; "
                          f"candidate {base!r} uses {cand.model!r}, an endpoint")
    dataset, _card = build_dataset(config)
    job = plan_job(config, method="lora", candidate=base, dataset=str(datasets_root(config) / dataset.version))
    if (job.folder / LINEAGE_FILE).is_file():
        if ev.note:
            ev.note(f"reusing adapter {job.id} (same dataset {dataset.version}, base and settings)")
    else:
        from rung.tune.train.trainer import train

        if ev.note:
            ev.note(f"training LoRA adapter {job.id} for {base!r} on dataset {dataset.version} "
                    f"({len(dataset)} examples)")
        train(job, progress=ev.tuning(job.id) if ev.tuning else None)
    from rung.pipeline.candidate import with_adapter

    name = f"{base}-lora"
    model = config.models[cand.model]
    config.models[cand.model] = model.model_copy(update={"adapters": {**model.adapters, name: str(job.folder)}})
    config.candidates[name] = with_adapter(cand, name, f"{base} with the LoRA adapter {job.id} "
                                                       "trained by the ladder")
    notes.append(f"trained {name}: adapter {job.folder}; to keep it, add to rung.yaml: "
                 f"models.{cand.model}.adapters.{name}: {job.folder} and a candidate with adapter: {name}")
    return name


def _base_for_adapter(config: RungConfig, decision: Decision) -> str:
    """The level-0 candidate the adapter is trained for: the decision's closest candidate when it
    is a local level-0 one, else the richest local level-0 candidate."""
    if decision.candidate and decision.candidate in config.candidates:
        c = config.candidates[decision.candidate]
        if c.effective_level == 0 and config.models[c.model].backend == "local":
            return decision.candidate
    local = [n for n in level_order(config, 0) if config.models[config.candidates[n].model].backend == "local"]
    if not local:
        raise ConfigError(f"{config.source}: no level-0 candidate on a local model to train an adapter for")
    return local[-1]
