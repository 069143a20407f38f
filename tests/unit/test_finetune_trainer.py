"""The local LoRA trainer on the real embedded model: a tiny dataset, a few steps (8 examples,
batches of 4, 2 epochs = 4 steps per run), reply-only labels, checkpoints, stop/kill and resume,
and an adapter that peft loads and that changes the model's output."""
from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import pytest

from studio.datasets.types import Example
from studio.finetune.trainer import (ADAPTER, CHECKPOINTS, IGNORE, TRAINING_JSON, LocalTrainOptions, TrainError,
                                     _save_atomically, encode_example, encode_examples, latest_checkpoint,
                                     train_lora)
from studio.local_model import load_local_model

MODEL_DIR = Path(os.environ["STUDIO_MODEL_CACHE"])   # tests/conftest.py: one shared cache
TINY = LocalTrainOptions(epochs=2, max_length=64, batch_size=4, seed=0)
STEPS = 4   # 8 examples / 4 per batch x 2 epochs

COMMENTS = ["Loved the part about p-values!", "Can you cover time series next?", "The audio is quiet at 3:10.",
            "Is pandas still worth learning?", "Great explanation of regression.", "What mic do you use?",
            "Please make a video on SQL joins.", "This helped me pass my exam, thanks!"]
REPLIES = ["Thanks, glad it clicked!", "It is on my list, stay tuned!", "Thanks, I will fix the audio.",
           "Yes, learn pandas first.", "Thank you, regression is a favourite.", "A cheap USB one, honestly.",
           "Joins are coming soon.", "Congratulations on the exam!"]


def chat(prompt: str, reply: str, row: int = 1, system: str | None = "You answer comments.") -> Example:
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply + " -Sam"}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return Example(row, messages)


TRAIN = [chat(p, r, i + 2) for i, (p, r) in enumerate(zip(COMMENTS, REPLIES, strict=True))]
VALIDATION = [chat("Do you have a course?", "Not yet, but soon!", 20), chat("Nice video.", "Thanks!", 21)]


@pytest.fixture(scope="module")
def tokenizer():
    return load_local_model(MODEL_DIR).tokenizer   # builds the shared cache once if it is missing


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted run, shared by the tests that look at its results."""
    out = tmp_path_factory.mktemp("full")
    events = []
    result = train_lora(TRAIN, VALIDATION, TINY, out, MODEL_DIR, on_event=events.append)
    return out, result, events


def step_losses(history: list[dict]) -> list[float]:
    return [h["train_loss"] for h in history if h["kind"] == "step"]


def test_only_the_reply_tokens_carry_labels(tokenizer):
    example = chat("Great video!", "Thanks for watching!")
    encoded = encode_example(tokenizer, example.messages)
    # The ids are exactly the chat template's for the whole conversation.
    assert encoded.input_ids == tokenizer(tokenizer.apply_chat_template(example.messages, tokenize=False),
                                          add_special_tokens=False)["input_ids"]
    learned = [i for i, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE]
    assert tokenizer.decode(learned) == "Thanks for watching! -Sam<|im_end|>"
    first = encoded.labels.index(next(label for label in encoded.labels if label != IGNORE))
    prompt = tokenizer.decode(encoded.input_ids[:first])
    assert prompt.endswith("Great video!<|im_end|>\n<|im_start|>assistant\n") and "You answer comments." in prompt
    assert all(label == IGNORE for label in encoded.labels[:first])
    assert encoded.labels[-1] == IGNORE   # the newline after <|im_end|> is not learned


def test_a_weight_0_turn_and_the_template_default_system_prompt_are_not_learned(tokenizer):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Old reply", "weight": 0},
                {"role": "user", "content": "Again?"}, {"role": "assistant", "content": "New reply"}]
    encoded = encode_example(tokenizer, messages)
    learned = [i for i, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE]
    assert tokenizer.decode(learned) == "New reply<|im_end|>"
    assert "SmolLM" in tokenizer.decode(encoded.input_ids)   # the template's own system prompt, masked


def test_examples_over_max_length_are_truncated_or_skipped_and_counted(tokenizer):
    long_reply = chat("Short question?", "word " * 80)
    long_prompt = chat("word " * 80, "Short reply.")
    skipped: dict[str, int] = {}
    kept, truncated = encode_examples(tokenizer, [long_reply, long_prompt, TRAIN[0]], TINY, skipped)
    assert len(kept) == 2 and truncated == 1 and all(len(e.input_ids) <= 64 for e in kept)
    assert skipped == {"prompt alone is 64 tokens or more": 1}
    skipped = {}
    kept, truncated = encode_examples(tokenizer, [long_reply, TRAIN[0]],
                                      LocalTrainOptions(max_length=64, too_long="skip"), skipped)
    assert len(kept) == 1 and truncated == 0 and skipped == {"longer than 64 tokens": 1}


def test_a_run_records_a_finite_loss_per_step_and_saves_checkpoints_and_the_adapter(full_run):
    out, result, events = full_run
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == [1, 2, 3, 4] and result.steps == result.total_steps == STEPS
    assert all(math.isfinite(e.train_loss) and e.tokens_per_s > 0 and e.eta_s >= 0 for e in steps)
    assert steps[-1].eta_s == 0
    epochs = [e for e in events if e.kind == "epoch"]
    assert [e.epoch for e in epochs] == [1, 2] and all(math.isfinite(e.valid_loss) for e in epochs)
    assert epochs[-1].valid_loss < epochs[0].valid_loss   # it learns
    checkpoints = [e for e in events if e.kind == "checkpoint"]
    assert [e.step for e in checkpoints] == [2, 4]   # one at the end of each epoch
    assert (out / CHECKPOINTS / "step-000002" / "adapter_model.safetensors").exists()
    assert latest_checkpoint(out) == out / CHECKPOINTS / "step-000004"
    assert events[-1].kind == "done" and result.adapter_dir == out / ADAPTER and not result.stopped
    summary = json.loads((out / ADAPTER / TRAINING_JSON).read_text())
    assert summary["base_model"] == "smollm2-135m-instruct" and summary["options"]["lora_rank"] == 8
    assert summary["steps"] == STEPS and summary["valid_loss"] == result.valid_loss
    assert not [p for p in (out / CHECKPOINTS).iterdir() if p.name.startswith(".tmp")]


def test_a_stopped_run_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_one(full_run, tmp_path):
    _, full, _ = full_run
    seen = []
    stopped = train_lora(TRAIN, VALIDATION, TINY, tmp_path, MODEL_DIR, on_event=seen.append,
                         should_stop=lambda: sum(e.kind == "step" for e in seen) >= 3)
    assert stopped.stopped and stopped.steps == 3 and stopped.adapter_dir is None
    assert latest_checkpoint(tmp_path).name == "step-000003" and not (tmp_path / ADAPTER).exists()

    resumed = train_lora(TRAIN, VALIDATION, TINY, tmp_path, MODEL_DIR)
    assert resumed.resumed_from_step == 3 and resumed.steps == resumed.total_steps == STEPS
    assert (tmp_path / ADAPTER / "adapter_model.safetensors").exists()
    # Same seed, same data: the same losses as the run that was never stopped.
    assert step_losses(resumed.history) == pytest.approx(step_losses(full.history), rel=1e-4)
    assert resumed.valid_loss == pytest.approx(full.valid_loss, rel=1e-4)


def test_a_run_killed_mid_epoch_resumes_from_the_last_epoch_checkpoint(tmp_path):
    class Killed(Exception):
        pass

    def die_at_step_3(event):
        if event.kind == "step" and event.step == 3:
            raise Killed   # as if the process died: no checkpoint for the partial epoch

    with pytest.raises(Killed):
        train_lora(TRAIN, VALIDATION, TINY, tmp_path, MODEL_DIR, on_event=die_at_step_3)
    assert latest_checkpoint(tmp_path).name == "step-000002"
    resumed = train_lora(TRAIN, VALIDATION, TINY, tmp_path, MODEL_DIR)
    assert resumed.resumed_from_step == 2 and resumed.steps == STEPS and resumed.adapter_dir is not None


def test_resuming_with_other_options_is_refused(full_run):
    out, _, _ = full_run
    with pytest.raises(TrainError, match="other options"):
        train_lora(TRAIN, VALIDATION, LocalTrainOptions(epochs=2, max_length=64, lora_rank=4), out, MODEL_DIR)


def test_the_saved_adapter_loads_with_peft_and_changes_the_output(full_run):
    import torch
    from peft import PeftModel

    out, _, _ = full_run
    local = load_local_model(MODEL_DIR)
    ids = local.tokenizer.apply_chat_template([{"role": "user", "content": "Nice video!"}],
                                              add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        base = local.model(**ids).logits
        tuned = PeftModel.from_pretrained(local.model, out / ADAPTER).eval()(**ids).logits
    assert (tuned - base).abs().max() > 1e-2


def test_a_full_disk_while_saving_is_a_clear_error_and_leaves_nothing_half_written(tmp_path):
    def write(folder: Path) -> None:
        (folder / "adapter_model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    final = tmp_path / CHECKPOINTS / "step-000002"
    with pytest.raises(TrainError, match="the disk is full"):
        _save_atomically(final, write, "a checkpoint")
    assert list((tmp_path / CHECKPOINTS).iterdir()) == []
    assert latest_checkpoint(tmp_path) is None


def test_a_folder_left_by_a_save_killed_midway_is_not_taken_for_a_checkpoint(tmp_path):
    partial = tmp_path / CHECKPOINTS / ".tmp-step-000009-1234"
    partial.mkdir(parents=True)
    (partial / "state.json").write_text("{}")
    assert latest_checkpoint(tmp_path) is None


def test_later_epochs_start_at_the_first_adapted_block_and_learn_exactly_what_the_full_pass_learns(
        full_run, tmp_path, monkeypatch):
    from studio.finetune import trainer
    _, shortcut, _ = full_run   # TINY: LoRA on the top 10 blocks, 2 epochs
    used = []
    original = trainer.FrozenStart._from_first_adapted
    monkeypatch.setattr(trainer.FrozenStart, "_from_first_adapted",
                        lambda self, *a: used.append(1) or original(self, *a))
    again = train_lora(TRAIN, VALIDATION, TINY, tmp_path / "again", MODEL_DIR, resume=False)
    assert len(used) > STEPS // 2   # epoch 2's steps and validation took the shortcut
    used.clear()
    monkeypatch.setattr(trainer.FrozenStart.__init__, "__defaults__", (0,))   # a budget of 0 bytes
    full = train_lora(TRAIN, VALIDATION, TINY, tmp_path / "full", MODEL_DIR, resume=False)
    assert len(used) == 1   # only the one-time check: every step ran every block
    for run in (again, full):
        assert step_losses(run.history) == pytest.approx(step_losses(shortcut.history), rel=1e-4)
        assert run.valid_loss == pytest.approx(shortcut.valid_loss, rel=1e-4)


def test_the_shortcut_switches_itself_off_when_it_disagrees_with_the_full_pass(tmp_path, monkeypatch, caplog):
    from studio.finetune import trainer
    monkeypatch.setattr(trainer.FrozenStart, "_from_first_adapted", lambda self, decoder, start, mask: start * 0)
    result = train_lora(TRAIN, VALIDATION, TINY, tmp_path, MODEL_DIR, resume=False)
    assert "disagrees with the full pass" in caplog.text and math.isfinite(result.valid_loss)
