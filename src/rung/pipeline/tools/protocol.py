"""The text protocol small local models use to call tools, and the batched tool loop.

A model calls a tool by writing either a line

    CALL calculator: 49 * 0.2

or a tagged JSON object

    <tool>{"name": "calculator", "arguments": {"expression": "49 * 0.2"}}</tool>

Parsing is tolerant: any case, markdown around the line (bullets, bold, backticks, code
fences), `CALL calculator(49 * 0.2)`, trailing words after the arguments, <tool_call> tags,
arguments given as a JSON string or a bare string, a missing closing tag, and a bare JSON
object {"name": ..., "arguments": ...} on its own line. The line form may also follow other
text on its line when written in capitals ("Let me check. CALL calculator: 2+2"). A line form
is only a call when its name is (close to) an enabled tool, so "Call support: 555-0100" in an
answer is not one.

`run_tool_rounds` runs the loop for a whole batch: generate, find calls, execute them, append
"TOOL RESULT <tool>: <result>" as a user message, and generate again, at most `max_rounds`
times; each round sends only the requests that made calls, in one `Model.generate` batch.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rung.core import Message, ToolCall
from rung.errors import ConfigError, ModelError
from rung.models.base import Completion, GenRequest, Model, ProgressCallback
from rung.pipeline.tools.base import normalise_key

if TYPE_CHECKING:
    from rung.pipeline.tools.toolset import ToolSet

DEFAULT_MAX_ROUNDS = 3
MAX_CALLS_PER_TURN = 4

_JSON = json.JSONDecoder()
_LINE = re.compile(r"^[ \t>*\-•`#_]*(?:\d{1,2}[.)][ \t]*)?[*_`]*CALL\b[*_`]*[ \t]*[:\-]?[ \t]*(?P<rest>.*)$",
                   re.IGNORECASE | re.MULTILINE)
_INLINE = re.compile(r"(?<=[ \t])[*_`]*CALL\b[*_`]*[ \t]*[:\-]?[ \t]*(?P<rest>.*)$", re.MULTILINE)  # upper case only
_NAME = re.compile(r"[*_`]*(?P<name>[A-Za-z][\w\-]*(?:[ \t][A-Za-z][\w\-]*)?)[*_`]*[ \t]*(?P<sep>:|\(|->|=>)?")
_TAG = re.compile(r"<\s*(?:tool|tool_call|function_call)\s*>", re.IGNORECASE)
_CLOSE_TAG = re.compile(r"\s*(?:```\s*)?<\s*/\s*(?:tool|tool_call|function_call)\s*>", re.IGNORECASE)
_BARE_JSON = re.compile(r"^[ \t]*\{", re.MULTILINE)
RESULT_PREFIX = "TOOL RESULT"
_RESULT_LINE = re.compile(rf"^[ \t*`]*{RESULT_PREFIX}\b.*$\n?", re.IGNORECASE | re.MULTILINE)
ALIASES = {"calc": "calculator", "calculate": "calculator", "math": "calculator",
           "policy": "policy_lookup", "lookup": "policy_lookup", "policy_lookup_tool": "policy_lookup",
           "phrase": "phrases", "phrase_library": "phrases"}


@dataclass(frozen=True)
class ParsedCall:
    """A tool call found in model text. `name` is the enabled tool's name when it resolves,
    else the name as written; `error` is set when the call could not be read (bad JSON)."""

    name: str
    arguments: dict[str, Any]
    raw: str
    syntax: str  # "line" | "json"
    start: int = 0
    end: int = 0
    error: str | None = None


@dataclass
class _Resolver:
    """Maps names as models write them to enabled tools."""

    names: list[str]
    primaries: dict[str, str] = field(default_factory=dict)

    def resolve(self, written: str) -> str | None:
        key = normalise_key(written)
        for name in self.names:
            if key == normalise_key(name) or ALIASES.get(key) == name:
                return name
        return None

    def is_close(self, written: str) -> bool:
        targets = [normalise_key(n) for n in self.names] + [a for a, n in ALIASES.items() if n in self.names]
        return bool(difflib.get_close_matches(normalise_key(written), targets, n=1, cutoff=0.75))


def find_calls(text: str, tool_names: list[str], primaries: Mapping[str, str],
               parse_text: Mapping[str, Callable[[str], dict[str, Any]]] | None = None,
               infer: Mapping[str, Callable[[str], dict[str, Any] | None]] | None = None,
               ) -> list[ParsedCall]:
    """Every tool call in `text`, in order. `primaries` maps a tool to the argument a bare
    string fills; `parse_text` maps a tool to a function reading a line call's free text;
    `infer` maps a tool to a function that claims a nameless "CALL <text>" (upper-case CALL
    only: "CALL 49 * 0.2" is a calculator call, "CALL refund_window" a policy lookup)."""
    resolver = _Resolver(list(tool_names), dict(primaries))
    calls = _tagged_calls(text, resolver)
    taken = [(c.start, c.end) for c in calls]
    for call in _line_calls(text, resolver, parse_text or {}, infer or {}) + _bare_json_calls(text, resolver):
        if not any(s <= call.start < e or call.start <= s < call.end for s, e in taken):
            calls.append(call)
            taken.append((call.start, call.end))
    return sorted(calls, key=lambda c: c.start)


def _line_calls(text: str, resolver: _Resolver, parse_text: Mapping[str, Callable[[str], dict[str, Any]]],
                infer: Mapping[str, Callable[[str], dict[str, Any] | None]]) -> list[ParsedCall]:
    out: list[ParsedCall] = []
    line_starts = list(_LINE.finditer(text))
    inline = [m for m in _INLINE.finditer(text)
              if not any(s.start() <= m.start() < s.end() for s in line_starts)]
    for m in line_starts + inline:
        rest = m.group("rest").strip()
        call = _named_call(rest, resolver, parse_text)
        if call is None and "CALL" in m.group(0):
            call = _inferred_call(rest.strip("*`_ "), infer)
        if call is not None:
            name, arguments = call
            out.append(ParsedCall(name, arguments, m.group(0).strip(), "line", m.start(), m.end()))
    return out


def _named_call(rest: str, resolver: _Resolver, parse_text: Mapping[str, Callable[[str], dict[str, Any]]],
                ) -> tuple[str, dict[str, Any]] | None:
    """(tool, arguments) of "calculator: 2+2", "calculator(2+2)", "calculator 2+2"; None when the
    name is neither an enabled tool nor close to one (a close name is kept, to report it)."""
    nm = _NAME.match(rest)
    if not nm:
        return None
    written, sep = nm.group("name"), nm.group("sep")
    name = resolver.resolve(written)
    arg_start = nm.end()
    if name is None and " " in written.strip():  # "CALL calculator 2 + 2": one-word name
        first = written.split()[0]
        if resolver.resolve(first):
            written, name, sep = first, resolver.resolve(first), None
            arg_start = rest.index(first) + len(first)
    if name is None and not resolver.is_close(written):
        return None
    arg = rest[arg_start:]
    if sep == "(":
        arg = _inside_parens(arg)
    arg = arg.strip().strip("*`_").strip()
    if name is not None and name in parse_text:
        return name, parse_text[name](arg)
    return name or written.strip(), {resolver.primaries.get(name or "", "input"): arg}


def _inferred_call(rest: str, infer: Mapping[str, Callable[[str], dict[str, Any] | None]],
                   ) -> tuple[str, dict[str, Any]] | None:
    for name, claim in infer.items():
        arguments = claim(rest)
        if arguments is not None:
            return name, arguments
    return None


def _inside_parens(arg: str) -> str:
    """The text up to the parenthesis that closes an opening one just before `arg`."""
    depth = 1
    for i, ch in enumerate(arg):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            return arg[:i]
    return arg


def _tagged_calls(text: str, resolver: _Resolver) -> list[ParsedCall]:
    out: list[ParsedCall] = []
    for m in _TAG.finditer(text):
        body_start = m.end()
        brace = text.find("{", body_start)
        close = _CLOSE_TAG.search(text, body_start)
        if brace < 0 or (close and close.start() < brace):
            end = close.end() if close else len(text)
            out.append(ParsedCall("?", {}, text[m.start():end], "json", m.start(), end,
                                  error="the tool tag holds no JSON object"))
            continue
        obj, obj_end, error = _decode(text, brace, close.start() if close else None)
        after = _CLOSE_TAG.match(text, obj_end)
        end = after.end() if after else obj_end
        raw = text[m.start():end]
        if obj is None:
            named = re.search(r"[\"']name[\"']\s*:\s*[\"']([\w\-]+)", raw)
            written = named.group(1) if named else "?"
            out.append(ParsedCall(resolver.resolve(written) or written, {}, raw, "json", m.start(), end,
                                  error=f"could not read the tool call JSON: {error}"))
            continue
        out.append(_from_object(obj, raw, m.start(), end, resolver))
    return out


def _bare_json_calls(text: str, resolver: _Resolver) -> list[ParsedCall]:
    out: list[ParsedCall] = []
    for m in _BARE_JSON.finditer(text):
        brace = text.index("{", m.start())
        obj, end, _ = _decode(text, brace, None)
        if not isinstance(obj, dict):
            continue
        name = _object_name(obj)
        if not name or resolver.resolve(name) is None:
            continue
        if not any(k in obj for k in ("arguments", "parameters", "args", "input")):
            continue
        out.append(_from_object(obj, text[brace:end], brace, end, resolver))
    return out


def _decode(text: str, start: int, stop: int | None) -> tuple[Any, int, str]:
    """A JSON object at `start` (trailing text allowed), else a python literal up to `stop`."""
    try:
        obj, end = _JSON.raw_decode(text, start)
        return obj, end, ""
    except json.JSONDecodeError as e:
        error = f"{e.msg} at column {e.colno}"
    chunk = text[start:stop] if stop is not None else text[start:]
    try:  # {'name': 'calculator', ...}: a python literal, read safely (no evaluation)
        obj = ast.literal_eval(chunk.strip())
        return obj, start + len(chunk.rstrip()), ""
    except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
        return None, (stop if stop is not None else len(text)), error


def _object_name(obj: dict[str, Any]) -> str | None:
    fn = obj.get("function")
    name = obj.get("name") or obj.get("tool") or obj.get("tool_name") or (
        fn.get("name") if isinstance(fn, dict) else fn)
    return name if isinstance(name, str) else None


def _from_object(obj: Any, raw: str, start: int, end: int, resolver: _Resolver) -> ParsedCall:
    if not isinstance(obj, dict):
        return ParsedCall("?", {}, raw, "json", start, end, error="the tool call is not a JSON object")
    written = _object_name(obj)
    if not written:
        return ParsedCall("?", {}, raw, "json", start, end, error='the tool call has no "name"')
    name = resolver.resolve(written) or written
    fn = obj.get("function") if isinstance(obj.get("function"), dict) else {}
    args: Any = None
    for source in (obj, fn):
        for k in ("arguments", "parameters", "args", "input"):
            if k in source:
                args = source[k]
                break
        if args is not None:
            break
    if args is None:  # {"name": "calculator", "expression": "2+2"}
        args = {k: v for k, v in obj.items() if k not in ("name", "tool", "tool_name", "function")}
    if isinstance(args, str):
        try:
            decoded = json.loads(args)
            args = decoded if isinstance(decoded, dict) else args
        except json.JSONDecodeError:
            pass
    if not isinstance(args, dict):
        args = {resolver.primaries.get(name, "input"): args}
    return ParsedCall(name, dict(args), raw, "json", start, end)


def strip_calls(text: str, calls: list[ParsedCall]) -> str:
    """`text` without the given calls, any "TOOL RESULT" lines a model wrote itself, and empty
    code fences left behind."""
    out = text
    for call in sorted(calls, key=lambda c: c.start, reverse=True):
        before, after = out[:call.start].rstrip(" \t"), out[call.end:].lstrip(" \t")
        joint = " " if before and after and not before.endswith("\n") and not after.startswith("\n") else ""
        out = before + joint + after
    out = _RESULT_LINE.sub("", out)
    out = re.sub(r"```[\w+\-]*\s*```", "", out)
    out = re.sub(r"\n{3,}", "\n\n", out)
    return out.strip()



# ---------------------------------------------------------------- the loop

def result_message(calls: list[ToolCall]) -> str:
    """The user message that hands tool results back: one "TOOL RESULT <tool>: ..." line each."""
    lines = []
    for c in calls:
        if c.error:
            lines.append(f"{RESULT_PREFIX} {c.name}: ERROR: {c.error.removeprefix(c.name + ': ')}")
        else:
            lines.append(f"{RESULT_PREFIX} {c.name}: {c.result}")
    lines.append("Continue your answer using the result above." if len(calls) == 1
                 else "Continue your answer using the results above.")
    return "\n".join(lines)


def run_tool_rounds(model: Model, requests: list[GenRequest], toolset: ToolSet,
                    max_rounds: int = DEFAULT_MAX_ROUNDS, *,
                    contexts: Sequence[Mapping[str, Any] | None] | None = None,
                    progress: ProgressCallback | None = None,
                    max_calls_per_turn: int = MAX_CALLS_PER_TURN,
                    ) -> tuple[list[Completion], list[list[ToolCall]]]:
    """Generate every request, then up to `max_rounds` tool rounds; each round executes the
    calls of the requests that made some and generates their continuations in ONE batch.

    Returns, per request, the final completion and the tool calls made. A request that made no
    call gets its first completion unchanged. Otherwise the completion is merged over rounds:
    text = the last round's text without calls (and without tool results the model invented),
    tokens and time summed, and `extra` gains tool_rounds, tool_rounds_exhausted (the model was
    still calling tools when the rounds ran out) and tool_messages (the appended conversation).
    `contexts[i]` gives request i's tools defaults (e.g. {"jurisdiction": "EU"}). `progress`
    reports the first round, which carries every request."""
    if max_rounds < 0:
        raise ConfigError(f"tool rounds: max_rounds must be >= 0, got {max_rounds}")
    if contexts is not None and len(contexts) != len(requests):
        raise ConfigError(f"tool rounds: {len(contexts)} contexts for {len(requests)} requests")
    first = _generate(model, requests, progress)
    parts: list[list[Completion]] = [[c] for c in first]
    traced: list[list[ToolCall]] = [[] for _ in requests]
    added: list[list[Message]] = [[] for _ in requests]
    pending = _calling(toolset, {i: c for i, c in enumerate(first)})
    for _ in range(max_rounds):
        if not pending:
            break
        follow_ups: list[GenRequest] = []
        for i, calls in pending.items():
            context = contexts[i] if contexts is not None else None
            executed = [toolset.execute(c, context) for c in calls[:max_calls_per_turn]]
            executed += [ToolCall(c.name, dict(c.arguments), "", f"skipped: at most {max_calls_per_turn} "
                                  "tool calls per turn") for c in calls[max_calls_per_turn:]]
            traced[i] += executed
            said = parts[i][-1].text[:calls[min(len(calls), max_calls_per_turn) - 1].end].rstrip()
            added[i] += [{"role": "assistant", "content": said},
                         {"role": "user", "content": result_message(executed)}]
            req = requests[i]
            follow_ups.append(GenRequest(tuple(req.messages) + tuple(added[i]), req.params, req.adapter))
        outs = _generate(model, follow_ups, None)
        for i, out in zip(pending, outs):
            parts[i].append(out)
        pending = _calling(toolset, dict(zip(pending, outs)))
    final = [_merge(p, toolset, i in pending, added[i]) if len(p) > 1 or i in pending else c
             for i, (c, p) in enumerate(zip(first, parts))]
    return final, traced


def _generate(model: Model, requests: list[GenRequest], progress: ProgressCallback | None) -> list[Completion]:
    if not requests:
        return []
    out = model.generate(requests, progress=progress)
    if len(out) != len(requests):
        raise ModelError(f"model {model.model_id!r} returned {len(out)} completions for "
                         f"{len(requests)} requests")
    return out


def _calling(toolset: ToolSet, completions: dict[int, Completion]) -> dict[int, list[ParsedCall]]:
    """The requests whose (successful) completion calls a tool, with their calls."""
    out: dict[int, list[ParsedCall]] = {}
    for i, c in completions.items():
        if c.finish_reason == "error" or c.error:
            continue
        calls = toolset.find_calls(c.text)
        if calls:
            out[i] = calls
    return out


def _merge(parts: list[Completion], toolset: ToolSet, exhausted: bool,
           added: list[Message]) -> Completion:
    last = parts[-1]
    extra = dict(last.extra)
    extra.update({"tool_rounds": len(parts) - 1, "tool_rounds_exhausted": exhausted,
                  "tool_messages": [dict(m) for m in added]})
    return Completion(
        text=toolset.strip_calls(last.text),
        tokens_in=sum(p.tokens_in for p in parts),
        tokens_out=sum(p.tokens_out for p in parts),
        ttft_s=parts[0].ttft_s,
        total_s=sum(p.total_s for p in parts),
        model_id=last.model_id,
        adapter=last.adapter,
        cached=all(p.cached for p in parts),
        finish_reason=last.finish_reason,
        error=next((p.error for p in parts if p.error), None),
        extra=extra,
    )
