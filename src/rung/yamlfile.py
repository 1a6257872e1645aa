"""YAML files users write (rung.yaml, suites, tool data): parsed with their node tree so every
error can name the file and line, and pydantic validation errors turned into
`file:line: key.path: what was expected` with a "did you mean" for unknown keys."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from rung.errors import ConfigError, did_you_mean


def syntax_error(e: yaml.YAMLError, shown: str) -> tuple[str, str]:
    """(`shown:line` or `shown`, the problem) of a YAML syntax error."""
    mark = getattr(e, "problem_mark", None)
    where = f"{shown}:{mark.line + 1}" if mark else shown
    return where, str(getattr(e, "problem", None) or e)


class KeyedValueError(ValueError):
    """A validator's error about the key at path `loc` (from the validated model): raised in a
    pydantic validator, it is reported at that key's line instead of the model's."""

    def __init__(self, loc: tuple, message: str) -> None:
        super().__init__(message)
        self.loc = tuple(loc)


def load_with_nodes(text: str) -> tuple[Any, yaml.Node | None]:
    """The data (as yaml.safe_load gives it) and the node tree of a YAML text, in one parse;
    yaml.YAMLError when it is not valid YAML or a mapping repeats a key (YAML forbids it; PyYAML
    would keep the last silently)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_duplicate_keys(node)
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def _check_duplicate_keys(root: yaml.Node) -> None:
    """yaml.constructor.ConstructorError at the second occurrence of a key repeated in a mapping."""
    stack, seen_nodes = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # anchors and aliases share nodes
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    key = (k.tag, str(k.value))
                    if key in first:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {str(k.value)!r} (first at line {first[key]}; "
                            "YAML keeps only one: remove or rename one)", k.start_mark)
                    first[key] = k.start_mark.line + 1
                stack.extend((k, v))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def parse_yaml(text: str, shown: str) -> tuple[Any, yaml.Node | None]:
    """The data and the node tree (for line numbers) of a YAML text; ConfigError naming
    `shown:line` when it is not valid YAML."""
    try:
        return load_with_nodes(text)
    except yaml.YAMLError as e:
        where, problem = syntax_error(e, shown)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None


def line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the key at path `loc` under `node` (or of the nearest parent found)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def validation_message(err: ValidationError, source: str, root_node: yaml.Node | None,
                       model: type[BaseModel]) -> str:
    """One line per error: `source:line: key.path: message`."""
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        keyed = (e.get("ctx") or {}).get("error")
        if isinstance(keyed, KeyedValueError):
            loc += keyed.loc
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = line_of(root_node, loc)
        where = f"{source}:{line}" if line else source
        if e["type"] == "extra_forbidden":
            allowed = allowed_keys(model, loc)
            hint = did_you_mean(str(loc[-1]), allowed)
            msg = f"unknown key {str(loc[-1])!r}{hint}"
            if not hint and allowed:
                msg += f"; expected one of: {', '.join(allowed)}"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] not in ("value_error", "assertion_error") and "input" in e:
                msg += f" (got {e['input']!r})" if not isinstance(e["input"], dict) else ""
        lines.append(f"{where}: {key}: {msg}")
    return "\n".join(lines)


def allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names (and aliases) of the pydantic model reached by following loc from `model`."""
    current: Any = model
    for part in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            continue  # dict[str, Model] values: the key is a name, the model stays
        current = _inner_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items() if not f.exclude]
    return []


def _inner_model(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if args:
        for a in reversed(args):
            inner = _inner_model(a)
            if inner is not None:
                return inner
    return None
