"""One chat turn, the same for the app and the CLI.

The user's message is saved before the model is called, so a failed turn loses nothing
and can be retried; the assistant's reply is saved once it is complete. A reply that a
length limit stopped is saved marked `cut_off`, one the user stopped (the reader closed the
stream) as far as it came, marked `stopped`; `continue_turn` asks for the rest of either.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable, Iterator

from studio.knowledge.embedding import EmbeddingUnavailable
from studio.knowledge.grounding import HOSTED_RULES, NOTHING_FOUND, ground, sources
from studio.knowledge.hosted import Mirror, forget_checks
from studio.knowledge.hosted_turns import stores_for_turn
from studio.knowledge.storage import KnowledgeStore
from studio.providers.base import Provider, ProviderError
from studio.store import Actor, NotAllowed, Store, StoreError, ThreadDeleted
from studio.types import (AssistantSpec, CitationFound, Done, ErrorEvent, Event, Message, Notice, Sampling,
                          TextDelta, Thread, ToolCallFinished)

# What "Continue" sends: a plain user message, so every provider (and the thread's export)
# sees the same history the user sees.
CONTINUE_PROMPT = "Continue exactly where your last reply stopped."
log = logging.getLogger(__name__)
THREAD_DELETED = "This thread was deleted (in another tab?). Start a new thread."


def new_thread(owner: str, spec: AssistantSpec, provider: Provider) -> Thread:
    """A thread not yet stored: it is saved with its first message."""
    return Thread(owner=owner, assistant_id=spec.id, provider=provider.name)


def needs_retry(thread: Thread) -> bool:
    """True when the last message is the user's and no reply was saved (a failed turn)."""
    return bool(thread.messages) and thread.messages[-1].role == "user"


def can_continue(thread: Thread) -> bool:
    """True when the last message is a reply that a length limit cut off or the user stopped
    (offer "Continue")."""
    last = thread.messages[-1] if thread.messages else None
    return last is not None and last.role == "assistant" and (last.cut_off or last.stopped)


def add_user_message(store: Store, thread: Thread, text: str, actor: Actor) -> ErrorEvent | None:
    """Save the user's message (and the thread, on its first message). Returns an ErrorEvent
    when there is nothing to send or the store refused it; the text stays in `thread.messages`
    either way, so the page can still show it. A thread that was stored and has since been
    deleted (in another tab, say) stays deleted: code "thread_deleted".

    Call this before anything that may fail (e.g. loading the embedded model), then
    `run_turn(..., text=None)` to answer it.
    """
    text = (text or "").strip()
    if not text:
        return ErrorEvent("Type a message first: an empty message cannot be sent.", retryable=False,
                          code="empty_message")
    try:
        if not thread.stored:   # its first message, or a first save that failed: create it
            thread.messages.append(Message(role="user", content=text))
            store.save_thread(thread, actor)
        else:
            store.add_message(thread, Message(role="user", content=text), actor)
    except StoreError as exc:
        return _not_saved(exc)
    return None


def _not_saved(exc: StoreError) -> ErrorEvent:
    if isinstance(exc, ThreadDeleted):
        return ErrorEvent(THREAD_DELETED, retryable=False, code="thread_deleted")
    # NotAllowed: retrying cannot help
    return ErrorEvent(f"Your message could not be saved: {exc}", retryable=not isinstance(exc, NotAllowed),
                      code="store_error")


def run_turn(store: Store, provider: Provider, thread: Thread, spec: AssistantSpec,
             text: str | None, actor: Actor, knowledge: KnowledgeStore | None = None) -> Iterator[Event]:
    """Send `text` (or, with text=None, answer the last unanswered message) and stream events.

    `actor` is the signed-in user: the store checks they own the thread. `knowledge`: where the
    assistant's knowledge bases are; their best passages go into this turn's instructions and
    the sources the reply cites come as CitationFound events before Done. Always ends with
    either Done or ErrorEvent.
    """
    if text is not None:
        refused = add_user_message(store, thread, text, actor)
        if refused is not None:
            yield refused
            return
    elif not needs_retry(thread):
        yield ErrorEvent("There is no unanswered message to retry.", retryable=False)
        return
    else:
        try:   # a retry first stores what an earlier failed save missed (the user's message)
            store.save_thread(thread, actor)
        except StoreError as exc:
            yield _not_saved(exc)
            return

    reply = Message(role="assistant", content="")
    answering = thread.messages[-1].id   # the user's message this reply answers

    def keep_stopped() -> None:
        # The reader stopped listening mid-reply (the page's Stop, a new message sent meanwhile):
        # keep what had come, marked stopped, rather than lose it; saved before the provider
        # cleans up (its server's copy of the thread is dropped then, and rebuilt from this one
        # next turn). Only right after the message it answers: one sent since must stay after it.
        if reply.content.strip() or reply.tool_calls:
            try:
                store.add_message(thread, reply, actor, after=answering)
            except StoreError as exc:
                log.warning("a stopped reply could not be saved: %s", exc)

    events = answer(provider, thread, spec, actor, knowledge, reply, on_stop=keep_stopped)
    try:
        for event in events:
            if isinstance(event, Done):
                try:
                    if event.provider_ref and event.provider_ref != thread.provider_ref:
                        store.set_provider_ref(thread, event.provider_ref, actor)
                    store.add_message(thread, reply, actor)
                except ThreadDeleted:   # deleted while the reply was coming
                    yield ErrorEvent(THREAD_DELETED, retryable=False, code="thread_deleted")
                    return
                except StoreError as exc:
                    yield ErrorEvent(f"The reply could not be saved: {exc}", retryable=True, code="store_error")
                    return
            elif isinstance(event, ErrorEvent) and event.forget_provider_ref:
                try:
                    store.set_provider_ref(thread, None, actor)
                except StoreError:
                    thread.provider_ref = None   # the provider finds the old one gone and rebuilds anyway
            yield event
    except GeneratorExit:
        events.close()   # now, not whenever it is collected: a reply not yet over calls keep_stopped
        raise


def answer(provider: Provider, thread: Thread, spec: AssistantSpec, actor: Actor,
           knowledge: KnowledgeStore | None, reply: Message, sampling: Sampling | None = None,
           on_stop: Callable[[], None] | None = None) -> Iterator[Event]:
    """The reply to the thread's last (user) message, stored nowhere: the assistant's knowledge
    searched, the provider's events passed on, and `reply` filled in (text, tool calls, cited
    sources, notes) by the time Done comes. Always ends with Done or ErrorEvent, unless the
    reader stops listening first: then `reply` holds what came, marked `stopped`, and
    `on_stop()` is called before the provider cleans up.

    run_turn saves what this writes; the playground and evaluations use it directly.
    """
    grounding = hosted = mirror = None
    if spec.knowledge_bases and knowledge is not None:
        try:
            if provider.capabilities.hosted_retrieval:    # OpenAI searches its copy (file_search)
                mirror = Mirror(knowledge, provider)
                hosted = stores_for_turn(mirror, spec.knowledge_bases, spec.owner or actor.name, actor)
                rules = HOSTED_RULES if hosted.vector_stores else NOTHING_FOUND
                spec = replace(spec, instructions=f"{spec.instructions.rstrip()}\n\n## Knowledge\n{rules}".strip())
            else:
                grounding = ground(knowledge, spec, thread, actor)
                spec = grounding.spec
        except (StoreError, EmbeddingUnavailable) as exc:
            yield ErrorEvent(f"The knowledge base could not be searched: {exc}", retryable=True, code="knowledge")
            return
    notes = hosted.notes if hosted else []
    for note in notes:
        yield Notice(note)
    reply.notes = list(notes)
    parts: list[str] = []
    ended = False   # Done or an ErrorEvent came: nothing is stopped after that
    options = {"vector_stores": hosted.vector_stores} if hosted else {}
    if sampling is not None:
        options["sampling"] = sampling
    try:
        for event in provider.stream_reply(thread, spec, **options):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, ToolCallFinished):
                reply.tool_calls.append(event.call)
            elif isinstance(event, CitationFound):
                if mirror is not None:
                    if not _own_file(mirror, event.citation):
                        continue           # a file deleted here, not yet there: no source to show
                    event.citation.number = len(reply.citations) + 1
                reply.citations.append(event.citation)
            elif isinstance(event, Done):
                ended = True
                reply.content = "".join(parts)
                reply.cut_off = event.cut_off
                if grounding is not None:   # the sources this reply used (or was given), shown under it
                    found = sources(reply.content, grounding.passages)
                    reply.citations.extend(found)   # all of them, before the page draws the first
                    for citation in found:
                        yield CitationFound(citation)
            elif isinstance(event, ErrorEvent):
                ended = True
                if hosted is not None:   # e.g. a store deleted on the dashboard: checked again next turn
                    forget_checks(hosted.vector_stores)
            yield event
            if isinstance(event, (Done, ErrorEvent)):
                return
    except GeneratorExit:   # the reader stopped listening
        if not ended:
            reply.content, reply.stopped = "".join(parts), True
            if grounding is not None:
                reply.citations.extend(sources(reply.content, grounding.passages))
            if on_stop is not None:
                on_stop()
        raise
    # A provider that stops without Done has failed; say so rather than save half a reply.
    yield ErrorEvent("The model stopped before finishing its reply.", retryable=True)


def _own_file(mirror: Mirror, citation) -> bool:
    """Point a file_search citation (OpenAI's file id) at the file here; False if it is gone."""
    try:
        mine = mirror.local_file(citation.file_id)
    except StoreError:
        return True        # keep OpenAI's file name rather than lose the source
    if mine is None:
        return False
    citation.file_id, citation.title = mine
    citation.source = citation.title
    return True


def continue_turn(store: Store, provider: Provider, thread: Thread, spec: AssistantSpec,
                  actor: Actor, knowledge: KnowledgeStore | None = None) -> Iterator[Event]:
    """Ask for the rest of a reply that was cut off (see `can_continue`); streams like run_turn.

    The request is saved as a user message (CONTINUE_PROMPT) and the rest comes as a new reply.
    """
    if not can_continue(thread):
        yield ErrorEvent("The last reply was not cut off: there is nothing to continue.", retryable=False,
                         code="nothing_to_continue")
        return
    yield from run_turn(store, provider, thread, spec, CONTINUE_PROMPT, actor, knowledge)


def delete_thread(store: Store, thread: Thread, actor: Actor, provider: Provider | None,
                  remote: bool = True) -> None:
    """Delete a thread: first the provider's copy (its OpenAI Conversation), then the app's.

    `provider` is the thread's own provider (None if it cannot be made, e.g. no key). Raises
    NotAllowed unless `actor` owns the thread, and ProviderError, keeping the thread, when the
    provider's copy cannot be deleted; `remote=False` then deletes the app's copy only (the
    Conversation stays on the OpenAI account). StoreError if the store fails.
    """
    if actor.name != thread.owner:
        raise NotAllowed("Only the owner of this thread can delete it.")
    if remote and thread.provider_ref:
        if provider is None:
            raise ProviderError("This thread's copy on the provider cannot be deleted now: the provider is "
                                "not set up. The thread was kept.")
        try:
            provider.delete_thread(thread)
        except ProviderError as exc:
            raise ProviderError(f"{exc} The thread was kept; try again, or delete it here only.") from None
    store.delete_thread(thread.id, actor)
