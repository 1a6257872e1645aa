"""Level-0 tools: a safe calculator, policy clause lookup, the canonical phrase library, and the
text protocol (plus batched loop) through which small local models call them.

    from rung.pipeline.tools import ToolSet, run_tool_rounds

    toolset = ToolSet.from_config(candidate.tools, config.tool_data, root=config.root)
    messages = toolset.add_to_messages(messages)             # the tools section in the system prompt
    completions, calls = run_tool_rounds(model, requests, toolset, max_rounds=3)
    rendered = toolset.render_phrases(completions[0].text)   # {{phrase:key}} -> approved text
"""

from rung.pipeline.tools.base import Tool, ToolError, ToolSpec
from rung.pipeline.tools.calculator import Calculator, evaluate, format_number
from rung.pipeline.tools.phrases import PhraseLibrary, PhraseResult
from rung.pipeline.tools.policy import Clause, PolicyTable
from rung.pipeline.tools.protocol import (
    DEFAULT_MAX_ROUNDS,
    ParsedCall,
    find_calls,
    result_message,
    run_tool_rounds,
    strip_calls,
)
from rung.pipeline.tools.toolset import TOOL_NAMES, ToolSet

__all__ = [
    "DEFAULT_MAX_ROUNDS", "TOOL_NAMES", "Calculator", "Clause", "ParsedCall", "PhraseLibrary",
    "PhraseResult", "PolicyTable", "Tool", "ToolError", "ToolSet", "ToolSpec", "evaluate",
    "find_calls", "format_number", "result_message", "run_tool_rounds", "strip_calls",
]
