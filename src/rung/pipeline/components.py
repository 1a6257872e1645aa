"""The level-0 parts of a candidate, built once from rung.yaml: retriever, prompt builders,
tools and schema enforcers, plus a fingerprint of the content they read (prompt blocks, corpus
index, tool data, schemas) so that the candidate's hash changes when any of it changes.

`build_components` is the one place that reads the whole RungConfig: it picks each part's own
section (the candidate's retrieval and the corpus it names, its tools and `tool_data`, the
prompt-blocks folder, the schemas) and hands only that to the part's builder. It loads no model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.config import PER_CASE_SCHEMA, CandidateConfig, RungConfig
from rung.errors import ConfigError

if TYPE_CHECKING:
    from rung.pipeline.prompt import PromptBuilder
    from rung.pipeline.refusal_gate import RefusalGate
    from rung.pipeline.retrieval.search import Retriever
    from rung.pipeline.structured import SchemaEnforcer
    from rung.pipeline.tools.toolset import ToolSet


@dataclass
class Components:
    """What a candidate uses besides its model. Everything is optional (a bare candidate has
    none of it). `blocks_folder`, `root` and `where` are what its prompt builders read: the
    prompt-blocks folder, the folder of rung.yaml and its name for errors (None: a pipeline built
    without a project, the inline system prompt only)."""

    candidate: CandidateConfig | None = None
    retriever: Retriever | None = None
    toolset: ToolSet | None = None
    schemas: dict[str, Any] = field(default_factory=dict)
    refusal_gate: RefusalGate | None = None
    fingerprint: str = ""
    blocks_folder: Path | None = None
    root: Path | None = None
    where: str = "rung.yaml"
    _builders: dict[str | None, PromptBuilder] = field(default_factory=dict, repr=False)
    _enforcers: dict[str, SchemaEnforcer] = field(default_factory=dict, repr=False)

    def schema_for(self, case_schema: str | None) -> str | None:
        """The schema an answer must follow: the candidate's, or with `schema: case` the case's."""
        if self.candidate is None or not self.candidate.output_schema:
            return None
        if self.candidate.output_schema == PER_CASE_SCHEMA:
            return case_schema if case_schema in self.schemas else None
        return self.candidate.output_schema

    def builder(self, schema: str | None) -> PromptBuilder | None:
        """The prompt builder for answers that follow `schema` (None: free text)."""
        if self.blocks_folder is None or self.root is None or self.candidate is None:
            return None
        if schema not in self._builders:
            from rung.pipeline.prompt import PromptBuilder

            cand = self.candidate.model_copy(update={"output_schema": schema})
            self._builders[schema] = PromptBuilder.from_config(
                cand, blocks_folder=self.blocks_folder, root=self.root, schemas=self.schemas,
                where=self.where)
        return self._builders[schema]

    def json_schema(self, schema: str) -> str:
        """The schema as JSON text, for constrained decoding."""
        return json.dumps(_schema_repr(self.schemas[schema]), sort_keys=True)

    def enforcer(self, schema: str) -> SchemaEnforcer:
        if schema not in self._enforcers:
            from rung.pipeline.structured import SchemaEnforcer

            retries = self.candidate.schema_retries if self.candidate else 2
            self._enforcers[schema] = SchemaEnforcer(schema, self.schemas[schema], retries)
        return self._enforcers[schema]


def build_components(config: RungConfig, candidate: CandidateConfig,
                     progress: Callable[[int, int], None] | None = None) -> Components:
    """Load what the candidate names: the corpus index (built or loaded from disk), the tools
    and their data, the schemas; errors name the rung.yaml key that is wrong."""
    where = str(config.source or "rung.yaml")
    schemas: dict[str, Any] = {}
    if candidate.output_schema:
        from rung.core.schemas import load_schemas

        schemas = load_schemas(config)
    retriever = None
    if candidate.retrieval is not None:
        from rung.pipeline.retrieval.search import Retriever

        name = candidate.retrieval.corpus
        if name not in config.knowledge:
            raise ConfigError(f"{where}: retrieval.corpus: no corpus named {name!r} under "
                              f"`knowledge` (have: {', '.join(config.knowledge) or 'none'})")
        config.existing_path("knowledge", name, "path", what="knowledge folder", folder=True)
        retriever = Retriever.from_config(candidate.retrieval, config.knowledge[name], root=config.root,
                                          embedder=config.embedder, progress=progress)
    toolset = None
    if candidate.tools:
        from rung.pipeline.tools.toolset import ToolSet

        toolset = ToolSet.from_config(candidate.tools, config.tool_data, root=config.root, where=where)
    gate = _refusal_gate(config, candidate)
    comps = Components(candidate, retriever, toolset, schemas, gate,
                       blocks_folder=config.resolve(config.prompt_blocks), root=config.root, where=where)
    comps.fingerprint = _fingerprint(config, candidate, comps)
    return comps


def _fingerprint(config: RungConfig, candidate: CandidateConfig, comps: Components) -> str:
    parts: dict[str, Any] = {}
    builder = comps.builder(None)
    if builder is not None:
        parts["prompt"] = builder.fingerprint()
    if comps.retriever is not None:
        m = comps.retriever.index.manifest
        parts["corpus"] = {"docs": m.docs, "chunking": [m.chunk_tokens, m.chunk_overlap],
                           "embedder": m.embedder}
    if candidate.tools:
        parts["tools"] = {name: _file_hash(config.resolve(path))
                          for name, path in sorted(config.tool_data.items()) if name in candidate.tools}
    if comps.refusal_gate is not None:
        from rung.core import cases_hash
        from rung.pipeline.retrieval.index import embedder_id

        parts["refusal_gate"] = {"examples": cases_hash(comps.refusal_gate.cases),
                                 "embedder": embedder_id(config.embedder, config.root)}
    if comps.schemas:
        parts["schemas"] = json.dumps({k: _schema_repr(v) for k, v in sorted(comps.schemas.items())},
                                      sort_keys=True, default=str)
    if not parts:
        return ""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _refusal_gate(config: RungConfig, candidate: CandidateConfig) -> RefusalGate | None:
    """The candidate's refusal gate, fitted on its examples with the project's embedder."""
    gate_cfg = candidate.refusal_gate
    if gate_cfg is None:
        return None
    from rung.core.cases import load_cases
    from rung.pipeline.refusal_gate import RefusalGate
    from rung.pipeline.retrieval.index import get_embedder

    path = config.resolve(gate_cfg.examples)
    where = f"{config.source}: refusal_gate.examples"
    if not path.exists():
        raise ConfigError(f"{where}: {path} does not exist (a suite file or folder of labelled cases)")
    cases = load_cases(path)
    return RefusalGate.from_cases(cases, lambda: get_embedder(config.embedder, config.root), gate_cfg, where)


def _schema_repr(schema: Any) -> Any:
    if isinstance(schema, dict):
        return schema
    fn = getattr(schema, "model_json_schema", None)
    return fn() if fn else repr(schema)


def _file_hash(path: Any) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "missing"
