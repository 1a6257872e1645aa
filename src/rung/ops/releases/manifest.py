"""What a release is made of: the content of one candidate, read from the project's files.

`snapshot(config, candidate)` reads everything the candidate's answers depend on and returns a
`Snapshot`:

- `content` (part of the release id): the candidate's recipe (its rung.yaml entry less the
  description), the model's settings and weights fingerprint (the weight files' sha256, hashed
  without loading the model; an endpoint's weights are opaque, so its URL and model name stand
  for them), the adapter (its files' hashes and rung-lineage: dataset version, training job,
  base weights), every reachable prompt block (name, version, sha256) and the prompt template,
  the knowledge corpus (per document: id, version, effective date, content hash, file) with the
  chunking, the embedder's weights and the index fingerprint, the reranker, the refusal gate's
  examples (their suite hash), the schemas, the tools' data, and `files`: the sha256 of every
  file copied into the release (keys are paths relative to the project folder).
- `files`: key -> path of each of those files, to copy into the artifact store.
- `record` (not part of the id): the full configuration sections that `materialize` writes back
  as a rung.yaml (prices, timeouts and descriptions included).

Nothing here depends on the machine: no absolute paths under the project folder, no device or
precision (the candidate hash of runs has them; the release does not), no time. So the same
project files give the same content on any machine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rung.config import PER_CASE_SCHEMA, CandidateConfig, RungConfig
from rung.errors import ConfigError

FORMAT = 1
# model settings that change the text a model produces (as in the candidate hash)
MODEL_KEYS = ("backend", "path", "gguf_file", "dtype", "base_url", "model")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def canonical(obj: Any) -> bytes:
    """The canonical JSON bytes a release id is taken over (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str).encode()


def release_id(content: dict[str, Any], evidence: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical manifest: content + evidence (not who, when, notes, git)."""
    return hashlib.sha256(canonical({"content": content, "evidence": evidence})).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file (memoised per path, size and mtime by the model layer)."""
    from rung.models.embedded import file_sha256 as memo_sha

    return memo_sha(path)


@dataclass
class Snapshot:
    """One candidate's content as read from the project now (see the module doc)."""

    candidate: str
    content: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)


class _Files:
    """The files a release copies: key (relative to the project folder, or absolute when
    outside it) -> path, and their sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.paths: dict[str, Path] = {}
        self.hashes: dict[str, str] = {}

    def key(self, path: Path) -> str:
        p = path.resolve()
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()

    def add(self, path: Path) -> str:
        """Record a file; returns its key."""
        k = self.key(path)
        if k not in self.paths:
            self.paths[k] = path
            self.hashes[k] = file_sha256(path)
        return k


def snapshot(config: RungConfig, candidate: str | None) -> Snapshot:
    """Read the named candidate and every file it depends on (see the module doc). Raises
    ConfigError naming what is missing."""
    name, cand = config.candidate(candidate)
    files = _Files(config.root)
    mcfg = config.models[cand.model]
    content: dict[str, Any] = {
        "format": FORMAT,
        "candidate": {"name": name, "level": cand.effective_level,
                      "config": cand.model_dump(mode="json", by_alias=True, exclude={"description"})},
        "model": _model(config, cand),
        "adapter": _adapter(config, cand, files),
        "prompt": _prompt(config, cand, files),
        "knowledge": _knowledge(config, cand, files),
        "reranker": _reranker(config, cand),
        "refusal_gate": _refusal_gate(config, cand, files),
        "schemas": _schemas(config, cand, files),
        "tools": _tools(config, cand, files),
        "guardrails": _guardrails(config, cand, files),
    }
    content["files"] = dict(sorted(files.hashes.items()))
    record = _record(config, name, cand, mcfg)
    return Snapshot(name, content, files.paths, record)


# ---------------------------------------------------------------- parts

def _model(config: RungConfig, cand: CandidateConfig) -> dict[str, Any]:
    mcfg = config.models[cand.model]
    out: dict[str, Any] = {k: getattr(mcfg, k) for k in MODEL_KEYS}
    if mcfg.backend == "openai":
        # the endpoint's weights are opaque: its URL and model name stand for them
        out["weights"] = "endpoint"
        out["weights_sha256"] = hashlib.sha256(
            "\n".join(["openai", mcfg.base_url or "", mcfg.model or ""]).encode()).hexdigest()
        return out
    from rung.models.embedded import resolve_llm

    resolved = resolve_llm(mcfg.path, config.root, mcfg.gguf_file)
    out["weights"] = resolved.kind  # gguf | hf | hub (hub: not in the local cache = name only)
    out["weights_sha256"] = resolved.fingerprint()
    return out


def _adapter(config: RungConfig, cand: CandidateConfig, files: _Files) -> dict[str, Any] | None:
    if not cand.adapter:
        return None
    mcfg = config.models[cand.model]
    endpoint = mcfg.backend == "openai"
    if endpoint and (cand.adapter not in mcfg.adapters
                     or not config.resolve(mcfg.adapters[cand.adapter]).is_dir()):
        return {"name": cand.adapter, "served_by": "endpoint"}  # known to the endpoint by name only
    # an endpoint adapter whose folder rung.yaml gives is copied and hashed like a local one: the
    # gateway sends it as "<name>-<digest>", so a replica never answers with a stale copy
    folder = config.resolve(mcfg.adapters[cand.adapter])
    where = f"{config.source}: models.{cand.model}.adapters.{cand.adapter}"
    if not folder.is_dir():
        raise ConfigError(f"{where}: adapter folder {folder} does not exist")
    present = [folder / f for f in ADAPTER_FILES if (folder / f).is_file()]
    if not present:
        raise ConfigError(f"{where}: {folder} has no adapter_config.json / adapter weights")
    from rung.models.embedded import hash_files
    from rung.tune.train.artifacts import LINEAGE_FILE

    out: dict[str, Any] = {"name": cand.adapter, "files": [files.add(p) for p in present],
                           "sha256": hash_files(present), "lineage": None}
    if endpoint:
        out["served_by"] = "endpoint"
    lineage_file = folder / LINEAGE_FILE
    if lineage_file.is_file():
        files.add(lineage_file)
        try:
            lin = json.loads(lineage_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{where}: {lineage_file} is not valid JSON: {e}") from None
        ds = lin.get("dataset") or {}
        base = lin.get("base_model") or {}
        out["lineage"] = {"job_id": lin.get("job_id"), "method": lin.get("method"),
                          "dataset_version": ds.get("version"), "dataset": ds.get("name"),
                          "base_weights_sha256": base.get("weights_sha256"),
                          "hyperparameters": lin.get("hyperparameters")}
    return out


def _prompt(config: RungConfig, cand: CandidateConfig, files: _Files) -> dict[str, Any] | None:
    prompt = cand.prompt
    if prompt is None:
        return None
    from rung.pipeline.prompt import PromptBuilder, content_version, load_blocks

    folder = config.resolve(config.prompt_blocks)
    blocks: list[dict[str, Any]] = []
    if prompt.blocks:
        if not folder.is_dir():
            raise ConfigError(f"{config.source}: prompt_blocks: folder {folder} does not exist "
                              f"(the candidate uses blocks {', '.join(prompt.blocks)})")
        builder = PromptBuilder(load_blocks(folder), prompt.blocks, folder=folder)
        for b in builder.reachable_blocks():
            key = files.add(Path(b.path))
            blocks.append({"name": b.name, "version": b.version, "sha256": files.hashes[key], "file": key})
    template = None
    if prompt.template:
        path = config.resolve(prompt.template)
        if not path.is_file():
            raise ConfigError(f"{config.source}: prompt.template: {path}: no such file")
        key = files.add(path)
        template = {"file": key, "version": content_version(path.read_text(encoding="utf-8")),
                    "sha256": files.hashes[key]}
    return {"blocks": blocks, "template": template}


def _embedder_weights(spec: str, root: Path) -> str:
    """The embedder's spec and weights hash, without the precision it runs at on this CPU."""
    from rung.pipeline.retrieval.index import embedder_id

    ident = embedder_id(spec, root)
    head, _, tail = ident.rpartition("/")
    return head if tail in ("bf16", "fp32") and head else ident


def _knowledge(config: RungConfig, cand: CandidateConfig, files: _Files) -> dict[str, Any] | None:
    if cand.retrieval is None:
        return None
    from rung.pipeline.retrieval.documents import SIDECAR_SUFFIX, load_documents
    from rung.pipeline.retrieval.index import INDEX_FORMAT, TOKENIZER_ID

    corpus_name = cand.retrieval.corpus
    corpus = config.knowledge[corpus_name]
    folder = config.resolve(corpus.path)
    docs, _skipped = load_documents(folder)
    documents = []
    for d in sorted(docs, key=lambda d: d.id):
        path = Path(d.path)
        if not path.is_file() and ":" in d.path:  # a JSONL record: "file:line"
            path = Path(d.path.rsplit(":", 1)[0])
        key = files.add(path)
        side = path.with_name(path.name + SIDECAR_SUFFIX)
        if side.is_file():
            files.add(side)
        documents.append({"id": d.id, "version": _scalar(d.metadata.get("version")),
                          "effective_date": _scalar(d.metadata.get("effective_date")),
                          "sha256": d.content_hash, "file": key})
    embedder = _embedder_weights(corpus.embedder or config.embedder, config.root)
    chunking = {"chunk_tokens": corpus.chunk_tokens, "chunk_overlap": corpus.chunk_overlap}
    index = hashlib.sha256(canonical({
        "format": INDEX_FORMAT, "tokenizer": TOKENIZER_ID, "chunking": chunking, "embedder": embedder,
        "docs": {d["id"]: d["sha256"] for d in documents}})).hexdigest()
    return {"corpus": corpus_name, "chunking": chunking, "embedder": embedder,
            "documents": documents, "index_fingerprint": index}


def _reranker(config: RungConfig, cand: CandidateConfig) -> dict[str, Any] | None:
    if cand.retrieval is None or cand.retrieval.reranker == "none":
        return None
    spec = cand.retrieval.reranker
    out: dict[str, Any] = {"spec": spec}
    if spec.startswith("cross-encoder:"):
        from rung.models.embedded import hash_files

        folder = config.resolve(spec.split(":", 1)[1])
        weights = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
        if not weights:
            raise ConfigError(f"{config.source}: retrieval.reranker: {folder} is not a model folder")
        out["weights_sha256"] = hash_files(weights)
    elif spec == "embedding":
        out["embedder"] = _embedder_weights(config.embedder, config.root)
    return out


def _refusal_gate(config: RungConfig, cand: CandidateConfig, files: _Files) -> dict[str, Any] | None:
    gate = cand.refusal_gate
    if gate is None:
        return None
    from rung.evals.suite import load_suite

    path = config.resolve(gate.examples)
    if not path.exists():
        raise ConfigError(f"{config.source}: refusal_gate.examples: {path} does not exist")
    paths = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.relative_to(path).parts))
    keys = [files.add(p) for p in paths]
    suite = load_suite(path)
    return {"examples": keys, "suite_hash": suite.hash, "cases": len(suite.cases),
            "embedder": _embedder_weights(config.embedder, config.root)}


def _schemas(config: RungConfig, cand: CandidateConfig, files: _Files) -> dict[str, Any] | None:
    if not cand.output_schema:
        return None
    from rung.core.schemas import is_module_ref

    names = sorted(config.schemas) if cand.output_schema == PER_CASE_SCHEMA else [cand.output_schema]
    out: dict[str, Any] = {}
    for n in names:
        ref = config.schemas[n]
        if is_module_ref(ref):  # a pydantic model in the user's code: named, not copied
            out[n] = {"ref": ref}
            continue
        path = config.resolve(ref)
        if not path.is_file():
            raise ConfigError(f"{config.source}: schemas.{n}: {path}: no such file")
        key = files.add(path)
        out[n] = {"file": key, "sha256": files.hashes[key]}
    return out


def _tools(config: RungConfig, cand: CandidateConfig, files: _Files) -> dict[str, Any] | None:
    if not cand.tools:
        return None
    out: dict[str, Any] = {}
    for t in sorted(cand.tools):
        data = config.tool_data.get(t)
        if data is None:
            out[t] = {}
            continue
        path = config.resolve(data)
        if not path.is_file():
            raise ConfigError(f"{config.source}: tool_data.{t}: {path}: no such file")
        key = files.add(path)
        out[t] = {"file": key, "sha256": files.hashes[key]}
    return out


def _guardrails(config: RungConfig, cand: CandidateConfig, files: _Files) -> dict[str, Any] | None:
    """The candidate's own `guardrails:` (rung serve) and the injection classifier's example
    file, copied (a release served without its own guardrails gets serving.guardrails)."""
    g = cand.guardrails
    if g is None:
        return None
    out: dict[str, Any] = {"config": g.model_dump(mode="json", by_alias=True)}
    examples = g.injection.examples if g.injection is not None else None
    if examples:
        path = config.resolve(examples)
        if not path.is_file():
            what = "a folder: give one JSONL/YAML file of cases to release it" if path.is_dir() else "no such file"
            raise ConfigError(f"{config.source}: candidates.{cand_name(config, cand)}.guardrails.injection."
                              f"examples: {path}: {what}")
        key = files.add(path)
        out["injection_examples"] = {"file": key, "sha256": files.hashes[key]}
    return out


def cand_name(config: RungConfig, cand: CandidateConfig) -> str:
    return next((n for n, c in config.candidates.items() if c is cand), "?")


def _scalar(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


# ---------------------------------------------------------------- what materialize writes back

def _record(config: RungConfig, name: str, cand: CandidateConfig, mcfg: Any) -> dict[str, Any]:
    """The configuration sections the candidate uses, as rung.yaml would say them."""
    model = mcfg.model_dump(mode="json", exclude_defaults=True)
    if "adapters" in model:
        model["adapters"] = {k: v for k, v in model["adapters"].items() if k == cand.adapter}
        if not model["adapters"]:
            del model["adapters"]
    rec: dict[str, Any] = {
        "project": config.project,
        "models": {cand.model: model},
        "candidates": {name: cand.model_dump(mode="json", by_alias=True, exclude_defaults=True)},
        "embedder": config.embedder,
        "gate": config.gate.model_dump(mode="json", exclude_defaults=True),
    }
    if cand.retrieval is not None:
        c = cand.retrieval.corpus
        rec["knowledge"] = {c: config.knowledge[c].model_dump(mode="json", exclude_defaults=True)}
    if cand.prompt is not None:
        rec["prompt_blocks"] = config.prompt_blocks
    used_tools = {t: p for t, p in config.tool_data.items() if t in cand.tools}
    if used_tools:
        rec["tool_data"] = used_tools
    if cand.output_schema:
        names = config.schemas if cand.output_schema == PER_CASE_SCHEMA else [cand.output_schema]
        rec["schemas"] = {n: config.schemas[n] for n in names}
    return rec
