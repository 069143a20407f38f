"""A chat turn on the page: the message box, sending a message, and what the last turn offers
(Retry after a failure, Continue after a reply cut off by a length limit).

A failed turn's error is kept per thread for this session (`turn_errors`), so the page can say
what went wrong after the rerun that follows every turn, and offer Retry only where it can help.
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

from components import session
from components.model_loading import ensure_local_model
from components.safe_text import safe_markdown
from components.threads import remember_in_url
from components.transcript import stream_turn
from components.knowledge import knowledge_store
from studio.chat import (CONTINUE_PROMPT, add_user_message, can_continue, continue_turn, needs_retry,
                         run_turn)
from studio.providers import Provider
from studio.store import Store
from studio.types import AssistantSpec, ErrorEvent, Message, Thread

# Longer than any message a person types or pastes on purpose; it keeps one message from
# filling the database or a model's context with megabytes.
MAX_MESSAGE_CHARS = 50_000
UNSENT = "unsent_message"   # session_state key: a refused message, shown back until one is sent


def turn_errors() -> dict[str, ErrorEvent]:
    """The last failed turn's error per thread id, for this session."""
    return st.session_state.setdefault("turn_errors", {})


def last_turn_actions(thread: Thread, can_send: bool) -> str | None:
    """Under the transcript: why the last turn failed, with Retry where retrying can help, or
    Continue under a reply that a length limit cut off. Returns "retry", "continue" or None."""
    failure = turn_errors().get(thread.id)
    if can_continue(thread) and failure is None:
        clicked = st.button("⏩ Continue", key="continue", disabled=not can_send,
                            help="Ask for the rest of the reply that was cut off.")
        return "continue" if clicked else None
    if not needs_retry(thread):
        if failure is not None:   # e.g. a reply shown but not saved: say it once
            st.error(safe_markdown(turn_errors().pop(thread.id).message))
        return None
    if failure is None or failure.retryable:
        st.warning(safe_markdown(failure.message) if failure else "The last message has no reply yet.")
    elif failure.code == "context_length_exceeded":   # the same text would fail again
        st.error(safe_markdown(failure.message) + " Your message is kept above; send a shorter one to go on.")
        return None
    elif failure.code == "api_key_characters":   # the message says what to fix; retrying alone fails again
        st.error(safe_markdown(failure.message) + " Your message is kept above.")
    elif failure.code == "thread_deleted":   # nothing to retry into; the typed text to take along
        st.error(safe_markdown(failure.message) + " Your message was not sent; copy it from here:")
        st.code(thread.messages[-1].content, language="text", wrap_lines=True)
        return None
    else:
        st.error(safe_markdown(failure.message) + " Fix this (e.g. in the sidebar's Provider panel), then retry.")
    return "retry" if st.button("↻ Retry", key="retry", disabled=not can_send) else None


def message_box(placeholder: str, disabled: bool) -> str | None:
    """The chat input, pinned to the bottom of the page. A message longer than MAX_MESSAGE_CHARS
    is refused (see unsent_notice)."""
    # No max_chars on the widget: the browser would drop an over-long paste without a word.
    prompt = st.chat_input(placeholder, disabled=disabled)
    if prompt is not None and len(prompt) > MAX_MESSAGE_CHARS:
        st.session_state[UNSENT] = prompt
        prompt = None
    elif prompt is not None:
        st.session_state.pop(UNSENT, None)
    return prompt


def unsent_notice() -> None:
    """Under the transcript: a refused message, shown back (until a message is sent) with why,
    so nothing typed is lost."""
    if unsent := st.session_state.get(UNSENT):
        st.error(f"That message is {len(unsent):,} characters long; the limit is "
                 f"{MAX_MESSAGE_CHARS:,}. It was not sent. Shorten it (or split it in parts) and "
                 "send it again.")
        with st.expander("The message you typed (copy it from here)"):
            st.code(unsent, language="text", wrap_lines=True)


def take_turn(store: Store, provider: Provider, thread: Thread, spec: AssistantSpec,
              text: str | None, action: str | None = None,
              feedback: Callable[[Message, list[Message]], None] | None = None) -> None:
    """Send `text`, or do `action` ("retry" the unanswered message, "continue" a cut-off reply);
    stream the reply, then redraw the page where the reply changed more than the transcript.
    `feedback(reply, messages before it)`: drawn under the new reply when the page is not redrawn."""
    # Whether the page above shows nothing that this turn makes stale (a failure and its Retry,
    # a Continue button): then a plain reply needs no second run of the whole page.
    clean_before = (text is not None and turn_errors().get(thread.id) is None and not needs_retry(thread)
                    and not can_continue(thread) and bool(thread.messages))
    turn_errors().pop(thread.id, None)
    actor = session.actor()
    error = None
    if text is not None or action == "continue":
        with st.chat_message("user"):
            st.markdown(safe_markdown(text if text is not None else CONTINUE_PROMPT))
    if text is not None:
        # Saved before anything that may fail (loading the embedded model): nothing typed is lost.
        error = add_user_message(store, thread, text, actor)
        if error is None:
            remember_in_url(thread)   # a reload or Stop while the reply comes still finds the thread
    if error is None:
        if provider.name == "local":
            ensure_local_model(session.settings().model_dir)   # a failed load: the turn says so, Retry
        knowledge = knowledge_store() if spec.knowledge_bases else None
        events = (continue_turn(store, provider, thread, spec, actor, knowledge)
                  if text is None and action == "continue"
                  else run_turn(store, provider, thread, spec, None, actor, knowledge))
        def below() -> None:
            if feedback is not None and thread.messages and thread.messages[-1].role == "assistant":
                feedback(thread.messages[-1], thread.messages[:-1])
        error = stream_turn(events, below)
    if error is not None:
        turn_errors()[thread.id] = error
    elif clean_before and _drawn_as_stored(thread.messages[-1]):
        # The transcript on screen is what a rerun would draw; the sidebar is unchanged (the
        # thread existed). Skipping the rerun halves the server's work for a turn.
        return
    if thread.messages:
        remember_in_url(thread)
    st.rerun()


def _drawn_as_stored(reply: Message) -> bool:
    # Tool calls, sources and a cut-off are drawn differently while streaming than when stored.
    return reply.role == "assistant" and not (reply.tool_calls or reply.citations or reply.cut_off or reply.stopped
                                              or reply.notes)
