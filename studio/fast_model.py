"""The embedded model's fast runtime: an int8 ONNX model run by onnxruntime-genai.

The safetensors copy in the workspace (studio.local_model) stays the source of truth; the first
run converts it with onnxruntime-genai's model builder, in a separate process, into a folder
beside it (about 15 s, once). A fine-tuned local model is its LoRA adapter merged into the base
weights and converted the same way, as the job's last step.

Why int8 with blocks of 64: measured teacher-forced against the fp32 ONNX model on 8 prompts
(417 tokens) it picks the same next token 95.9% of the time (mean KL 0.008), close to blocks of
32 (96.2%, 0.005) and better than 128 (94.2%, 0.013), and it decodes as fast as 128 and ~15%
faster than 32 on 2 cores. The builder's int4 default drifts (67%, KL 0.40): never use it.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BLOCK_SIZE = 64
BUILD_TIMEOUT_S = 900
MARKER = "studio-build.json"    # written last, inside the folder, before the folder gets its name
Progress = Callable[[str], None]
log = logging.getLogger(__name__)


class FastRuntimeUnavailable(RuntimeError):
    """The fast runtime cannot be built or loaded here; the text says why (for the log and a note)."""


def onnx_dir(weights: Path) -> Path:
    """Where the int8 ONNX model built from the safetensors folder `weights` lives."""
    weights = Path(weights)
    return weights.with_name(f"{weights.name}-onnx-int8")


def is_built(folder: Path) -> bool:
    """Whether `folder` holds a complete build (a half build never gets the folder's name)."""
    return (Path(folder) / MARKER).is_file()


def missing_packages() -> list[str]:
    """The packages the fast runtime (and its builder) need that are not installed."""
    return [name for name, module in (("onnxruntime-genai", "onnxruntime_genai"), ("onnx", "onnx"),
                                      ("onnx-ir", "onnx_ir")) if importlib.util.find_spec(module) is None]


def build_onnx(weights: Path, dest: Path, progress: Progress | None = None, precision: str = "int8") -> float:
    """Convert the safetensors model in `weights` into an ONNX model in `dest` (int8; "fp32" for
    the tests' reference); seconds taken.

    The builder runs in its own process (it holds ~2 GB while it works) and writes into a
    temporary folder that is renamed to `dest` only when complete: a killed build leaves no
    half model under the real name. Raises FastRuntimeUnavailable saying what went wrong.
    """
    say = progress or (lambda _msg: None)
    missing = missing_packages()
    if missing:
        raise FastRuntimeUnavailable(f"the package {', '.join(missing)} is not installed")
    weights, dest = Path(weights), Path(dest)
    if not (weights / "model.safetensors").is_file():
        raise FastRuntimeUnavailable(f"there are no weights in {weights} to convert")
    started = time.perf_counter()
    _remove_abandoned_builds(dest)
    tmp = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    command = [sys.executable, "-u", "-m", "onnxruntime_genai.models.builder", "-i", str(weights), "-o", str(tmp),
               "-p", precision, "-e", "cpu", "-c", str(tmp / ".builder-cache"),
               "--extra_options", f"block_size={BLOCK_SIZE}", "prune_lm_head=true"]
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")   # never a download
    tail: list[str] = []
    try:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              errors="replace", preexec_fn=_die_with_parent) as builder:
            reporter = _BuildProgress(say)
            for line in builder.stdout:
                tail = (tail + [line.rstrip()])[-20:]
                reporter.read(line)
                if time.perf_counter() - started > BUILD_TIMEOUT_S:
                    builder.kill()
                    raise FastRuntimeUnavailable(f"building it took over {BUILD_TIMEOUT_S} s")
            code = builder.wait()
        if code != 0 or not (tmp / "genai_config.json").is_file():
            log.warning("the ONNX model builder failed (exit %s): %s", code, "\n".join(tail))
            raise FastRuntimeUnavailable(f"its builder failed ({_last_error(tail) or f'exit code {code}'})")
        shutil.rmtree(tmp / ".builder-cache", ignore_errors=True)
        (tmp / MARKER).write_text(json.dumps({"precision": precision, "block_size": BLOCK_SIZE,
                                              "source": str(weights), "built_at": time.time()}))
        old = dest.with_name(f"{dest.name}.old-{os.getpid()}")
        if dest.exists():   # renamed away first: the real name never holds a half-deleted model
            dest.replace(old)
        tmp.replace(dest)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        reason = "the disk is full" if getattr(exc, "errno", None) == 28 else (exc.strerror or str(exc))
        raise FastRuntimeUnavailable(f"it could not be written ({reason})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - started
    say(f"Fast model built ({seconds:.0f} s).")
    return seconds


class _BuildProgress:
    """Turns the builder's output into a few progress lines (not one per layer)."""
    STEPS = (("Reading layer", "Reading the weights"),
             ("complete quantization of /model/layers.", "Quantizing to int8"))

    def __init__(self, say: Progress):
        self.say, self.said = say, set()

    def read(self, line: str) -> None:
        for needle, label in self.STEPS:
            if needle in line:
                found = re.search(r"layers?[. ](\d+)", line)
                layer = int(found.group(1)) if found else 0
                key = (label, layer // 10)
                if key not in self.said:
                    self.said.add(key)
                    self.say(f"Building the fast model: {label.lower()} (layer {layer + 1})…")
        if "Saving GenAI config" in line:
            self.say("Building the fast model: saving…")


def _die_with_parent() -> None:
    """In the builder's process: be killed when the process that started it dies (Linux), so a
    killed app never leaves a builder writing on."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)   # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):   # not Linux: the half build is still never used
        pass


def _last_error(lines: list[str]) -> str:
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return " ".join(line.split())[:200]
    return ""


def _remove_abandoned_builds(dest: Path) -> None:
    """Delete half builds left by killed processes (a live builder's folder is left alone)."""
    for stale in [*dest.parent.glob(f"{dest.name}.partial-*"), *dest.parent.glob(f"{dest.name}.old-*")]:
        pid = stale.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class FastModel:
    """A loaded ONNX model with its tokenizer. Generate on the model thread only
    (studio.local_model.on_model_thread): onnxruntime's own thread pool uses every core."""
    path: Path
    model: object
    tokenizer: object
    load_seconds: float
    eos_ids: set[int] = field(default_factory=set)
    name: str = "onnxruntime-genai int8"

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """The chat template applied to `messages`, ending with the assistant's turn."""
        text = self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
        return [int(t) for t in self.tokenizer.encode(text)]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def generate(self, ids: list[int], max_new_tokens: int, sampling: dict | None,
                 emit: Callable[[str], None], should_stop: Callable[[], bool]) -> list[int]:
        """Generate after `ids`, passing each new piece of text to `emit`; the new token ids.
        `sampling`: temperature, top_p, top_k, repetition_penalty (None: greedy)."""
        import onnxruntime_genai as og

        params = og.GeneratorParams(self.model)
        # The length limit sizes the key/value cache: prompt + reply, not the 8k window.
        params.set_search_options(max_length=len(ids) + max_new_tokens,
                                  **({"do_sample": True, **sampling} if sampling else {"do_sample": False}))
        generator = og.Generator(self.model, params)
        generator.append_tokens(ids)
        stream = self.tokenizer.create_stream()
        new: list[int] = []
        while not generator.is_done() and not should_stop():
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            new.append(token)
            if token not in self.eos_ids:
                piece = stream.decode(token)
                if piece:
                    emit(piece)
        return new


def load_fast_model(folder: Path) -> FastModel:
    """Load a built ONNX model (well under a second). Raises FastRuntimeUnavailable."""
    folder = Path(folder)
    if not is_built(folder):
        raise FastRuntimeUnavailable(f"there is no complete model in {folder}")
    started = time.perf_counter()
    try:
        import onnxruntime_genai as og
    except ImportError:
        raise FastRuntimeUnavailable("the package onnxruntime-genai is not installed") from None
    try:
        config = og.Config(str(folder))
        # Its default thread count here was one core of two, at half the speed.
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {
            "intra_op_num_threads": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else (os.cpu_count() or 1)}}}}))
        model = og.Model(config)
        tokenizer = og.Tokenizer(model)
        eos = json.loads((folder / "genai_config.json").read_text())["model"].get("eos_token_id", [])
    except Exception as exc:   # a damaged file: onnxruntime raises plain RuntimeErrors
        raise FastRuntimeUnavailable(f"the model in {folder} could not be loaded "
                                     f"({' '.join(str(exc).split())[:200]})") from None
    eos_ids = {int(t) for t in (eos if isinstance(eos, list) else [eos])}
    return FastModel(folder, model, tokenizer, time.perf_counter() - started, eos_ids)


def merge_adapter(weights: Path, adapter: Path, out: Path) -> Path:
    """Save the base model in `weights` with the LoRA `adapter` merged in, as safetensors in `out`
    (the input for build_onnx). Runs torch + peft in this process (~1 GB for a few seconds)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        merged.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(weights).save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_tuned(weights: Path, adapter: Path, progress: Progress | None = None) -> Path:
    """A fine-tuned model's fast copy: the LoRA `adapter` merged into the base `weights`, then
    converted like the base model; returns its folder (onnx_dir(adapter)). The merged
    safetensors (~540 MB) are deleted afterwards. Raises FastRuntimeUnavailable."""
    say = progress or (lambda _msg: None)
    adapter = Path(adapter)
    merged = adapter.with_name(f"{adapter.name}-merged")
    if missing_packages():
        raise FastRuntimeUnavailable(f"the package {', '.join(missing_packages())} is not installed")
    say("Merging the adapter into the base weights…")
    try:
        merge_adapter(Path(weights), adapter, merged)
        build_onnx(merged, onnx_dir(adapter), progress)
    except OSError as exc:
        reason = "the disk is full" if exc.errno == 28 else (exc.strerror or str(exc))
        raise FastRuntimeUnavailable(f"it could not be written ({reason})") from None
    except (ValueError, KeyError, RuntimeError) as exc:   # peft / safetensors refusing the adapter
        if isinstance(exc, FastRuntimeUnavailable):
            raise
        raise FastRuntimeUnavailable(f"the adapter could not be merged ({' '.join(str(exc).split())[:200]})") from None
    finally:
        shutil.rmtree(merged, ignore_errors=True)
    return onnx_dir(adapter)


def top1_agreement(reference: FastModel, candidate: FastModel, prompts: list[str], tokens: int = 40) -> float:
    """How often `candidate` picks the same next token as `reference`, teacher-forced along the
    reference's greedy reply to each prompt (the quality check in the tests and the bench)."""
    import numpy as np
    import onnxruntime_genai as og

    def next_token_choices(model: FastModel, ids: list[int], reply: list[int]) -> list[int]:
        params = og.GeneratorParams(model.model)
        params.set_search_options(max_length=len(ids) + len(reply) + 1)
        generator = og.Generator(model.model, params)
        generator.append_tokens(ids)
        choices = [int(np.argmax(generator.get_logits()[0, -1]))]
        for token in reply[:-1]:
            generator.append_tokens([token])
            choices.append(int(np.argmax(generator.get_logits()[0, -1])))
        return choices

    same = total = 0
    for prompt in prompts:
        ids = reference.prompt_ids([{"role": "user", "content": prompt}])
        reply = reference.generate(ids, tokens, None, lambda _piece: None, lambda: False)
        ours, theirs = next_token_choices(reference, ids, reply), next_token_choices(candidate, ids, reply)
        same += sum(a == b for a, b in zip(ours, theirs, strict=True))
        total += len(reply)
    return same / total
