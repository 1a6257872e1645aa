"""What every tool provides: a spec (name, one-line signature, example, JSON Schema of its
arguments) and `run(arguments) -> str`. A tool that cannot answer raises `ToolError`; its
message goes back to the model as the tool's error, it never escapes the tool loop.
Also the small helpers the tools share (arguments, clipping, YAML data files, key matching)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MAX_RESULT_CHARS = 1200
"""Tool results longer than this are cut (a small model's context is short)."""


class ToolError(Exception):
    """A tool could not answer this call (bad input, unknown key, ...): a message for the model."""


@dataclass(frozen=True)
class ToolSpec:
    """How a tool is described to a model.

    `primary` is the argument that the one-line form `CALL name: <text>` fills; `parameters`
    is the JSON Schema of the arguments (also used for native tool calling)."""

    name: str
    summary: str  # one line: what it does
    signature: str  # one line: how to call it in the text protocol
    example: str  # a full example call line
    primary: str
    parameters: dict[str, Any] = field(default_factory=dict)


class Tool(Protocol):
    spec: ToolSpec

    def parse_text(self, text: str) -> dict[str, Any]:
        """The arguments of a one-line call from its free text (after `CALL name:`)."""
        ...

    def infer_call(self, text: str) -> dict[str, Any] | None:
        """The arguments when a nameless "CALL <text>" is clearly this tool's, else None."""
        ...

    def run(self, arguments: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> str:
        """The result, as text for the model. Raises ToolError when it cannot answer.
        `context` carries per-request defaults (e.g. the case's `jurisdiction`)."""
        ...


def argument(arguments: Mapping[str, Any], name: str, tool: str, *, required: bool = True) -> str | None:
    """A string argument, stripped; ToolError when a required one is missing or not text."""
    value = arguments.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ToolError(f"{tool}: missing argument {name!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ToolError(f"{tool}: argument {name!r} must be text, got {type(value).__name__}")
    return str(value).strip()


def clip(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    """Text cut to `limit` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 15].rstrip() + " ... (truncated)"


def load_yaml_entries(path: Path, what: str) -> list[tuple[str, Any, int]]:
    """(key, value, line) of every top-level entry of a YAML mapping file. ConfigError (naming
    the file and line) when the file is missing, not YAML, or not a mapping."""
    import yaml

    from rung.errors import ConfigError
    from rung.yamlfile import parse_yaml

    if not path.is_file():
        raise ConfigError(f"{path}: no such file (the {what} file named in rung.yaml tool_data)")
    data, root = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}:1: the {what} file must be a mapping of key -> text, "
                          f"got {type(data).__name__}")
    lines = {str(k.value): k.start_mark.line + 1 for k, _ in root.value}
    return [(str(k), v, lines.get(str(k), 1)) for k, v in data.items()]


def normalise_key(key: str) -> str:
    """A key as compared tolerantly: lower case, runs of spaces, dashes, dots -> "_"."""
    return re.sub(r"[\s\-./]+", "_", key.strip().strip("'\"`").lower()).strip("_")
