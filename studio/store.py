"""Storage for assistants, threads and messages, through SQLAlchemy.

SQLite in the workspace by default; any SQLAlchemy URL (e.g. PostgreSQL) for a team
deployment. Every row carries its owner, and every method takes the acting user (`Actor`):
users read and change their own rows, admins may read everyone's. Only a thread's owner may
add to, rename or delete it.

Every failure is a `StoreError` whose text can be shown to the user as it is; the details go
to the server log.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import unicodedata
import weakref
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (JSON, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table,
                        Text, create_engine, delete, event, func, insert, inspect, select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (ArgumentError, IntegrityError, NoSuchModuleError, OperationalError,
                            SQLAlchemyError, TimeoutError as PoolTimeout)

from studio.assistants import NAME_LENGTH, load_demo_assistant, spec_from_dict, spec_to_dict
from studio.types import AssistantSpec, Citation, Message, Thread, ToolCall, new_id, utcnow

LOG = logging.getLogger(__name__)

# How long a write waits for another one to finish before giving up. Writes take milliseconds;
# this only matters when many people send at once (or a long export holds the database).
BUSY_TIMEOUT_S = 30
USER_LENGTH = 128
PROVIDER_REF_LENGTH = 128
MAX_EDITED_CHARS = 100_000     # an edited reply: far longer than any a person writes by hand

metadata = MetaData()

assistants = Table(
    "assistants", metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(USER_LENGTH), index=True, nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
threads = Table(
    "threads", metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(USER_LENGTH), index=True, nullable=False),
    Column("assistant_id", String(64), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("provider_ref", String(PROVIDER_REF_LENGTH)),
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
    # Two writers can never give two messages the same place in a thread.
    Index("ux_messages_thread_seq", "thread_id", "seq", unique=True),
)
SEQ_INDEX = next(i for i in messages.indexes if i.name == "ux_messages_thread_seq")
flags = Table(  # one-off facts, e.g. "the demo assistant was seeded for alice"
    "flags", metadata,
    Column("key", String(200), primary_key=True),
)

TITLE_LENGTH = 60


class StoreError(Exception):
    """A storage problem, worded for the user; the technical details are in the server log."""


class NotAllowed(StoreError):
    """The acting user may not read or change this row."""


class ThreadDeleted(StoreError):
    """The thread was stored once and has since been deleted (e.g. from another browser tab)."""


@dataclass(frozen=True)
class Actor:
    """Who is asking the store: a user name, and whether they have the admin role."""
    name: str
    admin: bool = False

    def may_read(self, owner: str) -> bool:
        """Whether this user may read rows that `owner` owns."""
        return self.admin or self.name == owner


@dataclass(frozen=True)
class UserData:
    """How much a user keeps in the store (what removing the account deletes with it)."""
    threads: int
    assistants: int

    def __str__(self) -> str:
        def count(n: int, thing: str) -> str:
            return f"{n} {thing}{'' if n == 1 else 's'}"
        return f"{count(self.threads, 'thread')} and {count(self.assistants, 'assistant')}"


def check_name(name: str, kind: str, limit: int) -> str:
    """A user-given name of a `kind` of object ("dataset", "knowledge base") as stored:
    trimmed, one line, no control characters, 1-`limit` characters; StoreError otherwise."""
    name = " ".join((name or "").split())
    if not name:
        raise StoreError(f"Give the {kind} a name.")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise StoreError(f"A {kind} name cannot contain control characters.")
    if len(name) > limit:
        raise StoreError(f"A {kind} name can be at most {limit} characters; this one has {len(name)}.")
    return name


def title_from(text: str) -> str:
    """A thread title from its first message: the first line, shortened."""
    line = " ".join(text.strip().split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


# (engine, metadata) pairs whose tables exist: the stores beside Store (datasets, fine-tuning
# jobs) are made on each page run, and a write transaction each time would make every page fail
# while another process holds the workspace busy.
_TABLES_READY: "weakref.WeakKeyDictionary[Engine, set[int]]" = weakref.WeakKeyDictionary()


def create_tables_once(engine: Engine, metadata: MetaData) -> None:
    """Create `metadata`'s tables on `engine` (a no-op after the first time in this process)."""
    done = _TABLES_READY.setdefault(engine, set())
    if id(metadata) in done:   # module-level MetaData objects live as long as the process
        return
    with engine.execution_options(studio_write=True).begin() as db:
        metadata.create_all(db)
    done.add(id(metadata))


def _guarded(doing: str):
    """Turn database failures inside the method into a StoreError that says what failed."""
    def wrap(method):
        @functools.wraps(method)
        def guarded(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except StoreError:
                raise
            except (OperationalError, PoolTimeout) as exc:
                if _is_busy(exc):
                    LOG.warning("workspace database busy while trying to %s: %s", doing,
                                getattr(exc, "orig", None) or exc)
                    raise StoreError(f"The workspace is busy and could not {doing}; "
                                     "try again in a moment.") from exc
                LOG.exception("workspace database failed to %s", doing)
                raise StoreError(f"Could not {doing}: the workspace database failed "
                                 "(the details are in the server log).") from exc
            except SQLAlchemyError as exc:
                LOG.exception("workspace database failed to %s", doing)
                raise StoreError(f"Could not {doing}: the workspace database refused it "
                                 "(the details are in the server log).") from exc
        return guarded
    return wrap


class Store:
    """The workspace database of assistants, threads and messages; every call names its Actor."""
    def __init__(self, database_url: str):
        try:
            self.engine = create_engine(database_url, hide_parameters=True,  # no user text in logs
                                        **_engine_options(database_url))
        except (ArgumentError, ImportError, ValueError) as exc:
            raise StoreError(_unusable_url(database_url, exc)) from exc
        # Writes run through this handle: on SQLite its transactions take the write lock when
        # they start (BEGIN IMMEDIATE), so a read-then-write (the next message's place) is atomic.
        self._writer = self.engine.execution_options(studio_write=True)
        if self.engine.dialect.name == "sqlite":
            _private_sqlite_files(self.engine.url.database)
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._create_schema()

    @_guarded("open the workspace database")
    def _create_schema(self) -> None:
        with self._writer.begin() as db:
            metadata.create_all(db)
        # Databases made before the (thread, seq) index existed get it now.
        if SEQ_INDEX.name not in {i["name"] for i in inspect(self.engine).get_indexes("messages")}:
            with self._writer.begin() as db:
                _renumber_duplicate_seqs(db)
                SEQ_INDEX.create(db, checkfirst=True)

    # --- assistants ----------------------------------------------------------

    @_guarded("save the assistant")
    def save_assistant(self, spec: AssistantSpec, actor: Actor) -> AssistantSpec:
        """Create or update `spec`; returns it as stored (NUL characters removed).

        Users save their own assistants; admins may save anyone's.
        """
        data = _clean(spec_to_dict(spec))
        name = data["name"].strip()
        if not name:
            raise StoreError("Give the assistant a name before saving.")
        _check_length("An assistant's name", name, NAME_LENGTH)
        _check_length("A user name", spec.owner, USER_LENGTH)
        if not actor.may_read(spec.owner):
            raise NotAllowed("You can only save your own assistants.")
        row = {"owner": spec.owner, "name": name, "spec": data, "updated_at": utcnow()}
        with self._writer.begin() as db:
            stored = db.execute(select(assistants.c.owner)
                                .where(assistants.c.id == spec.id).with_for_update()).first()
            if stored is None:
                db.execute(insert(assistants).values(id=spec.id, **row))
            elif stored.owner != spec.owner or not actor.may_read(stored.owner):
                raise NotAllowed("This assistant belongs to another user.")
            else:
                db.execute(update(assistants).where(assistants.c.id == spec.id).values(**row))
        return spec_from_dict(data)

    @_guarded("read the assistant")
    def get_assistant(self, assistant_id: str, actor: Actor) -> AssistantSpec | None:
        """The assistant, or None if there is none with this id."""
        with self.engine.connect() as db:
            row = db.execute(select(assistants.c.owner, assistants.c.spec)
                             .where(assistants.c.id == assistant_id)).first()
        if row is None:
            return None
        if not actor.may_read(row.owner):
            raise NotAllowed("This assistant belongs to another user.")
        return spec_from_dict(row.spec)

    @_guarded("list the assistants")
    def list_assistants(self, actor: Actor, everyone: bool = False) -> list[AssistantSpec]:
        """The actor's assistants sorted by name; with `everyone` (admins only), all users'."""
        query = select(assistants.c.spec).order_by(func.lower(assistants.c.name), assistants.c.id)
        if everyone and not actor.admin:
            raise NotAllowed("Only an administrator can see everyone's assistants.")
        if not everyone:
            query = query.where(assistants.c.owner == actor.name)
        with self.engine.connect() as db:
            return [spec_from_dict(r.spec) for r in db.execute(query)]

    @_guarded("delete the assistant")
    def delete_assistant(self, assistant_id: str, actor: Actor) -> None:
        """Delete an assistant (its owner or an admin). Threads started with it stay."""
        with self._writer.begin() as db:
            row = db.execute(select(assistants.c.owner).where(assistants.c.id == assistant_id)).first()
            if row is None:
                return
            if not actor.may_read(row.owner):
                raise NotAllowed("This assistant belongs to another user.")
            db.execute(delete(assistants).where(assistants.c.id == assistant_id))

    def duplicate_assistant(self, assistant_id: str, actor: Actor) -> AssistantSpec:
        """A copy of an assistant the actor may read, owned by the actor, named "... (copy)"."""
        original = self.get_assistant(assistant_id, actor)
        if original is None:
            raise StoreError("This assistant no longer exists.")
        copy = spec_from_dict({**spec_to_dict(original), "id": new_id("asst")})
        copy.name = f"{original.name[: NAME_LENGTH - len(' (copy)')]} (copy)"
        if copy.owner != actor.name:   # knowledge bases are their owner's: a copy for someone else has none
            copy.knowledge_bases = []
        copy.owner = actor.name
        return self.save_assistant(copy, actor)

    @_guarded("set up the demo assistant")
    def seed_demo_assistant(self, actor: Actor) -> None:
        """Give a user the demo assistant once, on their first visit (not again if they delete it).

        Two first sign-ins at the same moment seed it once: the flag and the assistant are
        written in one transaction, and the loser of the race finds the flag taken.
        """
        # The same check save_assistant makes, before anything is written.
        _check_length("A user name", actor.name, USER_LENGTH)
        key = f"demo-seeded:{actor.name}"
        spec = load_demo_assistant(actor.name)
        try:
            with self._writer.begin() as db:
                if db.execute(select(flags).where(flags.c.key == key)).first():
                    return
                db.execute(insert(flags).values(key=key))
                db.execute(insert(assistants).values(
                    id=spec.id, owner=spec.owner, name=spec.name, spec=spec_to_dict(spec),
                    updated_at=utcnow()))
        except IntegrityError:
            return   # another sign-in of the same user seeded it at the same moment

    # --- threads ---------------------------------------------------------------

    @_guarded("save the thread")
    def save_thread(self, thread: Thread, actor: Actor) -> Thread:
        """Store `thread` if it is new, and each of its messages that is not stored yet, in order.

        Only the thread's owner may. Saving again after a failed save stores what was missed
        (its provider's id included). A thread that was stored and has since been deleted is
        not created again (ThreadDeleted): the session's copy still holds the deleted messages.
        """
        _check_length("A provider's thread id", thread.provider_ref, PROVIDER_REF_LENGTH)
        with self._writer.begin() as db:
            self._check_owner(db, thread, actor, create=not thread.stored)
            if thread.provider_ref:
                db.execute(update(threads).where(threads.c.id == thread.id)
                           .values(provider_ref=thread.provider_ref))
            stored = set(db.execute(select(messages.c.id).where(messages.c.thread_id == thread.id)).scalars())
            self._append(db, thread, [m for m in thread.messages if m.id not in stored])
        thread.stored = True
        return thread

    @_guarded("read the thread")
    def has_thread(self, thread_id: str) -> bool:
        """Whether a thread with this id is stored (whoever owns it)."""
        with self.engine.connect() as db:
            return db.execute(select(threads.c.id).where(threads.c.id == thread_id)).first() is not None

    @_guarded("read the thread")
    def get_thread(self, thread_id: str, actor: Actor) -> Thread | None:
        """The thread with its messages, or None if there is none with this id.

        Its owner and admins may read it; anyone else gets NotAllowed.
        """
        with self.engine.connect() as db:
            row = db.execute(select(threads).where(threads.c.id == thread_id)).first()
            if row is None:
                return None
            if not actor.may_read(row.owner):
                raise NotAllowed("This thread belongs to another user.")
            rows = db.execute(select(messages).where(messages.c.thread_id == thread_id)
                              .order_by(messages.c.seq)).all()
        thread = _thread_from_row(row)
        thread.messages = [_message_from_row(r) for r in rows]
        return thread

    @_guarded("list the threads")
    def list_threads(self, actor: Actor, everyone: bool = False) -> list[Thread]:
        """The actor's threads without their messages, newest first; with `everyone` (admins
        only), all users'."""
        query = select(threads).order_by(threads.c.updated_at.desc(), threads.c.id)
        if everyone and not actor.admin:
            raise NotAllowed("Only an administrator can see everyone's threads.")
        if not everyone:
            query = query.where(threads.c.owner == actor.name)
        with self.engine.connect() as db:
            return [_thread_from_row(r) for r in db.execute(query)]

    @_guarded("save the message")
    def add_message(self, thread: Thread, message: Message, actor: Actor, after: str | None = None) -> bool:
        """Append a message to the stored thread (and to `thread.messages` if missing there).

        Only the thread's owner may. The message's place is taken inside the write transaction,
        so concurrent writers never share one. A message already stored is left as it is.
        `after`: append only while the stored thread's last message is still the one with this
        id (else nothing is written and False is returned); `thread.messages` then gets it only
        once stored, placed right after that message, whatever another run added meanwhile.
        """
        if after is not None:
            return self._add_after(thread, message, actor, after)
        appended = all(m.id != message.id for m in thread.messages)
        if appended:
            thread.messages.append(message)   # kept in the session even if the write fails
        try:
            with self._writer.begin() as db:
                self._check_owner(db, thread, actor, create=False)
                if db.execute(select(messages.c.id).where(messages.c.id == message.id)).first() is None:
                    self._append(db, thread, [message])
        except NotAllowed:   # not theirs to keep, not even in the session
            if appended:
                thread.messages.remove(message)
            raise
        return True

    def _add_after(self, thread: Thread, message: Message, actor: Actor, after: str) -> bool:
        with self._writer.begin() as db:
            self._check_owner(db, thread, actor, create=False)
            last = db.execute(select(messages.c.id).where(messages.c.thread_id == thread.id)
                              .order_by(messages.c.seq.desc()).limit(1)).scalar()
            if last != after:
                return False
            self._append(db, thread, [message])
        ids = [m.id for m in thread.messages]
        if message.id not in ids:
            thread.messages.insert(ids.index(after) + 1 if after in ids else len(ids), message)
        return True

    @_guarded("save your feedback")
    def set_feedback(self, thread: Thread, message_id: str, actor: Actor, **changes) -> None:
        """Store `rating` (1, 0 or None) and/or `edited` (text; "" for none) of one of the thread's
        replies (its owner only). Only the fields given change: a rating from a tab with an old
        copy of the thread keeps a correction saved in another."""
        unknown = set(changes) - {"rating", "edited"}
        if unknown:
            raise ValueError(f"Unknown feedback fields: {', '.join(sorted(unknown))}")
        if "edited" in changes:
            changes["edited"] = _text(changes["edited"] or "")
            _check_length("An edited reply", changes["edited"], MAX_EDITED_CHARS)
        with self._writer.begin() as db:
            self._check_owner(db, thread, actor, create=False)
            row = db.execute(select(messages.c.extra).where(messages.c.id == message_id,
                                                             messages.c.thread_id == thread.id)).first()
            if row is None:
                raise StoreError("This reply is not saved (yet), so feedback cannot be kept with it.")
            extra = dict(row.extra or {})
            for name, value in changes.items():
                if value is None or value == "":
                    extra.pop(name, None)
                else:
                    extra[name] = int(value) if name == "rating" else value
            db.execute(update(messages).where(messages.c.id == message_id).values(extra=extra))

    @_guarded("save the thread")
    def set_provider_ref(self, thread: Thread, provider_ref: str, actor: Actor) -> None:
        """Remember the provider's own id for the thread (e.g. an OpenAI conversation id)."""
        _check_length("A provider's thread id", provider_ref, PROVIDER_REF_LENGTH)
        thread.provider_ref = provider_ref   # kept in the session even if the write fails
        with self._writer.begin() as db:
            self._check_owner(db, thread, actor, create=False)
            db.execute(update(threads).where(threads.c.id == thread.id).values(provider_ref=provider_ref))

    @_guarded("rename the thread")
    def rename_thread(self, thread_id: str, title: str, actor: Actor) -> str:
        """Rename a thread (its owner only); returns the title as stored (shortened)."""
        title = title_from(_text(title))
        if not title:
            raise StoreError("A thread's title cannot be empty; it keeps its old title.")
        with self._writer.begin() as db:
            self._check_owner(db, thread_id, actor, create=False)
            db.execute(update(threads).where(threads.c.id == thread_id).values(title=title))
        return title

    @_guarded("delete the thread")
    def delete_thread(self, thread_id: str, actor: Actor) -> None:
        """Delete a thread and its messages (its owner only). A missing thread is no error."""
        with self._writer.begin() as db:
            owner = db.execute(select(threads.c.owner).where(threads.c.id == thread_id)).scalar()
            if owner is None:
                return
            if owner != actor.name:
                raise NotAllowed("Only the owner of this thread can delete it.")
            db.execute(delete(messages).where(messages.c.thread_id == thread_id))
            db.execute(delete(threads).where(threads.c.id == thread_id))

    # --- a user's data, when their account is removed ---------------------------

    @_guarded("count the user's threads and assistants")
    def count_user_data(self, username: str, actor: Actor) -> UserData:
        """How many threads and assistants `username` has (the actor: that user or an admin)."""
        if not actor.may_read(username):
            raise NotAllowed("Only an administrator can see another user's data.")
        with self.engine.connect() as db:
            return self._count_owned(db, username)

    @_guarded("delete the user's threads and assistants")
    def delete_user_data(self, username: str, actor: Actor, within=None) -> UserData:
        """Delete every thread (with its messages), assistant and flag of `username`; admins only.

        Called when the account is removed, so whoever is given the name later starts with
        nothing of the old owner's. `within`: a write transaction already open on this
        database (the account's removal), so that both happen or neither. Returns what it deleted.
        """
        if not actor.admin:
            raise NotAllowed("Only an administrator can delete another user's data.")
        if within is not None:
            return self._delete_owned(within, username)
        with self._writer.begin() as db:
            return self._delete_owned(db, username)

    @staticmethod
    def _count_owned(db, username: str) -> UserData:
        def count(table) -> int:
            return db.execute(select(func.count()).select_from(table)
                              .where(table.c.owner == username)).scalar_one()
        return UserData(threads=count(threads), assistants=count(assistants))

    @classmethod
    def _delete_owned(cls, db, username: str) -> UserData:
        found = cls._count_owned(db, username)
        owned_threads = select(threads.c.id).where(threads.c.owner == username)
        db.execute(delete(messages).where(messages.c.thread_id.in_(owned_threads)))
        db.execute(delete(threads).where(threads.c.owner == username))
        db.execute(delete(assistants).where(assistants.c.owner == username))
        # Flags are "what:username" (e.g. demo-seeded:alice); '_' would be a LIKE wildcard.
        escaped = username.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        db.execute(delete(flags).where(flags.c.key.like(f"%:{escaped}", escape="\\")))
        return found

    # --- inside write transactions ----------------------------------------------

    @staticmethod
    def _check_owner(db, thread: Thread | str, actor: Actor, create: bool) -> None:
        """Lock the thread's row and check the actor owns it; with `create`, insert it if new."""
        thread_id = thread if isinstance(thread, str) else thread.id
        owner = db.execute(select(threads.c.owner).where(threads.c.id == thread_id)
                           .with_for_update()).scalar()
        if owner is None and create:
            if thread.owner != actor.name:
                raise NotAllowed("You can only start threads of your own.")
            _check_length("A user name", thread.owner, USER_LENGTH)
            db.execute(insert(threads).values(
                id=thread.id, owner=thread.owner, assistant_id=thread.assistant_id,
                provider=thread.provider, provider_ref=thread.provider_ref,
                title=title_from(_text(thread.title)) or "New thread",
                created_at=thread.created_at, updated_at=thread.updated_at))
        elif owner is None:
            raise ThreadDeleted("This thread no longer exists (it was deleted).")
        elif owner != actor.name:
            raise NotAllowed("This thread belongs to another user; only its owner can change it.")

    @staticmethod
    def _append(db, thread: Thread, new: list[Message]) -> None:
        if not new:
            return
        seq = db.execute(select(func.coalesce(func.max(messages.c.seq), -1))
                         .where(messages.c.thread_id == thread.id)).scalar_one()
        for message in new:
            seq += 1
            message.content = _text(message.content)
            extra = _clean({"tool_calls": [asdict(c) for c in message.tool_calls],
                            "citations": [asdict(c) for c in message.citations]})
            if message.cut_off:   # a reply stopped by a length limit (the page offers Continue)
                extra["cut_off"] = True
            if message.stopped:   # a reply the user stopped (Continue too)
                extra["stopped"] = True
            if message.notes:
                extra["notes"] = [_text(n) for n in message.notes]
            extra.update(_feedback(message))
            db.execute(insert(messages).values(
                id=message.id, thread_id=thread.id, seq=seq, role=message.role,
                content=message.content, extra=extra, created_at=message.created_at))
        values = {"updated_at": utcnow()}
        first_user = next((m for m in new if m.role == "user"), None)
        if first_user is not None and thread.title == "New thread":
            values["title"] = title_from(first_user.content) or "New thread"
        db.execute(update(threads).where(threads.c.id == thread.id).values(**values))
        thread.title = values.get("title", thread.title)
        thread.updated_at = values["updated_at"]


# --- helpers -------------------------------------------------------------------------

def _text(value: str) -> str:
    # NUL has no meaning in text a person typed or a model wrote, and PostgreSQL refuses it:
    # drop it, so the same text saves on every database.
    return value.replace("\x00", "")


def _clean(value):
    """`value` (JSON-like) with NUL removed from every string in it."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _check_length(what: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise StoreError(f"{what} can be at most {limit} characters; this one has {len(value)}.")


def _is_busy(exc: SQLAlchemyError) -> bool:
    if isinstance(exc, PoolTimeout):
        return True
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if code in ("55P03", "40P01", "40001"):   # lock timeout, deadlock, serialization failure
        return True
    text = str(orig or exc).lower()
    return "locked" in text or "busy" in text or "lock timeout" in text


URL_EXAMPLES = ("e.g. `sqlite:////srv/studio/studio.db` for a file, or "
                "`postgresql+psycopg://user:password@host:5432/studio`")

# The pip package for a database driver module SQLAlchemy imports, where the names differ.
DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient",
                   "pymysql": "PyMySQL", "cx_Oracle": "cx-Oracle"}


def _unusable_url(database_url: str, exc: Exception) -> str:
    """Why create_engine refused the database URL, for the administrator who set it.

    Never repeats the URL (it may carry a database password); only its scheme, which cannot.
    """
    if isinstance(exc, ImportError):
        module = (exc.name or "").split(".")[0]
        if module:
            package = DRIVER_PACKAGES.get(module, module)
            return (f"The database driver that the database URL (STUDIO_DATABASE_URL) needs is not "
                    f"installed: the Python module '{module}' is missing. Install it with "
                    f"`pip install \"{package}\"`, or name a driver that is installed in the URL "
                    f"({URL_EXAMPLES}).")
        LOG.error("the database driver could not be imported: %s", exc)
        return ("The database driver that the database URL (STUDIO_DATABASE_URL) needs could not be "
                "loaded (the details are in the server log).")
    scheme = database_url.split("://", 1)[0] if "://" in database_url else ""
    if isinstance(exc, NoSuchModuleError) and re.fullmatch(r"[A-Za-z][A-Za-z0-9+_.-]{0,40}", scheme):
        return (f"The database URL (STUDIO_DATABASE_URL) names a kind of database this installation "
                f"does not know ('{scheme}'); use SQLite or PostgreSQL ({URL_EXAMPLES}).")
    return ("The database URL (STUDIO_DATABASE_URL) is not a URL SQLAlchemy understands: it should "
            f"look like `dialect://user:password@host:port/database` ({URL_EXAMPLES}).")


def _engine_options(database_url: str) -> dict:
    if database_url.startswith("sqlite"):
        # The driver waits this long for a lock (SQLite's busy timeout) before reporting one.
        return {"connect_args": {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}}
    return {"pool_pre_ping": True}


def _sqlite_connect(connection, _record) -> None:
    # Let SQLAlchemy's "begin" event (below) say when a transaction starts, instead of the
    # driver starting one lazily at the first write (after the reads it depends on).
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # the app and the CLI may write at once
    cursor.close()


def _sqlite_begin(connection) -> None:
    write = connection.get_execution_options().get("studio_write")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _private_sqlite_files(database: str | None) -> None:
    """Make the database file (and its WAL and shared-memory files) readable by its owner only.

    SQLite gives the -wal and -shm files it creates the main file's permissions, so creating
    the main file 0600 covers them; files left by an older version are tightened here.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    try:
        if path.parent.is_dir() and not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
            if file.exists() and file.stat().st_mode & 0o077:
                file.chmod(0o600)
    except OSError as exc:   # e.g. a file owned by another account: SQLite will say if it matters
        LOG.warning("could not restrict the permissions of %s: %s", path, exc)


def _renumber_duplicate_seqs(db) -> None:
    # Before the unique index, two concurrent writers could give two messages one place.
    # Renumber those threads in their stored order so the index can be created.
    clashing = db.execute(select(messages.c.thread_id).group_by(messages.c.thread_id, messages.c.seq)
                          .having(func.count() > 1).distinct()).scalars().all()
    for thread_id in clashing:
        ids = db.execute(select(messages.c.id).where(messages.c.thread_id == thread_id)
                         .order_by(messages.c.seq, messages.c.created_at, messages.c.id)).scalars().all()
        for seq, message_id in enumerate(ids):
            db.execute(update(messages).where(messages.c.id == message_id).values(seq=seq))


def _aware(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were written as UTC.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _thread_from_row(row) -> Thread:
    return Thread(id=row.id, owner=row.owner, assistant_id=row.assistant_id, provider=row.provider,
                  provider_ref=row.provider_ref, title=row.title,
                  created_at=_aware(row.created_at), updated_at=_aware(row.updated_at), stored=True)


def _message_from_row(row) -> Message:
    extra = row.extra or {}
    return Message(id=row.id, role=row.role, content=row.content, created_at=_aware(row.created_at),
                   tool_calls=[ToolCall(**c) for c in extra.get("tool_calls", [])],
                   citations=[Citation(**c) for c in extra.get("citations", [])],
                   cut_off=bool(extra.get("cut_off", False)), stopped=bool(extra.get("stopped", False)),
                   notes=[str(n) for n in extra.get("notes", [])],
                   rating=extra.get("rating"), edited=str(extra.get("edited", "")))


def _feedback(message: Message) -> dict:
    return {**({"rating": int(message.rating)} if message.rating is not None else {}),
            **({"edited": _text(message.edited)} if message.edited else {})}
