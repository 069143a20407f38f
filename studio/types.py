"""The shared vocabulary: small dataclasses every layer speaks.

Providers turn their wire formats into these; the UI and CLI only ever see these.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Literal, Union


def new_id(prefix: str) -> str:
    """A fresh random id that starts with `prefix`, e.g. "msg_3f9a..."."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def utcnow() -> datetime:
    """The current time in UTC (timezone-aware)."""
    return datetime.now(timezone.utc)


@dataclass
class FewShotExample:
    """One example exchange compiled into the instructions."""
    prompt: str
    response: str


@dataclass
class AssistantSpec:
    """What an assistant is. Stored by the app (OpenAI no longer keeps these)."""
    name: str
    description: str = ""
    instructions: str = ""
    examples: list[FewShotExample] = field(default_factory=list)
    provider: str = ""          # "" = the workspace default provider
    model: str = ""             # "" = the provider's default model
    tools: list[str] = field(default_factory=list)   # built-in tool names, or "code_interpreter"
    knowledge_bases: list[str] = field(default_factory=list)   # ids of the owner's knowledge bases
    example_label_prompt: str = "Viewer comment"
    example_label_response: str = "Reply"
    id: str = field(default_factory=lambda: new_id("asst"))
    owner: str = ""


@dataclass
class ToolCall:
    """A call the model asked for, and (once run) its result."""
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: new_id("call"))
    result: str | None = None
    error: bool = False
    kind: Literal["function", "code_interpreter", "file_search"] = "function"


@dataclass
class Citation:
    """A source a reply cites: its title (the file), the quoted passage, where it is from.

    Knowledge-base citations also carry the passage's number in the prompt, its page, scores,
    file id, and `how` it was found: "cited" (the reply wrote [n]), "matched" (the reply's
    wording comes from it, but it wrote no marker) or "file_search" (OpenAI's hosted search
    cited the file; the quote is the best passage it returned from it)."""
    title: str
    quote: str = ""
    source: str = ""
    number: int = 0
    page: int | None = None
    score: float | None = None
    similarity: float | None = None
    file_id: str = ""
    how: str = ""


@dataclass
class Usage:
    """Tokens a turn used: read from the prompt and written in the reply."""
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class Message:
    """One message of a thread. `cut_off`: an assistant reply that a length limit stopped
    (OpenAI `incomplete`, a compatible server's `finish_reason="length"`, the embedded model's
    token cap); `stopped`: one the user stopped (the page's Stop, or a new message sent while
    it streamed), kept as far as it came. studio.chat.continue_turn asks for the rest of either."""
    role: Literal["user", "assistant"]
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    id: str = field(default_factory=lambda: new_id("msg"))
    created_at: datetime = field(default_factory=utcnow)
    cut_off: bool = False      # the reply hit a length limit before it was finished
    stopped: bool = False      # the user stopped the reply before it was finished
    notes: list[str] = field(default_factory=list)    # e.g. a knowledge base this reply could not search
    rating: int | None = None  # the user's feedback on a reply: 1 thumbs up, 0 thumbs down
    edited: str = ""           # the reply as the user corrected it ("" = not edited)


@dataclass
class Thread:
    """A conversation. `provider_ref` is the provider's own id (an OpenAI conversation id), if any."""
    owner: str
    assistant_id: str
    provider: str
    title: str = "New thread"
    provider_ref: str | None = None
    messages: list[Message] = field(default_factory=list)
    id: str = field(default_factory=lambda: new_id("thread"))
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    # Set by the store once the thread is saved or read back. A stored thread that has gone
    # was deleted (say in another tab): saving the session's copy must not bring it back.
    stored: bool = field(default=False, compare=False, repr=False)


@dataclass(frozen=True)
class Sampling:
    """Generation settings a turn may set (the playground's); None keeps the provider's default.
    `max_tokens` caps the reply; `seed` asks for repeatable sampling where the provider has one."""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None


@dataclass
class ModelInfo:
    """A model a provider offers, with what is known about it."""
    id: str
    provider: str
    owned_by: str = ""
    context_window: int | None = None
    shutdown_date: date | None = None
    description: str = ""


# --- streamed events: what a provider yields during one turn -----------------

@dataclass
class TextDelta:
    """The next piece of the reply's text."""
    text: str


@dataclass
class ToolCallStarted:
    """The model called a tool, which is now running."""
    call: ToolCall


@dataclass
class ToolCallFinished:
    """A tool call ended; `call.result` holds what it returned."""
    call: ToolCall


@dataclass
class CitationFound:
    """The reply cited a source."""
    citation: Citation


@dataclass
class Notice:
    """Something the user should know about this turn that is not an error (e.g. a knowledge
    base that could not be searched); kept with the reply (Message.notes)."""
    text: str


@dataclass
class Done:
    """The turn finished. `cut_off`: the reply stopped at a length limit, not where the model
    chose to end it."""
    usage: Usage = field(default_factory=Usage)
    provider_ref: str | None = None   # e.g. the conversation id, when the provider created one
    cut_off: bool = False


@dataclass
class ErrorEvent:
    """A turn failed. `message` is safe to show a user; `retryable` says whether Retry may help.

    `forget_provider_ref`: the provider dropped its copy of the thread (e.g. an OpenAI
    Conversation the failed turn left half-written); the next turn rebuilds it from the app's.
    """
    message: str
    retryable: bool = True
    code: str = ""
    forget_provider_ref: bool = False


Event = Union[TextDelta, ToolCallStarted, ToolCallFinished, CitationFound, Notice, Done, ErrorEvent]
