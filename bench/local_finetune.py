"""Local fine-tuning: the product's trainer (studio.finetune.trainer.train_lora, defaults) vs a
plain peft training loop on the same data, in the same run.

The data is data/samples/comments.csv prepared as `python -m studio dataset prepare` does
(guessed columns, validation 0.2, seed 0: 50 train / 13 validation examples). The plain loop:
batch 1, float32, LoRA r=8 (alpha 16) on all linear layers, AdamW lr 2e-4, 3 epochs, loss on
the reply tokens. Each trainer runs in its own subprocess, so each peak memory (RSS high-water)
is its own; the base model's replies are measured in a third one. After training, every
validation prompt is answered greedily (at most 60 new tokens) and we count the replies that
end with the signature " -Sam".
    .venv/bin/python bench/local_finetune.py [--epochs 3] [--plain-lr 2e-4]
Goals: product/plain wall time <= 0.4; peak memory < 2.5 GiB; >= 90% of tuned replies signed.
Exits non-zero only if the bench itself crashes.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "data" / "samples" / "comments.csv"
SIGNATURE = " -Sam"
MAX_NEW_TOKENS = 60


def model_dir() -> Path:
    return Path(os.environ.get("STUDIO_MODEL_CACHE") or ROOT / ".cache" / "models")


def prepare_sample(folder: Path) -> tuple[int, int]:
    """The sample through studio.datasets as the CLI prepares it; train/validation JSONL in `folder`."""
    from studio.datasets import PrepareOptions, guess_columns, prepare, read_source
    data = SAMPLE.read_bytes()
    source = read_source(data, SAMPLE.name)
    guess = guess_columns(source)
    prepared = prepare(source, PrepareOptions(prompt_column=guess.prompt, response_column=guess.response,
                                              validation_fraction=0.2, seed=0), model_dir=model_dir())
    for name, examples in (("train", prepared.train), ("validation", prepared.validation)):
        lines = [json.dumps({"row": e.row, "messages": e.messages}) for e in examples]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(prepared.train), len(prepared.validation)


def read_examples(path: Path):
    from studio.datasets.types import Example
    return [Example(d["row"], d["messages"]) for d in map(json.loads, path.read_text(encoding="utf-8").splitlines())]


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # Linux: KiB


def signed_fraction(model, tokenizer, validation) -> tuple[float, list[str]]:
    """Greedy replies to the validation prompts; the share that ends with the signature."""
    import torch
    model.eval()
    replies = []
    for example in validation:
        prompt = [m for m in example.messages if m["role"] != "assistant"]
        inputs = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                 pad_token_id=tokenizer.eos_token_id)
        replies.append(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return sum(r.endswith(SIGNATURE) for r in replies) / len(replies), replies


# --- the workers (each in its own process) -------------------------------------------------

def worker_base(folder: Path) -> dict:
    from studio.local_model import load_local_model
    local = load_local_model(model_dir())
    fraction, replies = signed_fraction(local.model, local.tokenizer, read_examples(folder / "validation.jsonl"))
    return {"signed": fraction, "sample": replies[:3]}


def worker_product(folder: Path, epochs: int) -> dict:
    from peft import PeftModel

    from studio.finetune.trainer import LocalTrainOptions, train_lora
    from studio.local_model import load_local_model

    train, validation = read_examples(folder / "train.jsonl"), read_examples(folder / "validation.jsonl")
    started = time.perf_counter()
    result = train_lora(train, validation, LocalTrainOptions(epochs=epochs), folder / "product", model_dir(),
                        resume=False)
    seconds = time.perf_counter() - started
    peak = peak_rss_gib()
    local = load_local_model(model_dir())   # as the app uses it: float32 base + the adapter
    tuned = PeftModel.from_pretrained(local.model, result.adapter_dir)
    fraction, replies = signed_fraction(tuned, local.tokenizer, validation)
    return {"seconds": seconds, "peak_gib": peak, "signed": fraction, "steps": result.steps,
            "train_loss": result.train_loss, "valid_loss": result.valid_loss, "precision": result.precision,
            "sample": replies[:3]}


def worker_plain(folder: Path, epochs: int, lr: float) -> dict:
    """The baseline: the loop a tutorial would write (batch 1, float32, HF's own loss)."""
    import random

    import torch
    from peft import LoraConfig, get_peft_model

    from studio.finetune.trainer import encode_example
    from studio.local_model import load_local_model

    train, validation = read_examples(folder / "train.jsonl"), read_examples(folder / "validation.jsonl")
    started = time.perf_counter()
    local = load_local_model(model_dir())
    tokenizer = local.tokenizer
    torch.manual_seed(0)
    model = get_peft_model(local.model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                   task_type="CAUSAL_LM"))
    encoded = [encode_example(tokenizer, e.messages) for e in train]   # the same reply-only labels
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    rng = random.Random(0)
    steps = 0
    for _ in range(epochs):
        rng.shuffle(encoded)
        for item in encoded:
            ids = torch.tensor([item.input_ids[:512]])
            labels = torch.tensor([item.labels[:512]])
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            steps += 1
    seconds = time.perf_counter() - started
    peak = peak_rss_gib()
    fraction, replies = signed_fraction(model, tokenizer, validation)
    return {"seconds": seconds, "peak_gib": peak, "signed": fraction, "steps": steps, "train_loss": float(loss),
            "sample": replies[:3]}


def run_worker(name: str, folder: Path, args) -> dict:
    """`name` in a fresh Python process; its JSON result."""
    command = [sys.executable, __file__, "--worker", name, "--folder", str(folder), "--epochs", str(args.epochs),
               "--plain-lr", str(args.plain_lr)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"the {name} worker failed (exit {done.returncode})")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_peak_gib"] = result.pop("_process_peak_gib")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--plain-lr", type=float, default=2e-4)
    parser.add_argument("--worker", choices=["base", "product", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        import warnings
        warnings.filterwarnings("ignore")
        folder = Path(args.folder)
        result = {"base": lambda: worker_base(folder), "product": lambda: worker_product(folder, args.epochs),
                  "plain": lambda: worker_plain(folder, args.epochs, args.plain_lr)}[args.worker]()
        result["_process_peak_gib"] = peak_rss_gib()
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="studio-bench-ft-") as tmp:
        folder = Path(tmp)
        n_train, n_valid = prepare_sample(folder)
        print(f"{SAMPLE.name}: {n_train} train / {n_valid} validation examples, {args.epochs} epochs "
              f"({os.cpu_count()} CPUs)")
        base = run_worker("base", folder, args)
        print(f"base model: {base['signed']:.0%} of validation replies end with {SIGNATURE!r}")
        plain = run_worker("plain", folder, args)
        print(f"plain loop (batch 1, fp32, lr {args.plain_lr:g}): {plain['seconds']:7.1f} s, {plain['steps']} steps, "
              f"peak {plain['peak_gib']:.2f} GiB while training ({plain['process_peak_gib']:.2f} with generation), "
              f"signed {plain['signed']:.0%}")
        product = run_worker("product", folder, args)
        print(f"product (train_lora defaults, {product['precision']}): {product['seconds']:7.1f} s, "
              f"{product['steps']} steps, peak {product['peak_gib']:.2f} GiB while training "
              f"({product['process_peak_gib']:.2f} with generation), signed {product['signed']:.0%}, "
              f"train loss {product['train_loss']:.3f}, validation loss {product['valid_loss']:.3f}")
        ratio = product["seconds"] / plain["seconds"]
        print(f"ratio product/plain wall time = {ratio:.2f}   (goal <= 0.4)")
        print(f"peak memory: product {product['process_peak_gib']:.2f} GiB, plain {plain['process_peak_gib']:.2f} GiB"
              "   (goal < 2.5)")
        print(f"signed replies: base {base['signed']:.0%}, plain {plain['signed']:.0%}, "
              f"product {product['signed']:.0%}   (goal >= 90% tuned)")
        print("product sample replies:")
        for reply in product["sample"]:
            print(f"  {reply!r}")


if __name__ == "__main__":
    main()
