"""Local fine-tuning jobs: the app (or the CLI) records a job in the store and starts a worker,
`python -m studio finetune run JOB_ID`, as a process of its own; the worker trains with
studio.finetune.trainer and writes status, step metrics, events and a heartbeat back to the
store. Closing the tab or restarting Streamlit leaves the worker running; the page re-attaches
by reading the store. One local training runs at a time (a lock file in the workspace); the
others wait in "queued", visibly. A worker that dies is noticed by its stale heartbeat, and
`resume` starts a new worker that continues from the last checkpoint.
"""
from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from studio.datasets.storage import DatasetStore
from studio.finetune.jobs import (CANCELLED, FAILED, LOCAL_BASE, QUEUED, RUNNING, SUCCEEDED, FineTuneJob, JobEvent,
                                  JobStore, StepMetric, local_model_id)
from studio.store import Actor, Store
from studio.types import new_id, utcnow

HEARTBEAT_S = 5.0           # how often a worker says it is alive
STALE_S = 60.0              # no heartbeat for this long: the worker is gone
WAIT_POLL_S = 2.0           # a queued worker checks the lock (and the cancel flag) this often
WORKER_ACTOR = Actor("finetune-worker", admin=True)   # reads a job to learn whose it is


def job_folder(data_dir: Path, job_id: str) -> Path:
    """Where a local job keeps its checkpoints, adapter and worker log."""
    return Path(data_dir) / "finetune" / job_id


MAX_WAITING = 3            # a user's local jobs queued or running at once
SUFFIX = re.compile(r"[A-Za-z0-9_-]{0,40}")
# What a worker process gets from the environment that starts it (never API keys or other secrets).
WORKER_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "CUDA_VISIBLE_DEVICES",
              "OMP_NUM_THREADS", "HF_HOME", "STUDIO_DATA_DIR", "STUDIO_DATABASE_URL", "STUDIO_MODEL_CACHE")


def create_local_job(store: Store, version_id: str, options, suffix: str, actor: Actor) -> FineTuneJob:
    """Record a queued local job for a saved dataset version (`options`: LocalTrainOptions).
    ValueError for a missing dataset, a suffix that cannot go into a model name, or a user
    with MAX_WAITING jobs already waiting or running."""
    if not SUFFIX.fullmatch(suffix or ""):
        raise ValueError("The name suffix may hold letters, digits, - and _ only (at most 40), e.g. sam.")
    if DatasetStore(store.engine).get_version(version_id, actor) is None:
        raise ValueError("That dataset version does not exist (deleted?).")
    waiting = [j for j in JobStore(store.engine).list(actor) if j.provider == "local" and j.status in (QUEUED, RUNNING)]
    if len(waiting) >= MAX_WAITING:
        raise ValueError(f"You have {len(waiting)} local trainings waiting or running; start this one when "
                         "one of them has ended (or cancel one).")
    job = FineTuneJob(id=new_id("ftjob"), owner=actor.name, provider="local", base_model=LOCAL_BASE,
                      dataset_version_id=version_id, suffix=suffix, seed=options.seed,
                      hyperparameters=options.to_json(), status=QUEUED)
    return JobStore(store.engine).create(job, actor)


def start_worker(job_id: str, data_dir: Path, env: dict | None = None) -> int:
    """Start the worker for a job as a detached process (its own session: it outlives the
    server that started it). Returns its pid; its output goes to the job folder's worker.log."""
    folder = job_folder(data_dir, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    source = os.environ if env is None else env
    clean = {k: v for k, v in source.items() if k in WORKER_ENV}
    with open(folder / "worker.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "studio", "finetune", "run", job_id],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=clean, cwd=str(Path(__file__).resolve().parents[2]))
    return process.pid


def start_or_fail(store: Store, job: FineTuneJob, actor: Actor, data_dir: Path, env: dict | None = None) -> int | None:
    """Start the job's worker; if that fails (a full disk, no permission), mark the job failed
    with why instead of leaving it queued for ever. Returns the pid, or None."""
    try:
        return start_worker(job.id, data_dir, env)
    except OSError as exc:
        JobStore(store.engine).set_status(job.id, FAILED, actor, error_code="worker_not_started",
                                          error_message=f"The trainer could not be started: {exc.strerror or exc}.")
        return None


def adapter_finder(database_url: str):
    """A function (model id, owner) -> the folder of that user's fine-tuned local model's
    adapter, or None; the embedded provider asks it for models other than the base."""
    engines: list = []

    def find(model_id: str, owner: str) -> str | None:
        if not engines:   # opened on first use: most chats never ask
            engines.append(Store(database_url).engine)
        for model in JobStore(engines[0]).list_models(Actor(owner), provider="local"):
            if model.id == model_id and model.adapter_path and Path(model.adapter_path).is_dir():
                return model.adapter_path
        return None
    return find


def notice_dead_worker(store: Store, job: FineTuneJob) -> FineTuneJob:
    """Mark a running local job whose worker stopped beating as failed, saying so; returns the
    job as it now stands. Harmless to call on any job."""
    age = job.heartbeat_age()
    if age is None and job.status == QUEUED and job.updated_at is not None:
        age = (utcnow() - job.updated_at).total_seconds() - STALE_S   # a worker that never started beating
    if job.provider != "local" or job.status not in (QUEUED, RUNNING) or age is None or age < STALE_S:
        return job
    jobs = JobStore(store.engine)
    actor = Actor(job.owner)
    message = (f"The trainer stopped answering {age:.0f} s ago (killed, or the machine restarted). "
               "Resume continues from its last checkpoint.")
    jobs.add_events(job.id, [JobEvent(utcnow(), "error", message, id=new_id("ev"))], actor)
    return jobs.set_status(job.id, FAILED, actor, error_code="worker_lost", error_message=message)


def resume_local_job(store: Store, job: FineTuneJob, actor: Actor, data_dir: Path, env: dict | None = None) -> int:
    """Queue a failed or cancelled local job again and start a worker; training continues from
    the newest checkpoint. Returns the worker's pid."""
    jobs = JobStore(store.engine)
    if not jobs.requeue(job.id, actor):   # not failed or cancelled (any more): e.g. another tab resumed it
        raise ValueError("This job is not failed or cancelled (any more); nothing to resume.")
    jobs.add_events(job.id, [JobEvent(utcnow(), "info", "Resumed: a new trainer starts from the last checkpoint.",
                                      id=new_id("ev"))], actor)
    return start_or_fail(store, jobs.get(job.id, actor), actor, data_dir, env)


def cancel_local_job(store: Store, job: FineTuneJob, actor: Actor) -> FineTuneJob:
    """Ask the worker to stop; a job with no live worker (never started, or gone) ends
    cancelled at once."""
    jobs = JobStore(store.engine)
    jobs.request_cancel(job.id, actor)
    age = job.heartbeat_age()
    if not job.finished and (age is None or age >= STALE_S) and job.status in (QUEUED, RUNNING, "preparing"):
        jobs.set_status(job.id, CANCELLED, actor)
    return jobs.get(job.id, actor) or job


def run_job(job_id: str, store: Store, data_dir: Path, model_dir: Path, say=print) -> FineTuneJob:
    """The worker: wait for the local trainer, train, record everything; returns the job as it
    ended. `say`: where progress lines go (the terminal for `finetune local`, the log otherwise)."""
    jobs = JobStore(store.engine)
    found = jobs.get(job_id, WORKER_ACTOR)
    if found is None:
        raise ValueError(f"No fine-tuning job {job_id!r}.")
    actor = Actor(found.owner)
    record = _Recorder(jobs, job_id, actor, say)
    if found.provider != "local":
        raise ValueError(f"Job {job_id} runs on {found.provider}, not locally.")
    if found.status != QUEUED:   # only a queued job is trained (resume queues a failed one again)
        say(f"Job {job_id} is {found.status}, not queued: nothing to do.")
        return found
    version = DatasetStore(store.engine).get_version(found.dataset_version_id, actor)
    if version is None or version.prepared is None:
        return record.fail("dataset_missing", "The job's dataset version was deleted; nothing to train on.")
    folder = job_folder(data_dir, job_id)
    try:
        # Beating from the start: a worker that dies while it waits in the queue is noticed too.
        with _Heartbeat(jobs, job_id, actor):
            folder.mkdir(parents=True, exist_ok=True)
            return _train(jobs, found, version, folder, model_dir, record)
    except KeyboardInterrupt:   # Ctrl-C on `finetune local`: the checkpoint so far is kept
        return record.finish(CANCELLED, "Cancelled from the terminal; resume goes on from the last checkpoint.")
    except Exception as exc:   # anything else: said on the job (the traceback goes to the worker's log)
        import traceback
        traceback.print_exc()
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        return record.fail("worker_error", f"The trainer stopped with an error: {detail}. Resume to try again.")


def _train(jobs: JobStore, found: FineTuneJob, version, folder: Path, model_dir: Path, record) -> FineTuneJob:
    from studio.finetune.trainer import LocalTrainOptions, TrainError, train_lora
    from studio.local_model import ModelLoadError

    job_id, actor = found.id, record.actor
    with _trainer_lock(folder.parent, lambda: jobs.cancel_requested(job_id, actor), record) as got_it:
        current = jobs.get(job_id, actor)
        if current is None or current.status != QUEUED:
            return current   # cancelled meanwhile, or another worker took it: nothing to do
        if not got_it:
            return record.finish(CANCELLED, "Cancelled while waiting for the trainer.")
        options = LocalTrainOptions.from_json(found.hyperparameters)
        record.status(RUNNING, f"Training started (pid {os.getpid()}).")
        try:
            result = train_lora(version.prepared.train, version.prepared.validation, options, folder, model_dir,
                                on_event=record.event, should_stop=lambda: jobs.cancel_requested(job_id, actor))
        except (TrainError, ModelLoadError) as exc:
            return record.fail("train_error" if isinstance(exc, TrainError) else "model_load", str(exc))
        except MemoryError:
            return record.fail("out_of_memory", "The machine ran out of memory while training; lower the max "
                               "length or the batch size, then resume.")
        except OSError as exc:
            return record.fail("os_error", f"Could not write the job's files: {exc.strerror or exc}.")
        if result.stopped:
            return record.finish(CANCELLED, f"Cancelled at step {result.steps} of {result.total_steps}; "
                                 "the last checkpoint is kept.")
        _build_fast_copy(model_dir, result.adapter_dir, record)   # still holding the trainer: ~2 GB at work
    # The model first, then "succeeded": a succeeded job always has its model.
    job = jobs.update(job_id, actor, result_model=local_model_id(found),
                      trained_tokens=_trained_tokens(version.prepared, options.epochs))
    jobs.register_model(job, adapter_path=str(result.adapter_dir))
    jobs.set_status(job_id, SUCCEEDED, actor)
    resumed = f", resumed from step {result.resumed_from_step}" if result.resumed_from_step else ""
    record.log(f"Finished: {job.result_model} (train loss {_loss(result.train_loss)}, validation loss "
               f"{_loss(result.valid_loss)}, {result.seconds:.0f} s on {result.device}{resumed}).")
    return jobs.get(job_id, actor)


def _build_fast_copy(model_dir: Path, adapter_dir: Path, record) -> None:
    """The job's last step: the tuned model's fast copy (adapter merged, converted to int8 ONNX).
    Failing costs only speed: the model then runs on transformers with its adapter."""
    from studio.fast_model import FastRuntimeUnavailable, build_tuned
    from studio.local_model import cache_dir

    record.log("Building the fast copy of the tuned model (merge, then convert; about 30 s)…")
    started = time.perf_counter()
    try:
        build_tuned(cache_dir(model_dir), adapter_dir, record.say)
    except Exception as exc:   # anything at all: the training itself succeeded and is kept
        reason = exc.public if isinstance(exc, FastRuntimeUnavailable) else type(exc).__name__
        import traceback
        traceback.print_exc()   # to the worker's log
        record.log(f"The fast copy could not be built ({reason}); the model works, but its replies use the "
                   "slower built-in runtime (the chat builds the copy again on first use).", "warning")
        return
    record.log(f"Fast copy built ({time.perf_counter() - started:.0f} s).")


def _trained_tokens(prepared, epochs: int) -> int:
    return int(prepared.tokens.train) * int(epochs)


class _Recorder:
    """Turns the trainer's events into store rows and terminal lines."""

    def __init__(self, jobs: JobStore, job_id: str, actor: Actor, say):
        self.jobs, self.job_id, self.actor, self.say = jobs, job_id, actor, say
        self.checkpoints: list[dict] = []

    def log(self, message: str, level: str = "info") -> None:
        self.jobs.add_events(self.job_id, [JobEvent(utcnow(), level, message, id=new_id("ev"))], self.actor)
        self.say(message)

    def status(self, status: str, message: str) -> FineTuneJob:
        job = self.jobs.set_status(self.job_id, status, self.actor)
        self.log(message)
        return job

    def finish(self, status: str, message: str) -> FineTuneJob:
        return self.status(status, message)

    def fail(self, code: str, message: str) -> FineTuneJob:
        self.log(message, "error")
        return self.jobs.set_status(self.job_id, FAILED, self.actor, error_code=code, error_message=message)

    def event(self, event) -> None:
        if event.kind == "step":
            progress = event.step * event.epochs / event.total_steps if event.total_steps else float(event.epoch)
            self.jobs.add_metrics(self.job_id, [StepMetric(event.step, progress, event.train_loss, None,
                                                           event.tokens_per_s, event.eta_s)], self.actor)
            speed = f"  {event.tokens_per_s:,.0f} tok/s" if event.tokens_per_s else ""
            self.say(f"step {event.step}/{event.total_steps}  epoch {event.epoch}/{event.epochs}  "
                     f"loss {_loss(event.train_loss)}{speed}" + (f"  ETA {event.eta_s:.0f} s" if event.eta_s else ""))
        elif event.kind == "epoch":
            self.jobs.add_metrics(self.job_id, [StepMetric(event.step, float(event.epoch), event.train_loss,
                                                           event.valid_loss)], self.actor)
            self.log(f"Epoch {event.epoch}/{event.epochs} done: train loss {_loss(event.train_loss)}, "
                     f"validation loss {_loss(event.valid_loss)}.")
        elif event.kind == "checkpoint":
            self.checkpoints.append({"step": event.step, "epoch": event.epoch, "path": event.path})
            self.jobs.update(self.job_id, self.actor, checkpoints=list(self.checkpoints))
            self.log(f"Checkpoint saved at step {event.step}.")


def _loss(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


class _Heartbeat:
    """A thread that tells the store the worker is alive, also during a long step or save."""

    def __init__(self, jobs: JobStore, job_id: str, actor: Actor):
        self.jobs, self.job_id, self.actor = jobs, job_id, actor
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")

    def __enter__(self):
        self.jobs.heartbeat(self.job_id, self.actor)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=HEARTBEAT_S)

    def _run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_S):
            try:
                self.jobs.heartbeat(self.job_id, self.actor)
            except Exception as exc:   # a busy database: the next beat will do; never kill training
                print(f"heartbeat failed: {exc}", file=sys.stderr)


@contextmanager
def _trainer_lock(folder: Path, cancelled, record: _Recorder):
    """Hold the workspace's one local-training lock; wait (queued) while another job has it.
    Yields False when the job was cancelled while waiting. The OS frees the lock when the
    holder dies, so a killed worker never blocks the queue."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "trainer.lock", "a+") as handle:
        waiting_said = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting_said:
                    record.log("Queued: another local training is running; this one starts when it ends.")
                    waiting_said = True
                if cancelled():
                    yield False
                    return
                time.sleep(WAIT_POLL_S)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def answer_side_by_side(model_dir: Path, adapter: str, examples,
                        max_new_tokens: int = 60) -> list[tuple[str, str, str]]:
    """(prompt, base model's answer, tuned model's answer) for each example's prompt (its
    messages before the reply), greedy, on the embedded model and on the fine-tuned one."""
    from studio.local_model import get_runtime, on_model_thread

    def answer(messages: list[dict], path: str | None) -> str:
        runtime = get_runtime(model_dir, path)
        pieces: list[str] = []
        on_model_thread(runtime.generate, runtime.prompt_ids(messages), max_new_tokens, None,
                        pieces.append, lambda: False).result()
        return "".join(pieces).strip()

    rows = []
    for example in examples:
        prompt = [m for m in example.messages[:-1] if isinstance(m, dict)]
        rows.append((example.prompt, answer(prompt, None), answer(prompt, adapter)))
    return rows
