"""ToolSet: the tools a candidate enables, described to the model, found in its text and run.

    toolset = ToolSet.from_config(candidate.tools, config.tool_data, root=config.root)
    system += "\\n\\n" + toolset.system_prompt_section()
    for call in toolset.find_calls(completion.text):
        tool_call = toolset.execute(call)          # a traced rung.core.ToolCall
    final = toolset.render_phrases(text)           # {{phrase:key}} -> approved wording

`toolset.openai_tools()` gives the OpenAI `tools` JSON for endpoints with native tool calling.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rung.core import Message, ToolCall
from rung.errors import ConfigError
from rung.pipeline.tools.base import Tool, ToolError
from rung.pipeline.tools.calculator import Calculator
from rung.pipeline.tools.phrases import PhraseLibrary, PhraseResult
from rung.pipeline.tools.policy import PolicyTable
from rung.pipeline.tools.protocol import RESULT_PREFIX, ParsedCall, find_calls, result_message, strip_calls

TOOL_NAMES = ("calculator", "policy_lookup", "phrases")
"""The built-in tools a candidate may enable (CandidateConfig.tools)."""

MAX_KEYS_LISTED = 20


class ToolSet:
    """An ordered set of enabled tools. Empty is valid: it finds no calls and adds no prompt."""

    def __init__(self, tools: list[Tool]) -> None:
        self.tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.spec.name in self.tools:
                raise ConfigError(f"tools: {tool.spec.name!r} enabled twice")
            self.tools[tool.spec.name] = tool

    @classmethod
    def from_config(cls, names: Sequence[str], tool_data: Mapping[str, str], *, root: Path,
                    where: str = "rung.yaml") -> ToolSet:
        """The named tools (a candidate's `tools`), their data loaded from rung.yaml's `tool_data`
        (paths relative to `root`, the folder of rung.yaml; `where` names that file in errors).
        ConfigError for an unknown name (with a did-you-mean) or missing data."""
        tools: list[Tool] = []
        for name in dict.fromkeys(names):
            if name not in TOOL_NAMES:
                close = difflib.get_close_matches(name, TOOL_NAMES, n=1, cutoff=0.5)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{where}: tools: unknown tool {name!r}{hint}; "
                                  f"known tools: {', '.join(TOOL_NAMES)}")
            if name == "calculator":
                tools.append(Calculator())
                continue
            path = tool_data.get(name)
            if not path:
                what = "policy key -> clause" if name == "policy_lookup" else "phrase key -> approved text"
                raise ConfigError(f"{where}: tool_data.{name}: not set; the {name} tool needs a YAML "
                                  f"file of {what} (tool_data: {{{name}: {name}.yaml}})")
            resolved = Path(path).expanduser()
            resolved = resolved if resolved.is_absolute() else root / resolved
            tools.append(PolicyTable.from_yaml(resolved) if name == "policy_lookup"
                         else PhraseLibrary.from_yaml(resolved))
        return cls(tools)

    # ------------------------------------------------------------ what is enabled

    @property
    def names(self) -> list[str]:
        return list(self.tools)

    def __bool__(self) -> bool:
        return bool(self.tools)

    def __contains__(self, name: object) -> bool:
        return name in self.tools

    @property
    def phrases(self) -> PhraseLibrary | None:
        tool = self.tools.get("phrases")
        return tool if isinstance(tool, PhraseLibrary) else None

    @property
    def advertised_calls(self) -> list[str]:
        """Tools the prompt teaches to CALL (phrases are taught as markers; a CALL still works)."""
        return [n for n in self.tools if n != "phrases"]

    # ------------------------------------------------------------ describing the tools

    def system_prompt_section(self) -> str:
        """A short tools section for the system prompt ("" when nothing is enabled)."""
        lines: list[str] = []
        callables = self.advertised_calls
        if callables:
            lines += ["Tools: to use a tool, write one line and stop:",
                      "CALL <tool>: <input>",
                      f'The result comes back as "{RESULT_PREFIX} <tool>: ..."; then finish your answer '
                      "with it. Never write a tool result yourself."]
            for name in callables:
                lines.append(self._tool_line(name))
        library = self.phrases
        if library is not None:
            example = library.keys()[0] if library.keys() else "key"
            lines.append(f"Approved wording: write {{{{phrase:KEY}}}} where it belongs and it is replaced "
                         f"by the approved text, e.g. {{{{phrase:{example}}}}}. "
                         f"Keys: {_listing(library.keys())}.")
        return "\n".join(lines)

    def _tool_line(self, name: str) -> str:
        tool = self.tools[name]
        spec = tool.spec
        if isinstance(tool, PolicyTable) and tool.keys():
            keys = tool.keys()
            return (f"- {name}: {spec.summary}. Keys: {_listing(keys)}. "
                    f"Example: CALL {name}: {keys[0]}")
        return f"- {name}: {spec.summary}. Example: {spec.example}"

    def add_to_messages(self, messages: list[Message]) -> list[Message]:
        """A copy of `messages` with the tools section appended to the system message (one is
        inserted first when there is none)."""
        section = self.system_prompt_section()
        out = [dict(m) for m in messages]
        if not section:
            return out
        if out and out[0].get("role") == "system":
            base = out[0].get("content", "").rstrip()
            out[0]["content"] = f"{base}\n\n{section}" if base else section
        else:
            out.insert(0, {"role": "system", "content": section})
        return out

    def example_messages(self) -> list[Message]:
        """A short demonstration (user question, CALL, TOOL RESULT, final answer) per callable
        tool, to put between the system prompt and the conversation. Small models rarely call
        tools from the instructions alone; results come from the real tools, so they are true."""
        out: list[Message] = []
        for name in self.advertised_calls:
            tool = self.tools[name]
            if isinstance(tool, Calculator):
                question, line, answer = "What is 12 * 7?", "12 * 7", "12 * 7 = {result}."
            elif isinstance(tool, PolicyTable):  # the first key that answers without a jurisdiction
                key = next((k for k in tool.keys() if self.execute(ParsedCall(name, {"key": k}, "", "line"))
                            .error is None), None)
                if key is None:
                    continue
                question, line, answer = f"What is the policy on {key.replace('_', ' ')}?", key, "{text}"
            else:
                continue
            call = self.execute(ParsedCall(name, tool.parse_text(line), "", "line"))
            text = call.result.split(": ", 1)[-1]
            out += [{"role": "user", "content": question},
                    {"role": "assistant", "content": f"CALL {name}: {line}"},
                    {"role": "user", "content": result_message([call])},
                    {"role": "assistant", "content": answer.format(result=call.result, text=text)}]
        return out

    def openai_tools(self) -> list[dict[str, Any]]:
        """The OpenAI `tools` parameter (JSON Schema per tool) for native tool calling."""
        return [{"type": "function",
                 "function": {"name": t.spec.name, "description": t.spec.summary,
                              "parameters": t.spec.parameters}}
                for t in self.tools.values()]

    def stop_sequences(self) -> list[str]:
        """Stop strings that end generation where a model starts inventing a tool result."""
        return [RESULT_PREFIX] if self.tools else []

    # ------------------------------------------------------------ calls

    def find_calls(self, text: str) -> list[ParsedCall]:
        """Every call in a model's text, in order (none when no tool is enabled)."""
        if not self.tools:
            return []
        names = self.names
        return find_calls(text, names, {n: self.tools[n].spec.primary for n in names},
                          {n: self.tools[n].parse_text for n in names},
                          {n: self.tools[n].infer_call for n in names})

    def strip_calls(self, text: str) -> str:
        """`text` without tool calls and without tool results the model wrote itself."""
        return strip_calls(text, self.find_calls(text))

    def execute(self, call: ParsedCall, context: Mapping[str, Any] | None = None) -> ToolCall:
        """Run one call; never raises for a bad call: the ToolCall carries the error."""
        t0 = time.perf_counter()
        result, error = "", call.error
        tool = self.tools.get(call.name)
        if error is None and tool is None:
            close = difflib.get_close_matches(call.name, self.names, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            error = f"unknown tool {call.name!r}{hint}; tools: {', '.join(self.names) or 'none'}"
        if error is None and tool is not None:
            try:
                result = tool.run(call.arguments, context)
            except ToolError as e:
                error = str(e)
        return ToolCall(call.name, dict(call.arguments), result, error,
                        (time.perf_counter() - t0) * 1000)

    def render_phrases(self, text: str) -> PhraseResult:
        """Phrase markers replaced (unchanged text when the phrases tool is not enabled)."""
        library = self.phrases
        return library.render(text) if library is not None else PhraseResult(text)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_KEYS_LISTED])
    return shown + (f" (+{len(keys) - MAX_KEYS_LISTED} more)" if len(keys) > MAX_KEYS_LISTED else "")
