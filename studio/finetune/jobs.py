"""Fine-tuning jobs in the workspace database, for every provider, plus the finished models.

Tables of their own (tables.py) on the Store's SQLAlchemy engine, like studio.datasets.storage:
`finetune_jobs` (one row per job: what was asked, where it stands, what it produced),
`finetune_events` (its log, idempotent by the provider's event id), `finetune_metrics` (one
row per training step, merged when a step is reported twice) and `finetuned_models` (the
registry of finished models that chat and the model pickers offer).

The page reads jobs from here, never from session state, so reloads and restarts lose
nothing. Owner checks go through the Store's `Actor`: owners and admins read; the owner
changes a job; the owner or an admin cancels or deletes it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from studio.finetune.tables import finetune_events, finetune_jobs, finetune_metrics, finetuned_models, metadata
from studio.store import USER_LENGTH, Actor, NotAllowed, StoreError, _aware, _guarded, create_tables_once
from studio.types import new_id, utcnow

# Known statuses. Status is an open string: a provider may add new ones (OpenAI has added
# "paused"), and the page shows whatever it is.
PREPARING, VALIDATING, QUEUED, RUNNING = "preparing", "validating_files", "queued", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})
LOCAL_BASE = "smollm2-135m-instruct"

@dataclass
class JobEvent:
    """One line of a job's log. `id`: the provider's event id (makes adding it twice harmless)."""
    time: datetime
    level: str
    message: str
    id: str = ""
    data: dict | None = None


@dataclass
class StepMetric:
    """What training reported at one step (any field may be missing)."""
    step: int
    epoch: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None


@dataclass
class FineTuneJob:
    """A fine-tuning job on one provider ("openai" or "local") and where it stands."""
    id: str
    owner: str
    provider: str
    base_model: str
    dataset_version_id: str
    suffix: str = ""
    seed: int | None = None
    hyperparameters: dict = field(default_factory=dict)
    status: str = PREPARING
    created_at: datetime | None = None
    updated_at: datetime | None = None
    provider_job_id: str | None = None
    training_file_id: str | None = None
    validation_file_id: str | None = None
    trained_tokens: int | None = None
    result_model: str | None = None
    result_files: list = field(default_factory=list)
    error_code: str = ""
    error_message: str = ""
    heartbeat_at: datetime | None = None
    checkpoints: list = field(default_factory=list)   # [{"id", "step", "model" or "path", "metrics"...}]
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        """Whether the job can change no more (succeeded, failed or cancelled)."""
        return self.status in FINISHED

    def heartbeat_age(self, now: datetime | None = None) -> float | None:
        """Seconds since a local worker last said it was alive (None: it never did)."""
        if self.heartbeat_at is None:
            return None
        return ((now or utcnow()) - self.heartbeat_at).total_seconds()


@dataclass
class RegisteredModel:
    """A finished fine-tuned model that chat can use."""
    id: str
    owner: str
    job_id: str
    provider: str
    base_model: str
    adapter_path: str = ""      # local models: the LoRA adapter in the workspace
    created_at: datetime | None = None


# Fields `update` may change: everything but identity, ownership and creation time.
UPDATABLE = frozenset(f.name for f in fields(FineTuneJob)) - {"id", "owner", "provider", "created_at",
                                                               "updated_at", "cancel_requested"}


def short_id(job_id: str) -> str:
    """The 8 characters of a job id that go into a local model's name."""
    return job_id.rsplit("_", 1)[-1][:8]


def local_model_id(job: FineTuneJob) -> str:
    """The name of a finished local model, e.g. `smollm2-135m-instruct:ft:sam:1a2b3c4d`."""
    return f"{LOCAL_BASE}:ft:{job.suffix or 'custom'}:{short_id(job.id)}"


class JobStore:
    """Fine-tuning jobs on `engine` (the Store's). Every call names the acting user (`Actor`)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._writer = engine.execution_options(studio_write=True)   # BEGIN IMMEDIATE on SQLite
        self._create_tables()

    @_guarded("set up the fine-tuning tables")
    def _create_tables(self) -> None:
        create_tables_once(self.engine, metadata)

    # --- jobs --------------------------------------------------------------------
    @_guarded("save the fine-tuning job")
    def create(self, job: FineTuneJob, actor: Actor) -> FineTuneJob:
        """Store a new job owned by the actor (a fresh id unless `job.id` is set)."""
        if len(actor.name) > USER_LENGTH:
            raise StoreError(f"A user name can be at most {USER_LENGTH} characters.")
        if job.provider not in ("openai", "local"):
            raise StoreError(f"Unknown fine-tuning provider {job.provider!r}.")
        now = utcnow()
        job.id = job.id or new_id("ftj")
        job.owner, job.created_at, job.updated_at = actor.name, now, now
        with self._writer.begin() as db:
            db.execute(insert(finetune_jobs).values(**_row_values(job)))
        return job

    @_guarded("read the fine-tuning job")
    def get(self, job_id: str, actor: Actor) -> FineTuneJob | None:
        """The job, or None if there is no such job (deleted, or never made)."""
        with self.engine.connect() as db:
            row = db.execute(select(finetune_jobs).where(finetune_jobs.c.id == job_id)).first()
        if row is None:
            return None
        if not actor.may_read(row.owner):
            raise NotAllowed("This fine-tuning job belongs to another user.")
        return _job_from_row(row)

    @_guarded("list the fine-tuning jobs")
    def list(self, actor: Actor, everyone: bool = False) -> list[FineTuneJob]:
        """The actor's jobs, newest first (with `everyone`, admins only: all users')."""
        if everyone and not actor.admin:
            raise NotAllowed("Only an administrator can see everyone's fine-tuning jobs.")
        query = select(finetune_jobs).order_by(finetune_jobs.c.created_at.desc(), finetune_jobs.c.id)
        if not everyone:
            query = query.where(finetune_jobs.c.owner == actor.name)
        with self.engine.connect() as db:
            return [_job_from_row(r) for r in db.execute(query)]

    @_guarded("update the fine-tuning job")
    def update(self, job_id: str, actor: Actor, **changes) -> FineTuneJob:
        """Change fields of the actor's own job (e.g. status, error_code, trained_tokens);
        returns the job as stored."""
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"These job fields cannot be changed: {', '.join(sorted(unknown))}")
        with self._writer.begin() as db:
            self._owned(db, job_id, actor)
            db.execute(update(finetune_jobs).where(finetune_jobs.c.id == job_id)
                       .values(updated_at=utcnow(), **_clean(changes)))
            return _job_from_row(db.execute(select(finetune_jobs).where(finetune_jobs.c.id == job_id)).one())

    def set_status(self, job_id: str, status: str, actor: Actor, error_code: str = "",
                   error_message: str = "") -> FineTuneJob:
        """Shorthand for update(status=..., error_code=..., error_message=...)."""
        return self.update(job_id, actor, status=status, error_code=error_code, error_message=error_message)

    @_guarded("record the trainer's heartbeat")
    def heartbeat(self, job_id: str, actor: Actor) -> None:
        """A local worker says it is alive (the page marks a silent one failed)."""
        with self._writer.begin() as db:
            self._owned(db, job_id, actor)
            db.execute(update(finetune_jobs).where(finetune_jobs.c.id == job_id).values(heartbeat_at=utcnow()))

    @_guarded("cancel the fine-tuning job")
    def request_cancel(self, job_id: str, actor: Actor) -> None:
        """Ask for the job to stop (its owner or an admin); the worker or sync carries it out."""
        with self._writer.begin() as db:
            self._readable(db, job_id, actor)
            db.execute(update(finetune_jobs).where(finetune_jobs.c.id == job_id)
                       .values(cancel_requested=True, updated_at=utcnow()))

    @_guarded("queue the fine-tuning job again")
    def requeue(self, job_id: str, actor: Actor) -> bool:
        """Put the actor's failed or cancelled job back in the queue (cancel request, error and
        heartbeat cleared), in one step: of two tabs resuming it at once, one wins. Returns
        whether this call did it."""
        with self._writer.begin() as db:
            self._owned(db, job_id, actor)
            done = db.execute(update(finetune_jobs).where(
                finetune_jobs.c.id == job_id, finetune_jobs.c.status.in_([FAILED, CANCELLED])).values(
                status=QUEUED, cancel_requested=False, error_code="", error_message="", heartbeat_at=None,
                updated_at=utcnow())).rowcount
        return bool(done)

    @_guarded("read the fine-tuning job")
    def cancel_requested(self, job_id: str, actor: Actor) -> bool:
        """Whether someone asked the job to stop (a local worker checks this between steps)."""
        with self.engine.connect() as db:
            return bool(self._readable(db, job_id, actor).cancel_requested)

    @_guarded("delete the fine-tuning job")
    def delete(self, job_id: str, actor: Actor) -> None:
        """Delete a job with its events, metrics and registered model (its owner or an admin).
        Files on the provider and adapters on disk are not touched."""
        with self._writer.begin() as db:
            row = db.execute(select(finetune_jobs.c.owner).where(finetune_jobs.c.id == job_id)).first()
            if row is None:
                return
            if not actor.may_read(row.owner):
                raise NotAllowed("This fine-tuning job belongs to another user.")
            for table in (finetune_events, finetune_metrics, finetuned_models):
                db.execute(delete(table).where(table.c.job_id == job_id))
            db.execute(delete(finetune_jobs).where(finetune_jobs.c.id == job_id))

    @staticmethod
    def delete_owned(db, owner: str) -> int:
        """Inside an open write transaction: delete every job and model of `owner` (their
        account is being removed). Returns how many jobs went."""
        owned = select(finetune_jobs.c.id).where(finetune_jobs.c.owner == owner)
        for table in (finetune_events, finetune_metrics):
            db.execute(delete(table).where(table.c.job_id.in_(owned)))
        db.execute(delete(finetuned_models).where(finetuned_models.c.owner == owner))
        return db.execute(delete(finetune_jobs).where(finetune_jobs.c.owner == owner)).rowcount

    # --- events and metrics ------------------------------------------------------
    @_guarded("record the job's events")
    def add_events(self, job_id: str, events: list[JobEvent], actor: Actor) -> int:
        """Append events (oldest first); ones whose id is already stored are skipped.
        Returns how many were new."""
        with self._writer.begin() as db:
            self._owned(db, job_id, actor)
            for event in events:
                event.id = event.id or new_id("ev")
            ids = [e.id for e in events]
            known = set(db.execute(select(finetune_events.c.event_id).where(
                finetune_events.c.job_id == job_id, finetune_events.c.event_id.in_(ids))).scalars())
            new, seen = [], set(known)
            for e in events:
                if e.id not in seen:
                    seen.add(e.id)
                    new.append({"job_id": job_id, "event_id": e.id, "created_at": e.time, "level": e.level or "info",
                                "message": e.message or "", "data": e.data})
            if new:
                db.execute(insert(finetune_events), new)
            return len(new)

    @_guarded("read the job's events")
    def list_events(self, job_id: str, actor: Actor, limit: int = 100) -> list[JobEvent]:
        """The job's latest events, newest first."""
        with self.engine.connect() as db:
            self._readable(db, job_id, actor)
            rows = db.execute(select(finetune_events).where(finetune_events.c.job_id == job_id)
                              .order_by(finetune_events.c.created_at.desc(), finetune_events.c.seq.desc())
                              .limit(limit)).all()
        return [JobEvent(_aware(r.created_at), r.level, r.message, r.event_id, r.data) for r in rows]

    @_guarded("record the job's metrics")
    def add_metrics(self, job_id: str, metrics: list[StepMetric], actor: Actor) -> None:
        """Record step metrics; a step reported again keeps its old values where the new
        report has none (e.g. the validation loss added at the end of an epoch)."""
        with self._writer.begin() as db:
            self._owned(db, job_id, actor)
            for m in metrics:
                values = {k: v for k, v in vars(m).items() if k != "step" and v is not None}
                where = (finetune_metrics.c.job_id == job_id) & (finetune_metrics.c.step == m.step)
                if db.execute(select(finetune_metrics.c.step).where(where)).first() is None:
                    db.execute(insert(finetune_metrics).values(job_id=job_id, step=m.step, **values))
                elif values:
                    db.execute(update(finetune_metrics).where(where).values(**values))

    @_guarded("read the job's metrics")
    def list_metrics(self, job_id: str, actor: Actor) -> list[StepMetric]:
        """The job's step metrics in step order (for the loss chart)."""
        with self.engine.connect() as db:
            self._readable(db, job_id, actor)
            rows = db.execute(select(finetune_metrics).where(finetune_metrics.c.job_id == job_id)
                              .order_by(finetune_metrics.c.step)).all()
        return [StepMetric(r.step, r.epoch, r.train_loss, r.valid_loss, r.tokens_per_s, r.eta_s) for r in rows]

    # --- finished models ---------------------------------------------------------
    @_guarded("register the fine-tuned model")
    def register_model(self, job: FineTuneJob, adapter_path: str = "") -> RegisteredModel:
        """Add a succeeded job's model to its owner's models (again: the same entry).
        OpenAI: the job's `ft:` model id; local: `local_model_id(job)` with its adapter (a
        local job still running may register: its worker does so as its last step)."""
        with self._writer.begin() as db:
            row = db.execute(select(finetune_jobs).where(finetune_jobs.c.id == job.id)).first()
            if row is None or row.owner != job.owner:
                raise StoreError("This fine-tuning job no longer exists (it was deleted).")
            stored = _job_from_row(row)
            # A local worker registers its adapter as its last step, just before it marks the
            # job succeeded (so a succeeded job always has its model); OpenAI names the model
            # only once the job succeeded.
            done = stored.status == SUCCEEDED or (stored.provider == "local" and not stored.finished)
            if not done:
                raise StoreError(f"Only a job that succeeded has a model; this one is {stored.status}.")
            if stored.provider == "openai":
                if not stored.result_model:
                    raise StoreError("OpenAI has not named the fine-tuned model yet.")
                model_id = stored.result_model
            else:
                if not adapter_path:
                    raise StoreError("A local model needs the path of its adapter.")
                model_id = stored.result_model or local_model_id(stored)
                db.execute(update(finetune_jobs).where(finetune_jobs.c.id == job.id).values(result_model=model_id))
            found = db.execute(select(finetuned_models).where(finetuned_models.c.id == model_id)).first()
            if found is not None:
                return _model_from_row(found)
            model = RegisteredModel(model_id, stored.owner, stored.id, stored.provider, stored.base_model,
                                    str(adapter_path), utcnow())
            db.execute(insert(finetuned_models).values(**vars(model)))
            return model

    @_guarded("list the fine-tuned models")
    def list_models(self, actor: Actor, everyone: bool = False, provider: str | None = None) -> list[RegisteredModel]:
        """The actor's finished models, newest first (`everyone`: admins only, all users')."""
        if everyone and not actor.admin:
            raise NotAllowed("Only an administrator can see everyone's fine-tuned models.")
        query = select(finetuned_models).order_by(finetuned_models.c.created_at.desc())
        if not everyone:
            query = query.where(finetuned_models.c.owner == actor.name)
        if provider:
            query = query.where(finetuned_models.c.provider == provider)
        with self.engine.connect() as db:
            return [_model_from_row(r) for r in db.execute(query)]

    # --- owner checks --------------------------------------------------------------
    @staticmethod
    def _readable(db, job_id: str, actor: Actor):
        row = db.execute(select(finetune_jobs.c.owner, finetune_jobs.c.cancel_requested)
                         .where(finetune_jobs.c.id == job_id)).first()
        if row is None:
            raise StoreError("This fine-tuning job no longer exists (it was deleted).")
        if not actor.may_read(row.owner):
            raise NotAllowed("This fine-tuning job belongs to another user.")
        return row

    @classmethod
    def _owned(cls, db, job_id: str, actor: Actor) -> None:
        if cls._readable(db, job_id, actor).owner != actor.name:
            raise NotAllowed("Only the owner of a fine-tuning job can change it.")


# NULL-free columns: these get their empty value instead of None.
_EMPTY = {"error_code": "", "error_message": "", "suffix": "", "hyperparameters": {}, "checkpoints": [],
          "result_files": []}


def _clean(values: dict) -> dict:
    return {k: (_EMPTY[k] if v is None and k in _EMPTY else v) for k, v in values.items()}


def _row_values(job: FineTuneJob) -> dict:
    return _clean({f.name: getattr(job, f.name) for f in fields(FineTuneJob)})


def _job_from_row(row) -> FineTuneJob:
    values = {f.name: getattr(row, f.name) for f in fields(FineTuneJob)}
    for name in ("created_at", "updated_at", "heartbeat_at"):
        values[name] = _aware(values[name]) if values[name] is not None else None
    values["cancel_requested"] = bool(values["cancel_requested"])
    return FineTuneJob(**values)


def _model_from_row(row) -> RegisteredModel:
    return RegisteredModel(row.id, row.owner, row.job_id, row.provider, row.base_model, row.adapter_path,
                           _aware(row.created_at))
