"""OpenAI's hosted retrieval: a knowledge base mirrored to a vector store, searched by `file_search`.

The workspace keeps the files (the source of truth). For an OpenAI account the app keeps a
copy: each file uploaded to the Files API and attached, in file batches, to one vector store
per knowledge base, chunked with the base's own settings. Two tables record the copy per
account (a fingerprint of the base URL and key, never the key):

- `knowledge_remote_stores`: base -> vector store id, and the chunking it was made with;
- `knowledge_remote_files`: file -> OpenAI file id, status (uploading, processing, ready,
  failed) and the reason for a failure (OpenAI's `unsupported_file`, `invalid_file`, ...).

`Mirror.sync` brings the copy up to date: new files uploaded and attached in one batch whose
status is polled, files deleted here deleted there, a changed chunking or a vector store
deleted on the dashboard rebuilt. Syncs run in one background thread per (account, base) (see
studio.knowledge.hosted_turns, which also picks what a turn searches), and one process at a
time (a lease row in `knowledge_remote_syncs`).
Copies of bases deleted elsewhere (by an admin, the CLI, with their owner's account) are
deleted by the next sync on the same account.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import openai
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from studio.knowledge.extract import ExtractionError, extract
from studio.knowledge.storage import KnowledgeStore
from studio.knowledge.types import KnowledgeBase, KnowledgeFile
from studio.providers.base import ProviderError
from studio.store import Actor, _guarded, create_tables_once
from studio.types import utcnow

log = logging.getLogger(__name__)

MIN_CHUNK, MAX_CHUNK = 100, 4096       # OpenAI's limits for a static chunking strategy
BATCH_LIMIT = 2000                     # files per file batch
SEARCH_LIMIT = 50                      # max_num_results of a vector store search
TURN_RESULTS = 5                       # passages file_search gives one turn
SYNC_TIMEOUT_S = 600                   # a batch still processing after this is polled by the next sync
TURN_WAIT_S = 120                      # how long a turn waits for its bases to be copied
TURN_STORES = 2        # vector stores one file_search call may search (a limit reported of the API)
CHECK_EVERY_S = 60     # a turn checks that a vector store still exists at most this often
UPLOAD_TIMEOUT_S = 300
LEASE_S = UPLOAD_TIMEOUT_S + 60        # a sync renews its lease at every step; a dead one's lapses
RETRY_AFTER_S = 60                     # a turn starts no new sync this soon after one failed
# Uploaded as UTF-8 text rather than as they came: OpenAI cannot search CSV files, and a text
# file in another encoding would fail there; the app's own reading of them is what it indexes.
AS_TEXT = {"CSV": ".txt", "text": ".txt", "Markdown": ".md"}
# Errors worth another try later (the file itself is fine): the sync stops and resumes next time.
PASSING = (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError)
LAST_ERROR = {
    "unsupported_file": "OpenAI cannot search this type of file",
    "invalid_file": "OpenAI could not read this file",
    "server_error": "OpenAI had an error processing this file; sync again to retry",
}

metadata = MetaData()
remote_stores = Table(
    "knowledge_remote_stores", metadata,
    Column("base_id", String(64), primary_key=True),
    Column("account", String(32), primary_key=True),
    Column("vector_store_id", String(128), nullable=False),
    Column("chunk_size", Integer, nullable=False),
    Column("chunk_overlap", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
remote_files = Table(
    "knowledge_remote_files", metadata,
    Column("file_id", String(64), primary_key=True),
    Column("account", String(32), primary_key=True),
    Column("base_id", String(64), nullable=False, index=True),
    Column("remote_id", String(128), nullable=False, default=""),     # the OpenAI file id
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One sync of a base per account at a time, across app processes (replicas share the database).
remote_syncs = Table(
    "knowledge_remote_syncs", metadata,
    Column("base_id", String(64), primary_key=True),
    Column("account", String(32), primary_key=True),
    Column("until", DateTime(timezone=True), nullable=False),
    Column("owner", String(32), nullable=False, default=""),
)


def static_chunking(base: KnowledgeBase) -> dict:
    """The base's chunk settings as OpenAI's static strategy (its minimum chunk is 100 tokens)."""
    size = min(max(base.chunk_size, MIN_CHUNK), MAX_CHUNK)
    return {"type": "static", "static": {"max_chunk_size_tokens": size,
                                         "chunk_overlap_tokens": min(base.chunk_overlap, size // 2)}}


@dataclass
class RemoteFile:
    """Where a file's copy on OpenAI stands."""
    file_id: str
    remote_id: str
    status: str           # uploading | processing | ready | failed
    error: str = ""


@dataclass
class RemoteHit:
    """A passage the vector store search returned."""
    file_id: str          # the app's file id ("" when the file is no longer here)
    file_name: str
    remote_id: str
    text: str
    score: float


class SyncProblem(Exception):
    """A sync that could not run at all (e.g. a wrong key); the text is for the user."""


class Mirror:
    """The copy of knowledge bases on one OpenAI account, reached through `provider`
    (an OpenAIProvider: its SDK client, base URL and key)."""

    poll_s = 1.0

    def __init__(self, store: KnowledgeStore, provider):
        self.store = store
        self.provider = provider
        self.client = provider.client
        self.account = provider.account
        self._writer = store.engine.execution_options(studio_write=True)
        self._token = ""                      # this sync's lease
        self._outcome: dict[str, object] = {}   # OpenAI file id -> its vector store file, last batches
        self._create_tables()

    @_guarded("set up the OpenAI copy tables")
    def _create_tables(self) -> None:
        create_tables_once(self.store.engine, metadata)

    def _error(self, exc: BaseException) -> str:
        return str(self.provider.error_for(exc))

    # --- what is there ---------------------------------------------------------------

    @_guarded("read the OpenAI copy")
    def files(self, base_id: str) -> dict[str, RemoteFile]:
        """The copy's state of each file of the base, by the app's file id."""
        with self.store.engine.connect() as db:
            rows = db.execute(select(remote_files).where(remote_files.c.base_id == base_id,
                                                         remote_files.c.account == self.account))
            return {r.file_id: RemoteFile(r.file_id, r.remote_id, r.status, r.error) for r in rows}

    @_guarded("read the OpenAI copy")
    def vector_store_of(self, base_id: str) -> str | None:
        with self.store.engine.connect() as db:
            return db.execute(select(remote_stores.c.vector_store_id).where(
                remote_stores.c.base_id == base_id, remote_stores.c.account == self.account)).scalar()

    @_guarded("read the OpenAI copy")
    def needs_sync(self, base: KnowledgeBase, local: list[KnowledgeFile]) -> bool:
        """Whether a file is new or gone, a copy is unfinished, or the chunking changed."""
        remote = self.files(base.id)
        here = {f.id for f in local if f.status != "failed"}
        if here ^ set(remote) or any(r.status in ("uploading", "processing") for r in remote.values()):
            return True
        return bool(here) and (self.vector_store_of(base.id) is None or self._chunking_changed(base))

    @_guarded("read the OpenAI copy")
    def _chunking_changed(self, base: KnowledgeBase) -> bool:
        with self.store.engine.connect() as db:
            row = db.execute(select(remote_stores).where(remote_stores.c.base_id == base.id,
                                                         remote_stores.c.account == self.account)).first()
        return row is not None and (row.chunk_size, row.chunk_overlap) != (base.chunk_size, base.chunk_overlap)

    # --- sync --------------------------------------------------------------------------

    def sync(self, base_id: str, actor: Actor, retry_failed: bool = False,
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, RemoteFile]:
        """Bring the base's copy up to date; returns each file's state. Per-file failures are
        recorded on the file (the others go on); SyncProblem when the sync could not finish
        (a wrong key, the network: what is done stays done, the next sync goes on from there)."""
        if self.store.get_base(base_id, actor) is None:
            raise SyncProblem("The knowledge base no longer exists.")
        if not self._claim(base_id):
            raise SyncProblem("Another app process is copying this knowledge base to OpenAI; try again shortly.")
        shown = progress or (lambda stage, done, total: None)

        def report(stage: str, done: int, total: int) -> None:
            self._renew(base_id)
            shown(stage, done, total)
        try:
            for attempt in range(2):   # a second pass after OpenAI lost something (see _Again)
                try:
                    self._sync(base_id, actor, retry_failed, report)
                    break
                except _Again:
                    if attempt:
                        raise SyncProblem("OpenAI kept losing uploaded files during the sync; sync again.") from None
        except openai.AuthenticationError as exc:
            raise SyncProblem(f"The knowledge base could not be copied to OpenAI: {self._error(exc)}") from None
        except (openai.APIError, openai.OpenAIError) as exc:
            raise SyncProblem(f"The copy to OpenAI stopped: {self._error(exc)} What is done stays done; "
                              "the next sync goes on from there.") from None
        finally:
            self._release(base_id)
        return self.files(base_id)

    def _sync(self, base_id: str, actor: Actor, retry_failed: bool, report) -> None:
        base = self._still_there(base_id, actor)
        local = [f for f in self.store.list_files(base_id, actor) if f.status != "failed"]
        store_id = self._ensure_store(base, report)
        self._remove_gone(base, store_id, {f.id for f in local})
        remote = self.files(base.id)
        todo = [f for f in local if f.id not in remote or remote[f.id].status == "uploading"
                or (retry_failed and remote[f.id].status == "failed")]
        passing: BaseException | None = None      # a network error or busy server: the others go on
        for n, record in enumerate(todo, 1):
            report("uploading", n - 1, len(todo))
            self._still_there(base_id, actor)        # deleted meanwhile: stop uploading its files
            try:
                self._upload(base, record, store_id, remote.get(record.id))
            except PASSING as exc:
                passing = exc
        report("uploading", len(todo), len(todo))
        self._remove_gone(base, store_id, {f.id for f in self.store.list_files(base_id, actor)
                                           if f.status != "failed"})     # deleted during the uploads
        pending = [r for r in self.files(base.id).values() if r.status == "processing"]
        if pending:
            self._still_there(base_id, actor)
            self._attach(base, store_id, pending, report)
        self.remove_deleted_bases()
        if passing is not None:
            raise passing

    def _still_there(self, base_id: str, actor: Actor) -> KnowledgeBase:
        base = self.store.get_base(base_id, actor)
        if base is None:
            try:
                self.delete_base(base_id)
            except ProviderError:       # left to the next sync on this account (deleted_bases)
                raise SyncProblem("The knowledge base was deleted; its copy on OpenAI goes at the next sync.") from None
            raise SyncProblem("The knowledge base was deleted; its copy on OpenAI was deleted too.")
        return base

    @_guarded("claim the knowledge base's sync")
    def _claim(self, base_id: str) -> bool:
        """Take the base's lease for this sync (False: another process holds a live one)."""
        self._token = uuid.uuid4().hex
        now = utcnow()
        until = now + timedelta(seconds=LEASE_S)
        key = (remote_syncs.c.base_id == base_id) & (remote_syncs.c.account == self.account)
        try:
            with self._writer.begin() as db:
                if db.execute(update(remote_syncs).where(key, remote_syncs.c.until < now)
                              .values(until=until, owner=self._token)).rowcount:
                    return True
                if db.execute(select(remote_syncs.c.until).where(key)).first() is not None:
                    return False           # another process's sync, not over yet
                db.execute(insert(remote_syncs).values(base_id=base_id, account=self.account, until=until,
                                                       owner=self._token))
            return True
        except IntegrityError:             # another process claimed it just now
            return False

    @_guarded("renew the knowledge base's sync")
    def _renew(self, base_id: str) -> None:
        with self._writer.begin() as db:
            db.execute(update(remote_syncs).where(
                remote_syncs.c.base_id == base_id, remote_syncs.c.account == self.account,
                remote_syncs.c.owner == self._token).values(until=utcnow() + timedelta(seconds=LEASE_S)))

    @_guarded("end the knowledge base's sync")
    def _release(self, base_id: str) -> None:
        with self._writer.begin() as db:
            db.execute(delete(remote_syncs).where(remote_syncs.c.base_id == base_id,
                                                  remote_syncs.c.account == self.account,
                                                  remote_syncs.c.owner == self._token))

    def _ensure_store(self, base: KnowledgeBase, report) -> str:
        """The base's vector store: made when there is none or it was deleted on the dashboard;
        after a chunking change, a new one is filled first and the old one serves until then."""
        store_id = self.vector_store_of(base.id)
        if store_id is not None:
            try:
                self.client.vector_stores.retrieve(store_id)
            except openai.NotFoundError:
                self.forget_store(base, store_id)
                store_id = None
        if store_id is not None and not self._chunking_changed(base):
            return store_id
        created = self.client.vector_stores.create(name=base.name[:100], metadata={"studio_base": base.id})
        if store_id is not None:       # new chunking: fill the new store while the old one serves
            self._fill(base, created.id, report)
            self._delete_store(store_id)
        else:                          # a new store gets every file uploaded before
            self._set_all(base.id, "ready", "processing")
        self._set_store(base, created.id)
        return created.id

    def _fill(self, base: KnowledgeBase, new_id: str, report) -> None:
        """Attach the uploaded files to a new store; on any failure, or a batch not finished in
        time, delete the new store (the old one keeps serving; the next sync starts again)."""
        uploaded = [r for r in self.files(base.id).values() if r.status in ("ready", "processing") and r.remote_id]
        try:
            unfinished = self._attach(base, new_id, uploaded, report, record=False) if uploaded else set()
        except BaseException:
            self._delete_store_quietly(new_id)
            raise
        if unfinished:
            self._delete_store_quietly(new_id)
            raise SyncProblem("OpenAI is still processing the new chunks; the current copy serves, and "
                              "the next sync tries again.")
        self._record(base, new_id, uploaded)

    def _delete_store_quietly(self, store_id: str) -> None:
        try:
            self._delete_store(store_id)
        except (openai.APIError, openai.OpenAIError) as exc:
            log.warning("could not delete vector store %s: %s", store_id, self._error(exc))

    @_guarded("save the OpenAI copy")
    def forget_store(self, base: KnowledgeBase, store_id: str) -> None:
        """The vector store is gone from OpenAI: the next sync makes a new one (unless the base
        has moved on to another store meanwhile)."""
        with self._writer.begin() as db:
            db.execute(delete(remote_stores).where(remote_stores.c.base_id == base.id,
                                                   remote_stores.c.account == self.account,
                                                   remote_stores.c.vector_store_id == store_id))

    @_guarded("save the OpenAI copy")
    def _set_store(self, base: KnowledgeBase, store_id: str | None) -> None:
        with self._writer.begin() as db:
            db.execute(delete(remote_stores).where(remote_stores.c.base_id == base.id,
                                                   remote_stores.c.account == self.account))
            if store_id is not None:
                db.execute(insert(remote_stores).values(base_id=base.id, account=self.account, vector_store_id=store_id,
                                                        chunk_size=base.chunk_size, chunk_overlap=base.chunk_overlap,
                                                        created_at=utcnow()))

    @_guarded("save the OpenAI copy")
    def _set_all(self, base_id: str, status: str, new_status: str) -> None:
        with self._writer.begin() as db:
            db.execute(update(remote_files).where(remote_files.c.base_id == base_id,
                                                  remote_files.c.account == self.account,
                                                  remote_files.c.status == status)
                       .values(status=new_status, updated_at=utcnow()))

    @_guarded("save the OpenAI copy")
    def _set(self, file_id: str, base_id: str, status: str, remote_id: str | None = None, error: str = "") -> None:
        values = {"status": status, "error": error, "updated_at": utcnow()}
        if remote_id is not None:
            values["remote_id"] = remote_id
        with self._writer.begin() as db:
            done = db.execute(update(remote_files).where(remote_files.c.file_id == file_id,
                                                         remote_files.c.account == self.account).values(**values))
            if not done.rowcount:
                db.execute(insert(remote_files).values(file_id=file_id, account=self.account, base_id=base_id,
                                                       **{"remote_id": "", **values}))

    def _upload(self, base: KnowledgeBase, record: KnowledgeFile, store_id: str, old: RemoteFile | None) -> None:
        """Upload one file. A file OpenAI refuses is recorded as failed (the others go on); a
        network error or an overloaded server stops the sync, the file is uploaded next time."""
        if old is not None and old.remote_id:      # a retry: the earlier copy goes first
            self._delete_remote(store_id, old.remote_id)
        self._set(record.id, base.id, "uploading", remote_id="")
        try:
            name, data = self._payload(base, record)
            uploaded = self.client.with_options(timeout=UPLOAD_TIMEOUT_S).files.create(
                file=(name, data), purpose="assistants")
        except (ExtractionError, OSError) as exc:
            self._set(record.id, base.id, "failed", error=f"The file could not be read here: {exc}")
            return
        except (openai.AuthenticationError, openai.PermissionDeniedError, *PASSING):
            raise
        except openai.APIStatusError as exc:
            self._set(record.id, base.id, "failed", error=f"Upload failed: {self._error(exc)}")
            return
        self._set(record.id, base.id, "processing", remote_id=uploaded.id)

    def _payload(self, base: KnowledgeBase, record: KnowledgeFile) -> tuple[str, bytes]:
        data = self.store.path_of(base.id, record.sha256).read_bytes()
        suffix = AS_TEXT.get(record.kind)
        if suffix is None:
            if record.kind == "HTML" and not record.name.lower().endswith(".html"):
                return record.name.rsplit(".", 1)[0] + ".html", data       # OpenAI knows .html, not .htm
            return record.name, data
        text = "\n\n".join(page.text for page in extract(record.name, data))
        stem = record.name if record.kind == "CSV" else record.name.rsplit(".", 1)[0]
        return stem + suffix, text.encode("utf-8")

    def _attach(self, base: KnowledgeBase, store_id: str, pending: list[RemoteFile],
                report: Callable[[str, int, int], None], record: bool = True) -> set[str]:
        """Attach uploaded files in file batches and poll each to its end; record every file's
        outcome (unless `record` is False). Returns the OpenAI file ids still processing."""
        by_remote = {r.remote_id: r for r in pending}
        ids = list(by_remote)
        unfinished: set[str] = set()
        for start in range(0, len(ids), BATCH_LIMIT):
            try:
                batch = self.client.vector_stores.file_batches.create(
                    store_id, file_ids=ids[start:start + BATCH_LIMIT], chunking_strategy=static_chunking(base))
            except openai.NotFoundError:
                self._lost(base, store_id, [by_remote[i] for i in ids[start:start + BATCH_LIMIT]])
            deadline = time.monotonic() + SYNC_TIMEOUT_S
            while batch.status == "in_progress" and time.monotonic() < deadline:
                counts = batch.file_counts
                report("processing", counts.completed + counts.failed + counts.cancelled, counts.total)
                time.sleep(self.poll_s)
                batch = self.client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store_id)
            counts = batch.file_counts
            report("processing", counts.completed + counts.failed + counts.cancelled, counts.total)
            for item in self.client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store_id,
                                                                          limit=100):
                mine = by_remote.get(item.id)
                if mine is None:
                    continue
                if item.status == "in_progress":
                    unfinished.add(item.id)
                    continue
                self._outcome[item.id] = item
        if record:
            self._record(base, store_id, pending)
        return unfinished

    def _record(self, base: KnowledgeBase, store_id: str, rows: list[RemoteFile]) -> None:
        """Each file's outcome in the last batches: ready, or failed with OpenAI's reason."""
        for row in rows:
            item = self._outcome.pop(row.remote_id, None)
            if item is None:
                continue
            if item.status == "completed":
                self._set(row.file_id, base.id, "ready")
            elif item.status in ("failed", "cancelled"):
                error = item.last_error
                reason = LAST_ERROR.get(error.code, error.message) if error else f"OpenAI {item.status} it"
                detail = f" ({error.message})" if error and error.message and reason != error.message else ""
                self._set(row.file_id, base.id, "failed", error=f"{reason}{detail}.")

    def _lost(self, base: KnowledgeBase, store_id: str, rows: list[RemoteFile]) -> None:
        """A batch was refused with 404: the store or some uploaded files were deleted on
        OpenAI's side. Forget what is gone (it is made or uploaded again) and go round again."""
        try:
            self.client.vector_stores.retrieve(store_id)
        except openai.NotFoundError:
            self.forget_store(base, store_id)
            raise _Again() from None
        for row in rows:
            try:
                self.client.files.retrieve(row.remote_id)
            except openai.NotFoundError:
                self._set(row.file_id, base.id, "uploading", remote_id="")
        raise _Again()

    def _remove_gone(self, base: KnowledgeBase, store_id: str | None, wanted: set[str]) -> None:
        """Delete the copies of files deleted here (and of files the app failed to read)."""
        for row in self.files(base.id).values():
            if row.file_id in wanted:
                continue
            if row.remote_id:
                self._delete_remote(store_id, row.remote_id)
            self._drop_row(row.file_id)

    @_guarded("save the OpenAI copy")
    def _drop_row(self, file_id: str) -> None:
        with self._writer.begin() as db:
            db.execute(delete(remote_files).where(remote_files.c.file_id == file_id,
                                                  remote_files.c.account == self.account))

    def _delete_remote(self, store_id: str | None, remote_id: str) -> None:
        if store_id:
            try:
                self.client.vector_stores.files.delete(remote_id, vector_store_id=store_id)
            except openai.NotFoundError:
                pass
        try:
            self.client.files.delete(remote_id)
        except openai.NotFoundError:
            pass

    def _delete_store(self, store_id: str) -> None:
        try:
            self.client.vector_stores.delete(store_id)
        except openai.NotFoundError:
            pass

    def delete_base(self, base_id: str) -> None:
        """Delete the base's copy (vector store and uploaded files). Raises ProviderError."""
        store_id = self.vector_store_of(base_id)
        try:
            for row in self.files(base_id).values():
                if row.remote_id:
                    self._delete_remote(None, row.remote_id)
            if store_id:
                self._delete_store(store_id)
        except (openai.APIError, openai.OpenAIError) as exc:
            raise self.provider.error_for(exc) from None
        self._drop_base(base_id)

    @_guarded("save the OpenAI copy")
    def _drop_base(self, base_id: str) -> None:
        with self._writer.begin() as db:
            for table in (remote_files, remote_stores):
                db.execute(delete(table).where(table.c.base_id == base_id, table.c.account == self.account))

    @_guarded("read the OpenAI copy")
    def deleted_bases(self) -> list[str]:
        """Bases deleted while their copy stayed on this account (deleted by an admin, the CLI, a
        session on another provider, or with their owner's account)."""
        from studio.knowledge.storage import knowledge_bases
        with self.store.engine.connect() as db:
            ids = set(db.execute(select(remote_stores.c.base_id).where(remote_stores.c.account == self.account))
                      .scalars())
            ids |= set(db.execute(select(remote_files.c.base_id).where(remote_files.c.account == self.account))
                       .scalars())
            there = set(db.execute(select(knowledge_bases.c.id).where(knowledge_bases.c.id.in_(ids))).scalars()) \
                if ids else set()
        return sorted(ids - there)

    def remove_deleted_bases(self) -> None:
        """Delete the copies of deleted bases (best effort: what fails is tried again next time)."""
        for base_id in self.deleted_bases():
            try:
                self.delete_base(base_id)
            except Exception as exc:  # noqa: BLE001 - another base's leftovers must not stop this sync
                log.warning("could not delete the OpenAI copy of deleted knowledge base %s: %s", base_id, exc)

    # --- search ------------------------------------------------------------------------

    @_guarded("read the OpenAI copy")
    def local_file(self, remote_id: str) -> tuple[str, str] | None:
        """(the app's file id, its name) of an OpenAI file id, if it is one of ours still here."""
        with self.store.engine.connect() as db:
            file_id = db.execute(select(remote_files.c.file_id).where(
                remote_files.c.remote_id == remote_id, remote_files.c.account == self.account)).scalar()
        record = self.store.get_file(file_id) if file_id else None
        return None if record is None else (record.id, record.name)

    def search(self, base_id: str, query: str, k: int = 5) -> list[RemoteHit]:
        """The vector store search endpoint: the top `k` passages (OpenAI's own ranking and score).
        Passages of files deleted here (not yet deleted there) are left out."""
        store_id = self.vector_store_of(base_id)
        if store_id is None or not query.strip():
            return []
        try:
            page = self.client.vector_stores.search(store_id, query=query, max_num_results=min(max(k, 1), SEARCH_LIMIT))
        except (openai.APIError, openai.OpenAIError) as exc:
            raise self.provider.error_for(exc) from None
        hits = []
        for item in page.data:
            mine = self.local_file(item.file_id)
            if mine is None:
                continue
            text = "\n".join(part.text for part in item.content if part.type == "text")
            hits.append(RemoteHit(mine[0], mine[1], item.file_id, text, float(item.score)))
        return hits

    def store_exists(self, store_id: str) -> bool:
        """Whether the vector store is still on OpenAI (asked at most every CHECK_EVERY_S)."""
        checked = _checked.get(store_id)
        if checked is not None and time.monotonic() - checked < CHECK_EVERY_S:
            return True
        try:
            self.client.vector_stores.retrieve(store_id)
        except openai.NotFoundError:
            _checked.pop(store_id, None)
            return False
        except (openai.APIError, openai.OpenAIError):
            return True       # unknown: the turn will say what is wrong
        _checked[store_id] = time.monotonic()
        return True


class _Again(Exception):
    """Something uploaded was gone on OpenAI; the sync goes round once more."""


_checked: dict[str, float] = {}      # vector store id -> when it was last seen on OpenAI


def forget_checks(store_ids: list[str]) -> None:
    """Check these stores again at the next turn (a turn on them failed)."""
    for store_id in store_ids:
        _checked.pop(store_id, None)
