"""A safe arithmetic calculator: the expression is parsed with `ast` and walked, never eval'd.

Every operation's cost is bounded before it runs: exact integer arithmetic can
take minutes and holds the GIL all the while (`9**9**9`, `round(5, -10**7)`),
so an operation whose result would pass MAX_DIGITS digits is refused, not tried.
"""
from __future__ import annotations

import ast
import math
import operator

MAX_EXPRESSION_CHARS = 1000
MAX_DIGITS = 1000         # integer results beyond this are refused (and never computed)
_MAX_BITS = math.ceil(MAX_DIGITS * math.log2(10))   # a MAX_DIGITS-digit number has at most this many bits

_FUNCTIONS = {
    "sqrt": math.sqrt, "sin": math.sin, "cos": math.cos, "tan": math.tan,
    "log": math.log, "log10": math.log10, "exp": math.exp, "abs": abs,
    "round": round, "floor": math.floor, "ceil": math.ceil, "min": min, "max": max,
    "factorial": math.factorial,
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
    ceil, min, max, factorial, and the constants pi and e. Whole-number results
    are exact up to 1000 digits.

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
        hint = ": write factorial(n) for n!" if "!" in source else ""
        raise ValueError(f"cannot parse expression {expression!r}{hint}") from None
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
            return _check_size(node.value)
        raise ValueError(f"only numbers are allowed, not {node.value!r}")
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ValueError(f"the {_OPERATORS.get(type(node.op), type(node.op).__name__)} operator "
                             "is not allowed in a calculation")
        left, right = _eval(node.left), _eval(node.right)
        _check_operation(node.op, left, right)
        return _check_size(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise ValueError(f"the {_OPERATORS.get(type(node.op), type(node.op).__name__)} operator "
                             "is not allowed in a calculation")
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
    if name == "round" and len(args) == 2:
        if not isinstance(args[1], int):
            raise ValueError("round(x, n): n must be a whole number")
        # round(5, -10**7) would build 10**(10**7) first: fifteen seconds of CPU.
        if abs(args[1]) > MAX_DIGITS:
            raise ValueError(f"round(x, n): n must be between -{MAX_DIGITS} and {MAX_DIGITS}")
    if name == "factorial" and len(args) == 1:
        args = [_factorial_argument(args[0])]
    try:
        return _check_size(_FUNCTIONS[name](*args))
    except TypeError as exc:
        raise ValueError(f"bad call to {name}: {exc}") from None
    except ValueError:   # math domain errors: sqrt(-1), log(0)
        shown = ", ".join(repr(a) for a in args)
        raise ValueError(f"{name}({shown}) is undefined (math domain error)") from None


def _check_operation(op: ast.operator, left: int | float, right: int | float) -> None:
    """Refuse an exact integer operation whose result would pass MAX_DIGITS, before it runs.

    Float arithmetic is constant-time and overflows on its own; division and
    remainder are never larger than their operands, which are already bounded.
    """
    if not (isinstance(left, int) and isinstance(right, int)):
        return
    if isinstance(op, ast.Pow):
        # An int power is exact and can take ages (9**9**9): estimate its digits first.
        if right > 0 and abs(left) > 1 and right * math.log10(abs(left)) > MAX_DIGITS:
            raise ValueError(f"result would have more than {MAX_DIGITS} digits")
    elif isinstance(op, ast.Mult):
        if left and right and left.bit_length() + right.bit_length() - 1 > _MAX_BITS:
            raise ValueError(f"result would have more than {MAX_DIGITS} digits")


def _factorial_argument(n: int | float) -> int:
    """n for factorial(n): a whole number from 0 whose factorial has at most MAX_DIGITS digits."""
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if not isinstance(n, int) or n < 0:
        raise ValueError("factorial(n): n must be a whole number, 0 or more")
    if n > 1 and math.lgamma(n + 1) / math.log(10) > MAX_DIGITS:   # log10(n!) without computing n!
        raise ValueError(f"factorial({n}) would have more than {MAX_DIGITS} digits")
    return n


def _check_size(value: int | float) -> int | float:
    if isinstance(value, complex):   # (-8) ** (1/3)
        raise ValueError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise ValueError(f"result has more than {MAX_DIGITS} digits")
    if isinstance(value, float) and math.isinf(value):   # 1e999, 1e308 * 10
        raise ValueError("result is too large")
    return value


_OPERATORS = {ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|",
              ast.BitXor: "xor", ast.MatMult: "@", ast.Invert: "~", ast.Not: "not"}


def _describe(node: ast.AST) -> str:
    names = {ast.Subscript: "indexing", ast.Lambda: "lambda", ast.Compare: "comparison",
             ast.BoolOp: "and/or", ast.List: "a list", ast.Tuple: "a tuple",
             ast.JoinedStr: "an f-string", ast.NamedExpr: "assignment"}
    return names.get(type(node), type(node).__name__)
