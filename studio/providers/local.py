"""The embedded provider: SmolLM2-135M-Instruct on the CPU, threads kept by the app."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Iterator

from studio.assistants import compile_instructions
from studio.context import ContextTooLong, history_messages
from studio.local_model import (CONTEXT_WINDOW, MODEL_ID, ModelLoadError, ModelNotInstalled, Progress,
                                get_local_model, on_model_thread, using_adapter)
from studio.providers.base import Capabilities, Provider
from studio.types import AssistantSpec, Done, ErrorEvent, Event, ModelInfo, TextDelta, Thread, Usage

# Sampling, because greedy decoding makes a 135M model repeat itself.
GENERATION = dict(do_sample=True, temperature=0.3, top_p=0.9, repetition_penalty=1.1)


class LocalProvider(Provider):
    """The embedded SmolLM2 model, run in this process on the CPU."""
    name = "local"
    label = "Embedded model (SmolLM2-135M)"
    capabilities = Capabilities(function_tools=False, code_interpreter=False,
                                server_threads=False, fine_tuning=False)

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

    def stream_reply(self, thread: Thread, spec: AssistantSpec) -> Iterator[Event]:
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
            get_local_model(self.model_dir, self.progress)
        except ModelLoadError as exc:
            yield ErrorEvent(f"The embedded model could not be loaded. {exc}",
                             retryable=not isinstance(exc, ModelNotInstalled), code="model_load_failed")
            return
        messages = self.build_messages(thread, spec)
        if isinstance(messages, ErrorEvent):
            yield messages
            return
        yield from self.generate(messages, adapter)

    def build_messages(self, thread: Thread, spec: AssistantSpec) -> list[dict] | ErrorEvent:
        """System prompt + the newest history that fits the model's window + the new message,
        counted with the model's own tokenizer. An ErrorEvent when the new message does not fit."""
        tokenizer = get_local_model(self.model_dir, self.progress).tokenizer
        count = lambda text: len(tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
        try:
            return history_messages(compile_instructions(spec), thread.messages,
                                    CONTEXT_WINDOW - self.max_new_tokens, count)
        except ContextTooLong as exc:
            return ErrorEvent(str(exc), retryable=False, code="context_length_exceeded")

    def generate(self, messages: list[dict], adapter: str | None = None) -> Iterator[Event]:
        """Stream a reply to chat `messages` token by token (text deltas, then Done), from the
        base model or with the fine-tuned LoRA adapter in the folder `adapter`.

        Done is marked `cut_off` when the reply stopped at `max_new_tokens`, not at its end.
        """
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
        cut_off = [False]

        def work():
            if stop.is_set():   # abandoned while it waited in the queue
                streamer.end()
                return
            try:
                with torch.inference_mode(), using_adapter(local, adapter):
                    out = local.model.generate(
                        **inputs, streamer=streamer, max_new_tokens=self.max_new_tokens,
                        pad_token_id=local.tokenizer.eos_token_id,
                        stopping_criteria=StoppingCriteriaList([StopWhenAbandoned()]), **GENERATION)
                output_tokens[0] = out.shape[1] - inputs["input_ids"].shape[1]
                # At the cap, and the last token is not end-of-reply: the reply was cut short.
                cut_off[0] = (output_tokens[0] >= self.max_new_tokens
                              and int(out[0, -1]) not in _end_tokens(local))
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
            detail = " ".join(str(failure[0]).split())[:200] or type(failure[0]).__name__
            yield ErrorEvent(f"The embedded model failed while writing its reply ({detail}). Retry to get a "
                             "complete answer.", retryable=True, code="generation_failed")
            return
        yield Done(usage=Usage(input_tokens=int(inputs["input_ids"].shape[1]),
                               output_tokens=int(output_tokens[0])), cut_off=cut_off[0])


def _end_tokens(local) -> set[int]:
    """Token ids that end a reply (the tokenizer's and the generation config's)."""
    ends = local.model.generation_config.eos_token_id
    ends = set(ends) if isinstance(ends, (list, tuple, set)) else {ends}
    return {int(t) for t in ends | {local.tokenizer.eos_token_id} if t is not None}
