"""OpenAI (hosted): a thread is a Conversation, a turn is a streamed Responses API call.

The Assistants API is gone (2026-08-26) and so are stored prompts, so every request carries
the assistant's compiled instructions and tools; the Conversation keeps the history.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import openai
from openai import OpenAI

from studio.assistants import compile_instructions
from studio.providers.base import Capabilities, Provider, ProviderError
from studio.providers.openai_errors import check_base_url, describe_error, provider_error, stream_failure
from studio.providers.turns import (MAX_TOOL_ROUNDS, TurnProgress, parse_arguments, parse_shutdown_date,
                                    run_calls_events, text_delta)
from studio.redact import redact, remember_secret
from studio.tools import Tool, get_tools
from studio.types import (AssistantSpec, Citation, CitationFound, Done, ErrorEvent, Event, Message, ModelInfo, Sampling,
                          Thread, ToolCall, ToolCallFinished, ToolCallStarted, Usage)

CODE_INTERPRETER = "code_interpreter"
FILE_SEARCH = "file_search"
FILE_SEARCH_RESULTS = 5       # passages file_search gives one turn
ITEMS_PER_REQUEST = 20        # the Conversations API accepts at most 20 items per call
# Families /v1/models lists that cannot hold a conversation.
NOT_CHAT = re.compile(r"embedding|tts|whisper|dall-e|gpt-image|moderation|realtime|transcribe|"
                      r"^babbage|^davinci|-audio", re.I)
log = logging.getLogger(__name__)


@dataclass
class _ConversationUse:
    """The Conversation one turn writes to, and what the turn did to it (for cleaning up)."""
    id: str | None = None
    created_now: bool = False   # this turn created it (a first turn, or a rebuild)
    touched: bool = False       # the server may have added items to it during this turn


class OpenAIProvider(Provider):
    """The hosted OpenAI API, through the official SDK (its retries, timeouts and errors)."""

    name = "openai"
    label = "OpenAI"
    capabilities = Capabilities(function_tools=True, code_interpreter=True, server_threads=True,
                                fine_tuning=True, hosted_retrieval=True)

    def __init__(self, api_key: str, base_url: str | None = None, default_model: str = "gpt-5-mini",
                 max_retries: int = 2, timeout: float = 60):
        self._api_key = api_key or ""
        remember_secret(self._api_key)   # kept out of every log line and message from now on
        self._default_model = default_model
        # The SDK refuses an empty key at construction; a missing key is reported per call instead.
        try:
            self.client = OpenAI(api_key=self._api_key or "missing",
                                 base_url=check_base_url(base_url) if base_url else None,
                                 max_retries=max_retries, timeout=timeout)
        except ProviderError:
            raise
        except Exception as exc:   # e.g. a malformed OPENAI_BASE_URL read by the SDK itself
            raise ProviderError(f"The base URL is not valid ({type(exc).__name__}): use one like "
                                "https://api.openai.com/v1.") from None
        self.base_url = str(self.client.base_url)   # base_url=None means OPENAI_BASE_URL or the default

    def default_model(self) -> str:
        return self._default_model

    @property
    def account(self) -> str:
        """Which account and server this provider reaches: a fingerprint of the base URL and
        key (never the key), e.g. to remember which vector stores were made there."""
        return hashlib.sha256(f"{self.base_url}\n{self._api_key}".encode()).hexdigest()[:16]

    def error_for(self, exc: BaseException) -> ProviderError:
        """An SDK exception as a ProviderError worded for the user (no secret in it)."""
        return self._provider_error(exc)

    # --- models --------------------------------------------------------------------
    def list_models(self) -> list[ModelInfo]:
        """Chat-capable models from /v1/models, with their shutdown dates. Raises ProviderError."""
        if not self._api_key:
            raise ProviderError("No OpenAI API key is set. Set OPENAI_API_KEY in your settings or "
                                ".streamlit/secrets.toml.")
        try:
            # A short timeout and no retries: the list is drawn on a page and must not hold it up.
            models = list(self.client.with_options(timeout=10, max_retries=0).models.list())
        except Exception as exc:
            raise self._provider_error(exc) from None   # `from None`: the cause may quote the key
        return sorted((ModelInfo(id=m.id, provider=self.name, owned_by=m.owned_by or "",
                                 shutdown_date=parse_shutdown_date(getattr(m, "shutdown_date", None)))
                       for m in models if not NOT_CHAT.search(m.id)), key=lambda m: m.id)

    # --- a turn --------------------------------------------------------------------
    def stream_reply(self, thread: Thread, spec: AssistantSpec, *, vector_stores: Sequence[str] = (),
                     sampling: Sampling | None = None) -> Iterator[Event]:
        """Stream the reply to the thread's last (user) message; see Provider.stream_reply."""
        if not self._api_key:
            yield ErrorEvent("No OpenAI API key is set. Set OPENAI_API_KEY in your settings or "
                             ".streamlit/secrets.toml, or use the local provider.", False, "missing_api_key")
            return
        if not thread.messages or thread.messages[-1].role != "user":
            yield ErrorEvent("There is no new message to answer.", False, "no_user_message")
            return
        model = spec.model or self._default_model
        progress = TurnProgress()
        conversation = _ConversationUse(id=thread.provider_ref)
        settled = False   # Done or the ErrorEvent has been handed out
        try:
            for event in self._turn(thread, spec, model, progress, conversation, list(vector_stores),
                                    sampling or Sampling()):
                if isinstance(event, ErrorEvent):
                    settled = True
                    yield self._after_failure(event, thread, conversation)
                    return
                settled = isinstance(event, Done)
                yield event
        except GeneratorExit:
            # The reader left mid-reply (e.g. the page reran): the Conversation may hold this
            # turn's message but not the reply, which the app never saved. Delete it; the next
            # turn finds it gone and rebuilds it from the app's copy, as after any deletion.
            if not settled and conversation.id and (conversation.created_now or conversation.touched):
                self._delete_conversation_quietly(conversation.id)
            raise
        except Exception as exc:
            if conversation.id is not None and _may_have_reached_server(exc):
                conversation.touched = True
            error = describe_error(exc, base_url=self.base_url, model=model, secrets=(self._api_key,),
                                   midstream=progress.streaming)
            yield self._after_failure(error, thread, conversation)

    def _after_failure(self, error: ErrorEvent, thread: Thread, conversation: _ConversationUse) -> ErrorEvent:
        """Leave no half-written Conversation behind a failed turn.

        One this turn created is deleted (a failed first turn leaves nothing on the account).
        One the server may have changed (it can hold the user's message, or a function call
        whose output never went back, which the API then refuses) is deleted too, and the
        thread forgets it: the next turn, e.g. Retry, rebuilds it from the app's copy.
        """
        if conversation.id is None or not (conversation.created_now or conversation.touched):
            return error
        self._delete_conversation_quietly(conversation.id)
        if thread.provider_ref:
            error.forget_provider_ref = True
        return error

    def _delete_conversation_quietly(self, conversation_id: str) -> None:
        try:
            self.client.with_options(max_retries=1, timeout=10).conversations.delete(conversation_id)
        except openai.NotFoundError:
            pass
        except Exception as exc:   # the turn's own error is what the user needs to see
            log.warning("could not delete conversation %s: %s", conversation_id,
                        redact(repr(exc), (self._api_key,)))

    def delete_thread(self, thread: Thread) -> None:
        """Delete the thread's Conversation on the OpenAI account (see Provider.delete_thread)."""
        if not thread.provider_ref:
            return
        if not self._api_key:
            raise ProviderError("No OpenAI API key is set, so the thread's OpenAI Conversation cannot be "
                                "deleted. Set OPENAI_API_KEY, or delete the thread here only.")
        try:
            self.client.with_options(timeout=20).conversations.delete(thread.provider_ref)
        except openai.NotFoundError:
            return   # already gone (e.g. deleted in the OpenAI dashboard)
        except Exception as exc:
            raise self._provider_error(exc) from None

    def _turn(self, thread: Thread, spec: AssistantSpec, model: str, progress: TurnProgress,
              conversation_use: _ConversationUse, vector_stores: list[str], sampling: Sampling) -> Iterator[Event]:
        if conversation_use.id is None:
            conversation_use.id = self._new_conversation(thread.messages[:-1])
            conversation_use.created_now = True
        conversation = conversation_use.id
        tools = get_tools(spec.tools)
        options = self._request_options(spec, tools, vector_stores, sampling)
        pending: list[dict] = [{"type": "message", "role": "user", "content": thread.messages[-1].content}]
        usage = Usage()
        sources = _Sources()      # file_search results and citations, across the turn's responses
        for round_no in range(MAX_TOOL_ROUNDS + 1):
            if round_no == MAX_TOOL_ROUNDS and "tools" in options:
                options["tool_choice"] = "none"   # last round: make the model answer in words
            try:
                stream = self._create(model, conversation, pending, options)
            except openai.NotFoundError as exc:
                if round_no or not thread.provider_ref or not _is_missing_conversation(exc):
                    raise
                # The conversation was deleted on the server: start a new one from our copy.
                conversation = conversation_use.id = self._new_conversation(thread.messages[:-1])
                conversation_use.created_now = True
                stream = self._create(model, conversation, pending, options)
            calls: list[ToolCall] = []
            conversation_use.touched = True   # the server took the request: items may be added
            progress.cut_off = False          # what counts is how the last response ended
            outcome = yield from self._read_stream(stream, calls, usage, progress, sources)
            if outcome is not None:
                yield outcome
                return
            if not calls:   # (calls cut off by a length limit are not done: nothing to run)
                break
            if round_no == MAX_TOOL_ROUNDS:   # tool_choice="none" should make this impossible
                yield ErrorEvent(f"The assistant asked for tools more than {MAX_TOOL_ROUNDS} times in "
                                 "one turn and was stopped. Rephrase the request.", False, "tool_loop")
                return
            yield from run_calls_events(calls, tools, progress)
            pending = [{"type": "function_call_output", "call_id": c.id, "output": c.result or ""}
                       for c in calls]
        yield Done(usage=usage, provider_ref=conversation, cut_off=progress.cut_off)

    def _request_options(self, spec: AssistantSpec, tools: list[Tool], vector_stores: list[str],
                         sampling: Sampling) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if sampling.temperature is not None:
            options["temperature"] = sampling.temperature
        if sampling.top_p is not None:
            options["top_p"] = sampling.top_p
        if sampling.max_tokens is not None:   # the API's minimum is 16
            options["max_output_tokens"] = max(16, sampling.max_tokens)
        instructions = compile_instructions(spec)
        if instructions:
            options["instructions"] = instructions
        schemas = [t.responses_schema() for t in tools]   # each with "strict": false (see there)
        if CODE_INTERPRETER in spec.tools:
            schemas.append({"type": "code_interpreter", "container": {"type": "auto"}})
            options.setdefault("include", []).append("code_interpreter_call.outputs")   # else no logs
        if vector_stores:
            schemas.append({"type": FILE_SEARCH, "vector_store_ids": vector_stores,
                            "max_num_results": FILE_SEARCH_RESULTS})
            # the passages found; without them a citation names a file but cannot show its text
            options.setdefault("include", []).append("file_search_call.results")
        if schemas:
            options["tools"] = schemas
        return options

    def _create(self, model: str, conversation: str, pending: list[dict], options: dict):
        # No `truncation`: it is deprecated. A conversation too long for the model fails with
        # context_length_exceeded, which says to start a new thread.
        return self.client.responses.create(model=model, conversation=conversation, input=pending,
                                            stream=True, **options)

    def _read_stream(self, stream, calls: list[ToolCall], usage: Usage,
                     progress: TurnProgress, sources: "_Sources") -> Iterator[Event]:
        """Yield events from one streamed response; collect function calls into `calls`.

        Returns None when the response completed, or the ErrorEvent that ended it.
        """
        running: dict[str, ToolCall] = {}   # code interpreter and file search calls by item id
        cited: list = []                     # this response's file_citation annotations, in reply order
        # The stream is read to its end even after the terminal event: closing it early
        # would discard the keep-alive connection (a new TLS handshake for the next request).
        outcome: ErrorEvent | None = ErrorEvent(
            "The reply stopped before it was complete. Retry to get a full answer.", True,
            "stream_interrupted")
        with stream:
            for event in stream:
                progress.streaming = True
                kind = event.type
                if kind == "response.output_text.delta":
                    if event.delta:
                        yield from text_delta(event.delta, progress)
                elif kind == "response.file_search_call.in_progress":
                    call = running[event.item_id] = _search_call(event.item_id)
                    yield ToolCallStarted(call)
                elif kind == "response.code_interpreter_call_code.done":
                    call = running[event.item_id] = _code_call(event.item_id, event.code)
                    yield ToolCallStarted(call)
                elif kind == "response.output_item.done":
                    item = event.item
                    if item.type == "function_call":
                        calls.append(ToolCall(name=item.name, arguments=parse_arguments(item.arguments),
                                              id=item.call_id))
                    elif item.type == "code_interpreter_call":
                        call = running.pop(item.id, None)
                        if call is None:
                            call = _code_call(item.id, item.code or "")
                            yield ToolCallStarted(call)
                        call.arguments = {"code": item.code or ""}
                        call.result = _code_output(item)
                        call.error = item.status == "failed"
                        yield ToolCallFinished(call)
                    elif item.type == "file_search_call":
                        call = running.pop(item.id, None)
                        if call is None:
                            call = _search_call(item.id)
                            yield ToolCallStarted(call)
                        yield ToolCallFinished(_search_finished(call, item, sources.found))
                    elif item.type == "message":
                        cited += [a for part in item.content or [] if part.type == "output_text"
                                  for a in part.annotations or [] if a.type == "file_citation"]
                elif kind in ("response.completed", "response.incomplete"):
                    for citation in sources.cite(cited):
                        yield CitationFound(citation)
                    cited = []
                    if event.response.usage:
                        usage.input_tokens += event.response.usage.input_tokens
                        usage.output_tokens += event.response.usage.output_tokens
                    if kind == "response.incomplete":   # max_output_tokens or a content filter
                        progress.cut_off = True
                    outcome = None
                elif kind == "response.failed":
                    error = event.response.error
                    outcome = stream_failure(error.message if error else "", error.code if error else "",
                                             (self._api_key,))
                elif kind == "error":
                    outcome = stream_failure(event.message, event.code or "", (self._api_key,))
        return outcome

    def _new_conversation(self, history: list[Message]) -> str:
        """A Conversation holding `history` (the app's copy), e.g. for a thread begun elsewhere."""
        items = [{"type": "message", "role": m.role, "content": m.content}
                 for m in history if m.content.strip()]
        conversation = self.client.conversations.create(items=items[:ITEMS_PER_REQUEST])
        try:
            for start in range(ITEMS_PER_REQUEST, len(items), ITEMS_PER_REQUEST):
                self.client.conversations.items.create(conversation.id,
                                                       items=items[start:start + ITEMS_PER_REQUEST])
        except Exception:
            self._delete_conversation_quietly(conversation.id)   # half a history helps no one
            raise
        return conversation.id

    def _provider_error(self, exc: BaseException) -> ProviderError:
        return provider_error(exc, base_url=self.base_url, secrets=(self._api_key,))


def _code_call(item_id: str, code: str) -> ToolCall:
    return ToolCall(name=CODE_INTERPRETER, arguments={"code": code}, id=item_id, kind="code_interpreter")


def _search_call(item_id: str) -> ToolCall:
    return ToolCall(name=FILE_SEARCH, arguments={}, id=item_id, kind="file_search")


def _search_finished(call: ToolCall, item, found: dict[str, list]) -> ToolCall:
    """Fill in a finished file_search call and keep its results (best first) for the citations."""
    results = item.results or []
    for r in results:
        found.setdefault(r.file_id, []).append(r)
    for hits in found.values():
        hits.sort(key=lambda r: -(r.score or 0))
    call.arguments = {"queries": list(item.queries or [])}
    names = sorted({r.filename or r.file_id for r in results})
    call.result = (f"{len(results)} passage(s) from {', '.join(names)}" if results
                   else "no passage found")
    call.error = item.status in ("failed", "incomplete")
    return call


class _Sources:
    """What a turn's file searches found (by OpenAI file id, best first) and the files cited."""

    def __init__(self):
        self.found: dict[str, list] = {}
        self.cited: list[str] = []

    def cite(self, annotations: list) -> list[Citation]:
        """One Citation per newly cited file (first citation first), numbered across the turn,
        with the best passage the searches returned from it. The file id is OpenAI's; the
        caller maps it to its own."""
        out: list[Citation] = []
        for a in annotations:
            if a.file_id in self.cited:
                continue
            self.cited.append(a.file_id)
            best = (self.found.get(a.file_id) or [None])[0]
            out.append(Citation(title=a.filename or a.file_id, quote=(best.text or "") if best else "",
                                source=a.filename or a.file_id, number=len(self.cited),
                                score=round(best.score, 4) if best and best.score is not None else None,
                                file_id=a.file_id, how="file_search"))
        return out


def _code_output(item) -> str:
    parts = []
    for out in item.outputs or []:
        if out.type == "logs":
            parts.append(out.logs)
        elif out.type == "image":
            parts.append(f"[image: {out.url}]")
    return "".join(parts).rstrip("\n")


def _may_have_reached_server(exc: BaseException) -> bool:
    """False only when the request surely never reached the server (refused, or no connection)."""
    if isinstance(exc, openai.APIStatusError):
        return False   # the server answered with a refusal: it changed nothing
    if isinstance(exc, openai.APIConnectionError):   # a timeout is one too
        cause = type(exc.__cause__).__name__
        return cause not in ("ConnectError", "ConnectTimeout", "UnsupportedProtocol")
    return True


def _is_missing_conversation(exc: openai.NotFoundError) -> bool:
    body = exc.body if isinstance(exc.body, dict) else {}
    return "conversation" in f"{body.get('param', '')} {exc.message}".lower()
