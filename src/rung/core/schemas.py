"""The project's named output schemas (rung.yaml `schemas`).

    schemas:
      triage: schemas/triage.json            # a JSON Schema file (.json, or .yaml/.yml)
      order: myproject.models:OrderModel     # a pydantic model class, "module:Class"

`load_schemas(config)` (a RungConfig) returns {name: JSON Schema dict | pydantic model class}.
File paths are relative to rung.yaml's folder; modules are imported with that folder on
sys.path (for the duration of the import). Every JSON Schema is checked against its metaschema (Draft 2020-12
unless its $schema names another draft). Any problem is a ConfigError that names rung.yaml,
the schema's key and the file (with its line for JSON syntax errors).

`validate_json_schema` / `validate_pydantic` check data against a loaded schema and return
error lines ("$.items[0].qty: -1 is less than the minimum of 1"); the pipeline's schema
enforcement and the `schema` scorer both use them.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel

from rung.errors import ConfigError

_MAX_ERRORS = 5


class SchemaProject(Protocol):
    """What load_schemas reads of a project (rung.config.RungConfig has it; core cannot import
    config, which sits on the floor above)."""

    schemas: dict[str, str]
    source: Any
    root: Path

    def resolve(self, path: str | Path) -> Path: ...


_MODULE_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_module_ref(ref: str) -> bool:
    """"pkg.mod:Class" (not a path such as "C:/x.json" or "schemas/a.json")."""
    return bool(_MODULE_REF.match(ref)) and not ref.endswith((".json", ".yaml", ".yml"))


def load_schemas(config: SchemaProject) -> dict[str, dict[str, Any] | type[BaseModel]]:
    """Every schema of config.schemas, loaded and checked (see the module doc)."""
    out: dict[str, dict[str, Any] | type[BaseModel]] = {}
    for name, ref in config.schemas.items():
        where = f"{config.source or 'rung.yaml'}: schemas.{name}"
        if is_module_ref(ref):
            out[name] = load_model_ref(ref, config.root, where)
        else:
            out[name] = load_schema_file(config.resolve(ref), where)
    return out


def load_schema_file(path: Path, where: str = "schema") -> dict[str, Any]:
    """A JSON Schema from a .json (or .yaml) file, checked against its metaschema."""
    if not path.is_file():
        raise ConfigError(f"{where}: {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: {path}: cannot read: {e}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            schema = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{where}: {path}{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    else:
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: {path}:{e.lineno}: not valid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(schema, dict):
        raise ConfigError(f"{where}: {path}: a JSON Schema must be an object, got {type(schema).__name__}")
    check_json_schema(schema, f"{where}: {path}")
    return schema


def check_json_schema(schema: dict[str, Any], where: str) -> None:
    """ConfigError when `schema` is not a valid JSON Schema (for its declared draft)."""
    from jsonschema import validators
    from jsonschema.exceptions import SchemaError

    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as e:
        path = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise ConfigError(f"{where}: invalid JSON Schema at {path}: {e.message}") from None


def load_model_ref(ref: str, root: Path | None = None, where: str = "schema") -> type[BaseModel]:
    """The pydantic model class named "module:Class", importing with `root` on sys.path."""
    mod_name, _, attr = ref.partition(":")
    added = False
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
        added = True
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConfigError(f"{where}: cannot import module {mod_name!r}: {e}") from None
    except Exception as e:  # noqa: BLE001 - user code failing at import is a config problem here
        raise ConfigError(f"{where}: importing {mod_name!r} failed: {type(e).__name__}: {e}") from None
    finally:
        if added:
            sys.path.remove(str(root))
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where}: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, BaseModel)):
        raise ConfigError(f"{where}: {ref!r} is not a pydantic model class (got {type(obj).__name__})")
    return obj


# ---------------------------------------------------------------- validating data

def json_path(parts: Any) -> str:
    """["items", 0, "qty"] -> "$.items[0].qty"."""
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def validate_json_schema(data: Any, schema: dict[str, Any], validator: Any = None) -> list[str]:
    """Error lines ("<path>: <message>"), the most relevant first; [] when data is valid."""
    from jsonschema import validators
    from jsonschema.exceptions import best_match

    if validator is None:
        cls = validators.validator_for(schema, default=validators.Draft202012Validator)
        validator = cls(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return []
    best = best_match(errors)
    ordered = [best] + [e for e in errors if e is not best]
    return [f"{json_path(e.absolute_path)}: {e.message}" for e in ordered[:_MAX_ERRORS]]


def validate_pydantic(data: Any, model: type) -> list[str]:
    """Error lines for a pydantic model class, validated in JSON mode; [] when valid."""
    from pydantic import ValidationError

    if isinstance(data, model):
        return []
    try:
        model.model_validate_json(json.dumps(data, ensure_ascii=False))  # type: ignore[attr-defined]
    except ValidationError as e:
        return [f"{json_path(err['loc'])}: {err['msg']}" for err in e.errors()[:_MAX_ERRORS]]
    return []
