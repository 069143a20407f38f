"""JobStore: fine-tuning jobs, their events and metrics, and the registry of finished models."""
from datetime import datetime, timedelta, timezone

import pytest

from studio.accounts import OPERATOR, Accounts
from studio.finetune.jobs import (FAILED, RUNNING, SUCCEEDED, FineTuneJob, JobEvent, JobStore, StepMetric,
                                  local_model_id)
from studio.store import Actor, NotAllowed, StoreError

ALICE, BOB, ADMIN = Actor("alice"), Actor("bob"), Actor("root", admin=True)
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def jobs(store) -> JobStore:
    return JobStore(store.engine)


def new_job(jobs: JobStore, actor: Actor = ALICE, provider: str = "openai", **extra) -> FineTuneJob:
    return jobs.create(FineTuneJob(id="", owner="", provider=provider, base_model="gpt-4.1-mini-2025-04-14",
                                   dataset_version_id="dsv_1", suffix="sam", seed=7,
                                   hyperparameters={"n_epochs": 3}, **extra), actor)


def test_a_job_is_stored_and_read_back_with_its_fields(jobs):
    job = new_job(jobs)
    assert job.id.startswith("ftj_") and job.owner == "alice" and job.status == "preparing"
    again = jobs.get(job.id, ALICE)
    assert again == job and again.hyperparameters == {"n_epochs": 3} and again.created_at.tzinfo
    assert jobs.get("ftj_nope", ALICE) is None
    changed = jobs.update(job.id, ALICE, status=RUNNING, provider_job_id="ftjob-1", trained_tokens=120,
                          checkpoints=[{"id": "ckpt-1", "step": 3}])
    assert (changed.status, changed.provider_job_id, changed.trained_tokens) == (RUNNING, "ftjob-1", 120)
    assert changed.checkpoints == [{"id": "ckpt-1", "step": 3}] and changed.updated_at >= job.updated_at
    failed = jobs.set_status(job.id, FAILED, ALICE, "invalid_n_examples", "Training file has 3 example(s)")
    assert failed.finished and failed.error_code == "invalid_n_examples"
    with pytest.raises(ValueError, match="owner"):
        jobs.update(job.id, ALICE, owner="bob")


def test_only_the_owner_changes_a_job_admins_read_and_cancel_everyone_s(jobs):
    job = new_job(jobs)
    new_job(jobs, BOB)
    with pytest.raises(NotAllowed):
        jobs.get(job.id, BOB)
    with pytest.raises(NotAllowed):
        jobs.update(job.id, BOB, status=RUNNING)
    with pytest.raises(NotAllowed):
        jobs.update(job.id, ADMIN, status=RUNNING)   # admins read, the owner changes
    with pytest.raises(NotAllowed):
        jobs.list_events(job.id, BOB)
    with pytest.raises(NotAllowed):
        jobs.add_events(job.id, [JobEvent(T0, "info", "x")], BOB)
    with pytest.raises(NotAllowed):
        jobs.list(BOB, everyone=True)
    assert jobs.get(job.id, ADMIN).owner == "alice"
    assert [j.owner for j in jobs.list(ALICE)] == ["alice"]
    assert sorted(j.owner for j in jobs.list(ADMIN, everyone=True)) == ["alice", "bob"]
    with pytest.raises(NotAllowed):
        jobs.request_cancel(job.id, BOB)
    assert not jobs.cancel_requested(job.id, ALICE)
    jobs.request_cancel(job.id, ADMIN)
    assert jobs.cancel_requested(job.id, ALICE) and jobs.get(job.id, ALICE).cancel_requested
    with pytest.raises(NotAllowed):
        jobs.delete(job.id, BOB)
    jobs.delete(job.id, ADMIN)
    assert jobs.get(job.id, ALICE) is None
    with pytest.raises(StoreError, match="no longer exists"):
        jobs.cancel_requested(job.id, ALICE)


def test_jobs_are_listed_newest_first(jobs):
    first, second = new_job(jobs), new_job(jobs)
    assert [j.id for j in jobs.list(ALICE)] == [second.id, first.id]


def test_events_are_idempotent_by_id_and_listed_newest_first(jobs):
    job = new_job(jobs)
    events = [JobEvent(T0 + timedelta(seconds=i), "info", f"step {i}", id=f"ftevent-{i}") for i in range(3)]
    assert jobs.add_events(job.id, events, ALICE) == 3
    again = [JobEvent(T0 + timedelta(seconds=i), "info", f"step {i}", id=f"ftevent-{i}") for i in range(2, 5)]
    assert jobs.add_events(job.id, again + again, ALICE) == 2
    listed = jobs.list_events(job.id, ALICE)
    assert [e.id for e in listed] == [f"ftevent-{i}" for i in (4, 3, 2, 1, 0)]
    assert listed[0].time == T0 + timedelta(seconds=4)
    # Events of the same second keep the order they were added in; local ones get ids.
    jobs.add_events(job.id, [JobEvent(T0 + timedelta(seconds=9), "warn", m) for m in ("a", "b")], ALICE)
    assert [e.message for e in jobs.list_events(job.id, ALICE, limit=2)] == ["b", "a"]
    assert jobs.list_events(job.id, ADMIN, limit=1)[0].level == "warn"


def test_metrics_merge_per_step(jobs):
    job = new_job(jobs, provider="local")
    jobs.add_metrics(job.id, [StepMetric(1, 0.1, 2.5, tokens_per_s=300, eta_s=40), StepMetric(2, 0.2, 2.1)], ALICE)
    jobs.add_metrics(job.id, [StepMetric(2, valid_loss=2.3)], ALICE)   # end of the epoch
    assert jobs.list_metrics(job.id, ALICE) == [StepMetric(1, 0.1, 2.5, None, 300, 40),
                                                StepMetric(2, 0.2, 2.1, 2.3)]


def test_heartbeat_is_recorded(jobs):
    job = new_job(jobs, provider="local")
    assert job.heartbeat_age() is None
    jobs.heartbeat(job.id, ALICE)
    assert 0 <= jobs.get(job.id, ALICE).heartbeat_age() < 60
    with pytest.raises(NotAllowed):
        jobs.heartbeat(job.id, BOB)


def test_finished_models_are_registered_once_per_job(jobs, tmp_path):
    job = new_job(jobs)
    with pytest.raises(StoreError, match="succeeded"):
        jobs.register_model(job)
    done = jobs.update(job.id, ALICE, status=SUCCEEDED, result_model="ft:gpt-4.1-mini-2025-04-14:org::abc")
    model = jobs.register_model(done)
    assert jobs.register_model(done) == model and model.id == "ft:gpt-4.1-mini-2025-04-14:org::abc"
    local = new_job(jobs, provider="local", status=RUNNING)   # the worker's last step, then succeeded
    with pytest.raises(StoreError, match="adapter"):
        jobs.register_model(local)
    broken = new_job(jobs, provider="local", status=FAILED)
    with pytest.raises(StoreError, match="succeeded"):
        jobs.register_model(broken, adapter_path="x")
    tuned = jobs.register_model(local, adapter_path=str(tmp_path / "adapter"))
    assert tuned.id == local_model_id(local) == f"smollm2-135m-instruct:ft:sam:{local.id[4:12]}"
    assert jobs.get(local.id, ALICE).result_model == tuned.id and tuned.adapter_path.endswith("adapter")
    assert [m.id for m in jobs.list_models(ALICE)] == [tuned.id, model.id]
    assert [m.id for m in jobs.list_models(ALICE, provider="local")] == [tuned.id]
    assert jobs.list_models(BOB) == [] and len(jobs.list_models(ADMIN, everyone=True)) == 2
    jobs.delete(local.id, ALICE)
    assert [m.id for m in jobs.list_models(ALICE)] == [model.id]


def test_removing_a_user_deletes_their_jobs_and_models(store, jobs):
    people = Accounts(store.engine)
    people.add_user("root", "correct-horse", admin=True, actor=OPERATOR)
    people.add_user("alice", "correct-horse", actor=OPERATOR)
    job = new_job(jobs)
    jobs.add_events(job.id, [JobEvent(T0, "info", "hello", id="e1")], ALICE)
    jobs.add_metrics(job.id, [StepMetric(1, train_loss=1.0)], ALICE)
    jobs.register_model(jobs.update(job.id, ALICE, status=SUCCEEDED, result_model="ft:x:org::abc"))
    kept = new_job(jobs, BOB)
    people.remove_user("alice", actor=OPERATOR, store=store)
    assert jobs.list(ADMIN, everyone=True) == [jobs.get(kept.id, ADMIN)]
    assert jobs.list_models(ADMIN, everyone=True) == []
    again = new_job(jobs)   # whoever gets the name later starts empty
    assert jobs.list_events(again.id, ALICE) == [] and jobs.list_metrics(again.id, ALICE) == []
