"""Any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, LM Studio, ...).

The app keeps the thread: each turn sends the system prompt plus as much recent history as
fits the model's context window, streams the reply, and runs parallel tool calls.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any, Iterator, Sequence

from openai import OpenAI

from studio.assistants import compile_instructions
from studio.context import ContextTooLong, estimate_tokens, history_messages
from studio.providers.base import Capabilities, Provider, ProviderError
from studio.providers.openai_errors import check_base_url, describe_error, provider_error, safe_url
from studio.redact import remember_secret
from studio.providers.turns import (MAX_TOOL_ROUNDS, TurnProgress, parse_arguments, parse_shutdown_date,
                                    run_calls_events, text_delta)
from studio.tools import get_tools
from studio.types import AssistantSpec, Done, ErrorEvent, Event, ModelInfo, Sampling, Thread, ToolCall, Usage, new_id

KEY_HINT = "Check the API key set for the OpenAI-compatible server"
MODELS_TTL_S = 60   # how long a server's /v1/models answer is reused

# /v1/models answers by (base URL, key digest): with no model configured, every turn needs the
# first listed model, and asking the server before each turn doubled its requests.
_models_cache: dict[tuple[str, str], tuple[float, list]] = {}
_models_lock = threading.Lock()


def clear_models_cache() -> None:
    """Forget every cached /v1/models answer (e.g. after a server's models changed)."""
    with _models_lock:
        _models_cache.clear()


class CompatibleProvider(Provider):
    """chat.completions on a configurable base URL; threads are kept by the app."""

    name = "compatible"
    label = "OpenAI-compatible server"
    capabilities = Capabilities(function_tools=True, code_interpreter=False, server_threads=False,
                                fine_tuning=False, seed=True)

    def __init__(self, base_url: str, api_key: str = "", default_model: str = "",
                 context_window: int = 8192, max_retries: int = 1, timeout: float = 60):
        self._api_key = api_key or ""
        remember_secret(self._api_key)   # kept out of every log line and message from now on
        self._default_model = default_model
        self.context_window = context_window
        self.reply_reserve = min(1024, context_window // 4)   # room left for the answer
        # Most local servers need no key, but the SDK insists on one.
        self.client = OpenAI(api_key=self._api_key or "not-needed", base_url=check_base_url(base_url),
                             max_retries=max_retries, timeout=timeout)
        self.base_url = str(self.client.base_url)

    def default_model(self) -> str:
        return self._default_model

    def list_models(self) -> list[ModelInfo]:
        """The models the server lists at /v1/models. Raises ProviderError."""
        try:
            models = self._listed_models()
        except Exception as exc:
            raise provider_error(exc, base_url=self.base_url, secrets=self._secrets(),
                                 key_hint=KEY_HINT) from None
        return [ModelInfo(id=m.id, provider=self.name, owned_by=getattr(m, "owned_by", "") or "",
                          context_window=self.context_window,
                          shutdown_date=parse_shutdown_date(getattr(m, "shutdown_date", None)))
                for m in models]

    def _secrets(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    def _listed_models(self) -> list:
        """The server's /v1/models list, reused for MODELS_TTL_S seconds. Raises the SDK's errors."""
        key = (self.base_url, hashlib.sha256(self._api_key.encode()).hexdigest())
        with _models_lock:
            cached = _models_cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        # A short timeout and no retries: the list is drawn on a page and must not hold it up.
        models = list(self.client.with_options(timeout=10, max_retries=0).models.list())
        with _models_lock:
            _models_cache[key] = (time.monotonic() + MODELS_TTL_S, models)
        return models

    def _first_listed_model(self) -> str:
        """With no model configured, use the first one the server lists (most serve just one)."""
        models = self._listed_models()   # errors here are described like a turn's
        if not models:
            raise ProviderError(f"No model is set and {safe_url(self.base_url)} lists none. Choose a model in "
                                "settings.")
        # Not kept on the instance: one provider serves every session, and the list may change.
        return models[0].id

    # --- a turn --------------------------------------------------------------------
    def stream_reply(self, thread: Thread, spec: AssistantSpec, *, vector_stores: Sequence[str] = (),
                     sampling: Sampling | None = None) -> Iterator[Event]:
        """Stream the reply to the thread's last (user) message; see Provider.stream_reply."""
        if not thread.messages or thread.messages[-1].role != "user":
            yield ErrorEvent("There is no new message to answer.", False, "no_user_message")
            return
        progress = TurnProgress()
        model = spec.model or self._default_model
        try:
            model = model or self._first_listed_model()
            yield from self._turn(thread, spec, model, progress, sampling or Sampling())
        except ProviderError as exc:
            yield ErrorEvent(str(exc), False, "no_model")
        except Exception as exc:
            yield describe_error(exc, base_url=self.base_url, model=model, secrets=self._secrets(),
                                 key_hint=KEY_HINT, midstream=progress.streaming)

    def _turn(self, thread: Thread, spec: AssistantSpec, model: str, progress: TurnProgress,
              sampling: Sampling) -> Iterator[Event]:
        tools = get_tools(spec.tools)
        schemas = [t.chat_schema() for t in tools]
        messages = self.build_messages(thread, spec, schemas)
        if isinstance(messages, ErrorEvent):
            yield messages
            return
        usage = Usage()
        cut_off = False
        chosen = {name: value for name, value in (("temperature", sampling.temperature), ("top_p", sampling.top_p),
                                                  ("seed", sampling.seed)) if value is not None}
        reserve = min(self.reply_reserve, sampling.max_tokens or self.reply_reserve)
        for round_no in range(MAX_TOOL_ROUNDS + 1):
            options: dict[str, Any] = {**chosen, **({"tools": schemas} if schemas else {})}
            if schemas and round_no == MAX_TOOL_ROUNDS:
                options["tool_choice"] = "none"   # last round: make the model answer in words
            # The reply's room was kept free when the history was fitted; without a limit a
            # small model may loop until the server's own default cap (seconds of wasted work).
            stream = self.client.chat.completions.create(
                model=model, messages=messages, stream=True, stream_options={"include_usage": True},
                max_completion_tokens=reserve, **options)
            text: list[str] = []
            calls: list[ToolCall] = []
            finish: list[str] = []
            outcome = yield from self._read_stream(stream, text, calls, usage, progress, finish)
            if outcome is not None:
                yield outcome
                return
            if "length" in finish:
                cut_off = True   # stopped by max_completion_tokens; half a tool call is not run
                break
            if not calls:
                break
            if round_no == MAX_TOOL_ROUNDS:
                yield ErrorEvent(f"The assistant asked for tools more than {MAX_TOOL_ROUNDS} times in "
                                 "one turn and was stopped. Rephrase the request.", False, "tool_loop")
                return
            yield from run_calls_events(calls, tools, progress)
            messages.append({"role": "assistant", "content": "".join(text) or None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments if isinstance(c.arguments, str)
                              else json.dumps(c.arguments)}} for c in calls]})
            messages.extend({"role": "tool", "tool_call_id": c.id, "content": c.result or ""} for c in calls)
        yield Done(usage=usage, cut_off=cut_off)

    def _read_stream(self, stream, text: list[str], calls: list[ToolCall], usage: Usage,
                     progress: TurnProgress, finish: list[str]) -> Iterator[Event]:
        """Yield text deltas; gather streamed tool calls (by index) into `calls` and finish
        reasons into `finish`.

        Returns None when the reply finished, or an ErrorEvent when the stream ended early.
        """
        partial: dict[int, dict[str, str]] = {}
        finished = False
        with stream:
            for chunk in stream:
                progress.streaming = True
                if chunk.usage:
                    usage.input_tokens += chunk.usage.prompt_tokens or 0
                    usage.output_tokens += chunk.usage.completion_tokens or 0
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta is not None and delta.content:
                        text.append(delta.content)
                        yield from text_delta(delta.content, progress)
                    for tc in (delta.tool_calls if delta is not None else None) or []:
                        slot = partial.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                        slot["id"] = tc.id or slot["id"]
                        if tc.function is not None:
                            if tc.function.name and tc.function.name != slot["name"]:
                                slot["name"] += tc.function.name
                            slot["arguments"] += tc.function.arguments or ""
                    if choice.finish_reason is not None:
                        finished = True
                        finish.append(choice.finish_reason)
        if not finished:
            return ErrorEvent(f"The reply from {safe_url(self.base_url)} stopped before it was complete. Retry to "
                              "get a full answer.", True, "stream_interrupted")
        calls.extend(ToolCall(name=slot["name"], arguments=parse_arguments(slot["arguments"]),
                              id=slot["id"] or new_id("call"))
                     for _, slot in sorted(partial.items()))
        return None

    # --- context -------------------------------------------------------------------
    def build_messages(self, thread: Thread, spec: AssistantSpec,
                       tool_schemas: list[dict] | None = None) -> list[dict] | ErrorEvent:
        """System prompt + the newest history that fits the context window + the new message.

        Returns an ErrorEvent when the new message alone does not fit.
        """
        budget = (self.context_window - self.reply_reserve
                  - (estimate_tokens(json.dumps(tool_schemas)) if tool_schemas else 0))
        try:
            return history_messages(compile_instructions(spec), thread.messages, budget)
        except ContextTooLong as exc:
            return ErrorEvent(f"{exc} (This server's context window is taken to be {self.context_window} "
                              f"tokens: set STUDIO_CONTEXT_WINDOW if it is larger.)",
                              False, "context_length_exceeded")
