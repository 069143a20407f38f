"""The embedded provider: SmolLM2-135M-Instruct on the CPU, threads kept by the app."""
from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Callable, Iterator, Sequence

from studio.assistants import compile_instructions
from studio.context import ContextTooLong, history_messages
from studio.local_model import (CONTEXT_WINDOW, MODEL_ID, ModelLoadError, ModelNotInstalled, Progress, Runtime,
                                get_runtime, on_model_thread)
from studio.providers.base import Capabilities, Provider
from studio.types import AssistantSpec, Done, ErrorEvent, Event, ModelInfo, Sampling, TextDelta, Thread, Usage

log = logging.getLogger(__name__)
# Sampling, because greedy decoding makes a 135M model repeat itself.
# The same settings on both runtimes (top_k 50 is transformers' default, named here for onnxruntime).
GENERATION = dict(temperature=0.3, top_p=0.9, top_k=50, repetition_penalty=1.1)


class LocalProvider(Provider):
    """The embedded SmolLM2 model, run in this process on the CPU."""
    name = "local"
    label = "Embedded model (SmolLM2-135M)"
    capabilities = Capabilities(function_tools=False, code_interpreter=False,
                                server_threads=False, fine_tuning=False, seed=True)

    def __init__(self, model_dir: Path, max_new_tokens: int = 200, progress: Progress | None = None,
                 find_adapter: Callable[[str, str], str | None] | None = None):
        """`find_adapter(model_id, owner)`: the folder of a fine-tuned model's LoRA adapter that
        `owner` may use (studio.finetune.local_jobs.adapter_finder), or None."""
        self.model_dir = Path(model_dir)
        self.max_new_tokens = max_new_tokens
        self.progress = progress
        self.find_adapter = find_adapter

    def default_model(self) -> str:
        return MODEL_ID

    def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(id=MODEL_ID, provider=self.name, owned_by="HuggingFaceTB",
                          context_window=CONTEXT_WINDOW,
                          description="SmolLM2-135M-Instruct, embedded; runs on the CPU, no key needed.")]

    @classmethod
    def limitations(cls) -> list[str]:
        """Plain sentences for the UI about what the embedded model cannot do."""
        return ["The embedded 135M model cannot call function tools and has no code interpreter; "
                "switch to OpenAI or a compatible server for tools.",
                "It runs on this machine's CPU: replies are short and simple, and no key or internet is needed."]

    def stream_reply(self, thread: Thread, spec: AssistantSpec, *, vector_stores: Sequence[str] = (),
                     sampling: Sampling | None = None) -> Iterator[Event]:
        """Stream the reply to the thread's last (user) message; see Provider.stream_reply.

        The model is loaded on first use; a failed load is an ErrorEvent saying what to do.
        """
        if not thread.messages or thread.messages[-1].role != "user":
            yield ErrorEvent("There is no new message to reply to.", retryable=False)
            return
        adapter = None
        if spec.model and spec.model != MODEL_ID:
            adapter = self.find_adapter(spec.model, spec.owner) if self.find_adapter else None
            if adapter is None:
                yield ErrorEvent(f"The model '{spec.model}' is not available locally: the embedded model is "
                                 f"'{MODEL_ID}', plus the models you fine-tuned here.", retryable=False,
                                 code="model_not_found")
                return
        try:
            runtime = get_runtime(self.model_dir, adapter, self.progress)
        except ModelLoadError as exc:
            yield ErrorEvent(f"The embedded model could not be loaded. {exc}",
                             retryable=not isinstance(exc, ModelNotInstalled), code="model_load_failed")
            return
        cap = min(sampling.max_tokens, self.max_new_tokens) if sampling and sampling.max_tokens else None
        messages = self.build_messages(thread, spec, runtime)
        if isinstance(messages, ErrorEvent):
            yield messages
            return
        yield from self.generate(messages, adapter, sampling_for(sampling), max_new_tokens=cap, party=thread.owner)

    def build_messages(self, thread: Thread, spec: AssistantSpec, runtime: Runtime | None = None
                       ) -> list[dict] | ErrorEvent:
        """System prompt + the newest history that fits the model's window + the new message,
        counted with the model's own tokenizer. An ErrorEvent when the new message does not fit."""
        runtime = runtime or get_runtime(self.model_dir, None, self.progress)
        window = CONTEXT_WINDOW - self.max_new_tokens
        try:
            messages = history_messages(compile_instructions(spec), thread.messages, window, runtime.count_tokens)
        except ContextTooLong as exc:
            return ErrorEvent(str(exc), retryable=False, code="context_length_exceeded")
        # The budget counts a rough overhead per message; the chat template may cost a few
        # tokens more. Drop the oldest history until the real prompt fits.
        first = 1 if messages and messages[0]["role"] == "system" else 0
        while len(runtime.prompt_ids(messages)) > window:
            if len(messages) - first <= 1:
                return ErrorEvent("The message is too long for the embedded model's window: shorten it.",
                                  retryable=False, code="context_length_exceeded")
            del messages[first]
        return messages

    def generate(self, messages: list[dict], adapter: str | None = None,
                 sampling: dict | None = GENERATION, max_new_tokens: int | None = None,
                 party: str | None = None) -> Iterator[Event]:
        """Stream a reply to chat `messages` piece by piece (text deltas, then Done), from the
        base model or the fine-tuned one whose LoRA adapter is in the folder `adapter`.
        `sampling` None: greedy; its "seed" makes sampling repeatable. `max_new_tokens`: a
        lower cap than the provider's for this reply. `party`: whose conversation it is (the
        fast runtime reuses a cache for the same party only).

        Done is marked `cut_off` when the reply stopped at the cap, not at its end.
        """
        cap = max_new_tokens or self.max_new_tokens
        runtime = get_runtime(self.model_dir, adapter, self.progress)
        try:
            ids = runtime.prompt_ids(messages)
        except Exception as exc:   # a damaged tokenizer or chat template in the model's folder
            yield ErrorEvent(f"The embedded model could not read the conversation ({type(exc).__name__}); the "
                             "details are in the server log. Retry, or use another provider.", retryable=True,
                             code="generation_failed")
            log.exception("building the prompt for the embedded model failed")
            return
        pieces: queue.Queue = queue.Queue()
        stop = threading.Event()   # the page may rerun mid-reply: then stop instead of finishing for nobody
        failure: list[BaseException] = []

        def work() -> list[int]:
            try:
                # No timeout: a reply may wait its turn on the model thread behind another session's.
                return [] if stop.is_set() else runtime.generate(ids, cap, sampling, pieces.put,
                                                                   stop.is_set, party=party)
            except BaseException as exc:   # reported to the reader below
                failure.append(exc)
                return []
            finally:
                pieces.put(_END)

        finished = on_model_thread(work)
        try:
            while (piece := pieces.get()) is not _END:
                yield TextDelta(piece)
        finally:
            stop.set()
        new = finished.result()
        if failure:
            detail = " ".join(str(failure[0]).split())[:200] or type(failure[0]).__name__
            yield ErrorEvent(f"The embedded model failed while writing its reply ({detail}). Retry to get a "
                             "complete answer.", retryable=True, code="generation_failed")
            return
        # At the cap, and the last token is not end-of-reply: the reply was cut short.
        cut_off = bool(new) and new[-1] not in runtime.eos_ids and (
            len(new) >= cap or len(ids) + len(new) >= CONTEXT_WINDOW)
        yield Done(usage=Usage(input_tokens=len(ids), output_tokens=len(new)), cut_off=cut_off)


_END = object()   # marks the end of a reply's pieces


def sampling_for(chosen: Sampling | None) -> dict | None:
    """The runtime's sampling settings for a turn's choices: GENERATION with the chosen
    temperature and top_p (temperature 0: greedy) and the seed, if any."""
    if chosen is None:
        return GENERATION
    if chosen.temperature == 0:
        return None
    settings = dict(GENERATION)
    if chosen.temperature is not None:
        settings["temperature"] = chosen.temperature
    if chosen.top_p is not None:
        settings["top_p"] = chosen.top_p
    if chosen.seed is not None:
        settings["seed"] = chosen.seed
    return settings
