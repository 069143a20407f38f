"""Drawing a thread: stored messages, and a turn as it streams in."""
from __future__ import annotations

import json
from typing import Iterable

import streamlit as st

from studio.types import (CitationFound, Done, ErrorEvent, Event, Message, TextDelta, ToolCall,
                          ToolCallFinished, ToolCallStarted)

CURSOR = "▌"


def tool_call_block(call: ToolCall, running: bool = False) -> None:
    """A collapsible block showing one tool call: name, arguments and result (or code and output)."""
    icon = "⏳" if running else ("⚠️" if call.error else "🔧")
    if call.kind == "code_interpreter":
        with st.expander(f"{icon} Code interpreter", expanded=False):
            st.code(call.arguments.get("code", ""), language="python")
            if call.result is not None:
                st.caption("Output")
                st.code(call.result or "(no output)", language="text")
        return
    if isinstance(call.arguments, dict):
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in call.arguments.items())
    else:   # a model may send arguments that are not a JSON object; show them as they came
        args = str(call.arguments)[:80]
    with st.expander(f"{icon} `{call.name}({args})`", expanded=False):
        st.caption("Arguments")
        if isinstance(call.arguments, dict):
            st.json(call.arguments)
        else:
            st.code(str(call.arguments), language="text")
        if call.result is not None:
            st.caption("Error" if call.error else "Result")
            st.code(call.result, language="json" if call.result[:1] in "[{" else "text")
        elif running:
            st.caption("Running…")


def citations_footer(message: Message) -> None:
    if message.citations:
        st.caption("  \n".join(f"[{n}] {c.title}" + (f" — “{c.quote}”" if c.quote else "")
                               for n, c in enumerate(message.citations, 1)))


def show_message(message: Message) -> None:
    with st.chat_message(message.role):
        for call in message.tool_calls:
            tool_call_block(call)
        st.markdown(message.content)
        citations_footer(message)


def show_messages(messages: Iterable[Message]) -> None:
    for message in messages:
        show_message(message)


def stream_turn(events: Iterable[Event]) -> ErrorEvent | None:
    """Render a streaming reply token by token; return the error if the turn failed."""
    with st.chat_message("assistant"):
        tools_area = st.container()
        text_area = st.empty()
        text = ""
        for event in events:
            if isinstance(event, TextDelta):
                text += event.text
                text_area.markdown(text + CURSOR)
            elif isinstance(event, ToolCallStarted):
                with tools_area:
                    st.caption(f"Calling `{event.call.name}`…")
            elif isinstance(event, ToolCallFinished):
                with tools_area:
                    tool_call_block(event.call)
            elif isinstance(event, CitationFound):
                with tools_area:
                    st.caption(f"Source: {event.citation.title}")
            elif isinstance(event, Done):
                text_area.markdown(text)
            elif isinstance(event, ErrorEvent):
                text_area.markdown(text)
                return event
    return None
