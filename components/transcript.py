"""Drawing a thread: stored messages, and a turn as it streams in."""
from __future__ import annotations

import json
import time
from typing import Callable, Iterable, Iterator, Sequence

import streamlit as st

from components.safe_text import inline_code, plain, safe_markdown, safe_stream
from studio.types import (CitationFound, ErrorEvent, Event, Message, Notice, TextDelta, ToolCall,
                          ToolCallFinished, ToolCallStarted)

CURSOR = "▌"
# A streaming reply is drawn again at most this often: each redraw sends the whole text so far to
# the browser, and with many users streaming at once the redraws, not the replies, filled the CPU.
STREAM_EVERY_S = 0.1
RECENT = 20                        # messages drawn before "Show N earlier messages"
REVEALED = "revealed_threads"      # session_state key: threads whose earlier messages are shown


def tool_call_block(call: ToolCall, running: bool = False) -> None:
    """A collapsible block showing one tool call: name, arguments and result (or code and output)."""
    icon = "⏳" if running else ("⚠️" if call.error else "🔧")
    if call.kind == "file_search":
        queries = call.arguments.get("queries") or [] if isinstance(call.arguments, dict) else []
        with st.expander(f"{icon} Searched your documents", expanded=False):
            if queries:
                st.caption(plain("Queries: " + "; ".join(str(q) for q in queries)))
            st.caption(plain(call.result or ("Searching…" if running else "")))
        return
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
    # Name and arguments come from the model: a code span shows them as sent, never as Markdown.
    with st.expander(f"{icon} {inline_code(f'{call.name}({args})')}", expanded=False):
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
    """The reply's sources, numbered as the reply cites them; each opens on its passage."""
    if not message.citations:
        return
    if all(c.how == "given" for c in message.citations):
        st.caption("Searched: the passages the model was given (the reply cites none of them)")
    else:
        st.caption("Sources")
    for n, c in enumerate(message.citations, 1):
        number = c.number or n
        with st.expander(plain(f"[{number}] {c.source or c.title}")):
            details = [f"file {c.title}"] + ([f"page {c.page}"] if c.page else [])
            if c.score is not None and c.how == "file_search":
                details.append(f"OpenAI file search score {c.score:.3f}")
            elif c.score is not None:
                details.append(f"fused score {c.score:.4f}")
            if c.similarity is not None:
                details.append(f"similarity {c.similarity:.3f}")
            if c.how == "matched":
                details.append("the reply wrote no marker; its wording matches this passage")
            elif c.how == "given":
                details.append("given to the model with the question; the reply does not cite it")
            elif c.how == "file_search":
                details.append("the best passage OpenAI's search returned from this file")
            st.caption(plain(" · ".join(details)))
            if c.quote:
                st.text(c.quote)


def show_message(message: Message, below: Callable[[], None] | None = None) -> None:
    """One message; `below` draws more inside it (e.g. the feedback bar under a reply)."""
    with st.chat_message(message.role):
        for call in message.tool_calls:
            tool_call_block(call)
        st.markdown(safe_markdown(message.content))
        if message.cut_off:
            st.caption("✂️ Cut off: this reply reached the length limit before it was finished.")
        elif message.stopped:
            st.caption("⏹️ Stopped: this reply was stopped before it was finished.")
        for note in message.notes:
            st.caption(f"⚠️ {plain(note)}")
        citations_footer(message)
        if below is not None:
            below()


def show_messages(messages: Sequence[Message], thread_id: str = "",
                  feedback: Callable[[Message, list[Message]], None] | None = None) -> None:
    """Draw a thread's messages: the last RECENT, under a button that reveals the earlier ones.
    `feedback(reply, messages before it)` draws under each reply with text (rating, editing).

    Drawing every message of a long thread on every run made the page slow to use; the reveal
    lasts for this session (per thread). Exports always hold the whole thread.
    """
    hidden = len(messages) - RECENT
    revealed = st.session_state.setdefault(REVEALED, set())
    start = 0
    if hidden > 0 and thread_id not in revealed:
        st.button(f"Show {hidden} earlier message{'s' if hidden > 1 else ''}", key=f"show_earlier_{thread_id}",
                  icon=":material/expand_less:", on_click=revealed.add, args=(thread_id,))
        start = hidden
    for index in range(start, len(messages)):
        message = messages[index]
        below = None
        if feedback is not None and message.role == "assistant" and message.content.strip():
            def below(message=message, index=index):
                feedback(message, list(messages[:index]))
        show_message(message, below)


def stream_turn(events: Iterable[Event], below: Callable[[], None] | None = None) -> ErrorEvent | None:
    """Draw a reply as it streams in; return the error if the turn failed. `below` draws under
    a reply that succeeded (e.g. its feedback bar, when the page is not drawn again)."""
    failed: list[ErrorEvent] = []
    with st.chat_message("assistant"):
        tools_area = st.container()   # tool calls and sources above the text, as they happen
        st.write_stream(safe_stream(paced(_reply_text(events, tools_area, failed))), cursor=CURSOR)
        if below is not None and not failed:
            below()
    return failed[0] if failed else None


FLUSH = ""   # from the reply's text: send what is held now (something else is about to be drawn)


def paced(chunks: Iterable[str], every: float = STREAM_EVERY_S) -> Iterator[str]:
    """`chunks` joined so that at most one goes out per `every` seconds; the first at once, what
    is held at a FLUSH (an empty chunk) or when they end."""
    held, last = "", float("-inf")
    for chunk in chunks:
        held += chunk
        now = time.monotonic()
        if held and (not chunk or now - last >= every):
            yield held
            held, last = "", now
    if held:
        yield held


def _reply_text(events: Iterable[Event], tools_area, failed: list[ErrorEvent]) -> Iterator[str]:
    """The text deltas of a turn, for st.write_stream; the other events are drawn as they come."""
    for event in events:
        if isinstance(event, TextDelta):
            yield event.text
            continue
        yield FLUSH   # the text so far goes out before a tool call, a source or a notice is drawn
        if isinstance(event, ToolCallStarted):
            with tools_area:
                st.caption(f"Calling {inline_code(event.call.name)}…")
        elif isinstance(event, ToolCallFinished):
            with tools_area:
                tool_call_block(event.call)
        elif isinstance(event, CitationFound):
            with tools_area:
                st.caption(f"Source: {plain(event.citation.source or event.citation.title)}")
        elif isinstance(event, Notice):
            with tools_area:
                st.warning(plain(event.text))
        elif isinstance(event, ErrorEvent):
            failed.append(event)
            return
