"""A safe arithmetic calculator: the expression is parsed with `ast` and walked, never eval'd."""
from __future__ import annotations

import ast
import math
import operator

MAX_EXPRESSION_CHARS = 1000
MAX_DIGITS = 1000         # integer results beyond this are refused (and never computed)

_FUNCTIONS = {
    "sqrt": math.sqrt, "sin": math.sin, "cos": math.cos, "tan": math.tan,
    "log": math.log, "log10": math.log10, "exp": math.exp, "abs": abs,
    "round": round, "floor": math.floor, "ceil": math.ceil, "min": min, "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def calculator(expression: str) -> int | float:
    """Evaluate an arithmetic expression exactly, e.g. "(2 + 3) * sqrt(16) / 4".

    Use this for any arithmetic instead of computing in your head. Supports numbers,
    + - * / // % ** (or ^ for power), parentheses, the functions sqrt, sin, cos,
    tan (radians), log (natural, or log(x, base)), log10, exp, abs, round, floor,
    ceil, min, max, and the constants pi and e.

    Args:
        expression: The arithmetic expression to evaluate.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression is too long (over {MAX_EXPRESSION_CHARS} characters)")
    # Models and people write ^ for power; this calculator has no use for XOR.
    source = expression.replace("^", "**").replace("×", "*").replace("÷", "/").strip()
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ValueError(f"cannot parse expression {expression!r}") from None
    try:
        result = _eval(tree.body)
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    except OverflowError:
        raise ValueError("result is too large") from None
    except RecursionError:
        raise ValueError("expression is nested too deeply") from None
    if isinstance(result, float):
        if not math.isfinite(result):
            raise ValueError("result is not a finite number")
        return float(f"{result:.16g}")   # hide last-bit noise: 0.1 + 0.2 -> 0.3
    return result


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        raise ValueError(f"only numbers are allowed, not {node.value!r}")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _check_size(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        if node.id in _FUNCTIONS:
            raise ValueError(f"{node.id} is a function: call it, e.g. {node.id}(2)")
        raise ValueError(f"unknown name {node.id!r}; allowed: {', '.join([*_FUNCTIONS, *_CONSTANTS])}")
    if isinstance(node, ast.Call):
        return _call(node)
    if isinstance(node, ast.Attribute):
        raise ValueError("attribute access is not allowed")
    raise ValueError(f"{_describe(node)} is not allowed in a calculation")


def _call(node: ast.Call) -> int | float:
    if isinstance(node.func, ast.Attribute):
        raise ValueError("attribute access is not allowed")
    if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
        name = node.func.id if isinstance(node.func, ast.Name) else _describe(node.func)
        raise ValueError(f"unknown function {name!r}; allowed: {', '.join(_FUNCTIONS)}")
    if node.keywords:
        raise ValueError("keyword arguments are not allowed")
    name = node.func.id
    args = [_eval(arg) for arg in node.args]
    if name == "round" and len(args) == 2 and not isinstance(args[1], int):
        raise ValueError("round(x, n): n must be a whole number")
    try:
        return _check_size(_FUNCTIONS[name](*args))
    except TypeError as exc:
        raise ValueError(f"bad call to {name}: {exc}") from None
    except ValueError:   # math domain errors: sqrt(-1), log(0)
        shown = ", ".join(repr(a) for a in args)
        raise ValueError(f"{name}({shown}) is undefined (math domain error)") from None


def _check_power(base: int | float, exponent: int | float) -> None:
    # An int power is exact and can take ages (9**9**9); estimate its digits first.
    # Float powers are constant-time and overflow on their own.
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log10(abs(base)) > MAX_DIGITS:
            raise ValueError(f"result would have more than {MAX_DIGITS} digits")


def _check_size(value: int | float) -> int | float:
    if isinstance(value, complex):   # (-8) ** (1/3)
        raise ValueError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3.33:
        raise ValueError(f"result has more than {MAX_DIGITS} digits")
    return value


def _describe(node: ast.AST) -> str:
    names = {ast.Subscript: "indexing", ast.Lambda: "lambda", ast.Compare: "comparison",
             ast.BoolOp: "and/or", ast.List: "a list", ast.Tuple: "a tuple",
             ast.JoinedStr: "an f-string", ast.NamedExpr: "assignment"}
    return names.get(type(node), type(node).__name__)
