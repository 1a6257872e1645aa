"""rung.yaml: the project file, as pydantic models.

`load_config(path)` reads and validates it. Every error names the file, the line, the key path
and what was expected; unknown keys are errors with a "did you mean". Paths in the file are
resolved relative to the file's folder.

Each section is a small module (models, candidates, suites, constraints, tune; project holds
RungConfig and load_config); import the names from `rung.config`.
"""

from __future__ import annotations

from rung.config.base import EMBEDDED_EMBEDDER, EMBEDDED_LLM, PER_CASE_SCHEMA
from rung.config.candidates import (
    AnswerConfig,
    CandidateConfig,
    CorpusConfig,
    PromptConfig,
    RefusalGateConfig,
    RetrievalConfig,
)
from rung.config.constraints import Constraints, LatencyProbeConfig
from rung.config.models import GenerationConfig, ModelConfig, Price
from rung.config.project import PathsConfig, RungConfig, load_config
from rung.config.suites import GateConfig, ScorerSpec, SuiteConfig, Threshold
from rung.config.tune import BalanceConfig, DataChecksConfig, DatasetConfig, TrainConfig, TuneConfig

__all__ = [
    "EMBEDDED_EMBEDDER",
    "EMBEDDED_LLM",
    "PER_CASE_SCHEMA",
    "AnswerConfig",
    "CandidateConfig",
    "CorpusConfig",
    "PromptConfig",
    "RefusalGateConfig",
    "RetrievalConfig",
    "Constraints",
    "LatencyProbeConfig",
    "GenerationConfig",
    "ModelConfig",
    "Price",
    "PathsConfig",
    "RungConfig",
    "load_config",
    "GateConfig",
    "ScorerSpec",
    "SuiteConfig",
    "Threshold",
    "BalanceConfig",
    "DataChecksConfig",
    "DatasetConfig",
    "TrainConfig",
    "TuneConfig",
]
