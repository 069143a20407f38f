"""What does going through `studio` cost on a chat turn, next to calling the openai SDK directly?

Starts the fake OpenAI server (tests/fakes) with a small per-delta delay, then measures, in
one run and interleaved (alternating which goes first), the same streamed turn made
  - through studio: OpenAIProvider.stream_reply(thread, spec), consuming every event, and
  - directly: client.responses.create(..., stream=True), consuming every event;
and the same pair for CompatibleProvider vs client.chat.completions.create(stream=True).
Prints median time to first token and total time, and the ratios studio/direct (goal < 1.10).

    .venv/bin/python bench/chat_overhead.py [--iterations 80] [--warmup 30] [--delta-ms 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openai import OpenAI   # noqa: E402

from studio.assistants import compile_instructions   # noqa: E402
from studio.providers.compatible import CompatibleProvider   # noqa: E402
from studio.providers.openai_provider import OpenAIProvider   # noqa: E402
from studio.tools import get_tools   # noqa: E402
from studio.types import (AssistantSpec, ErrorEvent, FewShotExample, Message, TextDelta,   # noqa: E402
                          Thread)
from tests.fakes.fake_openai import FakeOpenAI   # noqa: E402

API_KEY = "sk-bench"
MODEL = "gpt-4.1-mini"
GOAL = 1.10
SPEC = AssistantSpec(
    name="Comment responder", model=MODEL, tools=["calculator"],
    instructions="You reply to comments on a cooking channel: warm, brief, one emoji at most.",
    examples=[FewShotExample("Tried the lasagna, family loved it!", "So happy to hear that! 🍝"),
              FewShotExample("Too much salt in this one.", "Thanks for the honest feedback, noted!")])

Timing = tuple[float, float]   # (time to first token, total), seconds


def timed(start_stream: Callable[[], Iterator], is_token: Callable[[object], bool]) -> Timing:
    """Start a stream (the request is inside the clock) and consume it; return (TTFT, total)."""
    start = time.perf_counter()
    first = None
    for event in start_stream():
        if first is None and is_token(event):
            first = time.perf_counter()
        if isinstance(event, ErrorEvent):
            raise RuntimeError(event.message)
    end = time.perf_counter()
    return (first or end) - start, end - start


def responses_pair(fake: FakeOpenAI, text: str) -> tuple[Callable[[], Timing], Callable[[], Timing]]:
    """(studio turn, direct SDK turn) against the Responses API, on one shared conversation."""
    provider = OpenAIProvider(api_key=API_KEY, base_url=fake.base_url)
    client = OpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=2, timeout=60)
    thread = Thread(owner="bench", assistant_id=SPEC.id, provider="openai",
                    messages=[Message("user", text)])
    tools = [t.responses_schema() for t in get_tools(SPEC.tools)]

    # Each turn starts on a fresh Conversation (made before the clock starts): one shared
    # Conversation would outgrow the model's context after a few dozen turns.
    def studio() -> Timing:
        thread.provider_ref = client.conversations.create().id
        return timed(lambda: provider.stream_reply(thread, SPEC), lambda e: isinstance(e, TextDelta))

    def direct() -> Timing:
        conversation = client.conversations.create().id
        # What a hand-written app would send: the same compiled instructions, tools and input.
        return timed(lambda: client.responses.create(
            model=MODEL, instructions=compile_instructions(SPEC), conversation=conversation,
            input=[{"type": "message", "role": "user", "content": text}], tools=tools,
            stream=True), lambda e: e.type == "response.output_text.delta")

    return studio, direct


def chat_pair(fake: FakeOpenAI, text: str) -> tuple[Callable[[], Timing], Callable[[], Timing]]:
    """(studio turn, direct SDK turn) against chat.completions, with a short app-kept history."""
    provider = CompatibleProvider(base_url=fake.base_url, api_key=API_KEY, default_model=MODEL)
    client = OpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=1, timeout=60)
    history = [Message("user", "Hi! Love the channel."), Message("assistant", "Thank you, welcome!")]
    thread = Thread(owner="bench", assistant_id=SPEC.id, provider="compatible",
                    messages=history + [Message("user", text)])
    tools = [t.chat_schema() for t in get_tools(SPEC.tools)]
    messages = ([{"role": "system", "content": compile_instructions(SPEC)}]
                + [{"role": m.role, "content": m.content} for m in thread.messages])

    def studio() -> Timing:
        return timed(lambda: provider.stream_reply(thread, SPEC), lambda e: isinstance(e, TextDelta))

    def direct() -> Timing:
        return timed(lambda: client.chat.completions.create(
            model=MODEL, messages=messages, tools=tools, stream=True,
            stream_options={"include_usage": True}),
            lambda c: bool(c.choices and c.choices[0].delta.content))

    return studio, direct


def measure(studio: Callable[[], Timing], direct: Callable[[], Timing], iterations: int,
            warmup: int) -> dict[str, list[Timing]]:
    """Run both, interleaved and alternating which goes first; warm-up runs are not kept."""
    results: dict[str, list[Timing]] = {"studio": [], "direct": []}
    for i in range(warmup + iterations):
        order = [("studio", studio), ("direct", direct)]
        if i % 2:
            order.reverse()
        for name, run in order:
            timing = run()
            if i >= warmup:
                results[name].append(timing)
    return results


def report(title: str, results: dict[str, list[Timing]]) -> tuple[float, float]:
    """Print one table; return the (TTFT, total) ratios studio/direct of the medians."""
    med = {name: (statistics.median(t[0] for t in runs), statistics.median(t[1] for t in runs))
           for name, runs in results.items()}
    ratio_ttft = med["studio"][0] / med["direct"][0]
    ratio_total = med["studio"][1] / med["direct"][1]
    print(f"\n{title}  (n={len(results['studio'])} each, medians)")
    print(f"  {'path':<8} {'TTFT ms':>10} {'total ms':>10}")
    for name in ("studio", "direct"):
        print(f"  {name:<8} {med[name][0] * 1000:>10.2f} {med[name][1] * 1000:>10.2f}")
    verdict = lambda r: "ok" if r < GOAL else f"ABOVE GOAL {GOAL:.2f}"   # noqa: E731
    print(f"  ratio studio/direct: TTFT {ratio_ttft:.3f} ({verdict(ratio_ttft)}), "
          f"total {ratio_total:.3f} ({verdict(ratio_total)})")
    return ratio_ttft, ratio_total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=80, help="measured turns per path")
    parser.add_argument("--warmup", type=int, default=30, help="turns per path not measured")
    parser.add_argument("--delta-ms", type=float, default=5.0, help="fake server delay before each delta")
    parser.add_argument("--words", type=int, default=20, help="words in the message (reply = words + 2 deltas)")
    parser.add_argument("--skip-chat", action="store_true", help="only the Responses API pair")
    args = parser.parse_args()

    text = " ".join(f"word{n}" for n in range(args.words))
    started = time.perf_counter()
    with FakeOpenAI(delta_delay=args.delta_ms / 1000) as fake:
        print(f"fake server {fake.base_url}, {args.delta_ms:g} ms per delta, {args.words + 2} deltas a reply, "
              f"{args.warmup} warm-up + {args.iterations} measured turns per path")
        report("OpenAIProvider (Responses API) vs client.responses.create",
               measure(*responses_pair(fake, text), args.iterations, args.warmup))
        if not args.skip_chat:
            report("CompatibleProvider vs client.chat.completions.create",
                   measure(*chat_pair(fake, text), args.iterations, args.warmup))
    print(f"\nfinished in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
