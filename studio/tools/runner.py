"""Running the tool calls a model asked for. Never raises: failures become error results."""
from __future__ import annotations

import inspect
import json
import time
import typing
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from studio.tools.base import Tool
from studio.tools.schema import coerce
from studio.types import ToolCall

DEFAULT_TIMEOUT = 10.0      # seconds per batch of parallel calls
MAX_RESULT_CHARS = 20_000   # a runaway result would flood the model's context
MAX_WORKERS = 8


def run_tool_call(call: ToolCall, tools: list[Tool]) -> ToolCall:
    """Run one call against `tools`; fill in `call.result` and `call.error`, and return `call`.

    The result is the function's return value, JSON-encoded unless it is a str.
    An unknown tool, arguments that do not fit the signature, or an exception in
    the tool give `error=True` and a message meant for the model to read.
    """
    call.result, call.error = _execute(call, tools)
    return call


def run_tool_calls(calls: list[ToolCall], tools: list[Tool],
                   timeout: float = DEFAULT_TIMEOUT) -> list[ToolCall]:
    """Run all calls in parallel threads; the same calls come back in the same order.

    A call still running after `timeout` seconds is reported as an error; its
    thread cannot be killed, so it finishes in the background and is ignored.
    """
    if not calls:
        return []
    pool = ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(calls)), thread_name_prefix="tool")
    try:
        futures = [pool.submit(_execute, call, tools) for call in calls]
        deadline = time.monotonic() + timeout
        for call, future in zip(calls, futures):
            try:
                call.result, call.error = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                call.result, call.error = f"Error: tool {call.name!r} timed out after {timeout:g} s", True
            except Exception as exc:   # _execute catches everything; this is belt and braces
                call.result, call.error = f"Error: {type(exc).__name__}: {exc}", True
    finally:
        # Don't wait for stragglers: a hung tool must not hang the conversation.
        pool.shutdown(wait=False, cancel_futures=True)
    return calls


def _execute(call: ToolCall, tools: list[Tool]) -> tuple[str, bool]:
    """(result text, is error) for one call. Works on no shared state, so it is thread-safe."""
    try:
        return _execute_unguarded(call, tools)
    except Exception as exc:   # e.g. a malformed Tool or ToolCall: still no exception out
        return f"Error: could not run tool {getattr(call, 'name', '?')!r}: {type(exc).__name__}: {exc}", True


def _execute_unguarded(call: ToolCall, tools: list[Tool]) -> tuple[str, bool]:
    tool = next((t for t in tools if t.name == call.name), None)
    if tool is None:
        known = ", ".join(t.name for t in tools) or "none"
        return f"Error: unknown tool {call.name!r}. Available tools: {known}.", True
    try:
        kwargs = _check_arguments(tool, call.arguments)
    except ValueError as exc:
        return f"Error: invalid arguments for {tool.name}: {exc}", True
    try:
        value = tool.function(**kwargs)
    except (Exception, SystemExit) as exc:   # a tool calling sys.exit must not end the app
        return _error_text(tool.name, exc), True
    try:
        return _result_text(value), False
    except Exception as exc:
        return f"Error: {tool.name} returned a result that cannot be encoded: {exc}", True


def _check_arguments(tool: Tool, arguments: Any) -> dict[str, Any]:
    """Bind the model's arguments to the signature and check each against its type hint."""
    if isinstance(arguments, str):   # some providers hand over the raw JSON text
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments are not valid JSON ({exc})") from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ValueError(f"arguments must be a JSON object, got {type(arguments).__name__}")
    signature = inspect.signature(tool.function)
    try:
        bound = signature.bind(**arguments)
    except TypeError as exc:
        expected = ", ".join(signature.parameters) or "none"
        raise ValueError(f"{exc} (expected arguments: {expected})") from None
    try:
        hints = typing.get_type_hints(tool.function)
    except Exception:
        hints = {}
    checked = {}
    for name, value in bound.arguments.items():
        param = signature.parameters[name]
        if param.kind is param.VAR_KEYWORD:
            checked.update(value)
        elif name in hints:
            checked[name] = coerce(value, hints[name], f"argument {name!r}")
        else:
            checked[name] = value
    return checked


def _error_text(tool_name: str, exc: BaseException) -> str:
    # ValueError is how the built-ins report bad input; its message is already clear.
    if isinstance(exc, ValueError) and str(exc):
        return f"Error: {exc}"
    return f"Error: {tool_name} failed: {type(exc).__name__}: {exc}"


def _result_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"... [truncated, {len(text)} characters in all]"
    return text
