"""Running the tool calls a model asked for. Never raises: failures become error results.

Arguments are checked here, in the app's process, against the tool's pydantic
model; the function itself runs in a worker process (`studio.tools.workers`)
that is killed when the call runs past the timeout, so a runaway tool cannot
freeze the app. Functions a worker cannot import by name (lambdas, closures)
run in a thread instead, where a timeout is reported but cannot stop them.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

from studio.tools import workers
from studio.tools.base import Tool
from studio.tools.schema import arguments_model, validate_arguments
from studio.tools.workers import call_function
from studio.types import ToolCall

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0      # seconds a call may run (the calls of a batch run side by side)
_GRACE = 1.0                # past the timeout, time for a worker to be killed and reported


def run_tool_call(call: ToolCall, tools: list[Tool], timeout: float = DEFAULT_TIMEOUT) -> ToolCall:
    """Run one call against `tools`; fill in `call.result` and `call.error`, and return `call`.

    The result is the function's return value, JSON-encoded unless it is a str.
    An unknown tool, arguments that do not fit the signature, an exception in
    the tool or a call past `timeout` seconds give `error=True` and a message
    meant for the model to read.
    """
    return run_tool_calls([call], tools, timeout)[0]


def run_tool_calls(calls: list[ToolCall], tools: list[Tool],
                   timeout: float = DEFAULT_TIMEOUT) -> list[ToolCall]:
    """Run all calls in parallel; the same calls come back in the same order.

    A call still running after `timeout` seconds is reported as an error, and
    its worker process is killed (a tool run in a thread is left to finish in
    the background, ignored). Starting a worker does not count against the
    timeout (it is bounded on its own), so a slow start cannot fail a quick tool.
    At most `batch_size()` calls of one batch run at once; the rest wait their turn.
    """
    if not calls:
        return []
    started = time.monotonic()
    at_once = min(batch_size(), len(calls))
    rounds = math.ceil(len(calls) / at_once)   # a call may wait for the ones before it
    pool = ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="tool")
    try:
        futures = [pool.submit(_execute, call, tools, timeout) for call in calls]
        for call, future in zip(calls, futures, strict=True):
            in_worker = _in_worker(call, tools)
            # A call in a worker stops itself at its timeout (after waiting for a free worker and
            # perhaps starting one); this outer bound is only belt and braces. A thread cannot be stopped.
            limit = rounds * (2 * (timeout + workers.START_TIMEOUT) + _GRACE if in_worker else timeout)
            try:
                reply = future.result(timeout=max(0.0, started + limit - time.monotonic()))
            except FutureTimeout:
                reply = None
            except Exception as exc:   # _execute catches everything; this is belt and braces
                reply = f"Error: {type(exc).__name__}: {exc}", True
            if reply is None:
                stopped = " and was stopped" if in_worker else ""
                reply = f"Error: tool {call.name!r} timed out after {timeout:g} s{stopped}", True
            call.result, call.error = reply
    finally:
        # Don't wait for stragglers: a hung in-process tool must not hang the conversation.
        pool.shutdown(wait=False, cancel_futures=True)
    return calls


def batch_size() -> int:
    """How many calls of one batch run at once: half the shared worker processes, so that one
    turn asking for many slow calls leaves workers for every other session."""
    return max(1, workers.POOL.size // 2)


def _execute(call: ToolCall, tools: list[Tool], timeout: float) -> tuple[str, bool] | None:
    """(result text, is error) for one call, or None past the timeout. Touches no shared state."""
    try:
        return _execute_unguarded(call, tools, timeout)
    except Exception as exc:   # e.g. a malformed Tool or ToolCall: still no exception out
        return f"Error: could not run tool {getattr(call, 'name', '?')!r}: {type(exc).__name__}: {exc}", True


def _execute_unguarded(call: ToolCall, tools: list[Tool], timeout: float) -> tuple[str, bool] | None:
    tool = next((t for t in tools if t.name == call.name), None)
    if tool is None:
        known = ", ".join(t.name for t in tools) or "none"
        return f"Error: unknown tool {call.name!r}. Available tools: {known}.", True
    try:
        kwargs = _check_arguments(tool, call.arguments)
    except ValueError as exc:
        return f"Error: invalid arguments for {tool.name}: {exc}", True
    ref = workers.reference(tool.function)
    if ref is not None:
        try:
            return workers.POOL.run(ref, tool.name, kwargs, timeout)
        except workers.WorkersUnavailable as exc:   # e.g. a platform without pass_fds: still answer
            log.warning("running tool %s in-process, with no way to stop it: %s", tool.name, exc)
    return call_function(tool.function, kwargs, tool.name)


def _in_worker(call: ToolCall, tools: list[Tool]) -> bool:
    """Whether the call goes to a worker process (or runs in a thread)."""
    try:
        tool = next((t for t in tools if t.name == call.name), None)
        return tool is not None and workers.reference(tool.function) is not None
    except Exception:   # a malformed Tool: _execute reports it
        return False


def _check_arguments(tool: Tool, arguments: Any) -> dict[str, Any]:
    """The model's arguments checked and coerced by the tool's pydantic model."""
    if isinstance(arguments, str):   # some providers hand over the raw JSON text
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments are not valid JSON ({exc})") from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ValueError(f"arguments must be a JSON object, got {type(arguments).__name__}")
    model = tool.arguments or _model_for(tool.function)
    if model is None:   # a hand-built Tool whose function pydantic cannot describe: it decides
        return arguments
    return validate_arguments(model, arguments)


@functools.lru_cache(maxsize=64)
def _model_for(fn: Callable[..., Any]):
    try:
        return arguments_model(fn)
    except TypeError:
        return None
