"""Thread export: Markdown for people, JSON for programs."""
from __future__ import annotations

import json
from dataclasses import asdict

from studio.types import AssistantSpec, Thread


def thread_to_markdown(thread: Thread, spec: AssistantSpec | None = None) -> str:
    lines = [f"# {thread.title}", ""]
    if spec is not None:
        lines += [f"*Assistant:* {spec.name}  ", f"*Provider:* {thread.provider}  "]
    lines += [f"*Started:* {thread.created_at:%Y-%m-%d %H:%M} UTC", ""]
    for message in thread.messages:
        who = "You" if message.role == "user" else (spec.name if spec else "Assistant")
        lines += [f"## {who}", ""]
        for call in message.tool_calls:
            args = json.dumps(call.arguments, ensure_ascii=False)
            lines += [f"> Tool `{call.name}` {args} → {call.result}", ""]
        lines += [message.content, ""]
        for n, citation in enumerate(message.citations, 1):
            lines.append(f"[{n}] {citation.title}")
    return "\n".join(lines).rstrip() + "\n"


def thread_to_json(thread: Thread, spec: AssistantSpec | None = None) -> str:
    data = asdict(thread)
    if spec is not None:
        data["assistant"] = asdict(spec)
    return json.dumps(data, default=str, ensure_ascii=False, indent=2)
