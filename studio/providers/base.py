"""The one interface every provider implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator, Sequence

from studio.types import AssistantSpec, Event, ModelInfo, Sampling, Thread


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do; the UI states plainly what it cannot."""
    function_tools: bool
    code_interpreter: bool
    server_threads: bool      # threads kept by the provider (OpenAI Conversations)
    fine_tuning: bool
    hosted_retrieval: bool = False   # searches the provider's own vector stores (OpenAI file_search)
    seed: bool = False               # takes Sampling.seed (OpenAI's Responses API has no seed)


class ProviderError(Exception):
    """A failure safe to show a user (never contains a secret)."""


class Provider(ABC):
    """A chat backend: the models it offers, and a turn's reply streamed as events."""
    name: str = ""
    label: str = ""
    capabilities: Capabilities

    @abstractmethod
    def default_model(self) -> str:
        """The model turns use when the assistant names none: the configured one, else the provider's pick."""

    @abstractmethod
    def list_models(self) -> list[ModelInfo]:
        """Models this provider can chat with. Raises ProviderError on failure."""

    @abstractmethod
    def stream_reply(self, thread: Thread, spec: AssistantSpec, *, vector_stores: Sequence[str] = (),
                     sampling: Sampling | None = None) -> Iterator[Event]:
        """Stream the assistant's reply to the last message of `thread` (a user message).

        `thread.messages` holds the whole history, the new user message last. Never raises
        for errors a user can cause (bad key, unreachable server, unknown model, rate limit,
        too-long input): yields an ErrorEvent instead. Function tools named in `spec.tools`
        are run here (see studio.tools) and reported as ToolCallStarted/Finished events.
        Ends with Done (carrying `provider_ref` if the provider created a server thread).
        `vector_stores`: hosted vector stores the turn searches (providers with hosted_retrieval;
        the sources the reply cites come as CitationFound events, with the provider's file ids).
        `sampling`: temperature, top_p, reply cap and seed for this turn (None: the defaults).
        """

    def delete_thread(self, thread: Thread) -> None:
        """Delete the provider's own copy of `thread` (e.g. its OpenAI Conversation), if any.

        Providers whose threads are kept by the app have nothing to delete. Raises
        ProviderError when the deletion fails; a copy that is already gone is no error.
        """
        return None

    @classmethod
    def limitations(cls) -> list[str]:
        """Plain sentences for the UI about what this provider cannot do."""
        out = []
        if not cls.capabilities.function_tools:
            out.append(f"{cls.label} cannot call function tools; they are switched off.")
        if not cls.capabilities.code_interpreter:
            out.append(f"{cls.label} has no code interpreter; only OpenAI runs code.")
        if not cls.capabilities.server_threads:
            out.append("Threads are kept by this app, not by the server.")
        return out
