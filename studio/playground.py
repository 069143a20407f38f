"""The playground: one message to two to four panes, each with its own model or assistant and
settings, answered at the same time where the providers allow.

A pane's conversation lives only here and in the page's session (the chat page is where
threads are kept). Remote panes each stream in a thread of their own; panes on the embedded
model take turns in one thread (it is one model on one CPU), and a waiting pane says so.
Every pane's events come back, tagged with the pane's index, through one iterator the caller
reads in its own thread (a Streamlit script draws only from its own thread).
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Iterator

from studio.chat import answer
from studio.knowledge.storage import KnowledgeStore
from studio.models import Catalog
from studio.providers.base import Provider
from studio.store import Actor
from studio.types import (AssistantSpec, Done, ErrorEvent, Event, Message, Sampling, TextDelta, Thread, Usage)

MAX_PANES = 4


@dataclass
class Pane:
    """What one pane runs: a bare model with a system prompt, or a saved assistant; its
    sampling settings; and its own conversation so far."""
    provider: str
    model: str = ""                 # "" = the provider's default (for an assistant: its own)
    system_prompt: str = ""
    sampling: Sampling = field(default_factory=Sampling)
    assistant: AssistantSpec | None = None
    thread: Thread | None = None
    turn: int = 0                   # bumped per message: a turn left behind (page rerun) changes nothing

    @property
    def label(self) -> str:
        if self.assistant is not None:
            return f"{self.assistant.name} ({self.provider})"
        return f"{self.model or 'default model'} ({self.provider})"

    def spec(self, owner: str) -> AssistantSpec:
        """The assistant this pane talks to: the saved one (with this pane's model, if set), or
        a bare one made of the model and system prompt."""
        if self.assistant is not None:
            return replace(self.assistant, model=self.model) if self.model else self.assistant
        return AssistantSpec(name="Playground", instructions=self.system_prompt, provider=self.provider,
                             model=self.model, owner=owner)


@dataclass
class PaneStats:
    """How one pane's reply went, timed from when the pane's turn began (`waited_s` after the
    message was sent: the time it queued behind another pane on the embedded model)."""
    first_token_s: float | None = None
    total_s: float | None = None
    waited_s: float = 0.0           # waiting for the embedded model to finish another pane
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None        # an estimate, from the dated price table; None: price unknown
    model: str = ""                  # the model that answered, as the pane named it


@dataclass
class Waiting:
    """A pane is queued behind another pane on the embedded model."""
    text: str


@dataclass
class PaneResult:
    """A pane's finished turn: the reply (or the error) and its figures."""
    reply: Message | None
    error: ErrorEvent | None
    stats: PaneStats


@dataclass
class PaneRun:
    """A pane ready to send: its provider built by the caller (from its settings)."""
    pane: Pane
    provider: Provider


def stream_panes(runs: list[PaneRun], text: str, actor: Actor, knowledge: KnowledgeStore | None = None,
                 catalog: Catalog | None = None) -> Iterator[tuple[int, Event | Waiting | PaneResult]]:
    """Send `text` to every pane; yield (pane index, event) as the replies stream, then one
    (index, PaneResult) per pane as it ends. Leaving the loop early stops the panes.

    Each pane's conversation (`pane.thread`) gets the message and its reply once the reply is
    complete; a failed turn leaves it as it was, so sending again repeats the message cleanly.
    A turn overtaken by a newer one on the same pane (the page reran mid-reply) changes nothing.
    """
    if not 1 <= len(runs) <= MAX_PANES:
        raise ValueError(f"A comparison has 1 to {MAX_PANES} panes.")
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    sent = time.perf_counter()
    for run in runs:
        run.pane.turn += 1
    local = [i for i, run in enumerate(runs) if run.provider.name == "local"]
    workers = [threading.Thread(target=_run_panes, args=([i], runs, text, actor, knowledge, catalog, events,
                                                         stop, sent), daemon=True, name=f"pane-{i}")
               for i in range(len(runs)) if i not in local]
    if local:   # one model on one CPU: its panes take turns
        workers.append(threading.Thread(target=_run_panes, args=(local, runs, text, actor, knowledge, catalog,
                                                                 events, stop, sent), daemon=True,
                                        name="panes-local"))
    for worker in workers:
        worker.start()
    ended = 0
    try:
        while ended < len(runs):
            index, item = events.get()
            if isinstance(item, PaneResult):
                ended += 1
            yield index, item
    finally:
        stop.set()


def run_panes(runs: list[PaneRun], text: str, actor: Actor, knowledge: KnowledgeStore | None = None,
              catalog: Catalog | None = None) -> list[PaneResult]:
    """stream_panes, read to the end: each pane's result, in pane order."""
    results: list[PaneResult | None] = [None] * len(runs)
    for index, item in stream_panes(runs, text, actor, knowledge, catalog):
        if isinstance(item, PaneResult):
            results[index] = item
    return [r for r in results if r is not None]


def _run_panes(indexes: list[int], runs: list[PaneRun], text: str, actor: Actor,
               knowledge: KnowledgeStore | None, catalog: Catalog | None, events: queue.Queue,
               stop: threading.Event, sent: float) -> None:
    for position, index in enumerate(indexes):
        if stop.is_set():
            events.put((index, PaneResult(None, ErrorEvent("Stopped.", retryable=True, code="stopped"),
                                          PaneStats())))
            continue
        if position:   # an earlier pane had the embedded model
            events.put((index, Waiting("Waiting for the embedded model: it answers one pane at a time.")))
        try:
            result = _one_pane(index, runs[index], text, actor, knowledge, catalog, events, stop, sent)
        except Exception as exc:   # a bug must end the pane with a message, not hang the page
            result = PaneResult(None, ErrorEvent(f"This pane failed unexpectedly ({type(exc).__name__}).",
                                                 retryable=True, code="pane_failed"), PaneStats())
        events.put((index, result))


def _one_pane(index: int, run: PaneRun, text: str, actor: Actor, knowledge: KnowledgeStore | None,
              catalog: Catalog | None, events: queue.Queue, stop: threading.Event, sent: float) -> PaneResult:
    pane, provider = run.pane, run.provider
    turn = pane.turn
    spec = pane.spec(actor.name)
    began = time.perf_counter()      # this pane's own start: after any wait for the embedded model
    stats = PaneStats(waited_s=began - sent, model=spec.model or provider.default_model())
    if pane.thread is None:
        pane.thread = Thread(owner=actor.name, assistant_id=spec.id, provider=provider.name)
    # The turn works on a copy: the pane's conversation changes only when its reply is complete.
    thread = replace(pane.thread, messages=[*pane.thread.messages, Message(role="user", content=text)])
    reply = Message(role="assistant", content="")
    stream = answer(provider, thread, spec, actor, knowledge, reply, pane.sampling)
    error = None
    try:
        for event in stream:
            if stop.is_set():
                error = ErrorEvent("Stopped before the reply was finished.", retryable=True, code="stopped")
                break
            now = time.perf_counter() - began
            if isinstance(event, TextDelta) and stats.first_token_s is None:
                stats.first_token_s = now
            elif isinstance(event, Done):
                stats.total_s, stats.usage = now, event.usage
                thread.provider_ref = event.provider_ref or thread.provider_ref
            elif isinstance(event, ErrorEvent):
                stats.total_s, error = now, event
            events.put((index, event))
    finally:
        stream.close()   # the provider cleans up a reply left half-read (e.g. its conversation)
    if pane.turn == turn and pane.thread is not None:
        if error is not None and error.forget_provider_ref:
            pane.thread.provider_ref = None
        elif error is None and stats.total_s is not None:
            pane.thread.messages = [*thread.messages, reply]
            pane.thread.provider_ref = thread.provider_ref
    if error is not None or stats.total_s is None:
        return PaneResult(None, error or ErrorEvent("The reply did not finish.", retryable=True), stats)
    price = catalog.price(stats.model) if catalog else None
    stats.cost = price.cost(stats.usage) if price else None
    return PaneResult(reply, None, stats)
