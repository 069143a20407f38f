"""Knowledge bases, their files and chunks, in the workspace database; file bytes on disk.

Tables on the Store's engine (SQLite or PostgreSQL), like studio.datasets.storage:
`knowledge_bases` (one per owner and name), `knowledge_files` (one per base and content hash,
with its indexing status) and `knowledge_chunks` (text, page, token span and the float32
vector as bytes). A file's chunks are written in one transaction with its "ready" status, so
a search never sees half a file. The uploaded bytes are kept under `files_dir/<base>/<sha256>`:
the user's file name is shown, never used as a path.

Owners and admins read a base; only they change it. Failures are StoreErrors worded for the user.
"""
from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import (Column, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table, Text,
                        delete, func, insert, select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from studio.datasets.reading import file_sha256
from studio.knowledge.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE, Chunk, check_sizes
from studio.knowledge.extract import check_upload, clean_name
from studio.knowledge.types import WORKING, KnowledgeBase, KnowledgeFile
from studio.store import USER_LENGTH, Actor, NotAllowed, StoreError, _aware, _guarded, create_tables_once
from studio.store import check_name as check_object_name
from studio.types import new_id, utcnow

NAME_LENGTH = 100
# A file whose indexing has not moved for this long was left by a process that died.
STALE_AFTER = timedelta(minutes=2)

metadata = MetaData()

knowledge_bases = Table(
    "knowledge_bases", metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(USER_LENGTH), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("name_key", String(NAME_LENGTH), nullable=False),
    Column("chunk_size", Integer, nullable=False),
    Column("chunk_overlap", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ux_knowledge_bases_owner_name", "owner", "name_key", unique=True),
)
knowledge_files = Table(
    "knowledge_files", metadata,
    Column("id", String(64), primary_key=True),
    Column("base_id", String(64), ForeignKey("knowledge_bases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(250), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("done", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=False, default=0),
    Column("error", Text, nullable=False, default=""),
    Column("pages", Integer, nullable=False, default=0),
    Column("chunks", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),       # any change, progress included
    Column("indexed_at", DateTime(timezone=True)),                       # its chunks last replaced or removed
    Index("ux_knowledge_files_base_sha", "base_id", "sha256", unique=True),
)
knowledge_chunks = Table(
    "knowledge_chunks", metadata,
    Column("id", String(64), primary_key=True),
    Column("file_id", String(64), ForeignKey("knowledge_files.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("base_id", String(64), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("page", Integer),
    Column("start_token", Integer, nullable=False),
    Column("end_token", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("vector", LargeBinary, nullable=False),       # float32, little-endian
)


def check_name(name: str) -> str:
    """A knowledge base name as stored: trimmed, one line, 1-100 characters."""
    return check_object_name(name, "knowledge base", NAME_LENGTH)


class KnowledgeStore:
    """Knowledge bases on `engine` (the Store's), file bytes under `files_dir`."""

    def __init__(self, engine: Engine, files_dir: Path):
        self.engine = engine
        self.files_dir = Path(files_dir)
        self._writer = engine.execution_options(studio_write=True)
        self._create_tables()

    def _create_tables(self) -> None:
        self.create_tables(self.engine)

    @staticmethod
    @_guarded("set up the knowledge tables")
    def create_tables(engine: Engine) -> None:
        create_tables_once(engine, metadata)

    # --- bases -----------------------------------------------------------------

    @_guarded("create the knowledge base")
    def create_base(self, name: str, actor: Actor, chunk_size: int = DEFAULT_SIZE,
                    chunk_overlap: int = DEFAULT_OVERLAP) -> KnowledgeBase:
        name = check_name(name)
        _check_sizes(chunk_size, chunk_overlap)
        now = utcnow()
        base = KnowledgeBase(new_id("kb"), actor.name, name, chunk_size, chunk_overlap, now, now)
        try:
            with self._writer.begin() as db:
                db.execute(insert(knowledge_bases).values(
                    id=base.id, owner=base.owner, name=name, name_key=name.casefold(), chunk_size=chunk_size,
                    chunk_overlap=chunk_overlap, created_at=now, updated_at=now))
        except IntegrityError:
            raise StoreError(f'You already have a knowledge base named "{name}".') from None
        return base

    @_guarded("list the knowledge bases")
    def list_bases(self, actor: Actor, everyone: bool = False) -> list[KnowledgeBase]:
        """The actor's bases (an admin with everyone=True: all), by name."""
        query = select(knowledge_bases).order_by(knowledge_bases.c.name_key, knowledge_bases.c.owner)
        if not (everyone and actor.admin):
            query = query.where(knowledge_bases.c.owner == actor.name)
        with self.engine.connect() as db:
            return [_base(row) for row in db.execute(query)]

    @_guarded("read the knowledge base")
    def get_base(self, base_id: str, actor: Actor) -> KnowledgeBase | None:
        """The base, None if it does not exist; NotAllowed if the actor may not read it."""
        with self.engine.connect() as db:
            row = db.execute(select(knowledge_bases).where(knowledge_bases.c.id == base_id)).first()
        if row is None:
            return None
        if not actor.may_read(row.owner):
            raise NotAllowed("This knowledge base belongs to another user.")
        return _base(row)

    def find_base(self, name: str, actor: Actor) -> KnowledgeBase | None:
        """The actor's own base called `name` (case-insensitive)."""
        key = " ".join((name or "").split()).casefold()
        return next((b for b in self.list_bases(actor) if b.name.casefold() == key), None)

    @_guarded("rename the knowledge base")
    def rename_base(self, base_id: str, name: str, actor: Actor) -> KnowledgeBase:
        name = check_name(name)
        self._owned(base_id, actor)
        try:
            with self._writer.begin() as db:
                db.execute(update(knowledge_bases).where(knowledge_bases.c.id == base_id).values(
                    name=name, name_key=name.casefold(), updated_at=utcnow()))
        except IntegrityError:
            raise StoreError(f'There is already a knowledge base named "{name}".') from None
        return self.get_base(base_id, actor)

    @_guarded("change the chunk settings")
    def set_chunking(self, base_id: str, chunk_size: int, chunk_overlap: int, actor: Actor) -> int:
        """New chunk settings; every file is queued to be indexed again. Returns how many.
        Searches meanwhile use each file's old chunks until its new ones replace them."""
        _check_sizes(chunk_size, chunk_overlap)
        self._owned(base_id, actor)
        now = utcnow()
        with self._writer.begin() as db:
            db.execute(update(knowledge_bases).where(knowledge_bases.c.id == base_id).values(
                chunk_size=chunk_size, chunk_overlap=chunk_overlap, updated_at=now))
            # A file being indexed is queued again too: its run stops at its next progress note.
            result = db.execute(update(knowledge_files).where(
                knowledge_files.c.base_id == base_id, knowledge_files.c.status.in_(("ready",) + WORKING)
            ).values(status="queued", done=0, total=0, error="", updated_at=now))
        return result.rowcount

    @_guarded("delete the knowledge base")
    def delete_base(self, base_id: str, actor: Actor) -> None:
        self._owned(base_id, actor)
        with self._writer.begin() as db:
            db.execute(delete(knowledge_chunks).where(knowledge_chunks.c.base_id == base_id))
            db.execute(delete(knowledge_files).where(knowledge_files.c.base_id == base_id))
            db.execute(delete(knowledge_bases).where(knowledge_bases.c.id == base_id))
        shutil.rmtree(self.files_dir / base_id, ignore_errors=True)

    def _owned(self, base_id: str, actor: Actor) -> KnowledgeBase:
        base = self.get_base(base_id, actor)
        if base is None:
            raise StoreError("This knowledge base was deleted (in another tab?).")
        if base.owner != actor.name and not actor.admin:
            raise NotAllowed("Only the owner of this knowledge base can change it.")
        return base

    # --- files -------------------------------------------------------------------

    @_guarded("add the file")
    def add_file(self, base_id: str, filename: str, data: bytes, actor: Actor) -> tuple[KnowledgeFile, bool]:
        """Keep `data` and queue it for indexing. Returns (file, True) when the same content is
        already in this base (nothing is added). Raises ExtractionError for an unsupported type,
        an empty file or one over the size limit."""
        self._owned(base_id, actor)
        name = clean_name(filename)
        kind = check_upload(name, data)
        sha = file_sha256(data)
        with self.engine.connect() as db:
            row = db.execute(select(knowledge_files).where(knowledge_files.c.base_id == base_id,
                                                           knowledge_files.c.sha256 == sha)).first()
        if row is not None:
            return _file(row), True
        path = self.path_of(base_id, sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{sha}.partial-{os.getpid()}")
        try:
            partial.write_bytes(data)
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StoreError(f"The file could not be kept in the workspace ({exc.strerror or exc}).") from None
        now = utcnow()
        record = KnowledgeFile(new_id("kf"), base_id, name, kind, sha, len(data), "queued",
                               created_at=now, updated_at=now)
        try:
            with self._writer.begin() as db:
                db.execute(insert(knowledge_files).values(
                    id=record.id, base_id=base_id, name=name, kind=kind, sha256=sha, size=len(data),
                    status="queued", done=0, total=0, error="", pages=0, chunks=0, created_at=now, updated_at=now))
        except IntegrityError:   # the same file, added at the same moment from another tab
            with self.engine.connect() as db:
                row = db.execute(select(knowledge_files).where(knowledge_files.c.base_id == base_id,
                                                               knowledge_files.c.sha256 == sha)).first()
            if row is None:
                raise StoreError("This knowledge base was deleted (in another tab?).") from None
            return _file(row), True
        return record, False

    def path_of(self, base_id: str, sha256: str) -> Path:
        return self.files_dir / base_id / sha256

    @_guarded("list the files")
    def list_files(self, base_id: str, actor: Actor) -> list[KnowledgeFile]:
        self.get_base(base_id, actor)    # NotAllowed for another user's base
        with self.engine.connect() as db:
            rows = db.execute(select(knowledge_files).where(knowledge_files.c.base_id == base_id)
                              .order_by(knowledge_files.c.created_at, knowledge_files.c.name))
            return [_file(row) for row in rows]

    @_guarded("read the file")
    def get_file(self, file_id: str) -> KnowledgeFile | None:
        """A file by id, for the indexer (no owner check: it acts for the owner who added it)."""
        with self.engine.connect() as db:
            row = db.execute(select(knowledge_files).where(knowledge_files.c.id == file_id)).first()
        return None if row is None else _file(row)

    @_guarded("delete the file")
    def delete_file(self, file_id: str, actor: Actor) -> None:
        record = self.get_file(file_id)
        if record is None:
            return
        self._owned(record.base_id, actor)
        with self._writer.begin() as db:
            db.execute(delete(knowledge_chunks).where(knowledge_chunks.c.file_id == file_id))
            db.execute(delete(knowledge_files).where(knowledge_files.c.id == file_id))
        self.path_of(record.base_id, record.sha256).unlink(missing_ok=True)

    # --- the indexer's side ------------------------------------------------------------

    @_guarded("find files to index")
    def waiting_files(self) -> list[str]:
        """Ids of queued files, and of files whose indexing stopped moving (a dead process)."""
        stale = utcnow() - STALE_AFTER
        with self.engine.connect() as db:
            rows = db.execute(select(knowledge_files.c.id, knowledge_files.c.status, knowledge_files.c.updated_at)
                              .where(knowledge_files.c.status.in_(WORKING))
                              .order_by(knowledge_files.c.created_at))
            return [r.id for r in rows if r.status == "queued" or _aware(r.updated_at) < stale]

    @_guarded("start indexing the file")
    def claim(self, file_id: str) -> bool:
        """Take a waiting file for indexing; False if another worker has it or it is gone."""
        stale = utcnow() - STALE_AFTER
        with self._writer.begin() as db:
            row = db.execute(select(knowledge_files.c.status, knowledge_files.c.updated_at)
                             .where(knowledge_files.c.id == file_id)).first()
            if row is None or row.status not in WORKING:
                return False
            if row.status != "queued" and _aware(row.updated_at) >= stale:
                return False
            db.execute(update(knowledge_files).where(knowledge_files.c.id == file_id).values(
                status="extracting", done=0, total=0, error="", updated_at=utcnow()))
        return True

    @_guarded("record the indexing progress")
    def set_progress(self, file_id: str, status: str, done: int = 0, total: int = 0) -> bool:
        """Record progress; False when the file was deleted or re-queued meanwhile (stop work)."""
        with self._writer.begin() as db:
            result = db.execute(update(knowledge_files).where(
                knowledge_files.c.id == file_id, knowledge_files.c.status.in_(WORKING[1:])
            ).values(status=status, done=done, total=total, updated_at=utcnow()))
        return result.rowcount == 1

    @_guarded("save the file's chunks")
    def finish(self, file_id: str, pages: int, chunks: list[Chunk], vectors: np.ndarray) -> bool:
        """Replace the file's chunks and mark it ready, in one transaction. False when the file
        was deleted or queued again meanwhile (nothing is written)."""
        vectors = np.asarray(vectors, dtype="<f4")
        with self._writer.begin() as db:
            row = db.execute(select(knowledge_files.c.base_id, knowledge_files.c.status)
                             .where(knowledge_files.c.id == file_id)).first()
            if row is None or row.status not in WORKING[1:]:
                return False
            db.execute(delete(knowledge_chunks).where(knowledge_chunks.c.file_id == file_id))
            if chunks:
                db.execute(insert(knowledge_chunks), [
                    dict(id=new_id("ch"), file_id=file_id, base_id=row.base_id, seq=i, page=c.page,
                         start_token=c.start_token, end_token=c.end_token, text=c.text, vector=vectors[i].tobytes())
                    for i, c in enumerate(chunks)])
            db.execute(update(knowledge_files).where(knowledge_files.c.id == file_id).values(
                status="ready", done=len(chunks), total=len(chunks), pages=pages, chunks=len(chunks), error="",
                updated_at=utcnow(), indexed_at=utcnow()))
        return True

    @_guarded("record the failure")
    def fail(self, file_id: str, message: str) -> None:
        """Mark the file failed with `message`; its earlier chunks (if any) are removed."""
        with self._writer.begin() as db:
            db.execute(delete(knowledge_chunks).where(knowledge_chunks.c.file_id == file_id))
            db.execute(update(knowledge_files).where(knowledge_files.c.id == file_id).values(
                status="failed", error=message[:2000], chunks=0, updated_at=utcnow(), indexed_at=utcnow()))

    @_guarded("retry the file")
    def retry(self, file_id: str, actor: Actor) -> None:
        record = self.get_file(file_id)
        if record is None:
            raise StoreError("This file was deleted (in another tab?).")
        self._owned(record.base_id, actor)
        with self._writer.begin() as db:
            db.execute(update(knowledge_files).where(knowledge_files.c.id == file_id).values(
                status="queued", done=0, total=0, error="", updated_at=utcnow()))

    # --- search's side ----------------------------------------------------------------

    @_guarded("read the knowledge base")
    def state(self, base_id: str) -> tuple:
        """Changes whenever the base's searchable chunks change (a cache key): a file indexed,
        failed or deleted. Progress notes do not change it."""
        with self.engine.connect() as db:
            row = db.execute(select(func.count(), func.sum(knowledge_files.c.chunks),
                                    func.max(knowledge_files.c.indexed_at))
                             .where(knowledge_files.c.base_id == base_id,
                                    knowledge_files.c.indexed_at.is_not(None))).first()
        return (row[0], row[1], str(row[2]))

    @_guarded("read the knowledge base")
    def chunks(self, base_id: str) -> tuple[list[dict], np.ndarray]:
        """Every chunk of the base (id, file, page, text) and their vectors. A file being indexed
        again keeps its old chunks until `finish` replaces them in one transaction."""
        query = (select(knowledge_chunks.c.id, knowledge_chunks.c.file_id, knowledge_chunks.c.page,
                        knowledge_chunks.c.text, knowledge_chunks.c.vector, knowledge_files.c.name)
                 .join(knowledge_files, knowledge_files.c.id == knowledge_chunks.c.file_id)
                 .where(knowledge_chunks.c.base_id == base_id)
                 .order_by(knowledge_files.c.created_at, knowledge_chunks.c.file_id, knowledge_chunks.c.seq))
        rows, vectors = [], []
        with self.engine.connect() as db:
            for r in db.execute(query):
                vector = np.frombuffer(r.vector, dtype="<f4")
                if vector.shape != (384,):   # written by another embedding model: not comparable
                    continue
                rows.append(dict(chunk_id=r.id, file_id=r.file_id, file_name=r.name, page=r.page, text=r.text))
                vectors.append(vector)
        matrix = np.vstack(vectors) if vectors else np.zeros((0, 384), dtype=np.float32)
        return rows, matrix

    @staticmethod
    def delete_owned(db, owner: str) -> int:
        """Inside an open write transaction: delete every base of `owner` (their account is being
        removed). Returns how many; their files on disk go at the next `remove_orphan_files`."""
        owned = select(knowledge_bases.c.id).where(knowledge_bases.c.owner == owner)
        db.execute(delete(knowledge_chunks).where(knowledge_chunks.c.base_id.in_(owned)))
        db.execute(delete(knowledge_files).where(knowledge_files.c.base_id.in_(owned)))
        return db.execute(delete(knowledge_bases).where(knowledge_bases.c.owner == owner)).rowcount

    @_guarded("tidy the knowledge folder")
    def remove_orphan_files(self) -> int:
        """Delete kept files whose base or file row is gone (a removed user, a crash between the
        database and the disk). Returns how many files went."""
        if not self.files_dir.is_dir():
            return 0
        with self.engine.connect() as db:
            kept = {(r.base_id, r.sha256) for r in db.execute(select(knowledge_files.c.base_id,
                                                                     knowledge_files.c.sha256))}
        gone = 0
        for folder in self.files_dir.iterdir():
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if (folder.name, path.name) not in kept and ".partial-" not in path.name:
                    path.unlink(missing_ok=True)
                    gone += 1
            if not any(folder.iterdir()):
                folder.rmdir()
        return gone


def _check_sizes(size: int, overlap: int) -> None:
    try:
        check_sizes(int(size), int(overlap))
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def _base(row) -> KnowledgeBase:
    return KnowledgeBase(row.id, row.owner, row.name, row.chunk_size, row.chunk_overlap,
                         _aware(row.created_at), _aware(row.updated_at))


def _file(row) -> KnowledgeFile:
    return KnowledgeFile(row.id, row.base_id, row.name, row.kind, row.sha256, row.size, row.status, row.done,
                         row.total, row.error, row.pages, row.chunks, _aware(row.created_at), _aware(row.updated_at))


__all__ = ["KnowledgeStore", "check_name", "NotAllowed"]
