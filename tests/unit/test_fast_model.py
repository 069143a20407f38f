"""The embedded model's fast runtime (onnxruntime-genai): exact against transformers in fp32,
close in int8, a killed or failed build leaves no half model, and without it chat falls back
to transformers and says so once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio import fast_model, local_model
from studio.fast_model import FastModel, FastRuntimeUnavailable, build_onnx, is_built, load_fast_model, onnx_dir
from studio.local_model import TorchRuntime, cache_dir, get_local_model, get_runtime, on_model_thread
from studio.providers.local import LocalProvider
from studio.types import AssistantSpec, Done, Message, TextDelta, Thread

MODEL_DIR = Path(os.environ["STUDIO_MODEL_CACHE"])
PROMPTS = ["What is the capital of France?", "Write a short poem about the sea.", "Explain how a bicycle works.",
           "Give me three tips for studying.", "Why is the sky blue?", "How do I make a cup of tea?"]


@pytest.fixture(scope="module")
def weights() -> Path:
    get_runtime(MODEL_DIR)   # makes the safetensors copy and the int8 build if this machine lacks them
    return cache_dir(MODEL_DIR)


@pytest.fixture(scope="module")
def fp32(weights, tmp_path_factory) -> FastModel:
    folder = tmp_path_factory.mktemp("fp32") / "model"
    build_onnx(weights, folder, precision="fp32")
    return load_fast_model(folder)


def greedy(runtime, prompt: str, tokens: int = 40) -> str:
    pieces: list[str] = []
    on_model_thread(runtime.generate, runtime.prompt_ids([{"role": "user", "content": prompt}]), tokens, None,
                    pieces.append, lambda: False).result()
    return "".join(pieces)


def test_the_fp32_onnx_model_writes_exactly_what_transformers_writes(fp32):
    torch_runtime = TorchRuntime(get_local_model(MODEL_DIR))
    for prompt in PROMPTS[:3]:
        assert greedy(fp32, prompt) == greedy(torch_runtime, prompt)
    assert fp32.prompt_ids([{"role": "user", "content": "Hi"}]) == torch_runtime.prompt_ids(
        [{"role": "user", "content": "Hi"}])   # the same chat template, the same token ids


def test_the_int8_model_picks_the_fp32_models_next_token_at_least_90_percent_of_the_time(fp32):
    int8 = get_runtime(MODEL_DIR)
    assert isinstance(int8, FastModel)
    assert on_model_thread(fast_model.top1_agreement, fp32, int8, PROMPTS).result() >= 0.9


def test_the_int8_model_loads_in_well_under_a_second_once_built(weights):
    assert load_fast_model(onnx_dir(weights)).load_seconds < 1.0


def test_a_killed_build_leaves_no_model_and_the_next_build_completes(weights, tmp_path):
    dest = tmp_path / "model"
    app = subprocess.Popen([sys.executable, "-c", "import sys; from studio.fast_model import build_onnx; "
                            "build_onnx(sys.argv[1], sys.argv[2], print)", str(weights), str(dest)],
                           stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    assert "Building the fast model" in app.stdout.readline()   # the builder is at work
    partial = next(tmp_path.glob("model.partial-*"))
    app.send_signal(signal.SIGKILL)                                # the app dies mid-build
    app.wait()
    time.sleep(1.0)
    assert not dest.exists() and not is_built(dest)                # nothing under the real name
    size = sum(f.stat().st_size for f in partial.rglob("*") if f.is_file())
    time.sleep(1.0)
    assert sum(f.stat().st_size for f in partial.rglob("*") if f.is_file()) == size   # the builder died too
    said: list[str] = []
    build_onnx(weights, dest, said.append)
    assert is_built(dest) and not partial.exists()                 # rebuilt; the half build cleared away
    assert any("quantizing" in line for line in said)


def test_a_failed_build_says_why_and_leaves_nothing(weights, tmp_path):
    broken = tmp_path / "weights"
    broken.mkdir()
    (broken / "config.json").write_text((weights / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\0" * 64)   # cut short
    with pytest.raises(FastRuntimeUnavailable, match="builder failed") as failed:
        build_onnx(broken, tmp_path / "model")
    assert str(tmp_path) not in failed.value.public                  # what the page shows has no paths
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["weights"]


@pytest.fixture
def workspace(weights, tmp_path):
    """A model folder sharing the cached safetensors copy but with no fast model yet."""
    (tmp_path / weights.name).symlink_to(weights, target_is_directory=True)
    yield tmp_path
    for key in [k for k in local_model._runtimes if k[0] == str(tmp_path.resolve())]:
        del local_model._runtimes[key]
    local_model._loaded.pop(str(tmp_path.resolve()), None)


def reply(provider: LocalProvider) -> list:
    thread = Thread(owner="ada", assistant_id="a", provider="local", messages=[Message("user", "Hello!")])
    return list(provider.stream_reply(thread, AssistantSpec(name="t")))


def test_without_the_fast_runtime_chat_falls_back_to_transformers_and_says_so_once(workspace, monkeypatch):
    monkeypatch.setattr(fast_model, "missing_packages", lambda: ["onnxruntime-genai"])
    said: list[str] = []
    provider = LocalProvider(workspace, max_new_tokens=8, progress=said.append)
    for _ in range(2):
        events = reply(provider)
        assert isinstance(events[-1], Done) and any(isinstance(e, TextDelta) for e in events), events
    notes = [line for line in said if "fast runtime is not available" in line]
    assert len(notes) == 1 and "onnxruntime-genai is not installed" in notes[0] and "slower" in notes[0]
    assert isinstance(get_runtime(workspace), TorchRuntime)


def test_a_damaged_fast_model_is_rebuilt_and_used(workspace):
    dest = onnx_dir(cache_dir(workspace))
    dest.mkdir()
    (dest / "genai_config.json").write_text("{not json")
    (dest / fast_model.MARKER).write_text(json.dumps({"precision": "int8"}))
    said: list[str] = []
    events = reply(LocalProvider(workspace, max_new_tokens=8, progress=said.append))
    assert isinstance(events[-1], Done), events
    assert any("damaged: rebuilding" in line for line in said)
    assert isinstance(get_runtime(workspace), FastModel) and is_built(dest)
    assert json.loads((dest / "genai_config.json").read_text())["model"]["type"] == "llama"


def test_a_long_thread_is_trimmed_to_what_the_chat_template_really_costs(weights):
    # Thousands of one-word messages: the per-message estimate undercounts the template here.
    words = [Message("user" if n % 2 == 0 else "assistant", f"word{n % 10}") for n in range(4001)]
    provider = LocalProvider(MODEL_DIR, max_new_tokens=24)
    thread = Thread(owner="ada", assistant_id="a", provider="local", messages=words)
    messages = provider.build_messages(thread, AssistantSpec(name="t"))
    ids = get_runtime(MODEL_DIR).prompt_ids(messages)
    assert len(ids) + 24 <= local_model.CONTEXT_WINDOW and len(ids) > local_model.CONTEXT_WINDOW - 200
    assert messages[-1]["content"] == "word0"                              # the new message is kept


def answer(runtime: FastModel, messages: list[dict], tokens: int = 48, sampling: dict | None = None,
           party: str | None = "ada") -> str:
    pieces: list[str] = []
    new = on_model_thread(runtime.generate, runtime.prompt_ids(messages), tokens, sampling, pieces.append,
                          lambda: False, party=party).result()
    answer.ended = bool(new) and new[-1] in runtime.eos_ids
    return "".join(pieces)


SAM = {"role": "system", "content": "You are Sam, a statistics tutor who answers briefly and signs every reply "
                                    "with -Sam. Be friendly and precise."}


def conversation(runtime: FastModel) -> tuple[list[str], list[int], list[bool]]:
    """Three turns of one chat: the replies, how many prompt tokens each reused, how each ended."""
    chat = [SAM, {"role": "user", "content": "What is 12 times 7? Reply with the number only."}]
    replies, reused, ended = [], [], []
    for question in ("And what is a confidence interval?", "Thanks! Is 0.05 a law of nature?", None):
        replies.append(answer(runtime, chat))
        reused.append(runtime.reused_tokens)
        ended.append(answer.ended)
        if question:
            chat += [{"role": "assistant", "content": replies[-1]}, {"role": "user", "content": question}]
    return replies, reused, ended


def test_a_follow_up_turn_reuses_the_conversations_cache_and_writes_what_a_cold_start_writes(weights):
    warm, cold = load_fast_model(onnx_dir(weights)), load_fast_model(onnx_dir(weights))
    cold.reuse = False
    replies, reused, ended = conversation(warm)
    assert ended[:2] == [True, False]   # followed both a reply that ended and one cut at the cap
    assert reused[0] == 0 and min(reused[1:]) > 40   # the shared start was not computed again
    cold_replies, cold_reused, _ = conversation(cold)
    assert replies == cold_replies and cold_reused == [0, 0, 0]


def test_a_kept_cache_serves_the_same_party_only_and_other_settings_or_a_seed_start_fresh(weights):
    model = load_fast_model(onnx_dir(weights))
    chat = [SAM, {"role": "user", "content": "Name a measure of spread."}]
    answer(model, chat, 8)
    answer(model, chat, 8, party="bob")
    assert model.reused_tokens == 0                       # another user: nothing of ada's is reused
    answer(model, chat, 8, {"temperature": 0.7, "top_p": 0.9}, party="bob")
    assert model.reused_tokens == 0                       # other settings: nothing reused
    seeded = [answer(model, chat, 16, {"temperature": 0.9, "seed": 7}) for _ in range(2)]
    assert model.reused_tokens == 0 and seeded[0] == seeded[1]
    answer(model, chat, 8)
    answer(model, chat, 8)
    assert model.reused_tokens == len(model.prompt_ids(chat)) - 2   # the same prompt again: all but two
