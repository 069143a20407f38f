"""What the two OpenAI-SDK providers share within one turn: the tool round and the text flow."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Iterator

from studio.tools import Tool, run_tool_calls
from studio.types import Event, TextDelta, ToolCall, ToolCallFinished, ToolCallStarted

MAX_TOOL_ROUNDS = 5           # model -> tools -> model ... at most this many times per turn


@dataclass
class TurnProgress:
    """How far a turn got, for error messages and for spacing the text."""
    streaming: bool = False           # events arrived: a failure now is a mid-stream failure
    spoke: bool = False               # the model has written some text this turn
    break_before_text: bool = False   # a tool round followed that text: start a new paragraph
    cut_off: bool = False             # a length limit stopped the reply


def run_calls_events(calls: list[ToolCall], tools: list[Tool], progress: TurnProgress) -> Iterator[Event]:
    """Announce the calls, run them in parallel, report each result."""
    for call in calls:
        yield ToolCallStarted(call)
    run_tool_calls(calls, tools)
    for call in calls:
        yield ToolCallFinished(call)
    if progress.spoke:   # "Let me check." + tools + "It is 4." must not run together
        progress.break_before_text = True


def text_delta(text: str, progress: TurnProgress) -> Iterator[TextDelta]:
    """A text delta, after a paragraph break when text came before the last tool round."""
    if progress.break_before_text:
        progress.break_before_text = False
        yield TextDelta("\n\n")
    progress.spoke = True
    yield TextDelta(text)


def parse_arguments(text: str) -> Any:
    """Arguments as a dict; text that is not JSON is passed on as is (the tool runner reports it)."""
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return text


def parse_shutdown_date(value: Any) -> date | None:
    """/v1/models gives shutdown dates as ISO text; tolerate a Unix timestamp too."""
    if value in (None, ""):
        return None
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, tz=timezone.utc).date()
        return date.fromisoformat(str(value)[:10])
    except (ValueError, OverflowError, OSError):
        return None
