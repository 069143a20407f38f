"""Function tools: plain typed Python functions that a model can call.

    tool = tool_from_function(my_function)         # schema from type hints + docstring
    tools = get_tools(spec.tools)                  # the built-ins an assistant has switched on
    calls = run_tool_calls(calls, tools)           # in parallel, in worker processes; errors become results

`BUILTIN_TOOLS` are offline and need no key: a safe calculator, date/time across
time zones, unit conversion and text statistics.
"""
from __future__ import annotations

from studio.tools.base import Tool, tool_from_function
from studio.tools.calculator import calculator
from studio.tools.clock import add_to_date, convert_time, current_time, date_difference
from studio.tools.runner import DEFAULT_TIMEOUT, run_tool_call, run_tool_calls
from studio.tools.text import text_statistics
from studio.tools.units import convert_units
from studio.tools.workers import POOL

__all__ = ["Tool", "tool_from_function", "BUILTIN_TOOLS", "get_tools",
           "run_tool_call", "run_tool_calls", "DEFAULT_TIMEOUT"]

BUILTIN_TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in map(tool_from_function, [
        calculator, current_time, convert_time, add_to_date, date_difference,
        convert_units, text_statistics,
    ])
}


def get_tools(names: list[str]) -> list[Tool]:
    """The built-in tools named, in that order.

    Unknown names are skipped silently, and so is "code_interpreter" (a hosted
    tool the provider runs itself, not a function).
    """
    tools = [BUILTIN_TOOLS[name] for name in dict.fromkeys(names) if name in BUILTIN_TOOLS]
    if tools:   # start the tool workers while the model thinks, so the first call does not wait
        POOL.warm_up()
    return tools
