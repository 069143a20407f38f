"""The fake's deterministic "model": what to answer, decided from the request alone.

Directives in the last user message drive it (they are stripped from the echoed text):

    [[call NAME {json arguments}]]   a function call, if a function tool NAME is offered;
                                     several directives = parallel calls in one response
    [[code SOURCE]]                  a code_interpreter call, if that tool is offered
    [[say TEXT]]                     text the model says before its function calls; with
                                     no call, the whole reply (e.g. one that cites "[1]")

With no directive the reply is "You said: <text>". When the request carries tool
results (function_call_output items / role "tool" messages) the reply is
"Results: <output 1>; <output 2>".
"""
from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field

DIRECTIVE = re.compile(r"\[\[(call|code|say)\s+(.*?)\]\]", re.S)
WORD = re.compile(r"\S+\s*|\s+")


@dataclass
class PlannedCall:
    name: str
    arguments: str          # JSON text, exactly as the model would stream it


@dataclass
class PlannedCode:
    code: str
    logs: str


@dataclass
class Plan:
    """One response: optional code runs, then optional text, then optional function calls."""
    text: str = ""
    calls: list[PlannedCall] = field(default_factory=list)
    code: list[PlannedCode] = field(default_factory=list)


def plan_reply(user_text: str, function_names: set[str], code_interpreter: bool,
               tool_outputs: list[str] | None = None, allow_tools: bool = True) -> Plan:
    """Decide the reply for `user_text` given the tools offered and any tool results sent back."""
    if tool_outputs:
        return Plan(text="Results: " + "; ".join(tool_outputs))
    plan = Plan()
    preamble = [rest.strip() for kind, rest in DIRECTIVE.findall(user_text) if kind == "say"]
    for kind, rest in DIRECTIVE.findall(user_text):
        if not allow_tools:
            continue
        if kind == "call":
            name, _, args = rest.strip().partition(" ")
            if name in function_names:
                plan.calls.append(PlannedCall(name=name, arguments=args.strip() or "{}"))
        elif kind == "code" and code_interpreter:
            code = rest.strip()
            plan.code.append(PlannedCode(code=code, logs=run_code(code)))
    if plan.calls:
        plan.text = " ".join(preamble)   # usually nothing, sometimes "Let me check."
        return plan
    if plan.code:
        plan.text = "The code printed: " + " ".join(c.logs.strip() for c in plan.code)
        return plan
    plan.text = " ".join(preamble) if preamble else "You said: " + DIRECTIVE.sub("", user_text).strip()
    return plan


def split_words(text: str) -> list[str]:
    """Stream chunks: one word (with its trailing space) per delta."""
    return WORD.findall(text) or [text]


def split_json(text: str, size: int = 8) -> list[str]:
    """Function-call arguments stream in small fragments, like the real API."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


_SAFE_BUILTINS = {name: getattr(builtins, name) for name in (
    "abs", "len", "max", "min", "range", "round", "sum", "sorted", "str", "int", "float",
    "list", "dict", "enumerate", "zip")}


def run_code(code: str) -> str:
    """Run the (test-supplied) snippet with a tiny builtin set; its printed output is the log."""
    out: list[str] = []

    def _print(*args, sep=" ", end="\n", **_):
        out.append(sep.join(str(a) for a in args) + end)

    try:
        exec(code, {"__builtins__": {**_SAFE_BUILTINS, "print": _print}})   # noqa: S102 - test fake
    except Exception as exc:   # the real tool reports errors in its logs too
        out.append(f"{type(exc).__name__}: {exc}\n")
    return "".join(out)


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)

