"""Local fine-tuning jobs: a job recorded in the store, run by the worker (in this process
here), leaves metrics, events, a checkpoint and a registered model; a worker that stops
beating is noticed; a cancelled job stops at once."""
from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from studio.datasets import PrepareOptions, prepare, read_source
from studio.datasets.storage import DatasetStore
from studio.finetune import local_jobs
from studio.finetune.jobs import CANCELLED, FAILED, RUNNING, SUCCEEDED, JobStore
from studio.finetune.trainer import LocalTrainOptions
from studio.store import Actor, Store
from studio.types import utcnow

MODEL_DIR = Path(os.environ["STUDIO_MODEL_CACHE"])
ADA = Actor("ada")
TINY = LocalTrainOptions(epochs=1, max_length=64, batch_size=4, lora_rank=4, lora_alpha=8, seed=0)


@pytest.fixture
def workspace(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'studio.db'}")
    rows = "\n".join(f"Nice video number {n}!,Thanks for watching video {n}. -Sam" for n in range(10))
    source = read_source(f"comment,reply\n{rows}\n".encode(), "tiny.csv")
    prepared = prepare(source, PrepareOptions("comment", "reply", validation_fraction=0.2), model_dir=MODEL_DIR)
    version = DatasetStore(store.engine).save_version("tiny", prepared, ADA)
    return store, version, tmp_path


def test_a_local_job_trains_records_its_progress_and_registers_its_model(workspace):
    store, version, data_dir = workspace
    job = local_jobs.create_local_job(store, version.id, TINY, "sam", ADA)
    lines = []
    done = local_jobs.run_job(job.id, store, data_dir, MODEL_DIR, say=lines.append)
    assert done.status == SUCCEEDED, done.error_message
    jobs = JobStore(store.engine)
    assert done.result_model == f"smollm2-135m-instruct:ft:sam:{job.id.rsplit('_', 1)[-1][:8]}"
    [model] = jobs.list_models(ADA)
    assert model.id == done.result_model and Path(model.adapter_path, "adapter_config.json").exists()
    metrics = jobs.list_metrics(job.id, ADA)
    assert metrics and all(m.train_loss is not None for m in metrics)
    assert any(m.valid_loss is not None for m in metrics)          # the epoch's validation loss
    assert done.checkpoints and done.trained_tokens > 0
    messages = [e.message for e in jobs.list_events(job.id, ADA)]
    assert messages[0].startswith("Finished: smollm2-135m-instruct:ft:sam:")   # newest first
    assert messages[1].startswith("Fast copy built")
    assert any(line.startswith("step 1/") for line in lines)
    check_chat_with_the_tuned_model(store, done.result_model, model.adapter_path)


def check_chat_with_the_tuned_model(store: Store, model_id: str, adapter: str) -> None:
    import torch

    from studio.local_model import get_local_model, on_model_thread, using_adapter
    from studio.providers.local import LocalProvider
    from studio.types import AssistantSpec, Done, ErrorEvent, Message, Thread
    local = get_local_model(MODEL_DIR)
    ids = local.tokenizer("Nice video!", return_tensors="pt")["input_ids"]

    def logits(path):
        with torch.inference_mode(), using_adapter(local, path):
            return local.model(input_ids=ids).logits

    base, tuned, base_again, tuned_again = (on_model_thread(logits, p).result() for p in (None, adapter, None, adapter))
    assert not torch.allclose(base, tuned)                       # the adapter changes the model
    assert torch.equal(base, base_again) and torch.equal(tuned, tuned_again)   # switching keeps both as they were
    assert list(local.adapters) == [adapter]                     # read from disk once
    check_the_fast_copy(adapter)
    finder = local_jobs.adapter_finder(store.engine.url.render_as_string(hide_password=False))
    provider = LocalProvider(MODEL_DIR, max_new_tokens=8, find_adapter=finder)
    thread = Thread(owner="ada", assistant_id="a", provider="local", messages=[Message("user", "Nice video!")])
    events = list(provider.stream_reply(thread, AssistantSpec(name="t", owner="ada", model=model_id)))
    assert isinstance(events[-1], Done), events
    refused = list(provider.stream_reply(thread, AssistantSpec(name="t", owner="bob", model=model_id)))
    assert isinstance(refused[0], ErrorEvent) and refused[0].code == "model_not_found"   # ada's model, not bob's


def check_the_fast_copy(adapter: str) -> None:
    """The job's last step built the tuned model's int8 ONNX copy; chat uses it, and switching
    between base and tuned models loads each once and rebuilds nothing."""
    import numpy as np
    import onnxruntime_genai as og

    from studio import local_model
    from studio.fast_model import FastModel, is_built, onnx_dir
    from studio.local_model import get_runtime, on_model_thread
    assert is_built(onnx_dir(adapter))
    built_at = (onnx_dir(adapter) / "studio-build.json").stat().st_mtime

    def first_logits(runtime):
        ids = runtime.prompt_ids([{"role": "user", "content": "Nice video!"}])
        params = og.GeneratorParams(runtime.model)
        params.set_search_options(max_length=len(ids) + 1)
        generator = og.Generator(runtime.model, params)
        generator.append_tokens(ids)
        return np.array(generator.get_logits())

    base, tuned = get_runtime(MODEL_DIR), get_runtime(MODEL_DIR, adapter)
    assert isinstance(base, FastModel) and isinstance(tuned, FastModel) and tuned.load_seconds < 1.0
    first = [on_model_thread(first_logits, r).result() for r in (base, tuned, base, tuned)]
    assert not np.allclose(first[0], first[1])                   # the merged adapter changes the model
    assert np.array_equal(first[0], first[2]) and np.array_equal(first[1], first[3])
    assert get_runtime(MODEL_DIR, adapter) is tuned               # kept loaded, not built again
    assert (onnx_dir(adapter) / "studio-build.json").stat().st_mtime == built_at
    # A tuned model without its copy (made before the fast runtime, or its build failed) gets
    # one on first use, with progress.
    local_model._runtimes.pop((str(MODEL_DIR.resolve()), adapter))
    shutil.rmtree(onnx_dir(adapter))
    said: list[str] = []
    assert isinstance(get_runtime(MODEL_DIR, adapter, said.append), FastModel) and is_built(onnx_dir(adapter))
    assert any("no fast copy yet" in line for line in said)


def test_a_failed_fast_copy_still_succeeds_the_job_and_says_so(workspace, monkeypatch):
    from studio import fast_model

    def disk_full(*args):
        raise RuntimeError("No space left on device (os error 28)")   # as safetensors words it
    monkeypatch.setattr(fast_model, "merge_adapter", disk_full)
    store, version, data_dir = workspace
    job = local_jobs.create_local_job(store, version.id, TINY, "", ADA)
    done = local_jobs.run_job(job.id, store, data_dir, MODEL_DIR, say=lambda _line: None)
    assert done.status == SUCCEEDED and done.result_model, done.error_message
    [warning] = [e for e in JobStore(store.engine).list_events(job.id, ADA) if e.level == "warning"]
    assert "fast copy could not be built (the disk is full)" in warning.message


def test_a_job_cancelled_before_it_starts_ends_cancelled(workspace):
    store, version, data_dir = workspace
    job = local_jobs.create_local_job(store, version.id, TINY, "", ADA)
    JobStore(store.engine).request_cancel(job.id, ADA)
    done = local_jobs.run_job(job.id, store, data_dir, MODEL_DIR, say=lambda _line: None)
    assert done.status == CANCELLED and not done.result_model


def test_a_worker_that_stops_beating_is_marked_failed_with_a_reason(workspace):
    store, version, _ = workspace
    jobs = JobStore(store.engine)
    job = local_jobs.create_local_job(store, version.id, TINY, "", ADA)
    jobs.set_status(job.id, RUNNING, ADA)
    jobs.heartbeat(job.id, ADA)
    fresh = jobs.get(job.id, ADA)
    assert local_jobs.notice_dead_worker(store, fresh).status == RUNNING        # beating: left alone
    fresh.heartbeat_at = utcnow() - timedelta(seconds=local_jobs.STALE_S + 5)
    dead = local_jobs.notice_dead_worker(store, fresh)
    assert dead.status == FAILED and dead.error_code == "worker_lost"
    assert "Resume continues from its last checkpoint" in dead.error_message


def test_a_deleted_dataset_fails_the_job_with_a_clear_message(workspace):
    store, version, data_dir = workspace
    job = local_jobs.create_local_job(store, version.id, TINY, "", ADA)
    DatasetStore(store.engine).delete_version(version.id, ADA)
    done = local_jobs.run_job(job.id, store, data_dir, MODEL_DIR, say=lambda _line: None)
    assert done.status == FAILED and done.error_code == "dataset_missing"


def test_a_killed_worker_is_noticed_and_resume_finishes_from_its_checkpoint(workspace, monkeypatch):
    import signal
    import time
    store, version, data_dir = workspace
    jobs = JobStore(store.engine)
    two_epochs = LocalTrainOptions(epochs=2, max_length=64, batch_size=4, lora_rank=4, lora_alpha=8, seed=0)
    job = local_jobs.create_local_job(store, version.id, two_epochs, "sam", ADA)
    monkeypatch.setenv("STUDIO_DATA_DIR", str(data_dir))
    pid = local_jobs.start_worker(job.id, data_dir)

    def wait_for(condition, seconds: float):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            current = jobs.get(job.id, ADA)
            if condition(current):
                return current
            time.sleep(0.5)
        log = (local_jobs.job_folder(data_dir, job.id) / "worker.log").read_text()[-2000:]
        raise AssertionError(f"timed out; job is {current.status}; worker log:\n{log}")

    wait_for(lambda j: j.checkpoints, 240)                      # the first epoch is saved
    os.killpg(pid, signal.SIGKILL)                              # the trainer dies mid-run
    monkeypatch.setattr(local_jobs, "STALE_S", 1.0)
    time.sleep(1.5)
    dead = local_jobs.notice_dead_worker(store, jobs.get(job.id, ADA))
    assert dead.status == FAILED and dead.error_code == "worker_lost"
    local_jobs.resume_local_job(store, dead, ADA, data_dir)
    done = wait_for(lambda j: j.finished, 240)
    assert done.status == SUCCEEDED, done.error_message
    assert "resumed from step 2" in jobs.list_events(job.id, ADA)[0].message   # epoch 1's checkpoint
    assert jobs.list_models(ADA)[0].id == done.result_model


def test_the_cli_trains_from_a_jsonl_file_lists_the_model_and_chats_with_it(tmp_path):
    from tests.unit.test_cli import cli
    folder = tmp_path / "data"
    folder.mkdir()
    line = ('{"messages": [{"role": "user", "content": "Nice video %d!"}, '
            '{"role": "assistant", "content": "Thanks! -Sam"}]}')
    (folder / "train.jsonl").write_text("\n".join(line % n for n in range(8)) + "\n")
    (folder / "validation.jsonl").write_text("\n".join(line % n for n in range(8, 10)) + "\n")
    ws = {"STUDIO_DATA_DIR": str(tmp_path / "ws"), "STUDIO_PROVIDER": "local", "STUDIO_USER": "ada"}
    trained = cli("finetune", "local", str(folder / "train.jsonl"), "--epochs", "1", "--max-length", "64",
                  "--rank", "4", "--alpha", "8", "--suffix", "sam", env=ws)
    assert trained.returncode == 0, trained.stderr
    model = trained.stdout.strip().splitlines()[-1].removeprefix("Model: ")
    assert model.startswith("smollm2-135m-instruct:ft:sam:") and "8 training and 2 validation" in trained.stdout
    assert "step 1/" in trained.stdout
    listed = cli("models", env=ws)
    assert f"{model}  (fine-tuned from smollm2-135m-instruct" in listed.stdout
    chat = cli("chat", "--model", model, "Nice video!", env={**ws, "STUDIO_LOCAL_MAX_TOKENS": "8"})
    assert chat.returncode == 0 and chat.stdout.strip(), chat.stderr
    bad = cli("finetune", "local", str(folder / "train.jsonl"), "--epochs", "0", env=ws)
    assert bad.returncode == 1 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_a_cancelled_job_resumes_and_finishes_and_a_second_resume_is_refused(workspace, monkeypatch):
    store, version, data_dir = workspace
    jobs = JobStore(store.engine)
    job = local_jobs.create_local_job(store, version.id, TINY, "", ADA)
    jobs.request_cancel(job.id, ADA)
    assert local_jobs.run_job(job.id, store, data_dir, MODEL_DIR, say=lambda _line: None).status == CANCELLED
    started = []
    monkeypatch.setattr(local_jobs, "start_worker", lambda job_id, *_args: started.append(job_id) or 1)
    local_jobs.resume_local_job(store, jobs.get(job.id, ADA), ADA, data_dir)
    with pytest.raises(ValueError, match="nothing to resume"):    # a second tab, a double click
        local_jobs.resume_local_job(store, jobs.get(job.id, ADA), ADA, data_dir)
    assert started == [job.id]
    done = local_jobs.run_job(job.id, store, data_dir, MODEL_DIR, say=lambda _line: None)
    assert done.status == SUCCEEDED and not done.cancel_requested, done.error_message
    again = local_jobs.run_job(job.id, store, data_dir, MODEL_DIR, say=lambda _line: None)
    assert again.status == SUCCEEDED                              # a finished job is not trained twice


def test_a_queued_job_whose_worker_died_is_noticed_and_a_cancel_with_no_worker_ends_it(workspace):
    store, version, _ = workspace
    jobs = JobStore(store.engine)
    job = local_jobs.create_local_job(store, version.id, TINY, "", ADA)
    jobs.heartbeat(job.id, ADA)
    queued = jobs.get(job.id, ADA)
    queued.heartbeat_at = utcnow() - timedelta(seconds=local_jobs.STALE_S + 5)
    assert local_jobs.notice_dead_worker(store, queued).status == FAILED
    other = local_jobs.create_local_job(store, version.id, TINY, "", ADA)
    assert local_jobs.cancel_local_job(store, other, ADA).status == CANCELLED   # no worker ever beat


def test_bad_suffixes_and_too_many_waiting_jobs_are_refused_before_anything_runs(workspace):
    store, version, _ = workspace
    for suffix in ("a`b", "../x", "x" * 41):
        with pytest.raises(ValueError, match="suffix"):
            local_jobs.create_local_job(store, version.id, TINY, suffix, ADA)
    for _ in range(local_jobs.MAX_WAITING):
        local_jobs.create_local_job(store, version.id, TINY, "ok", ADA)
    with pytest.raises(ValueError, match="waiting or running"):
        local_jobs.create_local_job(store, version.id, TINY, "ok", ADA)


def test_the_worker_gets_no_secrets_from_the_environment(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(local_jobs.subprocess, "Popen", lambda *a, **k: seen.update(k) or type("P", (), {"pid": 1}))
    local_jobs.start_worker("ftjob_x", tmp_path, {"OPENAI_API_KEY": "sk-secret", "AWS_SECRET": "s",
                                                  "STUDIO_DATA_DIR": str(tmp_path), "PATH": "/bin"})
    assert seen["env"] == {"STUDIO_DATA_DIR": str(tmp_path), "PATH": "/bin"}
