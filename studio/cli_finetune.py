"""`python -m studio finetune ...`: fine-tuning jobs from the shell, over the same JobStore as the app.

    python -m studio finetune openai DATASET --model M [--suffix S] [--seed N] [--epochs N]
                                     [--batch-size N] [--lr-multiplier X] [--version N] [--wait]
    python -m studio finetune list [--json]
    python -m studio finetune status ID [--events N]
    python -m studio finetune cancel ID
    python -m studio finetune local DATASET [--epochs N] [--lr X] [--rank N] [--alpha N] [--max-length N]
                                    [--batch-size N] [--suffix S] [--seed N] [--detach]
    python -m studio finetune run ID        (the local worker the app starts; also by hand or by a job system)
    python -m studio finetune resume ID     (a failed or cancelled local job, from its last checkpoint)
"""
from __future__ import annotations

import json
import sys
import time

from studio.finetune.jobs import FineTuneJob, JobStore
from studio.settings import Settings
from studio.store import Actor, Store


def finetune_parser(commands):
    """Add the `finetune` command and its actions to the CLI's subparsers; returns its
    actions' subparsers so other actions (the local trainer's) can join them."""
    finetune = commands.add_parser("finetune", help="launch, follow and cancel fine-tuning jobs")
    actions = finetune.add_subparsers(dest="action", required=True)
    launch = actions.add_parser("openai", help="fine-tune on OpenAI from a saved dataset")
    launch.add_argument("dataset", help="a saved dataset's name or id (see `python -m studio dataset list`)")
    launch.add_argument("--model", required=True, help="the base model, e.g. gpt-4.1-mini-2025-04-14")
    launch.add_argument("--version", type=int, help="the dataset version (default: the latest)")
    launch.add_argument("--suffix", default="", help="up to 64 characters added to the model's name")
    launch.add_argument("--seed", type=int)
    launch.add_argument("--epochs", type=int, help="default: OpenAI chooses (auto)")
    launch.add_argument("--batch-size", type=int, help="default: auto")
    launch.add_argument("--lr-multiplier", type=float, help="learning rate multiplier (default: auto)")
    launch.add_argument("--force", action="store_true",
                        help="send it even with fewer than 10 training examples (OpenAI will fail the job)")
    launch.add_argument("--wait", action="store_true", help="follow the job until it ends, printing its events")
    launch.add_argument("--poll", type=float, default=10.0, help="seconds between checks with --wait (default 10)")
    listing = actions.add_parser("list", help="the user's fine-tuning jobs, newest first")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    status = actions.add_parser("status", help="a job's status, latest events and metrics")
    status.add_argument("job", help="the job id")
    status.add_argument("--events", type=int, default=10, help="how many of the latest events (default 10)")
    cancel = actions.add_parser("cancel", help="stop a job")
    cancel.add_argument("job", help="the job id")
    local = actions.add_parser("local", help="fine-tune the embedded model on this machine (LoRA)")
    local.add_argument("dataset", help="a saved dataset's name or id, or a train JSONL file (a validation.jsonl "
                       "beside it is used)")
    local.add_argument("--version", type=int, help="the dataset version (default: the latest)")
    local.add_argument("--suffix", default="", help="goes into the model's name, e.g. sam")
    local.add_argument("--seed", type=int, default=0)
    local.add_argument("--epochs", type=int, default=3)
    local.add_argument("--lr", type=float, default=2e-3, help="learning rate (default 2e-3)")
    local.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    local.add_argument("--alpha", type=int, default=16, help="LoRA alpha (default 16)")
    local.add_argument("--max-length", type=int, default=512, help="longest example in tokens (default 512)")
    local.add_argument("--batch-size", type=int, default=4)
    local.add_argument("--detach", action="store_true", help="train in a background process; follow it with "
                       "`finetune status ID`")
    run = actions.add_parser("run", help="the local trainer's worker for one job (the app starts it)")
    run.add_argument("job", help="the job id")
    resume = actions.add_parser("resume", help="start a failed or cancelled local job again from its last checkpoint")
    resume.add_argument("job", help="the job id")
    for action in (launch, listing, status, cancel, local, resume):
        action.add_argument("--user", help="whose jobs (default: $STUDIO_USER or the first admin)")
    return actions


def run_finetune(args, settings: Settings, actor: Actor) -> int:
    """Carry out a `finetune` action as `actor`; returns the exit status."""
    store = Store(settings.database_url)
    jobs = JobStore(store.engine)
    if args.action == "openai":
        return _launch_openai(args, settings, store, jobs, actor)
    if args.action == "list":
        return _list(jobs, actor, args.json)
    if args.action == "local":
        return _launch_local(args, settings, store, actor)
    if args.action == "run":   # the worker acts as the job's owner, whoever started it
        from studio.finetune.local_jobs import run_job
        job = run_job(args.job, store, settings.data_dir, settings.model_dir)
        return 0 if job.status == "succeeded" else 1
    job = jobs.get(args.job, actor)
    if job is None:
        raise ValueError(f"No fine-tuning job {args.job!r} (see `python -m studio finetune list`).")
    if args.action == "status":
        return _status(settings, jobs, job, actor, args.events)
    if args.action == "cancel":
        return _cancel(settings, jobs, job, actor)
    if args.action == "resume":
        return _resume(settings, store, job, actor)
    raise ValueError(f"Unknown finetune action {args.action!r}.")


def _openai(settings: Settings, jobs: JobStore):
    from studio.finetune.openai_jobs import OpenAIFineTuning
    from studio.providers import make_provider
    return OpenAIFineTuning(make_provider(settings.with_overrides(provider="openai")), jobs)


def _launch_openai(args, settings: Settings, store: Store, jobs: JobStore, actor: Actor) -> int:
    from studio.datasets.storage import DatasetStore
    from studio.finetune.openai_jobs import FineTuneError, hyperparameters
    version = DatasetStore(store.engine).find(args.dataset, actor, args.version)
    if version is None:
        which = f" version {args.version}" if args.version is not None else ""
        raise ValueError(f"No dataset {args.dataset!r}{which} for user {actor.name!r} "
                         "(see `python -m studio dataset list`).")
    tuning = _openai(settings, jobs)
    hp = hyperparameters(args.epochs, args.batch_size, args.lr_multiplier)
    try:
        job = tuning.launch(version, actor, args.model, suffix=args.suffix, seed=args.seed, hyperparameters=hp,
                            check=not args.force)
    except FineTuneError as exc:
        return _refused(exc, args.dataset)
    print(f"Started {job.id} on OpenAI ({job.provider_job_id}): {job.status}.")
    print(f"Follow it with: python -m studio finetune status {job.id}", file=sys.stderr)
    if not args.wait:
        return 0
    return _follow(tuning, jobs, job, actor, max(0.05, args.poll))


def _follow(tuning, jobs: JobStore, job: FineTuneJob, actor: Actor, poll: float) -> int:
    from studio.finetune.openai_jobs import FineTuneError, job_failure
    shown: set[str] = set()
    while True:
        try:
            job = tuning.sync(job, actor)
        except FineTuneError as exc:
            if not exc.retryable:
                raise
            print(f"warning: {exc.message} (retrying)", file=sys.stderr)
        for event in reversed(jobs.list_events(job.id, actor, limit=50)):
            if event.id not in shown:
                shown.add(event.id)
                print(f"{event.time:%H:%M:%S} {event.level:5} {event.message}")
        if job.finished:
            break
        time.sleep(poll)
    failure = job_failure(job)
    if failure is not None:
        return _refused(failure, job.dataset_version_id)
    print(f"{job.status}: {job.result_model}" if job.result_model else job.status)
    return 0 if job.status == "succeeded" else 1


def _refused(exc, dataset: str) -> int:
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.suggest_local:
        print(f"Train locally instead: python -m studio finetune local {dataset}", file=sys.stderr)
    return 1


def _list(jobs: JobStore, actor: Actor, as_json: bool) -> int:
    found = jobs.list(actor)
    if as_json:
        print(json.dumps([{"id": j.id, "provider": j.provider, "status": j.status, "base_model": j.base_model,
                           "model": j.result_model, "created_at": j.created_at.isoformat(),
                           "error_code": j.error_code} for j in found], indent=2))
        return 0
    if not found:
        print(f"User {actor.name!r} has no fine-tuning jobs.", file=sys.stderr)
    for j in found:
        print("\t".join([j.id, j.provider, j.status, j.base_model, j.result_model or j.error_code or "",
                         f"{j.created_at:%Y-%m-%d %H:%M}"]))
    return 0


def _status(settings: Settings, jobs: JobStore, job: FineTuneJob, actor: Actor, events: int) -> int:
    from studio.finetune.local_jobs import notice_dead_worker
    from studio.finetune.openai_jobs import job_failure
    from studio.providers import ProviderError
    job = notice_dead_worker(Store(settings.database_url), job)
    if job.provider == "openai" and not job.finished and job.provider_job_id and actor.name == job.owner:
        try:
            job = _openai(settings, jobs).sync(job, actor)
        except ProviderError as exc:   # show what the store knows, and why it may be stale
            print(f"warning: {exc}", file=sys.stderr)
    print(f"{job.id}  {job.provider}  {job.base_model}  status: {job.status}")
    if job.provider_job_id:
        print(f"provider job: {job.provider_job_id}")
    if job.trained_tokens:
        print(f"trained tokens: {job.trained_tokens}")
    if job.result_model:
        print(f"model: {job.result_model}")
    failure = job_failure(job)
    if failure is not None:
        print(f"error: {failure.message}")
        if failure.suggest_local:
            print("Train locally instead: python -m studio finetune local DATASET")
    if job.checkpoints:
        print("checkpoints: " + ", ".join(f"step {c.get('step')}" for c in job.checkpoints))
    metrics = jobs.list_metrics(job.id, actor)
    if metrics:
        print("step  epoch  train_loss  valid_loss")
        for m in metrics[-10:]:
            print(f"{m.step:4}  {_num(m.epoch, 2):>5}  {_num(m.train_loss):>10}  {_num(m.valid_loss):>10}")
    shown = jobs.list_events(job.id, actor, limit=events)
    if shown:
        print("events (newest first):")
        for event in shown:
            print(f"  {event.time:%Y-%m-%d %H:%M:%S} {event.level:5} {event.message}")
    return 0


def _num(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cancel(settings: Settings, jobs: JobStore, job: FineTuneJob, actor: Actor) -> int:
    if job.finished:
        print(f"{job.id} has already ended ({job.status}); nothing to cancel.")
        return 0
    if job.provider == "openai":
        job = _openai(settings, jobs).cancel(job, actor)
    else:   # a live local worker stops at its next step; a job with none ends cancelled now
        from studio.finetune.local_jobs import cancel_local_job
        job = cancel_local_job(Store(settings.database_url), job, actor)
    print(f"Asked {job.id} to stop; status: {job.status}.")
    return 0


def _launch_local(args, settings: Settings, store: Store, actor: Actor) -> int:
    from studio.finetune.local_jobs import create_local_job, run_job, start_or_fail
    from studio.finetune.trainer import LocalTrainOptions, TrainError
    options = LocalTrainOptions(epochs=args.epochs, learning_rate=args.lr, lora_rank=args.rank, lora_alpha=args.alpha,
                                max_length=args.max_length, batch_size=args.batch_size, seed=args.seed)
    try:
        options.check()
    except TrainError as exc:
        raise ValueError(str(exc)) from None
    version = _local_dataset(args, settings, store, actor)
    job = create_local_job(store, version.id, options, args.suffix, actor)
    print(f"Job {job.id}: {version.counts.train} training and {version.counts.validation} validation examples "
          f"of {version.name!r} (version {version.version}), {args.epochs} epochs.")
    if args.detach:
        pid = start_or_fail(store, job, actor, settings.data_dir)
        if pid is None:
            print("error: the trainer could not be started (see `finetune status`).", file=sys.stderr)
            return 1
        print(f"Training in the background (pid {pid}); follow it with: python -m studio finetune status {job.id}")
        return 0
    done = run_job(job.id, store, settings.data_dir, settings.model_dir)
    if done.status != "succeeded":
        print(f"error: {done.error_message or done.status}", file=sys.stderr)
        return 1
    print(f"Model: {done.result_model}")
    print(f"Chat with it: python -m studio chat --model {done.result_model}", file=sys.stderr)
    return 0


def _local_dataset(args, settings: Settings, store: Store, actor: Actor):
    """A saved dataset version by name, or one saved now from a train JSONL path."""
    from pathlib import Path

    from studio.datasets import prepare, read_chat_jsonl
    from studio.datasets.storage import DatasetStore
    from studio.datasets.types import PrepareOptions
    datasets = DatasetStore(store.engine)
    path = Path(args.dataset)
    if not path.is_file():
        version = datasets.find(args.dataset, actor, args.version)
        if version is None:
            raise ValueError(f"No dataset {args.dataset!r} and no such file (see `python -m studio dataset list`).")
        return version
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        raise ValueError(f"{path.name} is not a chat JSONL file. Prepare it first, e.g. `python -m studio dataset "
                         f"prepare {path} -o out/`, then train the saved dataset by its name.")
    train = read_chat_jsonl(path.read_bytes(), path.name)
    beside = path.with_name("validation.jsonl")
    validation = read_chat_jsonl(beside.read_bytes(), beside.name, source_file="validation") \
        if beside.is_file() and beside != path else None
    prepared = prepare(train, PrepareOptions(seed=args.seed), validation_source=validation,
                       model_dir=settings.model_dir, data_dir=settings.data_dir)
    blocking = prepared.blocking("local")
    if blocking:
        raise ValueError(f"{path.name}: {blocking[0].message}")
    name = path.parent.name if path.stem == "train" and path.parent.name else path.stem
    return datasets.save_version(name, prepared, actor, source_bytes=path.read_bytes())


def _resume(settings: Settings, store: Store, job: FineTuneJob, actor: Actor) -> int:
    from studio.finetune.local_jobs import notice_dead_worker, resume_local_job
    job = notice_dead_worker(store, job)
    if job.provider != "local" or job.status not in ("failed", "cancelled"):
        raise ValueError(f"Only a failed or cancelled local job can be resumed; {job.id} is {job.provider}, "
                         f"{job.status}.")
    pid = resume_local_job(store, job, actor, settings.data_dir)
    print(f"Resumed {job.id} in the background (pid {pid}); follow it with: python -m studio finetune status {job.id}")
    return 0
