"""Embedded model: tokens/s and first-token time through studio vs a bare onnxruntime-genai loop on
the same int8 model, and vs bare transformers fp32, all in the same run (alternating rounds).

Also: the first build (safetensors -> int8 ONNX, in its own process), a cached load, peak memory
of a process that loads and generates with each runtime, and the int8 model's next-token (top-1)
agreement with an fp32 ONNX build of the same weights.
    .venv/bin/python bench/local_generation.py [--rounds 6] [--tokens 128]
Goals: studio/bare-onnx tokens/s >= 0.9; studio/transformers-fp32 tokens/s >= 4. Those rounds
start every prompt cold in studio too (its kept cache off), as the bare loops do.

Also timed: a follow-up turn (the same chat one reply and one question on), where studio reuses
the cache of the turn before's prompt and computes only the new tokens, against studio cold and
transformers on the same prompt.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("STUDIO_MODEL_CACHE", str(ROOT / ".cache" / "models"))

from studio import fast_model  # noqa: E402
from studio.assistants import compile_instructions, load_demo_assistant  # noqa: E402
from studio.local_model import cache_dir, get_local_model, get_runtime, on_model_thread  # noqa: E402
from studio.providers.local import LocalProvider  # noqa: E402
from studio.types import Done, TextDelta  # noqa: E402

MODEL_DIR = Path(os.environ["STUDIO_MODEL_CACHE"])
# A conversation whose greedy reply runs past 128 tokens on both runtimes, as a demo's would.
HISTORY = [{"role": "user", "content": "Great video on regression! Could you cover logistic regression next?"},
           {"role": "assistant", "content": "Thank you! Logistic regression is on the list for next month. "
                                            "Thanks for watching!"}]
QUESTION = "List twenty ideas for future videos about statistics, with a sentence about each."
# The follow-up turn: an earlier reply (written here, so every runtime sees the same prompt) and a new question.
EARLIER_REPLY = ("Here are a few: 1. What a p-value really means. 2. Confidence intervals by hand. 3. Bayes' "
                 "rule with dice. 4. Why the mean lies: outliers and medians. 5. Sampling bias in surveys. "
                 "6. Correlation is not causation. 7. A/B tests step by step. Thanks for watching! -Sam")
FOLLOW_UP = "Which three of those would suit complete beginners best, and why?"
AGREEMENT_PROMPTS = ["What is the capital of France?", "Write a short poem about the sea.",
                     "Explain how a bicycle works.", "Give me three tips for studying.", "Why is the sky blue?",
                     "How do I make a cup of tea?", "Summarize the plot of Romeo and Juliet.", "What is 12 times 7?"]


def messages() -> list[dict]:
    spec = load_demo_assistant("bench")
    return [{"role": "system", "content": compile_instructions(spec)}, *HISTORY, {"role": "user", "content": QUESTION}]


def follow_up_messages() -> list[dict]:
    return [*messages(), {"role": "assistant", "content": EARLIER_REPLY}, {"role": "user", "content": FOLLOW_UP}]


def studio_run(provider: LocalProvider, chat: list[dict]) -> tuple[int, float, float]:
    """(new tokens, seconds, first-token seconds) through LocalProvider.generate, greedy."""
    start = time.perf_counter()
    first = None
    for event in provider.generate(chat, sampling=None):
        if isinstance(event, TextDelta) and first is None:
            first = time.perf_counter() - start
        elif isinstance(event, Done):
            tokens = event.usage.output_tokens
        elif not isinstance(event, TextDelta):
            raise RuntimeError(event)
    return tokens, time.perf_counter() - start, first


def bare_onnx_run(model, chat: list[dict], max_new_tokens: int) -> tuple[int, float, float]:
    """The loop from onnxruntime-genai's own examples: template, encode, generate, decode."""
    import json

    import onnxruntime_genai as og
    start = time.perf_counter()
    tokenizer = og.Tokenizer(model) if not hasattr(bare_onnx_run, "tok") else bare_onnx_run.tok
    bare_onnx_run.tok = tokenizer
    ids = tokenizer.encode(tokenizer.apply_chat_template(json.dumps(chat), add_generation_prompt=True))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + max_new_tokens, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    stream = tokenizer.create_stream()
    first, tokens = None, 0
    while not generator.is_done():
        generator.generate_next_token()
        stream.decode(generator.get_next_tokens()[0])
        tokens += 1
        if first is None:
            first = time.perf_counter() - start
    return tokens, time.perf_counter() - start, first


def bare_torch_run(model, tokenizer, chat: list[dict], max_new_tokens: int) -> tuple[int, float, float]:
    """Plain transformers fp32 generate, greedy (a streamer only to see the first token)."""
    import torch
    from transformers.generation.streamers import BaseStreamer
    start = time.perf_counter()
    seen: list[float] = []

    class FirstToken(BaseStreamer):
        def put(self, value):
            seen.append(time.perf_counter() - start)

        def end(self):
            pass

    inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, streamer=FirstToken(),
                             pad_token_id=tokenizer.eos_token_id)
    tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return out.shape[1] - inputs["input_ids"].shape[1], time.perf_counter() - start, seen[1]   # [0]: the prompt


def peak_memory_mib() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


class TorchBaseline:
    """Bare transformers fp32 in a child process, run on request. Kept out of this process
    because torch's OpenMP threads slowed onnxruntime here by ~15% after each torch run (the app's
    server never runs torch on the fast path, so this is the fair comparison)."""

    def __init__(self, tokens: int):
        self.child = subprocess.Popen([sys.executable, __file__, "--serve", "torch", "--tokens", str(tokens)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      env={**os.environ, "PYTHONWARNINGS": "ignore"})

    def run(self, what: str = "run") -> tuple[int, float, float]:
        self.child.stdin.write(f"{what}\n")
        self.child.stdin.flush()
        tokens, seconds, first = self.child.stdout.readline().split()
        return int(tokens), float(seconds), float(first)

    def close(self) -> float:
        """Stop the child; its peak memory in MiB."""
        self.child.stdin.write("memory\n")
        self.child.stdin.flush()
        peak = float(self.child.stdout.readline())
        self.child.stdin.close()
        self.child.wait()
        return peak


def serve(runtime: str, tokens: int) -> None:
    """The child: load `runtime` ("torch" or "fast"), then answer "run" and "memory" lines."""
    chats = {"run": messages(), "follow": follow_up_messages()}
    if runtime == "fast":
        model = get_runtime(MODEL_DIR).model
        run = lambda chat: on_model_thread(bare_onnx_run, model, chat, tokens).result()   # noqa: E731
    else:
        local = get_local_model(MODEL_DIR)
        run = lambda chat: on_model_thread(bare_torch_run, local.model, local.tokenizer, chat,  # noqa: E731
                                           tokens).result()
    for line in sys.stdin:
        if line.strip() in chats:
            print(*run(chats[line.strip()]), flush=True)
        else:
            print(peak_memory_mib(), flush=True)


def fast_peak_memory(tokens: int) -> float:
    """Peak memory of a fresh process that loads the fast model and generates once."""
    out = subprocess.run([sys.executable, __file__, "--serve", "fast", "--tokens", str(tokens)], input="run\nmemory\n",
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--serve", choices=["fast", "torch"])
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.tokens)

    runtime = get_runtime(MODEL_DIR)   # builds what this workspace lacks, once
    assert isinstance(runtime, fast_model.FastModel), "the fast runtime is not available here"
    weights = cache_dir(MODEL_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        build_s = fast_model.build_onnx(weights, Path(tmp) / "int8")
        loads = [fast_model.load_fast_model(Path(tmp) / "int8").load_seconds for _ in range(3)]
        fast_model.build_onnx(weights, Path(tmp) / "fp32", precision="fp32")
        fp32 = fast_model.load_fast_model(Path(tmp) / "fp32")
        agreement = on_model_thread(fast_model.top1_agreement, fp32, runtime, AGREEMENT_PROMPTS, 48).result()
        del fp32
    print(f"first build (safetensors -> int8 ONNX, block {fast_model.BLOCK_SIZE}): {build_s:5.1f} s; "
          f"cached load: {statistics.median(loads):.2f} s (median of 3)")
    print(f"top-1 agreement int8 vs fp32 ONNX, teacher-forced on {len(AGREEMENT_PROMPTS)} prompts: {agreement:.3f}")

    provider = LocalProvider(MODEL_DIR, max_new_tokens=args.tokens)
    runtime.reuse = False   # every prompt cold, as in the bare loops (the follow-up turn is timed below)
    chat = messages()
    print(f"prompt: {len(runtime.prompt_ids(chat))} tokens; up to {args.tokens} new tokens, greedy")
    torch_baseline = TorchBaseline(args.tokens)
    runs = {"studio": lambda: studio_run(provider, chat),
            "bare onnx": lambda: on_model_thread(bare_onnx_run, runtime.model, chat, args.tokens).result(),
            "transformers fp32": torch_baseline.run}
    for run in runs.values():   # warm-up
        run()
    made, rates, firsts = timed_rounds(runs, args.rounds)
    median = {name: statistics.median(values) for name, values in rates.items()}
    for name in runs:
        print(f"{name:18s} {median[name]:6.1f} tok/s end to end   first token "
              f"{1000 * statistics.median(firsts[name]):5.0f} ms   {statistics.median(made[name]):.0f} new tokens"
              f"   (median of {args.rounds})")
    follow_up(provider, runtime, torch_baseline, args.rounds)
    print(f"peak memory of a process that loads and generates: fast runtime {fast_peak_memory(args.tokens):.0f} MiB, "
          f"transformers fp32 {torch_baseline.close():.0f} MiB")
    print(f"ratio studio / bare onnxruntime-genai = {median['studio'] / median['bare onnx']:.3f}   (goal >= 0.9)")
    print(f"ratio studio / transformers fp32     = {median['studio'] / median['transformers fp32']:.2f}   "
          "(goal >= 4)")


def timed_rounds(runs: dict, rounds: int) -> tuple[dict, dict, dict]:
    """Each run `rounds` times, the order rotated each round (the machine drifts): new tokens,
    tokens/s and first-token seconds, per run."""
    made: dict[str, list[int]] = {name: [] for name in runs}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    firsts: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for i in range(rounds):
        for name in order[i % len(order):] + order[:i % len(order)]:
            tokens, seconds, first = runs[name]()
            made[name].append(tokens)
            rates[name].append(tokens / seconds)
            firsts[name].append(first)
    return made, rates, firsts


def follow_up(provider: LocalProvider, runtime, torch_baseline: TorchBaseline, rounds: int) -> None:
    """The follow-up turn: studio reusing the turn before's cache, studio cold, transformers."""
    before, after = messages(), follow_up_messages()

    def warm() -> tuple[int, float, float]:
        runtime.reuse = True
        for _ in provider.generate(before, sampling=None, max_new_tokens=1):   # the turn before, untimed
            pass
        result = studio_run(provider, after)
        assert runtime.reused_tokens > 0
        runtime.reuse = False
        return result

    runs = {"studio, reusing": warm, "studio, cold": lambda: studio_run(provider, after),
            "transformers fp32": lambda: torch_baseline.run("follow")}
    _, rates, firsts = timed_rounds(runs, rounds)
    new = len(runtime.prompt_ids(after)) - len(runtime.prompt_ids(before))
    print(f"follow-up turn: prompt {len(runtime.prompt_ids(after))} tokens, {new} of them new since the turn before")
    for name in runs:
        print(f"  {name:18s} {statistics.median(rates[name]):6.1f} tok/s end to end   first token "
              f"{1000 * statistics.median(firsts[name]):5.0f} ms   (median of {rounds})")
    rate, first = ({name: statistics.median(values[name]) for name in runs} for values in (rates, firsts))
    print(f"  ratio studio reusing / transformers fp32 = {rate['studio, reusing'] / rate['transformers fp32']:.2f}; "
          f"first token {first['transformers fp32'] / first['studio, reusing']:.1f}x sooner")


if __name__ == "__main__":
    main()
