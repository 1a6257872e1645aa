"""rung: climb the LLM customization ladder only as far as your own evals say.

The Python API (docs/python-api.md); everything else in the package is internal.

    import rung

    config = rung.load_config("rung.yaml")            # the project file, validated
    answer = rung.answer(config, "Can I return it?", candidate="rag")
    run = rung.evaluate(config, "rag")                 # a stored run, scored (rung eval)
    other = rung.evaluate(config, "bare")
    delta = rung.compare(other, run)                   # paired, case by case (rung compare)
    decision = rung.decide(config)                     # which level to ship and why (rung decide)
    result = rung.climb(config, rung.RunStore(".rung/rung.db"))   # the whole ladder (rung ladder)

Projects and pipelines: load_config, RungConfig, build_pipeline, Pipeline, answer.
Evaluation: evaluate, compare, RunStore, RunResult, Comparison, register_scorer.
Decisions: decide, Decision, climb, LadderResult.
What a pipeline answers and returns: Request, Case, Answer, Score.
Errors (all RungError, each with a message naming the file, line or key): ConfigError,
ModelError, ModelNotFoundError, AdapterError, EndpointError, SuiteError, StoreError,
NoStoreError, ScorerError, DataError, TrainingError, ArtifactError, OutputError.

Names load on first use (PEP 562), so `import rung` and `rung --help` import no torch,
transformers or pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    "load_config": "rung.config", "RungConfig": "rung.config",
    "build_pipeline": "rung.pipeline.pipeline", "Pipeline": "rung.pipeline.pipeline",
    "answer": "rung.api", "evaluate": "rung.api", "compare": "rung.api", "decide": "rung.api",
    "register_scorer": "rung.api",
    "climb": "rung.ladder", "LadderResult": "rung.ladder",
    "RunStore": "rung.evals.store", "RunResult": "rung.evals.types",
    "Comparison": "rung.evals.compare", "Decision": "rung.decide.recommend",
    "Request": "rung.core", "Case": "rung.core", "Answer": "rung.core", "Score": "rung.core",
    **{name: "rung.errors" for name in (
        "RungError", "ConfigError", "ModelError", "ModelNotFoundError", "AdapterError",
        "EndpointError", "SuiteError", "StoreError", "NoStoreError", "ScorerError", "DataError",
        "TrainingError", "ArtifactError", "OutputError")},
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on use
    from rung.api import answer as answer
    from rung.api import compare as compare
    from rung.api import decide as decide
    from rung.api import evaluate as evaluate
    from rung.api import register_scorer as register_scorer
    from rung.config import RungConfig as RungConfig
    from rung.config import load_config as load_config
    from rung.core import Answer as Answer
    from rung.core import Case as Case
    from rung.core import Request as Request
    from rung.core import Score as Score
    from rung.decide.recommend import Decision as Decision
    from rung.errors import AdapterError as AdapterError
    from rung.errors import ArtifactError as ArtifactError
    from rung.errors import ConfigError as ConfigError
    from rung.errors import DataError as DataError
    from rung.errors import EndpointError as EndpointError
    from rung.errors import ModelError as ModelError
    from rung.errors import ModelNotFoundError as ModelNotFoundError
    from rung.errors import NoStoreError as NoStoreError
    from rung.errors import OutputError as OutputError
    from rung.errors import RungError as RungError
    from rung.errors import ScorerError as ScorerError
    from rung.errors import StoreError as StoreError
    from rung.errors import SuiteError as SuiteError
    from rung.errors import TrainingError as TrainingError
    from rung.evals.compare import Comparison as Comparison
    from rung.evals.store import RunStore as RunStore
    from rung.evals.types import RunResult as RunResult
    from rung.ladder import LadderResult as LadderResult
    from rung.ladder import climb as climb
    from rung.pipeline.pipeline import Pipeline as Pipeline
    from rung.pipeline.pipeline import build_pipeline as build_pipeline


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rung' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    if name != "decide":  # rung.decide is also the subpackage (callable: see rung/decide/__init__.py)
        globals()[name] = value  # the next access skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
