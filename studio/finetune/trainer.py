"""The local LoRA trainer: chat examples in, a peft adapter for the embedded model out.

A plain function API (no Streamlit, no database): the job worker calls `train_lora` and turns
its `TrainEvent`s into store rows; a test or a bench calls it directly.

    result = train_lora(prepared.train, prepared.validation, LocalTrainOptions(epochs=3),
                        out_dir=Path("jobs/abc"), model_dir=settings.model_dir, on_event=print)

What it does, and why:
- LoRA (peft) on every linear layer of SmolLM2-135M-Instruct, loaded through studio.local_model
  (the workspace's safetensors copy, else the bundled GGUF) with the GGUF quantization marker
  cleared (it would make transformers refuse to train weights that are already float).
- Loss on the reply tokens only: the example is laid out with the tokenizer's ChatML template;
  the system/user tokens (and an assistant turn with "weight": 0) get label -100.
- Speed on a laptop CPU: batches of 4 padded to the longest in the batch, base weights in
  bfloat16 with autocast where the CPU computes bf16 natively (else float32). The LoRA
  weights and the optimizer stay float32. CUDA is used when torch sees a GPU. LoRA sits on the
  top 10 blocks, and after an example's first pass the frozen blocks below are not run again
  for it (FrozenStart): the product trains the sample set in about a third of a batch-1 float32
  loop's time (bench/local_finetune.py).
- Checkpoints in out_dir/checkpoints/step-NNNNNN/ at the end of each epoch and when stopped
  (written to a temporary folder, then renamed: a folder with that name is always complete);
  `resume=True` continues from the newest one, so a killed run loses at most the current epoch.
- The final adapter goes to out_dir/adapter/ (peft's save_pretrained) with training.json (base
  model, options, metrics).
- Deterministic for a given seed: LoRA init, the per-epoch shuffles and the RNG state are seeded
  and kept in the checkpoints.

torch and peft are imported inside the functions, so the dataclasses here are cheap to import.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from studio.datasets.types import Example
from studio.finetune.frozen import FrozenStart

log = logging.getLogger(__name__)

IGNORE = -100                     # the label the loss skips (torch's cross_entropy default)
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
TRAINING_JSON = "training.json"
STATE_JSON = "state.json"
STATE_PT = "training_state.pt"
KEEP_CHECKPOINTS = 2              # the newest two: if the newest is unreadable the one before still is
_CHECKPOINT_NAME = re.compile(r"^step-(\d+)$")

EventKind = Literal["step", "epoch", "checkpoint", "done"]


class TrainError(RuntimeError):
    """Training could not start, go on or save; the text says what happened and what to do."""


# Every linear layer of a Llama-style block (what "all-linear" picks in SmolLM2).
LINEAR_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class LocalTrainOptions:
    """The hyperparameters of a local LoRA run (defaults suit ~50 short examples on a CPU).

    `too_long`: what to do with an example over `max_length` tokens: "truncate" keeps its first
    `max_length` tokens (skipped anyway when no reply token would be left), "skip" leaves it out.
    `precision`: "auto" (bfloat16 weights with autocast where the device has it) or "fp32".
    `threads`: torch CPU threads (None: the cores this process may use).
    `checkpoint_every`: also checkpoint every N steps (0: only at epoch ends and on stop).
    `lora_layers`: LoRA on the top N transformer blocks only (0: all of them). The backward pass
    then stops at the lowest adapted block: on a CPU a step takes about half as long with the
    top 10 of SmolLM2's 30, and a short style (e.g. a sign-off) is learned as well.
    """
    epochs: int = 3
    learning_rate: float = 2e-3
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    max_length: int = 512
    batch_size: int = 4
    seed: int = 0
    warmup_steps: int = 2
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    too_long: Literal["truncate", "skip"] = "truncate"
    precision: Literal["auto", "fp32"] = "auto"
    threads: int | None = None
    checkpoint_every: int = 0
    lora_layers: int = 10

    def to_json(self) -> dict:
        """The options as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "LocalTrainOptions":
        """The options `to_json` gave; unknown keys are dropped."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known.setdefault("lora_layers", 0)   # jobs from before lora_layers trained every block
        return cls(**known)

    def check(self) -> None:
        """TrainError for options no run can use."""
        rules = [(isinstance(self.epochs, int) and 1 <= self.epochs <= 100, "epochs must be from 1 to 100"),
                 (0 < self.learning_rate < 1, "the learning rate must be above 0 and below 1"),
                 (isinstance(self.lora_rank, int) and 1 <= self.lora_rank <= 256, "the LoRA rank must be 1 to 256"),
                 (self.lora_alpha > 0, "the LoRA alpha must be above 0"),
                 (0 <= self.lora_dropout < 1, "the LoRA dropout must be from 0 to below 1"),
                 (isinstance(self.max_length, int) and 16 <= self.max_length <= 8192,
                  "the max length must be 16 to 8192 tokens"),
                 (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 256, "the batch size must be 1 to 256"),
                 (self.too_long in ("truncate", "skip"), "too_long must be 'truncate' or 'skip'"),
                 (self.precision in ("auto", "fp32"), "precision must be 'auto' or 'fp32'"),
                 (isinstance(self.lora_layers, int) and 0 <= self.lora_layers <= 1000,
                  "lora_layers must be 0 (all) or a number of blocks")]
        for ok, message in rules:
            if not ok:
                raise TrainError(f"Cannot train: {message}.")

    def resume_key(self) -> dict:
        """The options a checkpoint must share with the run that resumes it."""
        data = self.to_json()
        for free in ("threads", "checkpoint_every"):   # how, not what, is trained
            data.pop(free)
        return data


@dataclass(frozen=True)
class TrainEvent:
    """What the trainer reports: a step, an epoch's end (with the validation loss), a saved
    checkpoint, or the end of the run. Losses are per reply token; None where not measured."""
    kind: EventKind
    step: int
    total_steps: int
    epoch: int                     # 1-based: the epoch this step belongs to
    epochs: int
    train_loss: float | None = None
    valid_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float = 0.0
    path: str = ""                 # the checkpoint or adapter folder
    message: str = ""


@dataclass(frozen=True)
class Encoded:
    """One example as token ids and labels (IGNORE where the loss does not look)."""
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def reply_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


@dataclass
class TrainResult:
    """How a run ended. `stopped`: should_stop() ended it early (a checkpoint was saved; call
    again with resume=True to go on); then `adapter_dir` is None."""
    adapter_dir: Path | None
    steps: int
    total_steps: int
    epochs_done: int
    stopped: bool
    train_loss: float | None             # mean over the last epoch's steps
    valid_loss: float | None             # after the last finished epoch
    seconds: float                       # this call's wall time
    tokens_per_s: float | None
    resumed_from_step: int = 0
    device: str = "cpu"
    precision: str = "fp32"              # what "auto" became on this device
    skipped: dict[str, int] = field(default_factory=dict)    # reason -> examples left out
    truncated: int = 0
    history: list[dict] = field(default_factory=list)        # one record per step and per epoch end


# --- examples to tokens ------------------------------------------------------------------

def encode_example(tokenizer, messages: list[dict[str, Any]]) -> Encoded:
    """Token ids and labels for one chat example, laid out by the tokenizer's chat template.

    Only assistant turns are learned (their text and the end-of-turn token); every system and
    user token, the template's own markers and an assistant turn with "weight": 0 get IGNORE.
    Each turn is rendered as the template's text for messages[:i+1] minus that for messages[:i],
    so the ids are exactly what the template would give for the whole conversation.
    """
    ids: list[int] = []
    labels: list[int] = []
    done_text = ""
    end_id = tokenizer.eos_token_id
    for i, message in enumerate(messages):
        if message.get("role") == "assistant":
            head = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
            _append(tokenizer, head[len(done_text):], ids, labels, learn=False)
            full = tokenizer.apply_chat_template(messages[:i + 1], tokenize=False)
            if not (head.startswith(done_text) and full.startswith(head)):
                raise TrainError("The model's chat template does not lay out a conversation turn by turn; "
                                 "the reply tokens cannot be told from the prompt's.")
            reply = _token_ids(tokenizer, full[len(head):])
            learn = message.get("weight", 1) != 0
            # Learn up to and including the end-of-turn token (so the model learns to stop),
            # not the newline the template puts after it.
            cut = reply.index(end_id) + 1 if end_id in reply else len(reply)
            ids.extend(reply)
            labels.extend((reply[:cut] if learn else [IGNORE] * cut) + [IGNORE] * (len(reply) - cut))
            done_text = full
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    _append(tokenizer, full[len(done_text):], ids, labels, learn=False)   # e.g. a trailing user turn
    return Encoded(ids, labels)


def _token_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _append(tokenizer, text: str, ids: list[int], labels: list[int], learn: bool) -> None:
    new = _token_ids(tokenizer, text)
    ids.extend(new)
    labels.extend(new if learn else [IGNORE] * len(new))


def encode_examples(tokenizer, examples: list[Example], options: LocalTrainOptions,
                    skipped: dict[str, int]) -> tuple[list[Encoded], int]:
    """The examples as `Encoded`, fitted to `options.max_length`; (encoded, truncated count).

    Left out, counted in `skipped` by reason: examples with no reply to learn, and examples
    over the limit when too_long is "skip" (or when truncating would leave no reply token).
    """
    encoded: list[Encoded] = []
    truncated = 0
    for example in examples:
        item = encode_example(tokenizer, example.messages)
        if item.reply_tokens == 0:
            _count(skipped, "no reply tokens to learn")
            continue
        if len(item.input_ids) > options.max_length:
            if options.too_long == "skip":
                _count(skipped, f"longer than {options.max_length} tokens")
                continue
            item = Encoded(item.input_ids[:options.max_length], item.labels[:options.max_length], truncated=True)
            if item.reply_tokens == 0:
                _count(skipped, f"prompt alone is {options.max_length} tokens or more")
                continue
            truncated += 1
        encoded.append(item)
    return encoded, truncated


def _count(counts: dict[str, int], reason: str) -> None:
    counts[reason] = counts.get(reason, 0) + 1


def epoch_batches(items: list[Encoded], size: int, seed: int, epoch: int) -> list[list[Encoded]]:
    """The batches of one epoch: shuffled (seeded by seed and epoch, so a resumed run sees the
    same ones), then sorted by length within windows of 8 batches so that a batch pads little,
    and the batches shuffled again."""
    import torch
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(len(items), generator=generator).tolist()
    window = size * 8
    order = [i for start in range(0, len(order), window)
             for i in sorted(order[start:start + window], key=lambda i: len(items[i].input_ids))]
    batches = [[items[i] for i in order[start:start + size]] for start in range(0, len(order), size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _collate(batch: list[Encoded], pad_id: int, device):
    """Right-padded tensors, as long as the batch's longest example (not max_length)."""
    import torch
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return ids.to(device), mask.to(device), labels.to(device)


def _loss_sum(setup: "_Setup", batch: list[Encoded], ids, mask, labels):
    """(sum of the reply tokens' cross-entropy, how many reply tokens) for one batch.

    The vocabulary projection (49k outputs per token) runs on the reply positions only: the
    prompt's logits would be thrown away, and skipping them saves a good part of each step.
    """
    import torch.nn.functional as F
    base = setup.model.get_base_model()
    if setup.frozen is not None:
        hidden = setup.frozen.hidden(base.model, batch, ids, mask)
    else:
        hidden = base.model(input_ids=ids, attention_mask=mask).last_hidden_state
    hidden = hidden[:, :-1, :]
    targets = labels[:, 1:]
    keep = targets != IGNORE
    logits = base.lm_head(hidden[keep])
    loss = F.cross_entropy(logits.float(), targets[keep], reduction="sum")
    return loss, int(keep.sum())


# --- the run -----------------------------------------------------------------------------

@dataclass
class _Setup:
    """The model and what runs it (kept together so evaluation uses the same settings)."""
    model: Any
    tokenizer: Any
    device: Any
    autocast_dtype: Any     # None: no autocast
    frozen: FrozenStart | None = None   # None: every block is adapted


def train_lora(train: list[Example], validation: list[Example], options: LocalTrainOptions, out_dir: Path,
               model_dir: Path, on_event: Callable[[TrainEvent], None] | None = None,
               should_stop: Callable[[], bool] | None = None, resume: bool = True) -> TrainResult:
    """Train a LoRA adapter for the embedded model on `train`, report the loss on `validation`.

    `out_dir`: this run's folder (checkpoints/ and adapter/ go there). `model_dir`: the workspace
    model cache (studio.local_model). `on_event`: called after each step, each epoch (with the
    validation loss), each checkpoint and at the end. `should_stop`: polled before each step;
    True saves a checkpoint and returns with `stopped=True`. `resume`: continue from the newest
    checkpoint in out_dir (False starts over and deletes the old ones).
    Raises TrainError (nothing to train, a checkpoint from other options or data, a full disk
    while saving) and ModelLoadError (the embedded model cannot be loaded).
    """
    started = time.perf_counter()
    options.check()
    out_dir = Path(out_dir)
    report = on_event or (lambda _event: None)
    stop = should_stop or (lambda: False)

    import torch
    setup = _load(model_dir, options)
    tokenizer = setup.tokenizer
    skipped: dict[str, int] = {}
    items, truncated = encode_examples(tokenizer, train, options, skipped)
    if not items:
        reasons = "; ".join(f"{n} {reason}" for reason, n in skipped.items()) or "no training examples"
        raise TrainError(f"Nothing to train on ({reasons}).")
    valid_skipped: dict[str, int] = {}
    valid_items, _ = encode_examples(tokenizer, validation, options, valid_skipped)
    fingerprint = _fingerprint(train, validation)

    steps_per_epoch = math.ceil(len(items) / options.batch_size)
    total_steps = steps_per_epoch * options.epochs
    model = setup.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.learning_rate, weight_decay=options.weight_decay)
    warmup = min(options.warmup_steps, total_steps // 4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup
        else max(0.0, (total_steps - s) / max(1, total_steps - warmup)))

    checkpoints = out_dir / CHECKPOINTS
    state: dict[str, Any] = {"step": 0, "history": []}
    if resume:
        found = latest_checkpoint(out_dir)
        if found is not None:
            state = _load_checkpoint(found, model, optimizer, scheduler, options, fingerprint)
    else:
        shutil.rmtree(checkpoints, ignore_errors=True)
    _remove_partial(checkpoints)
    step = resumed_from = saved_step = int(state["step"])
    history: list[dict] = list(state["history"])

    def save(at: int) -> None:
        nonlocal saved_step
        if at != saved_step or latest_checkpoint(out_dir) is None:
            _checkpoint(out_dir, model, optimizer, scheduler, options, fingerprint, at, history, report,
                        total_steps, steps_per_epoch, started)
            saved_step = at

    pad_id = _pad_id(tokenizer)
    model.train()
    run_tokens = 0
    run_steps = 0
    loop_started = time.perf_counter()
    stopped = False
    while step < total_steps:
        epoch = step // steps_per_epoch            # 0-based here; 1-based in events
        batches = epoch_batches(items, options.batch_size, options.seed, epoch)
        for batch in batches[step - epoch * steps_per_epoch:]:
            if stop():
                stopped = True
                break
            ids, mask, labels = _collate(batch, pad_id, setup.device)
            with _autocast(setup):
                loss_sum, n = _loss_sum(setup, batch, ids, mask, labels)
            loss = loss_sum / max(n, 1)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, options.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            run_steps += 1
            run_tokens += int(mask.sum())
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainError(f"The training loss became {value} at step {step}: lower the learning rate "
                                 "and start over.")
            lr = scheduler.get_last_lr()[0]
            elapsed = time.perf_counter() - loop_started
            per_step = elapsed / run_steps
            history.append({"kind": "step", "step": step, "epoch": epoch + 1, "train_loss": value, "lr": lr,
                            "tokens": int(mask.sum())})
            report(TrainEvent("step", step, total_steps, epoch + 1, options.epochs, train_loss=value,
                              learning_rate=lr, tokens_per_s=run_tokens / elapsed if elapsed else None,
                              eta_s=per_step * (total_steps - step), elapsed_s=time.perf_counter() - started))
            if options.checkpoint_every and step % options.checkpoint_every == 0 and step % steps_per_epoch:
                save(step)
        if stopped:
            break
        valid_loss = evaluate(setup, valid_items, options.batch_size) if valid_items else None
        model.train()
        epoch_losses = [h["train_loss"] for h in history if h["kind"] == "step" and h["epoch"] == epoch + 1]
        train_loss = sum(epoch_losses) / len(epoch_losses) if epoch_losses else None
        history.append({"kind": "epoch", "step": step, "epoch": epoch + 1, "train_loss": train_loss,
                        "valid_loss": valid_loss})
        report(TrainEvent("epoch", step, total_steps, epoch + 1, options.epochs, train_loss=train_loss,
                          valid_loss=valid_loss, elapsed_s=time.perf_counter() - started))
        save(step)

    if stopped and step != saved_step:
        save(step)
    epochs = [h for h in history if h["kind"] == "epoch"]
    elapsed = time.perf_counter() - loop_started
    result = TrainResult(
        adapter_dir=None, steps=step, total_steps=total_steps, epochs_done=len(epochs), stopped=stopped,
        train_loss=epochs[-1]["train_loss"] if epochs else None,
        valid_loss=epochs[-1]["valid_loss"] if epochs else None,
        seconds=0.0, tokens_per_s=run_tokens / elapsed if run_tokens and elapsed else None,
        resumed_from_step=resumed_from, device=str(setup.device),
        precision="bf16" if setup.autocast_dtype is not None else "fp32", skipped=skipped, truncated=truncated,
        history=history)
    if not stopped:
        result.adapter_dir = _save_adapter(out_dir, model, options, result, len(items), len(valid_items))
    result.seconds = time.perf_counter() - started
    report(TrainEvent("done", step, total_steps, result.epochs_done, options.epochs, train_loss=result.train_loss,
                      valid_loss=result.valid_loss, tokens_per_s=result.tokens_per_s, elapsed_s=result.seconds,
                      path=str(result.adapter_dir or ""), message="stopped" if stopped else "finished"))
    return result


def evaluate(setup: _Setup, items: list[Encoded], batch_size: int) -> float | None:
    """Mean cross-entropy per reply token over `items` (no gradients, dropout off)."""
    import torch
    setup.model.eval()
    total, count = 0.0, 0
    items = sorted(items, key=lambda e: len(e.input_ids))   # a mean over tokens: sorted batches pad little
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            ids, mask, labels = _collate(batch, _pad_id(setup.tokenizer), setup.device)
            with _autocast(setup):
                loss_sum, n = _loss_sum(setup, batch, ids, mask, labels)
            total += float(loss_sum)
            count += n
    return total / count if count else None


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _autocast(setup: _Setup):
    import contextlib

    import torch
    if setup.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=setup.device.type, dtype=setup.autocast_dtype)


def _load(model_dir: Path, options: LocalTrainOptions) -> _Setup:
    """A fresh copy of the embedded model (training changes it), with LoRA layers added."""
    import torch
    from peft import LoraConfig, get_peft_model

    from studio import local_model

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda:
        # More threads than the cores this process may use only adds contention.
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:   # not on Linux
            cores = os.cpu_count() or 1
        torch.set_num_threads(max(1, options.threads or cores))
    loaded = local_model.load_local_model(Path(model_dir))
    model, tokenizer = loaded.model, loaded.tokenizer
    local_model._clear_gguf_marker(model)   # a model read from the GGUF keeps a marker that blocks training
    dtype = torch.bfloat16 if options.precision == "auto" and _native_bf16(cuda) else None
    if dtype is not None:
        model.to(dtype)   # frozen base in bf16: half the memory traffic; peft keeps LoRA weights fp32
    model.to(device)
    torch.manual_seed(options.seed)   # LoRA's A matrices are drawn at random: seed them
    layers = model.config.num_hidden_layers
    top = list(range(layers - options.lora_layers, layers)) if 0 < options.lora_layers < layers else None
    config = LoraConfig(r=options.lora_rank, lora_alpha=options.lora_alpha, lora_dropout=options.lora_dropout,
                        target_modules="all-linear" if top is None else LINEAR_MODULES,
                        layers_to_transform=top, task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    model.config.use_cache = False
    # Blocks of other kinds (sliding windows, mixed layer types) are chosen by their index, which
    # the shortcut shifts: there every pass runs every block.
    uniform = not getattr(model.config, "sliding_window", None) and len(set(getattr(model.config, "layer_types",
                                                                                        None) or [])) <= 1
    return _Setup(model, tokenizer, device, dtype, FrozenStart(top[0]) if top and uniform else None)


def _native_bf16(cuda: bool) -> bool:
    """Whether the device computes in bfloat16 natively. On a CPU without AVX512-BF16 or AMX,
    bf16 is emulated: a training step took 2.5x as long as in float32 here (AVX512 Xeon)."""
    import torch
    if cuda:
        return torch.cuda.is_bf16_supported()
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def _fingerprint(train: list[Example], validation: list[Example]) -> str:
    data = json.dumps([[e.messages for e in train], [e.messages for e in validation]], sort_keys=True)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


# --- saving and resuming -----------------------------------------------------------------

def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint folder in out_dir/checkpoints (None: there is none)."""
    folder = Path(out_dir) / CHECKPOINTS
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if (m := _CHECKPOINT_NAME.match(p.name)) and (p / STATE_JSON).exists()]
    return max(found)[1] if found else None


def _remove_partial(folder: Path) -> None:
    """Temporary folders a killed save left behind."""
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)


def _checkpoint(out_dir: Path, model, optimizer, scheduler, options: LocalTrainOptions, fingerprint: str,
                step: int, history: list[dict], report, total_steps: int, steps_per_epoch: int,
                started: float) -> Path:
    """Save adapter + optimizer/scheduler + RNG + position as checkpoints/step-NNNNNN."""
    import torch
    folder = out_dir / CHECKPOINTS
    final = folder / f"step-{step:06d}"

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng},
                   tmp / STATE_PT)
        # state.json last: its presence marks a readable checkpoint (the rename makes it visible).
        _write_json(tmp / STATE_JSON, {"step": step, "epoch": step // steps_per_epoch, "seed": options.seed,
                                       "options": options.resume_key(), "fingerprint": fingerprint,
                                       "history": history})

    _save_atomically(final, write, "a checkpoint")
    for old in sorted((p for p in folder.iterdir() if _CHECKPOINT_NAME.match(p.name)),
                      key=lambda p: int(p.name[5:]))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    epoch = min(options.epochs, max(1, math.ceil(step / steps_per_epoch)))
    report(TrainEvent("checkpoint", step, total_steps, epoch, options.epochs, path=str(final),
                      elapsed_s=time.perf_counter() - started))
    return final


def _load_checkpoint(folder: Path, model, optimizer, scheduler, options: LocalTrainOptions,
                     fingerprint: str) -> dict:
    """Restore a checkpoint into the model, optimizer and scheduler; its state.json data."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    try:
        state = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainError(f"The checkpoint {folder} cannot be read ({exc}); start over without resuming.") from None
    if {"lora_layers": 0, **state.get("options", {})} != options.resume_key():
        raise TrainError(f"The checkpoint in {folder.parent} was made with other options; resume with the same "
                         "options or start over.")
    if state.get("fingerprint") != fingerprint:
        raise TrainError(f"The checkpoint in {folder.parent} was made from other examples; resume with the same "
                         "dataset or start over.")
    try:
        weights = load_file(str(folder / "adapter_model.safetensors"))
        set_peft_model_state_dict(model, weights)
        saved = torch.load(folder / STATE_PT, map_location="cpu", weights_only=False)
    except Exception as exc:   # a damaged file: any error the readers raise
        raise TrainError(f"The checkpoint {folder} is damaged ({type(exc).__name__}); delete it to resume from "
                         "the one before, or start over.") from None
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"]["torch"])
    if "cuda" in saved["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
    return state


def _save_adapter(out_dir: Path, model, options: LocalTrainOptions, result: TrainResult, n_train: int,
                  n_valid: int) -> Path:
    """The final adapter (peft save_pretrained) with training.json, as out_dir/adapter."""
    from studio.local_model import MODEL_ID
    final = out_dir / ADAPTER
    summary = {"base_model": MODEL_ID, "options": options.to_json(), "steps": result.steps,
               "epochs": result.epochs_done, "train_loss": result.train_loss, "valid_loss": result.valid_loss,
               "train_examples": n_train, "validation_examples": n_valid, "skipped": result.skipped,
               "truncated": result.truncated, "device": result.device, "precision": result.precision,
               "history": result.history}

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        _write_json(tmp / TRAINING_JSON, summary)

    _save_atomically(final, write, "the adapter")
    return final


def _save_atomically(final: Path, write: Callable[[Path], None], what: str) -> None:
    """Write into a temporary sibling folder, then rename it into place (a kill mid-save leaves
    only the temporary folder, which is never taken for a finished one)."""
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    old = final.parent / f".tmp-{final.name}-{os.getpid()}-old"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        if final.exists():   # renamed away, not deleted in place: no half-deleted folder under the real name
            shutil.rmtree(old, ignore_errors=True)
            final.replace(old)
        tmp.replace(final)
        shutil.rmtree(old, ignore_errors=True)
    except Exception as exc:   # OSError, and torch's or safetensors' own errors for a failed write
        shutil.rmtree(tmp, ignore_errors=True)
        if _disk_full(exc, final.parent):
            raise TrainError(f"Could not save {what}: the disk is full. Free some space in {final.parent}, "
                             "then resume the training.") from None
        if isinstance(exc, OSError):
            raise TrainError(f"Could not save {what} in {final.parent}: {exc.strerror or exc}.") from None
        raise


def _disk_full(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:   # torch and safetensors wrap a failed write in their own errors: look at the disk itself
        return shutil.disk_usage(folder).free < 64 * 2**20
    except OSError:
        return False


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
