"""Thread export: Markdown for people, JSON for programs."""
from __future__ import annotations

import json
import re
from dataclasses import asdict

from studio.safe_markdown import inline_code, plain, safe_file_markdown, safe_inline
from studio.types import AssistantSpec, Thread, ToolCall


def thread_to_markdown(thread: Thread, spec: AssistantSpec | None = None) -> str:
    """The thread as a Markdown document. Text from people, models and tools is escaped so that
    a viewer opening the file loads no image and runs no HTML; code blocks stay as typed."""
    name = plain(spec.name) if spec is not None else "Assistant"
    lines = [f"# {plain(thread.title)}", ""]
    if spec is not None:
        lines += [f"*Assistant:* {name}  ", f"*Provider:* {plain(thread.provider)}  "]
    lines += [f"*Started:* {thread.created_at:%Y-%m-%d %H:%M} UTC", ""]
    for message in thread.messages:
        lines += [f"## {'You' if message.role == 'user' else name}", ""]
        for call in message.tool_calls:
            lines += [*_tool_call(call), ""]
        lines += [safe_file_markdown(message.content), ""]
        for n, citation in enumerate(message.citations, 1):
            given = " (given to the model, not cited)" if citation.how == "given" else ""
            lines.append(f"[{n}] {plain(citation.title)}{given}")
    return "\n".join(lines).rstrip() + "\n"


def _tool_call(call: ToolCall) -> list[str]:
    args = safe_inline(json.dumps(call.arguments, ensure_ascii=False), dollars=False, html=True)
    head = f"> Tool {inline_code(call.name)} {args} →"
    result = str(call.result)
    if "\n" not in result and "\r" not in result:
        return [f"{head} {safe_inline(result, dollars=False, html=True)}"]
    # Several lines: a code block in the quote, fenced longer than any backtick run inside.
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", result)), default=0) + 1)
    return [head, f"> {fence}", *(f"> {line}" for line in result.splitlines()), f"> {fence}"]


def thread_to_json(thread: Thread, spec: AssistantSpec | None = None) -> str:
    """The thread, and its assistant when given, as an indented JSON document."""
    data = asdict(thread)
    if spec is not None:
        data["assistant"] = asdict(spec)
    return json.dumps(data, default=str, ensure_ascii=False, indent=2)
