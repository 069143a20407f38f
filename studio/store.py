"""Storage for assistants, threads and messages, through SQLAlchemy.

SQLite in the workspace by default; any SQLAlchemy URL (e.g. PostgreSQL) for a team
deployment. Every row carries its owner; admins may list everything.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone

from sqlalchemy import (JSON, Column, DateTime, ForeignKey, Integer, MetaData, String, Table, Text,
                        create_engine, delete, event, func, insert, select, update)

from studio.assistants import load_demo_assistant, spec_from_dict, spec_to_dict
from studio.types import AssistantSpec, Citation, Message, Thread, ToolCall, new_id, utcnow

metadata = MetaData()

assistants = Table(
    "assistants", metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), index=True, nullable=False),
    Column("name", String(200), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
threads = Table(
    "threads", metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), index=True, nullable=False),
    Column("assistant_id", String(64), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("provider_ref", String(128)),
    Column("title", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
messages = Table(
    "messages", metadata,
    Column("id", String(64), primary_key=True),
    Column("thread_id", String(64), ForeignKey("threads.id", ondelete="CASCADE"), index=True),
    Column("seq", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("extra", JSON, nullable=False),        # tool calls and citations
    Column("created_at", DateTime(timezone=True), nullable=False),
)
flags = Table(  # one-off facts, e.g. "the demo assistant was seeded for alice"
    "flags", metadata,
    Column("key", String(200), primary_key=True),
)

TITLE_LENGTH = 60


def _aware(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were written as UTC.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def title_from(text: str) -> str:
    """A thread title from its first message: the first line, shortened."""
    line = " ".join(text.strip().split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


class Store:
    def __init__(self, database_url: str):
        self.engine = create_engine(database_url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    # --- assistants ----------------------------------------------------------

    def save_assistant(self, spec: AssistantSpec) -> AssistantSpec:
        row = {"owner": spec.owner, "name": spec.name, "spec": spec_to_dict(spec), "updated_at": utcnow()}
        with self.engine.begin() as db:
            done = db.execute(update(assistants).where(assistants.c.id == spec.id).values(**row)).rowcount
            if not done:
                db.execute(insert(assistants).values(id=spec.id, **row))
        return spec

    def get_assistant(self, assistant_id: str) -> AssistantSpec | None:
        with self.engine.connect() as db:
            row = db.execute(select(assistants.c.spec).where(assistants.c.id == assistant_id)).first()
        return spec_from_dict(row.spec) if row else None

    def list_assistants(self, owner: str | None) -> list[AssistantSpec]:
        """Assistants of `owner`, sorted by name; `owner=None` lists everyone's (admins)."""
        query = select(assistants.c.spec).order_by(func.lower(assistants.c.name))
        if owner is not None:
            query = query.where(assistants.c.owner == owner)
        with self.engine.connect() as db:
            return [spec_from_dict(r.spec) for r in db.execute(query)]

    def delete_assistant(self, assistant_id: str) -> None:
        with self.engine.begin() as db:
            db.execute(delete(assistants).where(assistants.c.id == assistant_id))

    def duplicate_assistant(self, assistant_id: str, owner: str) -> AssistantSpec:
        original = self.get_assistant(assistant_id)
        if original is None:
            raise KeyError(assistant_id)
        copy = spec_from_dict({**spec_to_dict(original), "id": new_id("asst")})
        copy.name, copy.owner = f"{original.name} (copy)", owner
        return self.save_assistant(copy)

    def seed_demo_assistant(self, owner: str) -> None:
        """Give a user the demo assistant once, on their first visit (not again if they delete it)."""
        key = f"demo-seeded:{owner}"
        with self.engine.begin() as db:
            if db.execute(select(flags).where(flags.c.key == key)).first():
                return
            db.execute(insert(flags).values(key=key))
        self.save_assistant(load_demo_assistant(owner))

    # --- threads ---------------------------------------------------------------

    def create_thread(self, thread: Thread) -> Thread:
        with self.engine.begin() as db:
            db.execute(insert(threads).values(
                id=thread.id, owner=thread.owner, assistant_id=thread.assistant_id,
                provider=thread.provider, provider_ref=thread.provider_ref, title=thread.title,
                created_at=thread.created_at, updated_at=thread.updated_at))
        for message in thread.messages:
            self.add_message(thread, message)
        return thread

    def has_thread(self, thread_id: str) -> bool:
        with self.engine.connect() as db:
            return db.execute(select(threads.c.id).where(threads.c.id == thread_id)).first() is not None

    def get_thread(self, thread_id: str) -> Thread | None:
        with self.engine.connect() as db:
            row = db.execute(select(threads).where(threads.c.id == thread_id)).first()
            if row is None:
                return None
            rows = db.execute(select(messages).where(messages.c.thread_id == thread_id)
                              .order_by(messages.c.seq)).all()
        thread = _thread_from_row(row)
        thread.messages = [_message_from_row(r) for r in rows]
        return thread

    def list_threads(self, owner: str | None) -> list[Thread]:
        """Threads without their messages, newest first; `owner=None` lists everyone's."""
        query = select(threads).order_by(threads.c.updated_at.desc())
        if owner is not None:
            query = query.where(threads.c.owner == owner)
        with self.engine.connect() as db:
            return [_thread_from_row(r) for r in db.execute(query)]

    def add_message(self, thread: Thread, message: Message) -> None:
        """Append a message (to the stored thread and to `thread.messages` if missing)."""
        if message not in thread.messages:
            thread.messages.append(message)
        extra = {"tool_calls": [asdict(c) for c in message.tool_calls],
                 "citations": [asdict(c) for c in message.citations]}
        now = utcnow()
        values = {"updated_at": now}
        if message.role == "user" and thread.title == "New thread":
            thread.title = values["title"] = title_from(message.content) or "New thread"
        with self.engine.begin() as db:
            seq = db.execute(select(func.count()).select_from(messages)
                             .where(messages.c.thread_id == thread.id)).scalar_one()
            db.execute(insert(messages).values(
                id=message.id, thread_id=thread.id, seq=seq, role=message.role,
                content=message.content, extra=extra, created_at=message.created_at))
            db.execute(update(threads).where(threads.c.id == thread.id).values(**values))
        thread.updated_at = now

    def set_provider_ref(self, thread: Thread, provider_ref: str) -> None:
        thread.provider_ref = provider_ref
        with self.engine.begin() as db:
            db.execute(update(threads).where(threads.c.id == thread.id).values(provider_ref=provider_ref))

    def rename_thread(self, thread_id: str, title: str) -> None:
        with self.engine.begin() as db:
            db.execute(update(threads).where(threads.c.id == thread_id).values(title=title_from(title)))

    def delete_thread(self, thread_id: str) -> None:
        with self.engine.begin() as db:
            db.execute(delete(messages).where(messages.c.thread_id == thread_id))
            db.execute(delete(threads).where(threads.c.id == thread_id))


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # the app and the CLI may write at once
    cursor.close()


def _thread_from_row(row) -> Thread:
    return Thread(id=row.id, owner=row.owner, assistant_id=row.assistant_id, provider=row.provider,
                  provider_ref=row.provider_ref, title=row.title,
                  created_at=_aware(row.created_at), updated_at=_aware(row.updated_at))


def _message_from_row(row) -> Message:
    extra = row.extra or {}
    return Message(id=row.id, role=row.role, content=row.content, created_at=_aware(row.created_at),
                   tool_calls=[ToolCall(**c) for c in extra.get("tool_calls", [])],
                   citations=[Citation(**c) for c in extra.get("citations", [])])
