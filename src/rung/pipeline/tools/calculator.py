"""A safe calculator: arithmetic parsed with `ast` and evaluated by walking the tree.

Allowed: numbers, + - * / // % ** (also written ^), parentheses, unary minus/plus,
round/min/max/abs, percentages ("15% of 80", "80 * 15%"), currency signs and thousands
separators ("$1,299.50"). Everything else (names, attributes, lambdas, subscripts, strings,
other calls) is refused before evaluation; nothing is ever passed to eval or exec. Sizes are
bounded: the expression's length, exponents, and every intermediate result, so "2**10**10"
is refused in microseconds. Errors are `ToolError`s with a one-line message.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from rung.pipeline.tools.base import ToolError, ToolSpec, argument

Number = int | float

MAX_EXPRESSION_CHARS = 400
MAX_DIGITS = 300  # |result| < 10**300 (also keeps floats finite)
MAX_ROUND_DIGITS = 15

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS = ("round", "min", "max", "abs")
_REFUSED = {  # node type -> what to call it in the message
    ast.Attribute: "attribute access", ast.Lambda: "lambda", ast.Subscript: "subscripts",
    ast.Compare: "comparisons", ast.BoolOp: "boolean logic", ast.IfExp: "conditionals",
    ast.ListComp: "comprehensions", ast.GeneratorExp: "comprehensions", ast.DictComp: "comprehensions",
    ast.SetComp: "comprehensions", ast.List: "lists", ast.Tuple: "tuples", ast.Dict: "dicts",
    ast.Set: "sets", ast.JoinedStr: "strings", ast.NamedExpr: "assignments", ast.Starred: "unpacking",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
}
_TOOL = "calculator"


def normalise_expression(text: str) -> str:
    """Everyday notation -> python arithmetic: x ÷ ×, ^ -> **, percentages, currency signs and
    thousands separators (only when no function call could own the comma)."""
    s = text.strip().strip("`").strip()
    s = s.replace("×", "*").replace("÷", "/").replace("−", "-").replace("^", "**")
    s = re.sub(r"[$€£¥]", "", s)
    s = re.sub(r"(?<=\d)\s*[xX]\s*(?=[\d(])", " * ", s)
    if not re.search(r"\b(?:round|min|max|abs)\s*\(", s):
        s = re.sub(r"(?<![\w.])(\d{1,3}(?:,\d{3})+)(?![\d,])", lambda m: m.group(1).replace(",", ""), s)
    s = re.sub(r"(?<![\d.])(\d+(?:\.\d+)?)\s*%\s*of\b", r"(\1/100)*", s, flags=re.IGNORECASE)
    s = re.sub(r"(?<![\d.])(\d+(?:\.\d+)?)\s*%(?!\s*[\d.(])", r"(\1/100)", s)
    s = re.sub(r"\s*=\s*\??\s*$", "", s)  # "49 * 0.2 =" or "= ?"
    return s.strip()


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression. Raises ToolError (never anything else) when the
    expression is not allowed, malformed, too large or divides by zero."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"{_TOOL}: expression longer than {MAX_EXPRESSION_CHARS} characters")
    source = normalise_expression(expression)
    if not source:
        raise ToolError(f"{_TOOL}: empty expression")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as e:
        raise ToolError(f"{_TOOL}: not an arithmetic expression: {source!r} ({e.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        raise ToolError(f"{_TOOL}: expression too deeply nested") from None
    try:
        return _check_size(_eval(tree.body))
    except ZeroDivisionError:
        raise ToolError(f"{_TOOL}: division by zero in {source!r}") from None
    except (OverflowError, MemoryError):
        raise ToolError(f"{_TOOL}: result too large (limit 1e{MAX_DIGITS})") from None
    except RecursionError:
        raise ToolError(f"{_TOOL}: expression too deeply nested") from None
    except (TypeError, ValueError) as e:
        raise ToolError(f"{_TOOL}: cannot evaluate {source!r}: {e}") from None


def format_number(value: Number) -> str:
    """A result as the model should read it: integers exact, floats to 12 significant digits
    (49 * 0.2 -> "9.8", not "9.800000000000001")."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}"


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ToolError(f"{_TOOL}: only numbers are allowed, not {node.value!r}")
        return _check_size(node.value)
    if isinstance(node, ast.BinOp):
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ToolError(f"{_TOOL}: operator {type(node.op).__name__} is not allowed")
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _check_size(op(left, right))
    if isinstance(node, ast.UnaryOp):
        uop = _UNARY.get(type(node.op))
        if uop is None:
            raise ToolError(f"{_TOOL}: operator {type(node.op).__name__} is not allowed")
        return uop(_eval(node.operand))
    if isinstance(node, ast.Call):
        return _call(node)
    if isinstance(node, ast.Name):
        raise ToolError(f"{_TOOL}: names are not allowed ({node.id!r}); use numbers only")
    what = _REFUSED.get(type(node), type(node).__name__)
    raise ToolError(f"{_TOOL}: {what} not allowed; use numbers, + - * / // % ** and round/min/max/abs")


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name):
        what = _REFUSED.get(type(node.func), "calling the result of an expression")
        raise ToolError(f"{_TOOL}: {what} not allowed; functions are {', '.join(_FUNCTIONS)}")
    if node.func.id not in _FUNCTIONS:
        raise ToolError(f"{_TOOL}: {node.func.id!r} is not allowed; functions are {', '.join(_FUNCTIONS)}")
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise ToolError(f"{_TOOL}: {node.func.id}() takes plain numbers only")
    args = [_eval(a) for a in node.args]
    name = node.func.id
    if name == "abs":
        if len(args) != 1:
            raise ToolError(f"{_TOOL}: abs() takes one number")
        return abs(args[0])
    if name == "round":
        if len(args) not in (1, 2):
            raise ToolError(f"{_TOOL}: round() takes a number and optional digits")
        if len(args) == 1:
            return round(args[0])
        digits = args[1]
        if not isinstance(digits, int) or not 0 <= digits <= MAX_ROUND_DIGITS:
            raise ToolError(f"{_TOOL}: round() digits must be a whole number 0..{MAX_ROUND_DIGITS}")
        return round(args[0], digits)
    if not args:
        raise ToolError(f"{_TOOL}: {name}() needs at least one number")
    return min(args) if name == "min" else max(args)


def _check_power(base: Number, exponent: Number) -> None:
    if base in (0, 1, -1) or exponent == 0:
        return
    if abs(exponent) > 10_000:
        raise ToolError(f"{_TOOL}: exponent {format_number(exponent)} too large")
    if exponent * math.log10(abs(base)) > MAX_DIGITS:
        raise ToolError(f"{_TOOL}: result too large (limit 1e{MAX_DIGITS})")
    if base < 0 and not float(exponent).is_integer():
        raise ToolError(f"{_TOOL}: a negative number to a fractional power is not a real number")


def _check_size(value: Any) -> Number:
    if isinstance(value, complex):
        raise ToolError(f"{_TOOL}: the result is not a real number")
    if isinstance(value, int):
        if value.bit_length() > MAX_DIGITS * 3.33:
            raise ToolError(f"{_TOOL}: result too large (limit 1e{MAX_DIGITS})")
        return value
    if math.isnan(value) or math.isinf(value) or abs(value) >= 10.0 ** MAX_DIGITS:
        raise ToolError(f"{_TOOL}: result too large (limit 1e{MAX_DIGITS})")
    return value


def _longest_expression(text: str) -> str:
    """The longest prefix of `text` (by words) that evaluates: small models add trailing words
    ("49 * 0.2 to get the discount"). When no prefix evaluates, the longest one that parses
    (so the tool error explains what is wrong), else the whole text."""
    words = text.split()[:80]
    parses: str | None = None
    for n in range(len(words), 0, -1):
        candidate = " ".join(words[:n]).rstrip(".,;:!?= ")
        source = normalise_expression(candidate)
        if not source:
            continue
        try:
            ast.parse(source, mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        try:
            evaluate(candidate)
            return candidate
        except ToolError:
            parses = parses or candidate
    return parses or text.strip()


class Calculator:
    """The `calculator` tool."""

    spec = ToolSpec(
        name="calculator",
        summary="exact arithmetic: + - * / // % ** ( ), round/min/max/abs, percentages",
        signature="CALL calculator: <arithmetic expression>",
        example="CALL calculator: 49 * 0.2",
        primary="expression",
        parameters={
            "type": "object",
            "properties": {"expression": {
                "type": "string", "description": "arithmetic, e.g. '49 * 0.2' or '15% of 80'"}},
            "required": ["expression"],
            "additionalProperties": False,
        },
    )

    def parse_text(self, text: str) -> dict[str, Any]:
        return {"expression": _longest_expression(text)}

    def infer_call(self, text: str) -> dict[str, Any] | None:
        """Claims a nameless "CALL 49 * 0.2 = ..." whose text starts with arithmetic that
        evaluates and has an operator."""
        expression = _longest_expression(text)
        if not re.search(r"[\d)]\s*(?:[-+*/%^x×÷]|\*\*)\s*[\d(.$€£]|%\s*of\b", expression):
            return None
        try:
            evaluate(expression)
        except ToolError:
            return None
        return {"expression": expression}

    def run(self, arguments: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> str:
        expression = argument(arguments, "expression", _TOOL) or ""
        return format_number(evaluate(expression))
