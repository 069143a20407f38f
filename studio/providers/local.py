"""The embedded provider: SmolLM2-135M-Instruct on the CPU, threads kept by the app."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

from studio.assistants import compile_instructions
from studio.context import ContextTooLong, fit_history
from studio.local_model import (CONTEXT_WINDOW, MODEL_ID, ModelNotInstalled, Progress, get_local_model,
                                on_model_thread)
from studio.providers.base import Capabilities, Provider
from studio.types import AssistantSpec, Done, ErrorEvent, Event, ModelInfo, TextDelta, Thread, Usage

# Sampling, because greedy decoding makes a 135M model repeat itself.
GENERATION = dict(do_sample=True, temperature=0.3, top_p=0.9, repetition_penalty=1.1)


class LocalProvider(Provider):
    name = "local"
    label = "Embedded model (SmolLM2-135M)"
    capabilities = Capabilities(function_tools=False, code_interpreter=False,
                                server_threads=False, fine_tuning=False)

    def __init__(self, model_dir: Path, max_new_tokens: int = 200, progress: Progress | None = None):
        self.model_dir = Path(model_dir)
        self.max_new_tokens = max_new_tokens
        self.progress = progress

    def default_model(self) -> str:
        return MODEL_ID

    def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(id=MODEL_ID, provider=self.name, owned_by="HuggingFaceTB",
                          context_window=CONTEXT_WINDOW,
                          description="SmolLM2-135M-Instruct, embedded; runs on the CPU, no key needed.")]

    @classmethod
    def limitations(cls) -> list[str]:
        return ["The embedded 135M model cannot call function tools and has no code interpreter; "
                "switch to OpenAI or a compatible server for tools.",
                "It runs on this machine's CPU: replies are short and simple, and no key or internet is needed."]

    def stream_reply(self, thread: Thread, spec: AssistantSpec) -> Iterator[Event]:
        if not thread.messages or thread.messages[-1].role != "user":
            yield ErrorEvent("There is no new message to reply to.", retryable=False)
            return
        if spec.model and spec.model != MODEL_ID:
            yield ErrorEvent(f"The model '{spec.model}' is not available locally; "
                             f"the embedded model is '{MODEL_ID}'.", retryable=False, code="model_not_found")
            return
        try:
            local = get_local_model(self.model_dir, self.progress)
        except (ModelNotInstalled, OSError) as exc:
            yield ErrorEvent(f"The embedded model could not be loaded: {exc}", retryable=False)
            return
        tokenizer = local.tokenizer
        count = lambda text: len(tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
        try:
            messages = fit_history(compile_instructions(spec), thread.messages,
                                   CONTEXT_WINDOW - self.max_new_tokens, count)
        except ContextTooLong as exc:
            yield ErrorEvent(str(exc), retryable=False, code="context_length_exceeded")
            return
        yield from self.generate(messages)

    def generate(self, messages: list[dict]) -> Iterator[Event]:
        """Stream a reply to chat `messages` token by token (text deltas, then Done)."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        local = get_local_model(self.model_dir, self.progress)
        inputs = local.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        # No timeout: a reply may wait its turn on the model thread behind another session's.
        streamer = TextIteratorStreamer(local.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop = threading.Event()

        class StopWhenAbandoned(StoppingCriteria):
            # The page may rerun mid-reply; then stop generating instead of finishing for nobody.
            def __call__(self, input_ids, scores, **kwargs):
                return stop.is_set()

        failure: list[BaseException] = []
        output_tokens = [0]

        def work():
            if stop.is_set():   # abandoned while it waited in the queue
                streamer.end()
                return
            try:
                with torch.inference_mode():
                    out = local.model.generate(
                        **inputs, streamer=streamer, max_new_tokens=self.max_new_tokens,
                        pad_token_id=local.tokenizer.eos_token_id,
                        stopping_criteria=StoppingCriteriaList([StopWhenAbandoned()]), **GENERATION)
                output_tokens[0] = out.shape[1] - inputs["input_ids"].shape[1]
            except BaseException as exc:   # reported to the reader below
                failure.append(exc)
                streamer.end()

        finished = on_model_thread(work)
        try:
            for text in streamer:
                if text:
                    yield TextDelta(text)
        finally:
            stop.set()
        finished.result()
        if failure:
            yield ErrorEvent(f"The embedded model failed: {failure[0]}", retryable=True)
            return
        yield Done(usage=Usage(input_tokens=int(inputs["input_ids"].shape[1]),
                               output_tokens=int(output_tokens[0])))
