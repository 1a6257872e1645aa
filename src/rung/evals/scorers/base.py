"""Scorer protocol, the scorer registry and the context scorers share.

A scorer measures one answer to one case and returns one or more `Score`s. Built-in scorers
register themselves with `@register("name")`; user scorers are plain python functions
`fn(case, answer) -> bool | float | Score | None` registered the same way (or named in a suite
as "module.path:function").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rung.core import Answer, Case, Score
from rung.errors import ScorerError, did_you_mean


@dataclass
class ScoreContext:
    """Shared, lazily created resources: the embedding model, the judge model, prices."""

    embedder_factory: Callable[[], Any] | None = None  # -> sentence_transformers.SentenceTransformer
    judge: Any = None  # a rung.models.base.Model, or None when no judge is configured
    judge_id: str = ""
    price_in_per_1k: float = 0.0
    price_out_per_1k: float = 0.0
    schemas: dict[str, Any] = field(default_factory=dict)  # name -> JSON Schema dict or pydantic model class
    _embedder: Any = field(default=None, repr=False)

    @property
    def embedder(self) -> Any:
        if self._embedder is None and self.embedder_factory is not None:
            self._embedder = self.embedder_factory()
        return self._embedder


class Scorer(Protocol):
    name: str

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]: ...


ScorerFactory = Callable[..., Scorer]
_REGISTRY: dict[str, ScorerFactory] = {}


def register(name: str) -> Callable[[ScorerFactory], ScorerFactory]:
    """Register a scorer class (or factory) under `name`; parameters from the suite are kwargs."""

    def deco(factory: ScorerFactory) -> ScorerFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


@dataclass
class FunctionScorer:
    """Wraps a user function fn(case, answer) -> bool | float | Score | None."""

    name: str
    fn: Callable[..., Any]
    higher_is_better: bool = True

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        out = self.fn(case, answer)
        if isinstance(out, Score):
            return [out]
        if isinstance(out, list) and all(isinstance(s, Score) for s in out):
            return out
        if out is None:
            return [Score.not_measured(self.name, "function returned None", self.higher_is_better)]
        if isinstance(out, bool):
            return [Score(self.name, 1.0 if out else 0.0, self.higher_is_better)]
        if isinstance(out, (int, float)):
            return [Score(self.name, float(out), self.higher_is_better)]
        raise ScorerError(f"scorer {self.name!r} returned {type(out).__name__}; "
                          "expected bool, float, Score or None")


def register_function(name: str, fn: Callable[..., Any], higher_is_better: bool = True) -> None:
    """Register a plain function as a scorer."""
    _REGISTRY[name] = lambda **kw: FunctionScorer(name, fn, higher_is_better)


def build_scorer(type_: str, **params: Any) -> Scorer:
    """Instantiate a scorer by registered name or "module.path:function"."""
    _load_builtins()
    if type_ in _REGISTRY:
        try:
            return _REGISTRY[type_](**params)
        except TypeError as e:
            raise ScorerError(f"scorer {type_!r}: bad parameters {sorted(params)}: {e}") from None
    if ":" in type_:
        mod_name, _, attr = type_.partition(":")
        try:
            fn = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise ScorerError(f"scorer {type_!r}: cannot import: {e}") from None
        return FunctionScorer(params.pop("name", attr), fn, params.pop("higher_is_better", True))
    raise ScorerError(f"unknown scorer {type_!r}{did_you_mean(type_, _REGISTRY)}; "
                      f"known: {', '.join(sorted(_REGISTRY))}")


def registered() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def _load_builtins() -> None:
    # importing the package registers every built-in scorer module
    importlib.import_module("rung.evals.scorers")
