"""One chat turn, the same for the app and the CLI.

The user's message is saved before the model is called, so a failed turn loses nothing
and can be retried; the assistant's reply is saved once it is complete.
"""
from __future__ import annotations

from typing import Iterator

from studio.providers.base import Provider
from studio.store import Store
from studio.types import (AssistantSpec, CitationFound, Done, ErrorEvent, Event, Message, TextDelta,
                          Thread, ToolCallFinished)


def new_thread(owner: str, spec: AssistantSpec, provider: Provider) -> Thread:
    """A thread not yet stored: it is saved with its first message."""
    return Thread(owner=owner, assistant_id=spec.id, provider=provider.name)


def needs_retry(thread: Thread) -> bool:
    """True when the last message is the user's and no reply was saved (a failed turn)."""
    return bool(thread.messages) and thread.messages[-1].role == "user"


def run_turn(store: Store, provider: Provider, thread: Thread, spec: AssistantSpec,
             text: str | None) -> Iterator[Event]:
    """Send `text` (or, with text=None, retry the last unanswered message) and stream events.

    Always ends with either Done or ErrorEvent.
    """
    if text is not None:
        text = text.strip()
        if not text:
            yield ErrorEvent("Type a message first: an empty message cannot be sent.", retryable=False)
            return
        if not store.has_thread(thread.id):
            store.create_thread(thread)
        store.add_message(thread, Message(role="user", content=text))
    elif not needs_retry(thread):
        yield ErrorEvent("There is no unanswered message to retry.", retryable=False)
        return

    reply = Message(role="assistant", content="")
    parts: list[str] = []
    for event in provider.stream_reply(thread, spec):
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, ToolCallFinished):
            reply.tool_calls.append(event.call)
        elif isinstance(event, CitationFound):
            reply.citations.append(event.citation)
        elif isinstance(event, Done):
            if event.provider_ref and event.provider_ref != thread.provider_ref:
                store.set_provider_ref(thread, event.provider_ref)
            reply.content = "".join(parts)
            store.add_message(thread, reply)
        yield event
        if isinstance(event, (Done, ErrorEvent)):
            return
    # A provider that stops without Done has failed; say so rather than save half a reply.
    yield ErrorEvent("The model stopped before finishing its reply.", retryable=True)
