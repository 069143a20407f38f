"""Embedded model: tokens/s through studio vs a bare transformers generate loop, same model, same run.

Also times the first load (GGUF -> float32 + saving the workspace cache) and a cached load.
    .venv/bin/python bench/local_generation.py [--rounds 5] [--tokens 96]
Goal: studio/bare tokens-per-second ratio >= 0.9.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402  (imported before timing so both loads pay the same)
import transformers  # noqa: E402,F401

from studio.assistants import compile_instructions, load_demo_assistant  # noqa: E402
from studio.local_model import get_local_model, load_local_model, on_model_thread  # noqa: E402
from studio.providers.local import GENERATION, LocalProvider  # noqa: E402
from studio.types import Done, TextDelta  # noqa: E402


def studio_run(provider: LocalProvider, messages) -> tuple[int, float]:
    start = time.perf_counter()
    tokens = 0
    for event in provider.generate(messages):
        if isinstance(event, Done):
            tokens = event.usage.output_tokens
        elif not isinstance(event, TextDelta):
            raise RuntimeError(event)
    return tokens, time.perf_counter() - start


def bare_run(model, tokenizer, messages, max_new_tokens: int) -> tuple[int, float]:
    start = time.perf_counter()
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.eos_token_id, **GENERATION)
    tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return out.shape[1] - inputs["input_ids"].shape[1], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        first = on_model_thread(load_local_model, cache).result()
        cached = on_model_thread(load_local_model, cache).result()
        print(f"first load (GGUF, dequantize, write cache): {first.load_seconds:6.2f} s")
        print(f"cached load (safetensors from workspace):  {cached.load_seconds:6.2f} s"
              f"   ratio cached/first = {cached.load_seconds / first.load_seconds:.3f}")
        del first, cached

        provider = LocalProvider(cache, max_new_tokens=args.tokens)
        local = get_local_model(cache)
        spec = load_demo_assistant("bench")
        messages = [{"role": "system", "content": compile_instructions(spec)},
                    {"role": "user", "content": "Great video on regression! Could you cover logistic regression?"}]
        studio_run(provider, messages)              # warm-up, both paths
        on_model_thread(bare_run, local.model, local.tokenizer, messages, args.tokens).result()

        studio_rates, bare_rates = [], []
        for i in range(args.rounds):                # alternate the order: the machine drifts
            # The bare loop runs on the same model thread as studio's generation, so the ratio is
            # the cost of studio's streaming layer alone (torch work on a second thread would
            # slow both: see studio/local_model.py).
            runs = [("studio", lambda: studio_run(provider, messages)),
                    ("bare", lambda: on_model_thread(bare_run, local.model, local.tokenizer, messages,
                                                     args.tokens).result())]
            for name, run in (runs if i % 2 == 0 else runs[::-1]):
                tokens, seconds = run()
                (studio_rates if name == "studio" else bare_rates).append(tokens / seconds)
        s, b = statistics.median(studio_rates), statistics.median(bare_rates)
        print(f"tokens/s  studio (streamed): {s:6.1f}   bare generate: {b:6.1f}   "
              f"(median of {args.rounds}, {args.tokens} max new tokens, {torch.get_num_threads()} threads)")
        print(f"ratio studio/bare tokens/s = {s / b:.3f}   (goal >= 0.9)")


if __name__ == "__main__":
    main()
