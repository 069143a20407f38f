"""Evaluation runs in the workspace database: what was asked (the cases, the configurations,
the rule and the judge) and every reply with its scores, saved one by one as they come.

Tables `eval_runs` (one row per run, its cases and configurations as JSON) and
`eval_results` (one row per case and configuration, replaced when a failed one is re-run).
The page reads runs from here, so a reload, a second tab or a restart loses nothing. Owners
and admins read a run; only the owner changes or deletes it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

from sqlalchemy import (JSON, Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text, delete,
                        insert, select, update)
from sqlalchemy.engine import Engine

from studio.store import USER_LENGTH, Actor, NotAllowed, StoreError, _aware, _guarded, create_tables_once
from studio.types import Sampling, new_id, utcnow

RUNNING, FINISHED, CANCELLED = "running", "finished", "cancelled"
STALE_S = 30.0       # a running run whose worker has been silent this long was interrupted
NAME_LENGTH = 200

metadata = MetaData()
eval_runs = Table(
    "eval_runs", metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(USER_LENGTH), index=True, nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("source", Text, nullable=False),
    Column("cases", JSON, nullable=False),
    Column("configurations", JSON, nullable=False),
    Column("rule", Text, nullable=False),
    Column("judge", JSON),
    Column("status", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("cancel_requested", Boolean, nullable=False),
    Column("concurrency", Integer, nullable=False),
)
eval_results = Table(
    "eval_results", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("case_no", Integer, primary_key=True),
    Column("config_no", Integer, primary_key=True),
    Column("reply", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("error_code", String(100), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_token_s", Float),
    Column("total_s", Float),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cost", Float),
    Column("rule_passed", Boolean),
    Column("length_ratio", Float),
    Column("similarity", Float),
    Column("judge_score", Float),
    Column("judge_note", Text, nullable=False),
)


@dataclass
class Case:
    """One held-out example: the conversation up to the reply (system and earlier turns
    included), the reference reply, and where it came from (dataset row or file line)."""
    messages: list[dict]
    reference: str
    row: int = 0

    @property
    def prompt(self) -> str:
        return next((m.get("content", "") for m in reversed(self.messages) if m.get("role") == "user"), "")


@dataclass
class Configuration:
    """What answers the cases: a bare model with a system prompt, or a saved assistant (its
    id), with sampling settings. An empty system prompt on a bare model keeps each case's own
    (the prompt a fine-tuned model was trained with)."""
    provider: str
    model: str = ""
    system_prompt: str = ""
    assistant_id: str = ""
    sampling: Sampling = field(default_factory=Sampling)
    label: str = ""

    name: str = ""         # the assistant's name, for its label

    def title(self) -> str:
        if self.label:
            return self.label
        if self.assistant_id:
            return f"{self.name or self.assistant_id}" + (f" on {self.model}" if self.model else "")
        return f"{self.model or 'default model'} ({self.provider})"

    def to_json(self) -> dict:
        return {**asdict(self), "sampling": asdict(self.sampling)}

    @classmethod
    def from_json(cls, data: dict) -> "Configuration":
        return cls(**{**data, "sampling": Sampling(**(data.get("sampling") or {}))})


@dataclass(frozen=True)
class Judge:
    """A model that scores each reply against the reference with the user's rubric (1-5)."""
    provider: str
    model: str
    rubric: str


@dataclass
class Result:
    """One case answered by one configuration, with its scores (None: not measured)."""
    case_no: int
    config_no: int
    reply: str = ""
    error: str = ""
    error_code: str = ""
    attempts: int = 0
    first_token_s: float | None = None
    total_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    rule_passed: bool | None = None
    length_ratio: float | None = None
    similarity: float | None = None
    judge_score: float | None = None
    judge_note: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass
class EvalRun:
    """A stored run (its cases are loaded with it; results separately)."""
    id: str
    owner: str
    name: str
    source: str
    cases: list[Case]
    configurations: list[Configuration]
    rule: str = ""
    judge: Judge | None = None
    status: str = RUNNING
    created_at: datetime | None = None
    heartbeat_at: datetime | None = None
    cancel_requested: bool = False
    concurrency: int = 4

    @property
    def total(self) -> int:
        return len(self.cases) * len(self.configurations)

    def interrupted(self, now: datetime | None = None) -> bool:
        """Running by its record, but its worker has gone silent (the process was stopped)."""
        if self.status != RUNNING:
            return False
        since = self.heartbeat_at or self.created_at
        return since is not None and ((now or utcnow()) - since).total_seconds() > STALE_S


def label_configurations(configurations: list[Configuration]) -> list[Configuration]:
    """Give each configuration a unique label ("A · gpt-4o-mini (openai)"): two panes may run
    the same model with other settings, and tables and exports name them by label."""
    letters = "ABCDEFGH"
    return [replace(c, label=f"{letters[i]} · {c.title()}") for i, c in enumerate(configurations)]


class EvalStore:
    """Evaluation runs and results on `engine` (the Store's). Every call names its Actor."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._writer = engine.execution_options(studio_write=True)
        self._create_tables()

    @_guarded("set up the evaluation tables")
    def _create_tables(self) -> None:
        create_tables_once(self.engine, metadata)

    @_guarded("save the evaluation run")
    def create(self, run: EvalRun, actor: Actor) -> EvalRun:
        """Store a new run owned by the actor, status running."""
        if len(run.name) > NAME_LENGTH:
            raise StoreError(f"A run's name can be at most {NAME_LENGTH} characters.")
        if len(actor.name) > USER_LENGTH:
            raise StoreError(f"A user name can be at most {USER_LENGTH} characters.")
        run.id = run.id or new_id("eval")
        run.owner, run.created_at, run.heartbeat_at, run.status = actor.name, utcnow(), utcnow(), RUNNING
        with self._writer.begin() as db:
            db.execute(insert(eval_runs).values(
                id=run.id, owner=run.owner, name=run.name, source=run.source,
                cases=[asdict(c) for c in run.cases], configurations=[c.to_json() for c in run.configurations],
                rule=run.rule, judge=asdict(run.judge) if run.judge else None, status=run.status,
                created_at=run.created_at, heartbeat_at=run.heartbeat_at, cancel_requested=False,
                concurrency=run.concurrency))
        return run

    @_guarded("read the evaluation run")
    def get(self, run_id: str, actor: Actor) -> EvalRun | None:
        with self.engine.connect() as db:
            row = db.execute(select(eval_runs).where(eval_runs.c.id == run_id)).first()
        if row is None:
            return None
        if not actor.may_read(row.owner):
            raise NotAllowed("This evaluation run belongs to another user.")
        return _run_from_row(row)

    @_guarded("list the evaluation runs")
    def list(self, actor: Actor, everyone: bool = False) -> list[EvalRun]:
        """The actor's runs, newest first (`everyone`: admins only)."""
        if everyone and not actor.admin:
            raise NotAllowed("Only an administrator can see everyone's evaluation runs.")
        query = select(eval_runs).order_by(eval_runs.c.created_at.desc(), eval_runs.c.id)
        if not everyone:
            query = query.where(eval_runs.c.owner == actor.name)
        with self.engine.connect() as db:
            return [_run_from_row(r) for r in db.execute(query)]

    @_guarded("read the evaluation results")
    def results(self, run_id: str, actor: Actor) -> list[Result]:
        """The run's results so far, by case then configuration."""
        with self.engine.connect() as db:
            self._readable(db, run_id, actor)
            rows = db.execute(select(eval_results).where(eval_results.c.run_id == run_id)
                              .order_by(eval_results.c.case_no, eval_results.c.config_no))
            return [Result(**{k: v for k, v in r._mapping.items() if k != "run_id"}) for r in rows]

    @_guarded("save an evaluation result")
    def save_result(self, run_id: str, result: Result, actor: Actor) -> None:
        """Record (or replace) one case's reply from one configuration; also a heartbeat."""
        with self._writer.begin() as db:
            self._owned(db, run_id, actor)
            db.execute(delete(eval_results).where(eval_results.c.run_id == run_id,
                                                  eval_results.c.case_no == result.case_no,
                                                  eval_results.c.config_no == result.config_no))
            db.execute(insert(eval_results).values(run_id=run_id, **asdict(result)))
            db.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(heartbeat_at=utcnow()))

    @_guarded("update the evaluation run")
    def set_status(self, run_id: str, status: str, actor: Actor, clear_cancel: bool = True) -> None:
        """Set the run's status; RUNNING (a resume) also clears an old cancel request unless
        `clear_cancel` is False (the worker starting: a cancel asked for meanwhile stands)."""
        with self._writer.begin() as db:
            self._owned(db, run_id, actor)
            values = {"status": status, "heartbeat_at": utcnow()}
            if status == RUNNING and clear_cancel:
                values["cancel_requested"] = False
            db.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(**values))

    @_guarded("record the evaluation's heartbeat")
    def heartbeat(self, run_id: str, actor: Actor) -> None:
        with self._writer.begin() as db:
            self._owned(db, run_id, actor)
            db.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(heartbeat_at=utcnow()))

    @_guarded("cancel the evaluation")
    def request_cancel(self, run_id: str, actor: Actor) -> None:
        """Ask the run to stop after the replies in flight (the owner or an admin)."""
        with self._writer.begin() as db:
            self._readable(db, run_id, actor)
            db.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(cancel_requested=True))

    @_guarded("read the evaluation run")
    def cancel_requested(self, run_id: str, actor: Actor) -> bool:
        """True when cancel was asked for, or the run was deleted."""
        with self.engine.connect() as db:
            row = db.execute(select(eval_runs.c.cancel_requested).where(eval_runs.c.id == run_id)).first()
        return row is None or bool(row.cancel_requested)

    @_guarded("delete the evaluation run")
    def delete(self, run_id: str, actor: Actor) -> None:
        """Delete the actor's own run and its results."""
        with self._writer.begin() as db:
            self._owned(db, run_id, actor)
            db.execute(delete(eval_results).where(eval_results.c.run_id == run_id))
            db.execute(delete(eval_runs).where(eval_runs.c.id == run_id))

    @staticmethod
    def delete_owned(db, owner: str) -> int:
        """Inside an open write transaction: delete every run of `owner` (their account is going)."""
        owned = select(eval_runs.c.id).where(eval_runs.c.owner == owner)
        db.execute(delete(eval_results).where(eval_results.c.run_id.in_(owned)))
        return db.execute(delete(eval_runs).where(eval_runs.c.owner == owner)).rowcount

    @staticmethod
    def _readable(db, run_id: str, actor: Actor):
        row = db.execute(select(eval_runs.c.owner).where(eval_runs.c.id == run_id)).first()
        if row is None:
            raise StoreError("This evaluation run no longer exists (it was deleted).")
        if not actor.may_read(row.owner):
            raise NotAllowed("This evaluation run belongs to another user.")
        return row

    @classmethod
    def _owned(cls, db, run_id: str, actor: Actor) -> None:
        row = cls._readable(db, run_id, actor)
        if row.owner != actor.name:
            raise NotAllowed("Only the owner of this evaluation run can change it.")


def _run_from_row(row) -> EvalRun:
    judge = row.judge
    return EvalRun(id=row.id, owner=row.owner, name=row.name, source=row.source,
                   cases=[Case(**c) for c in row.cases],
                   configurations=[Configuration.from_json(c) for c in row.configurations],
                   rule=row.rule, judge=Judge(**judge) if judge else None, status=row.status,
                   created_at=_aware(row.created_at), heartbeat_at=_aware(row.heartbeat_at),
                   cancel_requested=bool(row.cancel_requested), concurrency=row.concurrency)
