"""The runner: a candidate's pipeline over a suite, scored and stored batch by batch.

- Each batch of cases is answered with one `Pipeline.answer_batch` call, scored by every scorer
  and stored in one transaction, so a run killed at any moment keeps every finished batch.
  Cases are batched in order of request length (shortest first), so one long prompt does not
  pad seven short ones; the run is returned in suite order. The time spent answering is kept
  as the run's batched throughput (`metadata["throughput"]`, rung.evals.latency).
- Latency as served: `evaluate_candidate` then answers a sample of the cases again with the
  uncached model at the serving concurrency (`constraints.latency_probe`) and stores the probe
  with the run (`metadata["latency_probe"]`); a reused run gets one when it has none yet.
- `resume=True` continues the latest unfinished run of the same candidate (hash) on the same
  suite (hash); `resume="RUN_ID"` continues that run. Only (case, epoch) pairs not yet stored are
  answered, so nothing is lost and nothing is computed twice.
- Epochs: epoch k samples with seed = candidate seed + k when temperature > 0. With greedy
  decoding every epoch asks the exact same requests, so epochs after the first are answered from
  the model's response cache (when the model has one) and measure nothing new but latency of the
  cache; the run's metadata says so.
- A scorer that raises never stops the run: its score becomes "not measured" with the error.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.core import Answer, Case, Score
from rung.errors import ConfigError, StoreError
from rung.evals.latency import PROBE_KEY, LatencyProbe, add_throughput, order_by_length, probe_latency
from rung.evals.scorers.base import ScoreContext, Scorer, build_scorer
from rung.evals.types import CaseResult, RunInfo, RunResult

if TYPE_CHECKING:
    from rung.config import RungConfig, SuiteConfig
    from rung.evals.store import RunStore
    from rung.evals.suite import Suite
    from rung.pipeline.pipeline import Pipeline

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------- scorers and context

def build_scorers(suite_cfg: SuiteConfig, suite: Suite | None = None) -> list[Scorer]:
    """The suite's scorers, plus `usage` always, `refusal` when a case has should_refuse and
    `schema` when a case names a schema (unless the suite already lists them)."""
    specs: list[tuple[str, dict[str, Any]]] = [(s.type, dict(s.model_extra or {})) for s in suite_cfg.scorers]
    listed = [t for t, _ in specs]
    specs += [(t, {}) for t in implied_scorers(listed, suite.cases if suite is not None else [])]
    if "usage" not in listed:
        specs.append(("usage", {}))
    return [build_scorer(t, **params) for t, params in specs]


def implied_scorers(listed: Iterable[str], cases: Iterable[Case]) -> list[str]:
    """The scorers the cases call for that `listed` lacks: `refusal` when a case says
    should_refuse, `schema` when a case names a schema."""
    listed, cases = set(listed), list(cases)
    out = []
    if any(c.should_refuse is not None for c in cases) and "refusal" not in listed:
        out.append("refusal")
    if any(c.schema for c in cases) and "schema" not in listed:
        out.append("schema")
    return out


def make_context(config: RungConfig, candidate: str | None = None) -> ScoreContext:
    """Shared scorer resources: the embedder (loaded on first use), the judge model (when
    `judge` is set), the candidate's model prices and the project's schemas."""
    _, cand = config.candidate(candidate)
    price = config.models[cand.model].price
    return scorer_context(config, price.input_per_1k, price.output_per_1k)


def scorer_context(config: RungConfig, price_in_per_1k: float = 0.0,
                   price_out_per_1k: float = 0.0) -> ScoreContext:
    """Scorer resources of a project without a candidate (outputs made elsewhere): the embedder
    and the judge as in `make_context` (neither loads before a scorer uses it), the given prices."""

    def embedder_factory() -> Any:
        from rung.pipeline.retrieval.index import get_embedder  # loaded once per process

        return get_embedder(config.embedder, config.root)

    judge, judge_id = None, ""
    if config.judge:
        from rung.models.factory import load_project_model

        judge = load_project_model(config, config.judge)
        judge_id = judge.model_id
    return ScoreContext(embedder_factory=embedder_factory, judge=judge, judge_id=judge_id,
                        price_in_per_1k=price_in_per_1k, price_out_per_1k=price_out_per_1k,
                        schemas=_load_schemas(config))


def _load_schemas(config: RungConfig) -> dict[str, Any]:
    if not config.schemas:
        return {}
    from rung.core.schemas import load_schemas

    return load_schemas(config)


def score_answer(case: Case, answer: Answer, scorers: list[Scorer], ctx: ScoreContext) -> list[Score]:
    """Every scorer's scores; a scorer that raises gives a "not measured" score with the error."""
    scores: list[Score] = []
    for scorer in scorers:
        name = getattr(scorer, "name", type(scorer).__name__)
        try:
            scores.extend(scorer.score(case, answer, ctx))
        except Exception as e:  # noqa: BLE001 - a broken scorer must not stop the run
            reason = f"scorer {name!r} failed: {type(e).__name__}: {e}".splitlines()[0]
            scores.append(Score.not_measured(name, reason, getattr(scorer, "higher_is_better", True)))
    return scores


# ---------------------------------------------------------------- running

def git_commit(where: Path | None = None) -> str | None:
    """`git rev-parse HEAD` in `where` (or the current folder), None outside a repository."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _new_run(pipeline: Pipeline, suite: Suite, ctx: ScoreContext, store: RunStore, epochs: int,
             batch_size: int, run_metadata: dict[str, Any] | None, project: str) -> RunInfo:
    greedy = pipeline.candidate.generation.temperature <= 0
    meta: dict[str, Any] = {"batch_size": batch_size, "cases": len(suite.cases),
                            "suite_path": str(suite.path), "greedy": greedy}
    if greedy and epochs > 1:
        meta["epochs_note"] = ("greedy decoding: every epoch sends the same requests, so epochs "
                               "after the first come from the response cache")
    meta.update(run_metadata or {})
    where = suite.path if suite.path.is_dir() else suite.path.parent
    info = RunInfo(
        id="", candidate=pipeline.name, candidate_hash=pipeline.hash,
        candidate_config=pipeline.record(), suite=suite.name, suite_hash=suite.hash,
        level=pipeline.level, model_id=pipeline.model.model_id, epochs=epochs,
        git_commit=git_commit(where.resolve() if where.exists() else None),
        project=project,
        price_in_per_1k=ctx.price_in_per_1k, price_out_per_1k=ctx.price_out_per_1k,
        metadata=meta,
    )
    return store.create_run(info)


def _resumed_run(pipeline: Pipeline, suite: Suite, store: RunStore, resume: bool | str) -> RunInfo | None:
    if resume is True:
        return store.latest_unfinished(pipeline.hash, suite.hash)
    info = store.get_info(str(resume))
    if info.candidate_hash != pipeline.hash:
        raise StoreError(f"cannot resume run {info.id}: it was made by another candidate "
                         f"({info.candidate!r}, hash {info.candidate_hash[:12]}; this one is "
                         f"{pipeline.name!r}, hash {pipeline.hash[:12]})")
    if info.suite_hash != suite.hash:
        raise StoreError(f"cannot resume run {info.id}: its suite {info.suite!r} has changed "
                         f"(hash {info.suite_hash[:12]}, now {suite.hash[:12]})")
    return info


def run_suite(pipeline: Pipeline, suite: Suite, scorers: list[Scorer], ctx: ScoreContext,
              store: RunStore, *, epochs: int = 1, batch_size: int = 8,
              resume: bool | str = False, progress: Progress | None = None,
              run_metadata: dict[str, Any] | None = None, project: str = "") -> RunResult:
    """Answer, score and store every (case, epoch) of the suite; returns the whole run, in
    suite order. A resumed run keeps the number of epochs it was started with.

    progress(done, total) counts case-epochs; run_metadata is stored with the run."""
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    info = _resumed_run(pipeline, suite, store, resume) if resume else None
    if info is None:
        info = _new_run(pipeline, suite, ctx, store, epochs, batch_size, run_metadata, project)
    done = store.done_keys(info.id)
    total = len(suite.cases) * info.epochs
    by_length = [suite.cases[i] for i in order_by_length(suite.cases)]  # batches of similar length
    todo = [(epoch, case) for epoch in range(info.epochs) for case in by_length
            if (case.id, epoch) not in done]
    finished = total - len(todo)
    if progress:
        progress(finished, total)
    t0 = time.perf_counter()
    try:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            results: list[CaseResult] = []
            for epoch in sorted({e for e, _ in chunk}):
                cases = [c for e, c in chunk if e == epoch]
                inner = _offset(progress, finished + len(results), total)
                t_batch = time.perf_counter()
                answers = pipeline.answer_batch(cases, inner, epoch=epoch)
                add_throughput(info.metadata, len(answers), time.perf_counter() - t_batch,
                               sum(1 for a in answers if a.cached), batch_size)
                for case, answer in zip(cases, answers):
                    results.append(CaseResult(case, answer, score_answer(case, answer, scorers, ctx), epoch))
            store.add_results(info.id, results)
            finished += len(results)
            if progress:
                progress(finished, total)
    except BaseException as e:
        info.metadata["error"] = (f"{type(e).__name__}: {e}".splitlines() or [""])[0]
        try:
            _close(store, info, "failed", time.perf_counter() - t0)
        except StoreError:
            pass  # the original error says more than a store that cannot be written
        raise
    info.metadata.pop("error", None)  # from an earlier, failed attempt of a resumed run
    _close(store, info, "finished", time.perf_counter() - t0)
    return _in_suite_order(store.get_run(info.id), suite)


def _offset(progress: Progress | None, before: int, total: int) -> Progress | None:
    """The model's per-batch progress, shifted onto the run's case-epochs."""
    if progress is None:
        return None
    return lambda done, _n: progress(min(before + done, total), total)


def _close(store: RunStore, info: RunInfo, status: str, wall_s: float) -> None:
    info.metadata["wall_s"] = round(info.metadata.get("wall_s", 0.0) + wall_s, 3)
    store.update_metadata(info.id, info.metadata)
    store.finish_run(info.id, status)


def _in_suite_order(run: RunResult, suite: Suite) -> RunResult:
    order = {c.id: i for i, c in enumerate(suite.cases)}
    run.results.sort(key=lambda r: (r.epoch, order.get(r.case.id, len(order))))
    return run


# ---------------------------------------------------------------- one candidate, from rung.yaml

def scorers_key(suite_cfg: SuiteConfig) -> str:
    """What a stored run's scores depend on besides the candidate and the cases: the suite's
    scorer specs and the rung version (scorers change between versions)."""
    import hashlib
    import json

    from rung import __version__

    body = json.dumps({"scorers": [s.model_dump() for s in suite_cfg.scorers], "rung": __version__},
                      sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def evaluate_candidate(config: RungConfig, candidate: str | None, store: RunStore, *,
                       suite: str | None = None, ids: list[str] | None = None,
                       tags: list[str] | None = None, limit: int | None = None, epochs: int = 1,
                       resume: bool | str = False, use_cache: bool = True,
                       batch_size: int | None = None, reuse: bool = False,
                       progress: Progress | None = None,
                       on_loading: Callable[[str], None] | None = None) -> tuple[RunResult, bool]:
    """Run one candidate of rung.yaml over one of its suites (optionally a subset of cases).

    reuse=True returns the latest finished run of the same candidate (hash) on the same cases
    (suite hash) scored by the same scorers and rung version, without loading the model: the
    second value says whether the run was reused. Otherwise resume=True continues the latest
    unfinished run of the same candidate and cases, if any."""
    from rung.evals.suite import load_suite

    suite_name, suite_cfg = config.suite(suite)
    s = load_suite(config.existing_path("suites", suite_name, "path", what="suite file or folder"),
                   name=suite_name)
    if tags or ids:
        s = s.filter(tags=tags or None, ids=ids)
    if limit:
        s = s.filter(ids=[c.id for c in s.cases[:limit]])
    key = scorers_key(suite_cfg)
    from rung.pipeline.pipeline import build_pipeline

    if on_loading:
        on_loading(f"preparing {candidate or 'the candidate'}: index, model and scorers")
    pipeline = build_pipeline(config, candidate, use_cache=use_cache)  # the model loads on first use
    if reuse and epochs == 1 and not isinstance(resume, str):  # a named run is resumed, not reused
        found = store.latest_finished(pipeline.hash, s.hash)
        if found is not None and found.metadata.get("scorers_key") == key:
            run = _in_suite_order(store.get_run(found.id), s)
            measure_served_latency(config, pipeline, run, store, on_loading=on_loading)
            return run, True
    scorers = build_scorers(suite_cfg, s)
    ctx = make_context(config, pipeline.name)
    bs = batch_size or config.models[pipeline.candidate.model].max_batch_size
    run = run_suite(pipeline, s, scorers, ctx, store, epochs=epochs, batch_size=bs, resume=resume,
                    progress=progress, project=config.project, run_metadata={"scorers_key": key})
    measure_served_latency(config, pipeline, run, store, on_loading=on_loading)
    return run, False


def measure_served_latency(config: RungConfig, pipeline: Pipeline, run: RunResult, store: RunStore,
                           *, on_loading: Callable[[str], None] | None = None) -> LatencyProbe | None:
    """The run's latency probe (rung.evals.latency): the stored one when it was measured with the
    current `constraints.latency_probe` settings, else a new one, stored with the run. None when
    the probe is off (cases: 0)."""
    settings = config.constraints.latency_probe
    if settings.cases <= 0 or not run.results:
        return None
    stored = LatencyProbe.from_dict(run.info.metadata.get(PROBE_KEY))
    if stored is not None and stored.matches(settings.cases, settings.concurrency):
        return stored
    cases = list({r.case.id: r.case for r in run.results}.values())
    answers = {r.case.id: r.answer.text for r in run.results if r.epoch == 0}
    if on_loading:
        on_loading(f"latency as served: {min(settings.cases, len(cases))} cases, "
                   f"{settings.concurrency} at a time, uncached")
    probe = probe_latency(pipeline, cases, n=settings.cases, concurrency=settings.concurrency,
                          answers=answers)
    run.info.metadata[PROBE_KEY] = probe.to_dict()
    store.update_metadata(run.info.id, run.info.metadata)
    return probe
