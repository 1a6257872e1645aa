"""The functions `import rung` exposes (see rung/__init__.py and docs/python-api.md).

Thin, typed entry points over the library for scripts and notebooks: each takes a project
(`load_config`) and plain values, and returns the library's own objects. This module sits at the
top floor, beside the CLI: it imports the library (lazily, so `import rung` stays instant) and
never the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from rung.config import RungConfig
    from rung.core import Answer, Request
    from rung.decide.recommend import Decision
    from rung.evals.compare import Comparison
    from rung.evals.store import RunStore
    from rung.evals.types import RunResult

Progress = Callable[[int, int], None]
F = TypeVar("F", bound=Callable[..., Any])


def answer(config: RungConfig, request: str | Request, *, candidate: str | None = None,
           use_cache: bool = True) -> Answer:
    """Answer one request (a question, or a `rung.Request` with messages, metadata, schema,
    tenant) with a candidate of the project (default: its first). For many requests build the
    pipeline once: `rung.build_pipeline(config, candidate).answer_batch(requests)`."""
    from rung.core import Request
    from rung.pipeline.pipeline import build_pipeline

    req = request if isinstance(request, Request) else Request(id="request", input=request)
    return build_pipeline(config, candidate, use_cache=use_cache).answer(req)


def open_store(config: RungConfig, store: RunStore | str | Path | None = None) -> RunStore:
    """`store` as a RunStore: a RunStore as is, a path or SQLAlchemy URL opened, None: the
    project's store (`paths.store` in rung.yaml, default .rung/rung.db next to it)."""
    from rung.evals.store import RunStore

    if isinstance(store, RunStore):
        return store
    return RunStore(store if store is not None else config.store_target())


def evaluate(config: RungConfig, candidate: str | None = None, *,
             store: RunStore | str | Path | None = None, suite: str | None = None,
             ids: list[str] | None = None, tags: list[str] | None = None, limit: int | None = None,
             epochs: int = 1, use_cache: bool = True, reuse: bool = False,
             progress: Progress | None = None) -> RunResult:
    """Run a candidate (default: the project's first) over a suite (default: its first), score
    every answer and store the run (`rung eval`). `ids`, `tags` and `limit` pick cases;
    reuse=True returns the latest finished run of the same candidate hash on the same cases
    instead of running again. `progress(done, total)` is called as cases finish."""
    from rung.evals.runner import evaluate_candidate

    run, _reused = evaluate_candidate(config, candidate, open_store(config, store), suite=suite,
                                      ids=ids, tags=tags, limit=limit, epochs=epochs,
                                      use_cache=use_cache, reuse=reuse, progress=progress)
    return run


def compare(a: RunResult | str, b: RunResult | str, *, store: RunStore | None = None,
            alpha: float = 0.05) -> Comparison:
    """Pair two runs case by case and test each metric's change (delta = b - a) (`rung
    compare`). Runs are RunResults or run ids read from `store`."""
    from rung.evals.compare import compare as paired

    def run(r: RunResult | str) -> RunResult:
        if not isinstance(r, str):
            return r
        if store is None:
            from rung.errors import StoreError

            raise StoreError(f"run {r!r}: pass store= to compare runs by id")
        return store.get_run(r)

    return paired(run(a), run(b), alpha=alpha)


def decide(config: RungConfig, store: RunStore | str | Path | None = None, *,
           suite: str | None = None, runs: list[str] | None = None) -> Decision:
    """Which level to ship and why (`rung decide`): the constraints of rung.yaml and the latest
    finished run of each candidate on the suite (or the `runs` named), walked through the
    checklist. `Decision.headline`, `.action`, `.candidate`, `.items` say what and why."""
    from rung.decide.recommend import decide as recommend

    decision, _gathered = recommend(config, open_store(config, store), suite=suite, runs=runs)
    return decision


@overload
def register_scorer(name: str, fn: None = None, *, higher_is_better: bool = True) -> Callable[[F], F]: ...


@overload
def register_scorer(name: str, fn: F, *, higher_is_better: bool = True) -> F: ...


def register_scorer(name: str, fn: F | None = None, *,
                    higher_is_better: bool = True) -> F | Callable[[F], F]:
    """Register `fn(case, answer) -> bool | float | rung.Score | None` as scorer `name`, usable
    in a suite's `scorers:` like the built-in ones. None means "not measured", never a fail.
    Use it directly or as a decorator: `@rung.register_scorer("cites_policy")`."""
    from rung.evals.scorers.base import register_function

    def deco(f: F) -> F:
        register_function(name, f, higher_is_better)
        return f

    return deco if fn is None else deco(fn)
