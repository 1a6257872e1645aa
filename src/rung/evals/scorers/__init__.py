"""Built-in scorers. Each module registers its scorers on import."""

from rung.evals.scorers.base import (  # noqa: F401
    FunctionScorer,
    Score,
    ScoreContext,
    Scorer,
    build_scorer,
    register,
    register_function,
    registered,
)

# built-in scorer modules are imported here so that they register themselves
import importlib as _importlib

for _mod in ("success", "schema", "refusal", "safety", "groundedness", "citation", "usage", "judge"):
    try:
        _importlib.import_module(f"rung.evals.scorers.{_mod}")
    except ModuleNotFoundError as _e:  # pragma: no cover - only while a module is being written
        if _e.name != f"rung.evals.scorers.{_mod}":
            raise
