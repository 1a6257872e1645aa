"""The project file as a whole: `RungConfig` (its sections, cross-references checked) and
`load_config`, which reads and validates it with errors that name the file, line and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from rung.config import paths
from rung.config.base import EMBEDDED_EMBEDDER, PER_CASE_SCHEMA, _Strict
from rung.config.candidates import CandidateConfig, CorpusConfig
from rung.config.constraints import Constraints
from rung.config.models import ModelConfig
from rung.config.operations import DriftConfig, MonitorConfig, RefreshConfig, RolloutConfig
from rung.config.serving import ServingConfig
from rung.config.suites import GateConfig, SuiteConfig
from rung.config.tune import TuneConfig
from rung.errors import ConfigError, did_you_mean
from rung.fileio import read_text
from rung.yamlfile import KeyedValueError, line_of, parse_yaml, validation_message


class PathsConfig(_Strict):
    """Where the project's state goes, relative to rung.yaml (defaults: rung.config.paths)."""

    store: str = paths.STORE
    cache: str = paths.CACHE
    artifacts: str = paths.ARTIFACTS
    datasets: str = paths.DATASETS
    reports: str = paths.REPORTS
    decisions: str = paths.DECISIONS
    releases: str = paths.RELEASES
    traces: str = paths.TRACES


class RungConfig(_Strict):
    """A project: rung.yaml validated (`load_config`), one field per section (models,
    candidates, knowledge, suites, constraints, tune, paths, serving, ...); `root` is the folder
    of the file, which relative paths resolve against (`resolve`, `path`)."""

    project: str = "rung-project"
    models: dict[str, ModelConfig] = Field(default_factory=lambda: {"default": ModelConfig()})
    candidates: dict[str, CandidateConfig] = Field(default_factory=dict)
    suites: dict[str, SuiteConfig] = Field(default_factory=dict)
    gate: GateConfig = Field(default_factory=GateConfig)
    constraints: Constraints = Field(default_factory=Constraints)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    knowledge: dict[str, CorpusConfig] = Field(default_factory=dict)
    prompt_blocks: str = "policies"  # folder of prompt block files (name = file stem)
    tool_data: dict[str, str] = Field(default_factory=dict)  # policy_lookup / phrases -> YAML file
    schemas: dict[str, str] = Field(default_factory=dict)  # name -> JSON Schema file or "module:PydanticModel"
    embedder: str = EMBEDDED_EMBEDDER
    judge: str | None = None  # name of a model in `models` used as LLM judge
    # after shipping (rung.ops): rollouts, alert rules, drift, continuous training
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    refresh: RefreshConfig = Field(default_factory=RefreshConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)  # `rung serve` (rung.config.serving)

    # set by load_config, not part of the file
    root: Path = Field(default=Path("."), exclude=True)
    source: Path | None = Field(default=None, exclude=True)
    _node: Any = PrivateAttr(default=None)  # the YAML node tree, for the line of a key

    @model_validator(mode="after")
    def _check_refs(self) -> RungConfig:
        for name, cand in self.candidates.items():
            # KeyedValueError: reported at the line of the key that names the missing thing
            if cand.model not in self.models:
                raise KeyedValueError(
                    ("candidates", name, "model"), f"no model named {cand.model!r}"
                    f"{did_you_mean(cand.model, self.models)}; models are {sorted(self.models)}")
            model = self.models[cand.model]
            if cand.adapter and model.backend == "local" and cand.adapter not in model.adapters:
                raise KeyedValueError(
                    ("candidates", name, "adapter"), f"model {cand.model!r} has no adapter "
                    f"{cand.adapter!r}{did_you_mean(cand.adapter, model.adapters)}"
                    f"; its adapters are {sorted(model.adapters) or '(none)'}")
            if cand.retrieval and cand.retrieval.corpus not in self.knowledge:
                raise KeyedValueError(
                    ("candidates", name, "retrieval", "corpus"),
                    f"no corpus named {cand.retrieval.corpus!r} under "
                    f"`knowledge`{did_you_mean(cand.retrieval.corpus, self.knowledge)}")
            if cand.output_schema and cand.output_schema != PER_CASE_SCHEMA \
                    and cand.output_schema not in self.schemas:
                raise KeyedValueError(
                    ("candidates", name, "schema"), f"no schema named {cand.output_schema!r} under "
                    f"`schemas`{did_you_mean(cand.output_schema, self.schemas)}")
        if self.judge and self.judge not in self.models:
            raise KeyedValueError(("judge",), f"no model named {self.judge!r}"
                                  f"{did_you_mean(self.judge, self.models)}")
        return self

    def resolve(self, path: str | Path) -> Path:
        """A path from the file, relative to the file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.root / p)

    def path(self, name: str) -> Path:
        """A `paths:` entry (store, cache, artifacts, datasets, reports, decisions, releases,
        traces) resolved from the file's folder."""
        if name not in PathsConfig.model_fields:
            raise ConfigError(f"paths.{name}: no such path{did_you_mean(name, PathsConfig.model_fields)}; "
                              f"known: {', '.join(PathsConfig.model_fields)}")
        return self.resolve(getattr(self.paths, name))

    def where(self, *loc: str) -> str:
        """`rung.yaml:LINE: key.path` of a key of the file, for errors about what it names."""
        line = line_of(self._node, loc)
        at = f"{self.source or 'rung.yaml'}" + (f":{line}" if line else "")
        return f"{at}: {'.'.join(loc)}" if loc else at

    def existing_path(self, *loc: str, what: str, folder: bool = False) -> Path:
        """The path the key at `loc` names (resolved from the file's folder); ConfigError naming
        the file, line and key when it does not exist (or, with folder=True, is not a folder)."""
        value: Any = self
        for part in loc:
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        path = self.resolve(value)
        if not path.exists():
            raise ConfigError(f"{self.where(*loc)}: {value}: no such {what} ({path})")
        if folder and not path.is_dir():
            raise ConfigError(f"{self.where(*loc)}: {value}: not a folder (the {what}: {path})")
        return path

    def store_target(self) -> str | Path:
        """The run store: `paths.store` as a SQLAlchemy URL, or a SQLite path from the file's folder."""
        s = self.paths.store
        return s if "://" in s else self.resolve(s)

    def candidate(self, name: str | None) -> tuple[str, CandidateConfig]:
        """The named candidate; with None, the only one (or a bare one over the default model)."""
        if name is None:
            if len(self.candidates) == 1:
                return next(iter(self.candidates.items()))
            if not self.candidates:
                first = next(iter(self.models))
                return "bare", CandidateConfig(model=first)
            raise ConfigError(
                f"{self.source}: several candidates ({', '.join(self.candidates)}); pick one with --candidate")
        if name not in self.candidates:
            raise ConfigError(
                f"{self.source}: no candidate named {name!r}{did_you_mean(name, self.candidates)}; "
                f"candidates are {', '.join(self.candidates) or '(none)'}")
        return name, self.candidates[name]

    def suite(self, name: str | None) -> tuple[str, SuiteConfig]:
        if name is None:
            if len(self.suites) == 1:
                return next(iter(self.suites.items()))
            if not self.suites:
                raise ConfigError(f"{self.source}: no suites defined")
            raise ConfigError(f"{self.source}: several suites ({', '.join(self.suites)}); pick one with --suite")
        if name not in self.suites:
            raise ConfigError(
                f"{self.source}: no suite named {name!r}{did_you_mean(name, self.suites)}")
        return name, self.suites[name]


# ---------------------------------------------------------------- loading with good errors

def load_config(path: str | Path) -> RungConfig:
    """Read and validate a rung.yaml. Raises ConfigError with file:line: key: what was expected."""
    p = Path(path)
    if p.is_dir():
        p = p / "rung.yaml"
    if not p.exists():
        raise ConfigError(f"{p}: no such file (create one with `rung init DIR`)")
    data, node = parse_yaml(read_text(p, ConfigError), str(p))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}:1: expected a mapping of keys (project, models, candidates, ...), "
                          f"got {type(data).__name__}")
    try:
        cfg = RungConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(validation_message(e, str(p), node, RungConfig)) from None
    cfg.root = p.parent.resolve()
    cfg.source = p
    cfg._node = node
    return cfg
