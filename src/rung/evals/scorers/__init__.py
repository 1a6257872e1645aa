"""Built-in scorers. Each module registers its scorers on import."""

import importlib as _importlib

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

BUILTIN_MODULES = ("success", "schema", "refusal", "safety", "groundedness", "citation", "usage",
                   "judge", "retrieval")

for _mod in BUILTIN_MODULES:
    _importlib.import_module(f"rung.evals.scorers.{_mod}")
