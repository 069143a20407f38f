"""OpenAI fine-tuning against the fake OpenAI server: launch, follow, cancel, and every refusal."""
import time
from datetime import date
from pathlib import Path

import pytest

from studio.datasets import PrepareOptions, prepare, read_source
from studio.datasets.storage import DatasetStore
from studio.finetune.jobs import FAILED, SUCCEEDED, JobStore
from studio.finetune.openai_jobs import FineTuneError, OpenAIFineTuning, hyperparameters, job_failure
from studio.providers.openai_provider import OpenAIProvider
from studio.store import Actor
from tests.fakes.fake_openai import FakeAPIError, FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "samples" / "comments.csv"
BASE = "gpt-4.1-mini-2025-04-14"
AMY = Actor("amy")
KEY = "sk-test-finetune-123"


@pytest.fixture
def stores(store):
    return JobStore(store.engine), DatasetStore(store.engine)


def tuner(fake, jobs, key=KEY, base_url=None, retries=1) -> OpenAIFineTuning:
    return OpenAIFineTuning(OpenAIProvider(key, base_url or fake.base_url, max_retries=retries, timeout=10), jobs)


def saved(datasets, data: bytes | None = None, name="comments"):
    data = data or SAMPLE.read_bytes()
    prepared = prepare(read_source(data, "comments.csv"), PrepareOptions("comment", "reply", model=BASE))
    version = datasets.save_version(name, prepared, AMY, source_bytes=data)
    return datasets.get_version(version.id, AMY)


def small_csv(rows: int) -> bytes:
    return ("comment,reply\n" + "".join(f"Question {i}?,Answer {i} -Sam\n" for i in range(rows))).encode()


def wait_until(tune, job, done=lambda j: j.finished, timeout=20):
    deadline = time.monotonic() + timeout
    while not done(job):
        assert time.monotonic() < deadline, f"job stuck in {job.status}"
        time.sleep(0.05)
        job = tune.sync(job, AMY)
    return job


def test_a_job_runs_reports_metrics_and_registers_its_model(fake, stores):
    jobs, datasets = stores
    version = saved(datasets)
    tune = tuner(fake, jobs)
    hp = hyperparameters(epochs=2, batch_size=8)
    job = tune.launch(version, AMY, BASE, suffix="sam", seed=7, hyperparameters=hp)
    assert job.status == "validating_files" and job.provider_job_id and job.training_file_id
    uploads = fake.requests_to("/v1/files", "POST")
    assert [u.body["purpose"] for u in uploads] == ["fine-tune", "fine-tune"]
    assert uploads[0].body["file"]["data"].count(b"\n") == version.counts.train
    sent = fake.last("/v1/fine_tuning/jobs", "POST").body
    assert sent == {"model": BASE, "training_file": job.training_file_id, "validation_file": job.validation_file_id,
                    "suffix": "sam", "seed": 7, "method": {"type": "supervised", "supervised": {"hyperparameters": {
                        "n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": "auto"}}}}

    running = wait_until(tune, job, lambda j: j.status == "running" and jobs.list_metrics(j.id, AMY))
    assert not running.finished
    done = wait_until(tune, running)
    assert done.status == SUCCEEDED and done.result_model.startswith(f"ft:{BASE}:org-fake:sam:")
    assert done.trained_tokens > 0 and done.result_files and done.hyperparameters["learning_rate_multiplier"] == 1.8
    assert [c["step"] for c in done.checkpoints] == [7, 14] and done.checkpoints[0]["model"].endswith("ckpt-step-7")
    metrics = jobs.list_metrics(done.id, AMY)
    assert [m.step for m in metrics] == [2, 4, 6, 8, 10, 12, 14]
    assert all(m.train_loss and m.valid_loss for m in metrics) and metrics[-1].epoch == 2.0
    events = jobs.list_events(done.id, AMY)
    assert events[0].message == "The job has successfully completed"
    assert len({e.id for e in events}) == len(events)   # polled many times, each event stored once
    assert [m.id for m in jobs.list_models(AMY)] == [done.result_model]
    assert tune.sync(done, AMY).status == SUCCEEDED and len(jobs.list_events(done.id, AMY)) == len(events)


def test_cancel_stops_the_job(fake, stores):
    jobs, datasets = stores
    fake.ft_step_s = 0.05
    tune = tuner(fake, jobs)
    job = tune.launch(saved(datasets), AMY, BASE)
    cancelled = tune.cancel(job, AMY)
    assert cancelled.status == "cancelled" and cancelled.cancel_requested
    assert fake.jobs[job.provider_job_id].status == "cancelled"
    assert jobs.list_models(AMY) == []
    # A cancel asked for elsewhere (another tab, an admin) is carried out by the next sync.
    other = tune.launch(saved(datasets), AMY, BASE)
    jobs.request_cancel(other.id, Actor("root", admin=True))
    assert tune.sync(jobs.get(other.id, AMY), AMY).status == "cancelled"


def test_training_not_available_is_kept_verbatim_and_suggests_local(fake, stores):
    jobs, datasets = stores
    fake.ft_refuse_create = "training_not_available"
    with pytest.raises(FineTuneError) as refused:
        tuner(fake, jobs).launch(saved(datasets), AMY, BASE)
    error = refused.value
    assert error.suggest_local and error.code == "training_not_available" and error.status == 403
    assert "no longer available to new jobs for this organization" in error.message
    assert "Train locally instead" in error.message
    job = jobs.get(error.job_id, AMY)
    assert job.status == FAILED and job.error_code == "training_not_available"
    assert job.error_message.startswith("Fine-tuning is no longer available")
    assert fake.files == {}   # the uploaded files were deleted again


def test_quota_refusal_suggests_local(fake, stores):
    jobs, datasets = stores
    fake.ft_refuse_create = "quota"
    with pytest.raises(FineTuneError) as refused:
        tuner(fake, jobs).launch(saved(datasets), AMY, BASE)
    assert refused.value.suggest_local and refused.value.code == "insufficient_quota"
    assert "You exceeded your current quota" in refused.value.message


def test_too_few_examples_fail_on_openai_side_with_invalid_n_examples(fake, stores):
    jobs, datasets = stores
    version = saved(datasets, small_csv(8), name="tiny")
    with pytest.raises(FineTuneError) as early:   # checked before anything is uploaded
        tuner(fake, jobs).launch(version, AMY, BASE)
    assert early.value.suggest_local and fake.count("/v1/files") == 0
    tune = tuner(fake, jobs)
    job = wait_until(tune, tune.launch(version, AMY, BASE, check=False))
    assert job.status == FAILED and job.error_code == "invalid_n_examples"
    assert job.error_message == (f"Training file has {version.counts.train} example(s), "
                                 "but must have at least 10 examples")
    explained = job_failure(job)
    assert explained.suggest_local and "invalid_n_examples: Training file has" in explained.message
    assert jobs.list_events(job.id, AMY)[0].level == "error"


def test_a_wrong_key_is_named_without_echoing_it(fake, stores):
    jobs, datasets = stores
    with pytest.raises(FineTuneError) as refused:
        tuner(fake, jobs, key="sk-bad").launch(saved(datasets), AMY, BASE)
    error = refused.value
    assert error.status == 401 and error.code == "invalid_api_key" and not error.suggest_local
    assert "API key was rejected" in error.message and "sk-bad" not in error.message + error.openai_message
    assert jobs.get(error.job_id, AMY).error_code == "invalid_api_key"


def test_a_server_error_while_polling_changes_nothing_and_the_next_poll_recovers(fake, stores):
    jobs, datasets = stores
    tune = tuner(fake, jobs)
    job = tune.launch(saved(datasets), AMY, BASE, hyperparameters=hyperparameters(epochs=1, batch_size=16))
    fake.refuse = lambda r: (FakeAPIError(500, "The server had an error while processing your request.",
                                          type_="server_error", headers={"retry-after-ms": "5"})
                             if r.method == "GET" and "/fine_tuning/" in r.path else None)
    with pytest.raises(FineTuneError) as failed:
        tune.sync(job, AMY)
    assert failed.value.retryable and failed.value.status == 500 and "internal error" in failed.value.message
    assert jobs.get(job.id, AMY).status == job.status   # a failed poll is not a failed job
    fake.refuse = None
    assert wait_until(tune, job).status == SUCCEEDED


def test_a_network_error_is_retryable(fake, stores):
    jobs, datasets = stores
    job = tuner(fake, jobs).launch(saved(datasets), AMY, BASE)
    closed = FakeOpenAI().start()
    url = closed.base_url
    closed.stop()
    with pytest.raises(FineTuneError) as failed:
        tuner(fake, jobs, base_url=url, retries=0).sync(job, AMY)
    assert failed.value.retryable and "Could not reach" in failed.value.message


def test_base_models_are_the_fine_tunable_ones_with_shutdown_dates(fake, stores):
    jobs, _ = stores
    fake.models.append({"id": BASE, "object": "model", "created": 1, "owned_by": "system",
                        "shutdown_date": "2027-01-14"})
    models = tuner(fake, jobs).base_models(today=date(2026, 12, 1))
    assert [m.id for m in models] == ["gpt-4.1-mini", BASE, "gpt-4o"]
    assert all(m.retiring_soon and m.days_left == 44 for m in models)
    later = tuner(fake, jobs).base_models(today=date(2026, 10, 1))
    assert not any(m.retiring_soon for m in later)


def test_hyperparameters_out_of_openai_s_bounds_are_refused_here():
    assert hyperparameters() == {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    for bad in ({"epochs": 0}, {"epochs": 51}, {"batch_size": 300}, {"learning_rate_multiplier": 0}):
        with pytest.raises(FineTuneError):
            hyperparameters(**bad)
