"""The project's named output schemas (rung.yaml `schemas`).

    schemas:
      triage: schemas/triage.json            # a JSON Schema file (.json, or .yaml/.yml)
      order: myproject.models:OrderModel     # a pydantic model class, "module:Class"

`load_schemas(config)` returns {name: JSON Schema dict | pydantic model class}. File paths are
relative to rung.yaml's folder; modules are imported with that folder on sys.path (for the
duration of the import). Every JSON Schema is checked against its metaschema (Draft 2020-12
unless its $schema names another draft). Any problem is a ConfigError that names rung.yaml,
the schema's key and the file (with its line for JSON syntax errors).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from rung.config import RungConfig
from rung.errors import ConfigError

_MODULE_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_module_ref(ref: str) -> bool:
    """"pkg.mod:Class" (not a path such as "C:/x.json" or "schemas/a.json")."""
    return bool(_MODULE_REF.match(ref)) and not ref.endswith((".json", ".yaml", ".yml"))


def load_schemas(config: RungConfig) -> dict[str, dict[str, Any] | type[BaseModel]]:
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
