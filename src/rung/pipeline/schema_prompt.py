"""A system-prompt section that tells the model which JSON to write, derived from the schema.

    schema_instructions(schema, "triage") ->
        Output format (triage): answer with one JSON object only, no text before or after it
        and no code fences. Fields:
        - intent (string, required): What the customer wants. One of: "return_refund", ...
        - citations (array of strings, required): Ids of the knowledge documents ...
        Example of the shape: {"intent": "return_refund", "priority": "low", ...}

Works for JSON Schema dicts and pydantic model classes (through their JSON Schema); local
"#/$defs/..." references are followed, nested objects are described one level deep.
"""

from __future__ import annotations

import json
from typing import Any

_MAX_ENUM = 20  # enum values listed in full up to this many


def schema_instructions(schema: Any, name: str = "") -> str:
    """The output-format section for a JSON Schema dict or a pydantic model class."""
    js = _as_json_schema(schema)
    root = _deref(js, js)
    title = f" ({name})" if name else ""
    if root.get("type") == "object" or "properties" in root:
        lines = [f"Output format{title}: answer with one JSON object only, no text before or after it "
                 "and no code fences. Fields:"]
        lines += _field_lines(js, root, indent="")
        if root.get("additionalProperties") is False:
            lines.append("Use only these fields.")
    else:
        lines = [f"Output format{title}: answer with one JSON value only ({_type_text(js, root)}), "
                 "no text before or after it and no code fences."]
    lines.append(f"Example of the shape: {json.dumps(_example(js, root), ensure_ascii=False)}")
    return "\n".join(lines)


def _as_json_schema(schema: Any) -> dict[str, Any]:
    if isinstance(schema, dict):
        return schema
    dump = getattr(schema, "model_json_schema", None)
    if callable(dump):
        return dump()
    raise TypeError(f"expected a JSON Schema dict or a pydantic model class, got {type(schema).__name__}")


def _deref(root: dict[str, Any], node: Any, depth: int = 0) -> dict[str, Any]:
    """Follow a local $ref ("#/$defs/X", "#/definitions/X"); anything else as is."""
    if not isinstance(node, dict):
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and depth < 10:
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _deref(root, merged, depth + 1)
    return node


def _options(root: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of anyOf / oneOf (pydantic writes Optional[X] as anyOf [X, null])."""
    alts = node.get("anyOf") or node.get("oneOf")
    if isinstance(alts, list):
        return [_deref(root, a) for a in alts]
    return [node]


def _type_text(root: dict[str, Any], node: dict[str, Any]) -> str:
    node = _deref(root, node)
    alts = _options(root, node)
    if len(alts) > 1:
        return " or ".join(_type_text(root, a) for a in alts)
    if "const" in node:
        return f"always {json.dumps(node['const'], ensure_ascii=False)}"
    t = node.get("type")
    if isinstance(t, list):
        return " or ".join(str(x) for x in t)
    if t == "array":
        items = _deref(root, node.get("items", {}))
        inner = _type_text(root, items) if items else "values"
        return f"array of {_plural(inner)}"
    if t is None and "enum" in node:
        return "one of the values below"
    return str(t or "any JSON value")


def _plural(text: str) -> str:
    head, sep, rest = text.partition(" ")
    if head in ("string", "integer", "number", "boolean", "object"):
        return head + "s" + sep + rest
    return text


def _constraints(node: dict[str, Any]) -> list[str]:
    out = []
    enum = node.get("enum")
    if enum is None and node.get("type") == "array":
        enum = node.get("items", {}).get("enum") if isinstance(node.get("items"), dict) else None
    if isinstance(enum, list):
        shown = ", ".join(json.dumps(v, ensure_ascii=False) for v in enum[:_MAX_ENUM])
        more = f" (and {len(enum) - _MAX_ENUM} more)" if len(enum) > _MAX_ENUM else ""
        out.append(f"One of: {shown}{more}.")
    if node.get("minLength") == 1:
        node = {k: v for k, v in node.items() if k != "minLength"}
        out.append("Not empty.")
    for key, text in (("minLength", "at least {} characters"), ("maxLength", "at most {} characters"),
                      ("minimum", "at least {}"), ("maximum", "at most {}"),
                      ("minItems", "at least {} items"), ("maxItems", "at most {} items"),
                      ("pattern", "matching {}")):
        if key in node:
            out.append(text.format(node[key]).capitalize() + ".")
    return out


def _field_lines(root: dict[str, Any], node: dict[str, Any], indent: str) -> list[str]:
    props = node.get("properties") or {}
    required = set(node.get("required") or [])
    lines = []
    for key, sub in props.items():
        sub = _deref(root, sub)
        need = "required" if key in required else "optional"
        desc = str(sub.get("description") or "").strip()
        bits = [desc.rstrip(".") + "." if desc else "", *_constraints(sub)]
        text = " ".join(b for b in bits if b)
        lines.append(f"{indent}- {key} ({_type_text(root, sub)}, {need}){': ' + text if text else ''}")
        if not indent and (sub.get("properties")):
            lines += _field_lines(root, sub, indent + "  ")
    return lines


def _example(root: dict[str, Any], node: dict[str, Any], depth: int = 0) -> Any:
    """A value of the schema's shape (first enum value, placeholder strings)."""
    node = _deref(root, node)
    alts = _options(root, node)
    if len(alts) > 1:
        non_null = [a for a in alts if a.get("type") != "null"]
        node = non_null[0] if non_null else alts[0]
    if "const" in node:
        return node["const"]
    if isinstance(node.get("enum"), list) and node["enum"]:
        return node["enum"][0]
    t = node.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object" or "properties" in node:
        if depth > 3:
            return {}
        return {k: _example(root, v, depth + 1) for k, v in (node.get("properties") or {}).items()}
    if t == "array":
        items = node.get("items")
        return [_example(root, items, depth + 1)] if isinstance(items, dict) and depth <= 3 else []
    return {"string": "...", "integer": 0, "number": 0, "boolean": False, "null": None}.get(str(t), "...")
