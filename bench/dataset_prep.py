"""Dataset preparation: 100,000 CSV rows through studio vs the tutorial's loop, same data, same run.

studio: read (pandas) + build examples + every validation rule + token counts with the model's
tokenizer + seeded split + the OpenAI train/validation JSONL written.
tutorial: csv.reader + one dict per row + an unseeded random split + json.dump per example,
with no validation and no token counts.

    .venv/bin/python bench/dataset_prep.py [--rows 100000] [--rounds 3] [--model smollm2-135m-instruct]

Goal: studio/tutorial wall-time ratio <= 1.0 (doing more, not slower). Prints rows/s too.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("STUDIO_MODEL_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "models"))

import pandas  # noqa: E402,F401  (imported before timing: both sides start warm)

from studio.assistants import compile_instructions, load_demo_assistant  # noqa: E402
from studio.datasets import PrepareOptions, openai_jsonl, prepare, read_source  # noqa: E402
from studio.datasets.export import parquet_bytes, sharegpt_json  # noqa: E402
from studio.datasets.tokens import counter_for  # noqa: E402

WORDS = ("data model video great thanks question regression split training loss validation pandas plot "
         "feature cluster python learning curve explain example really helpful could you next please why "
         "how what when gradient boosting tree forest mean median variance sample test").split()
EXTRAS = ["🎉", "!", "?", ",", "\"quoted\"", "–", "café", "\n"]


def make_csv(path: Path, rows: int) -> None:
    rng = random.Random(0)

    def sentence(lo: int, hi: int) -> str:
        words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(EXTRAS))
        return " ".join(words).capitalize()

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Comment", "Response"])
        for _ in range(rows):
            writer.writerow([sentence(6, 24), sentence(10, 30)])


def tutorial(csv_path: Path, out: Path, system: str, suffix: str) -> float:
    """The course notebook's way: csv.reader, a dict per row, random split, json.dump per line."""
    start = time.perf_counter()
    examples = []
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        for comment, response in reader:
            examples.append({"messages": [{"role": "system", "content": system},
                                          {"role": "user", "content": comment},
                                          {"role": "assistant", "content": response + suffix}]})
    validation_index = set(random.sample(range(len(examples)), len(examples) // 5))
    with (out / "tutorial-train.jsonl").open("w", encoding="utf-8") as train, \
            (out / "tutorial-validation.jsonl").open("w", encoding="utf-8") as validation:
        for i, example in enumerate(examples):
            target = validation if i in validation_index else train
            json.dump(example, target)
            target.write("\n")
    return time.perf_counter() - start


def studio(csv_path: Path, out: Path, system: str, suffix: str, model: str):
    start = time.perf_counter()
    data = csv_path.read_bytes()
    source = read_source(data, csv_path.name)
    prepared = prepare(source, PrepareOptions("Comment", "Response", system_prompt=system, suffix=suffix,
                                              model=model), model_dir=Path(os.environ["STUDIO_MODEL_CACHE"]))
    (out / "train.jsonl").write_bytes(openai_jsonl(prepared.train))
    (out / "validation.jsonl").write_bytes(openai_jsonl(prepared.validation))
    return time.perf_counter() - start, prepared


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    system = compile_instructions(load_demo_assistant("bench"))
    suffix = " -Sam"
    counter_for(args.model, Path(os.environ["STUDIO_MODEL_CACHE"]))   # load the tokenizer once, untimed
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "comments.csv"
        make_csv(csv_path, args.rows)
        print(f"{args.rows:,} rows, {csv_path.stat().st_size / 1e6:.1f} MB CSV; model {args.model}")
        ours, theirs = [], []
        for _ in range(args.rounds):   # interleaved, so both sides see the same machine load
            prepared = None   # and the same heap: the last round's examples are freed first
            theirs.append(tutorial(csv_path, folder, system, suffix))
            seconds, prepared = studio(csv_path, folder, system, suffix, args.model)
            ours.append(seconds)
        start = time.perf_counter()
        parquet_bytes(prepared.train)
        sharegpt_json(prepared.train)
        open_formats = time.perf_counter() - start
    o, t = statistics.median(ours), statistics.median(theirs)
    c, tok = prepared.counts, prepared.tokens
    print(f"tutorial loop: {t:.2f} s ({args.rows / t:,.0f} rows/s)  [{', '.join(f'{x:.2f}' for x in theirs)}]")
    print(f"studio:        {o:.2f} s ({args.rows / o:,.0f} rows/s)  [{', '.join(f'{x:.2f}' for x in ours)}]")
    print(f"  kept {c.kept:,} (train {c.train:,}, validation {c.validation:,}), {len(prepared.issues):,} issues; "
          f"{tok.train + tok.validation:,} tokens counted ({tok.tokenizer})")
    print(f"  Parquet + ShareGPT for the training split, extra: {open_formats:.2f} s")
    paired = sorted(a / b for a, b in zip(ours, theirs, strict=True))   # each round's two runs are neighbours in time
    print(f"ratio studio/tutorial: {o / t:.2f}  (goal <= 1.0); per round: {', '.join(f'{r:.2f}' for r in paired)}, "
          f"median {statistics.median(paired):.2f}")


if __name__ == "__main__":
    main()
