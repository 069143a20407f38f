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

import contextlib
import errno
import fcntl
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
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
    """The fast runtime cannot be built or loaded here. The text says why, for the log; `public`
    says it without paths or tool output, for the page; `damaged`: a build is there but broken."""

    def __init__(self, message: str, public: str | None = None, damaged: bool = False):
        super().__init__(message)
        self.public = public or message
        self.damaged = damaged


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


# The builder, started as `python -c` so that it asks, after exec, to be killed when the process
# that started it dies (Linux): a killed app never leaves a builder writing on. (A preexec_fn
# would run between fork and exec in a threaded server, where Python warns it can deadlock.)
_BUILDER = """import ctypes, os, runpy, sys
parent = int(sys.argv.pop(1))
try:
    ctypes.CDLL(None).prctl(1, 9)   # PR_SET_PDEATHSIG, SIGKILL
except (OSError, AttributeError):
    pass
if os.getppid() != parent:
    sys.exit("the process that started the build has stopped")
sys.argv[0] = "onnxruntime_genai.models.builder"
runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__", alter_sys=True)
"""
# What the builder may see of the environment: enough to find Python packages, never keys.
BUILDER_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
               "HF_HOME")


def build_onnx(weights: Path, dest: Path, progress: Progress | None = None, precision: str = "int8",
               unless_built: bool = False) -> float:
    """Convert the safetensors model in `weights` into an ONNX model in `dest` (int8; "fp32" for
    the tests' reference); seconds taken. `unless_built`: do nothing if `dest` is complete by
    the time this process may build (another one may have built it meanwhile).

    The builder runs in its own process (it holds ~2 GB while it works), one at a time per
    folder across processes, and writes into a temporary folder that is renamed to `dest` only
    when complete: a killed build leaves no half model under the real name. Raises
    FastRuntimeUnavailable saying what went wrong.
    """
    say = progress or (lambda _msg: None)
    missing = missing_packages()
    if missing:
        raise FastRuntimeUnavailable(f"the package {', '.join(missing)} is not installed")
    weights, dest = Path(weights), Path(dest)
    if not (weights / "model.safetensors").is_file():
        raise FastRuntimeUnavailable(f"there are no weights in {weights} to convert",
                                     "there are no weights to convert")
    started = time.perf_counter()
    tmp = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
    try:
        with _build_lock(dest, say):
            if unless_built and is_built(dest):
                return 0.0
            _remove_abandoned_builds(dest)
            shutil.rmtree(tmp, ignore_errors=True)
            _run_builder(weights, tmp, precision, say)
            shutil.rmtree(tmp / ".builder-cache", ignore_errors=True)
            (tmp / MARKER).write_text(json.dumps({"precision": precision, "block_size": BLOCK_SIZE,
                                                  "source": str(weights), "built_at": time.time()}))
            old = dest.with_name(f"{dest.name}.old-{os.getpid()}")
            if dest.exists():   # renamed away first: the real name never holds a half-deleted model
                dest.replace(old)
            tmp.replace(dest)
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or type(exc).__name__)
        raise FastRuntimeUnavailable(f"it could not be written in {dest.parent} ({exc})",
                                     f"it could not be written: {reason}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - started
    say(f"Fast model built ({seconds:.0f} s).")
    return seconds


def _run_builder(weights: Path, out: Path, precision: str, say: Progress) -> None:
    command = [sys.executable, "-u", "-c", _BUILDER, str(os.getpid()), "-i", str(weights), "-o", str(out),
               "-p", precision, "-e", "cpu", "-c", str(out / ".builder-cache"),
               "--extra_options", f"block_size={BLOCK_SIZE}", "prune_lm_head=true"]
    env = {key: value for key, value in os.environ.items() if key in BUILDER_ENV}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")   # never a download
    tail: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          errors="replace") as builder:
        # A watchdog, not a check per output line: a builder that hangs silently is killed too.
        watchdog = threading.Timer(BUILD_TIMEOUT_S, builder.kill)
        watchdog.start()
        try:
            reporter = _BuildProgress(say)
            for line in builder.stdout:
                tail = (tail + [line.rstrip()])[-20:]
                reporter.read(line)
            code = builder.wait()
        finally:
            timed_out = not watchdog.is_alive() and builder.returncode not in (0, None)
            watchdog.cancel()
    if timed_out:
        raise FastRuntimeUnavailable(f"building it took over {BUILD_TIMEOUT_S} s")
    if code != 0 or not (out / "genai_config.json").is_file():
        log.warning("the ONNX model builder failed (exit %s): %s", code, "\n".join(tail))
        raise FastRuntimeUnavailable(f"its builder failed ({_last_error(tail) or f'exit code {code}'})",
                                     "its builder failed; the details are in the server log")


@contextlib.contextmanager
def _build_lock(dest: Path, say: Progress):
    """One build of `dest` at a time across processes (the app and the CLI may both start one)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{dest.name}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("Another process is building the fast model: waiting for it…")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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


def _last_error(lines: list[str]) -> str:
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return " ".join(line.split())[:200]
    return ""


def _remove_abandoned_builds(dest: Path) -> None:
    """Delete half builds (and half merges) left by killed processes; a live one's is left alone."""
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


# A follow-up turn repeats the conversation so far. The last generator is kept with its key/value
# cache, and the next prompt computes only the tokens after the start it shares (as llama.cpp's
# server does). Only tokens computed as part of a prompt are reused, never generated ones: those
# went through the one-token kernels, whose rounding differs slightly, and a greedy reply would
# then depend on what came before it.
# One cache is kept for the whole process (there is one model thread), and only for the same
# party (a thread's owner): another user's first-token time must not tell whether their prompt
# starts like someone else's.
REUSE_HEADROOM = 1024   # tokens of room a kept generator leaves for the next turn (~46 KB each)
KEEP_MAX_TOKENS = 4096  # a longer cache (~190 MB) is not kept
MIN_REUSE = 32          # a shorter shared start is not worth keeping the cache for


@dataclass
class _Kept:
    model: object           # the FastModel it belongs to
    party: str | None       # whose prompt it holds
    generator: object
    prompt: list[int]       # the prompt whose cache the generator holds
    options: tuple          # its search options: a turn with others needs a new generator
    max_length: int


_kept: _Kept | None = None   # touched on the model thread only


@dataclass
class FastModel:
    """A loaded ONNX model with its tokenizer. Generate on the model thread only
    (studio.local_model.on_model_thread): onnxruntime's own thread pool uses every core."""
    path: Path
    model: object
    tokenizer: object
    load_seconds: float
    eos_ids: set[int] = field(default_factory=set)
    context_length: int = 0   # prompt + reply, in tokens (0: not stated)
    name: str = "onnxruntime-genai int8"
    reuse: bool = True        # keep the prompt's cache for the next turn (see REUSE_HEADROOM)
    reused_tokens: int = 0    # of the last prompt, how many came from the kept cache

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """The chat template applied to `messages`, ending with the assistant's turn."""
        text = self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
        return [int(t) for t in self.tokenizer.encode(text)]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def generate(self, ids: list[int], max_new_tokens: int, sampling: dict | None,
                 emit: Callable[[str], None], should_stop: Callable[[], bool], party: str | None = None) -> list[int]:
        """Generate after `ids`, passing each new piece of text to `emit`; the new token ids.
        `sampling`: temperature, top_p, top_k, repetition_penalty (None: greedy). `party`: whose
        prompt it is (a kept cache serves the same party only)."""
        global _kept
        import onnxruntime_genai as og

        if sampling and "seed" in sampling:
            sampling = {**{k: v for k, v in sampling.items() if k != "seed"}, "random_seed": sampling["seed"]}
        options = {"do_sample": True, **sampling} if sampling else {"do_sample": False}
        key = tuple(sorted(options.items()))
        # A seeded reply starts from a fresh generator, so the same seed gives the same text.
        reusable = self.reuse and "random_seed" not in options
        # The length limit sizes the key/value cache: prompt + reply (+ room for the next turn
        # when the generator is kept), not the 8k window; and it may not pass the model's window
        # (callers keep the prompt inside it).
        if self.context_length and len(ids) >= self.context_length:
            raise ValueError(f"the prompt ({len(ids)} tokens) does not fit the model's "
                             f"{self.context_length}-token window")
        kept, _kept, self.reused_tokens = _kept, None, 0   # taken: a failure drops it
        start = 0
        if (kept and reusable and kept.model is self and kept.party == party and kept.options == key
                and len(ids) + max_new_tokens <= kept.max_length):
            start = min(len(os.path.commonprefix([kept.prompt, ids])), len(ids) - 2)   # never a one-token prompt
        if start >= MIN_REUSE:
            generator, limit = kept.generator, kept.max_length
            generator.rewind_to(start)
            self.reused_tokens = start
        else:
            del kept   # its cache is freed before a new one is sized
            limit = len(ids) + max_new_tokens
            reusable = reusable and limit + REUSE_HEADROOM <= KEEP_MAX_TOKENS
            limit += REUSE_HEADROOM if reusable else 0
            if self.context_length:
                limit = min(limit, self.context_length)
            params = og.GeneratorParams(self.model)
            params.set_search_options(max_length=limit, **options)
            generator = og.Generator(self.model, params)
            start = 0
        generator.append_tokens(ids[start:])
        stream = self.tokenizer.create_stream()
        new: list[int] = []
        while len(new) < max_new_tokens and not generator.is_done() and not should_stop():
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            new.append(token)
            if token not in self.eos_ids:
                piece = stream.decode(token)
                if piece:
                    emit(piece)
        if reusable:
            _kept = _Kept(self, party, generator, list(ids), key, limit)
        return new


def load_fast_model(folder: Path) -> FastModel:
    """Load a built ONNX model (well under a second). Raises FastRuntimeUnavailable."""
    folder = Path(folder)
    if not is_built(folder):
        raise FastRuntimeUnavailable(f"there is no complete model in {folder}", "there is no complete model")
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
        described = json.loads((folder / "genai_config.json").read_text())["model"]
        eos = described.get("eos_token_id", [])
        context = int(described.get("context_length", 0))
        precision = json.loads((folder / MARKER).read_text()).get("precision", "int8")
    except Exception as exc:   # a damaged file: onnxruntime raises plain RuntimeErrors
        raise FastRuntimeUnavailable(f"the model in {folder} could not be loaded "
                                     f"({' '.join(str(exc).split())[:200]})", "the built model is damaged",
                                     damaged=True) from None
    eos_ids = {int(t) for t in (eos if isinstance(eos, list) else [eos])}
    return FastModel(folder, model, tokenizer, time.perf_counter() - started, eos_ids, context,
                     name=f"onnxruntime-genai {precision}")


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
    # A copy of an earlier adapter (a job trained again) must never answer for this one.
    shutil.rmtree(onnx_dir(adapter), ignore_errors=True)
    _remove_abandoned_builds(merged)
    say("Merging the adapter into the base weights…")
    try:
        merge_adapter(Path(weights), adapter, merged)
        build_onnx(merged, onnx_dir(adapter), progress)
    except FastRuntimeUnavailable:
        raise
    except Exception as exc:   # torch, peft and safetensors raise many kinds (a full disk included)
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        full = getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in text
        log.warning("merging the adapter %s failed: %s", adapter, text)
        raise FastRuntimeUnavailable(f"the adapter could not be merged ({text})",
                                     "the disk is full" if full else "the adapter could not be merged; "
                                     "the details are in the server log") from None
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
