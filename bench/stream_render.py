"""What does making a streamed reply safe cost, next to simply joining its deltas?

Builds a model-like reply (paragraphs with `$` amounts and image traps, lists, fenced code,
tables, block quotes, headings) of 500, 2,000 and 8,000 word-sized deltas (about 6 characters
each), then times, in one run, on this process's CPU clock:
  - studio: every output chunk of `safe_stream(deltas)` (what the chat page hands st.write_stream),
  - baseline: a loop that appends each delta to the text, as st.write_stream does.
Prints both, their ratio, the time per delta, and how many characters markdown-it parsed per
character of reply. The ratio staying flat as the reply grows means the cost is linear; before
the streamed escaping became incremental it grew with the reply (every delta re-parsed it all).

    .venv/bin/python bench/stream_render.py [--deltas 500 2000 8000] [--repeat 3]
    .venv/bin/python bench/stream_render.py --module /path/to/other_safe_text.py   # compare
"""
from __future__ import annotations

import argparse
import importlib.util
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import studio.safe_markdown as safe_markdown_module   # noqa: E402

WORDS = ("the oven should be hot before the tray goes in so the crust sets and the filling stays "
         "soft while the sauce reduces slowly over a low flame with a pinch of salt").split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    extra = rng.random()
    if extra < 0.25:
        words.insert(rng.randrange(len(words)), f"${rng.randint(2, 90)}")
    elif extra < 0.35:
        words.insert(rng.randrange(len(words)), "![chart](http://127.0.0.1:9/c.png?q=secret)")
    elif extra < 0.5:
        words.insert(rng.randrange(len(words)), "`echo $HOME`")
    elif extra < 0.6:
        words.insert(rng.randrange(len(words)), "**note**")
    return " ".join(words).capitalize() + "."


def _block(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))
    if kind < 0.55:
        marker = rng.choice(["-", "1."])
        return "\n".join(f"{marker} {_sentence(rng)}" for _ in range(rng.randint(3, 9)))
    if kind < 0.7:
        body = "\n".join(f"echo \"{rng.choice(WORDS)} ${rng.randint(1, 9)}\" | tee ![x](y)"
                         for _ in range(rng.randint(4, 14)))
        return f"```bash\n{body}\n```"
    if kind < 0.82:
        rows = "\n".join(f"| {rng.choice(WORDS)} | ${rng.randint(1, 99)} | `{rng.choice(WORDS)}` |"
                         for _ in range(rng.randint(3, 10)))
        return f"| item | price | code |\n|---|---:|---|\n{rows}"
    if kind < 0.9:
        return "\n".join(f"> {_sentence(rng)}" for _ in range(rng.randint(2, 4)))
    return f"## {_sentence(rng)[:40]}"


def reply_deltas(count: int, seed: int = 7) -> list[str]:
    """A model-like reply cut into `count` word-sized deltas (about 6 characters each)."""
    rng = random.Random(seed)
    blocks: list[str] = []
    while sum(len(b) + 2 for b in blocks) < count * 6:
        blocks.append(_block(rng))
    text = "\n\n".join(blocks)
    pieces = re.findall(r"\s*\S+|\s+", text)   # a word with the white space before it
    # Merge or split pieces until there are exactly `count` deltas.
    while len(pieces) > count:
        i = rng.randrange(len(pieces) - 1)
        pieces[i:i + 2] = [pieces[i] + pieces[i + 1]]
    while len(pieces) < count:
        i = max(range(len(pieces)), key=lambda k: len(pieces[k]))
        half = len(pieces[i]) // 2
        pieces[i:i + 1] = [pieces[i][:half], pieces[i][half:]]
    return pieces


def _baseline(deltas: list[str]) -> str:
    text = ""
    for delta in deltas:
        text += delta
    return text


def _studio(safe_stream, deltas: list[str]) -> str:
    return "".join(safe_stream(iter(deltas)))


def _cpu(fn, *args, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn(*args)
        times.append(time.process_time() - start)
    return statistics.median(times)


def _count_parsed(module, deltas: list[str]) -> int:
    """Characters handed to markdown-it while streaming `deltas` (studio.safe_markdown only)."""
    original, parsed = module._tokens, [0]

    def counting(text):
        parsed[0] += len(text)
        return original(text)

    module._tokens = counting
    try:
        _studio(module.safe_stream, deltas)
    finally:
        module._tokens = original
    return parsed[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deltas", type=int, nargs="+", default=[500, 2000, 8000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--module", help="time safe_stream from this file instead of studio.safe_markdown")
    args = parser.parse_args()

    module = safe_markdown_module
    if args.module:
        spec = importlib.util.spec_from_file_location("other_safe_text", args.module)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    print(f"safe_stream from {module.__file__}")
    print(f"{'deltas':>7} {'chars':>7} {'baseline ms':>12} {'studio ms':>10} {'ratio':>8} "
          f"{'µs/delta':>9} {'parsed/char':>12}")
    for count in args.deltas:
        deltas = reply_deltas(count)
        size = sum(map(len, deltas))
        base = _cpu(_baseline, deltas, repeat=max(args.repeat, 21))
        studio = _cpu(_studio, module.safe_stream, deltas, repeat=args.repeat)
        parsed = (f"{_count_parsed(module, deltas) / size:12.1f}" if module is safe_markdown_module
                  else f"{'-':>12}")
        print(f"{count:>7} {size:>7} {base * 1000:>12.3f} {studio * 1000:>10.1f} {studio / base:>8.0f} "
              f"{studio / count * 1e6:>9.1f} {parsed}", flush=True)


if __name__ == "__main__":
    main()
