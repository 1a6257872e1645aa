"""The bottom floor: what every layer above talks about. Imports nothing of rung above it.

    request  Message, Request (what a user asks), Case (a Request + expectations), cases_hash
    answer   Answer, Trace, RetrievedChunk, ToolCall (what a pipeline returns)
    score    Score (one measurement of one answer; None = not measured)
    schemas  the project's output schemas: loading, checking, validating data against them
    cases    reading case files (JSONL / YAML / folders) with file:line errors
"""

from rung.core.answer import Answer, RetrievedChunk, ToolCall, Trace
from rung.core.request import Case, Message, Request, cases_hash
from rung.core.score import Score

__all__ = ["Answer", "Case", "Message", "Request", "RetrievedChunk", "Score", "ToolCall", "Trace", "cases_hash"]
