"""Indexing a file: extract -> chunk -> embed -> store, with its status kept in the store.

`index_file` does one file in the calling thread (the CLI uses it directly). `Indexer` is the
app's background worker: one thread per workspace that takes queued files in order, so an
upload never blocks a page, a reload finds the status in the store, and files a killed process
left half done are picked up again (see KnowledgeStore.waiting_files).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from studio.knowledge import embedding
from studio.knowledge.chunking import chunk_pages
from studio.knowledge.extract import ExtractionError, extract
from studio.knowledge.storage import KnowledgeStore
from studio.store import Actor, StoreError

LOG = logging.getLogger(__name__)
POLL_S = 2.0
INDEXER = Actor("indexer", admin=True)     # acts for the owner who queued the file

Progress = Callable[[str, int, int], None]     # (stage, done, total)


class Stopped(Exception):
    """The file was deleted or queued again while it was being indexed."""


def index_file(store: KnowledgeStore, file_id: str, on_progress: Progress | None = None) -> str:
    """Index one claimed file. Returns its final status ("ready", "failed", or "gone" when it
    was deleted meanwhile). Never raises for a bad file: the reason is stored with it."""
    record = store.get_file(file_id)
    if record is None:
        return "gone"
    base = store.get_base(record.base_id, INDEXER)
    if base is None:
        return "gone"
    last = [0.0]

    def report(stage: str, done: int, total: int) -> None:
        if on_progress:
            on_progress(stage, done, total)
        now = time.monotonic()   # the store hears at most twice a second, and at each stage's end
        if now - last[0] >= 0.5 or done == total:
            last[0] = now
            if not store.set_progress(file_id, stage, done, total):
                raise Stopped()

    try:
        data = store.path_of(record.base_id, record.sha256).read_bytes()
        report("extracting", 0, 1)
        pages = extract(record.name, data, progress=lambda d, t: report("extracting", d, t))
        report("chunking", 0, 1)
        chunks = chunk_pages(pages, base.chunk_size, base.chunk_overlap)
        report("chunking", 1, 1)
        vectors = embedding.encode([c.text for c in chunks], progress=lambda d, t: report("embedding", d, t))
        if not store.finish(file_id, len(pages), chunks, vectors):
            return "gone"
        return "ready"
    except Stopped:
        return "gone"
    except FileNotFoundError:
        store.fail(file_id, "The uploaded file is missing from the workspace; upload it again.")
    except ExtractionError as exc:
        store.fail(file_id, str(exc))
    except embedding.EmbeddingUnavailable as exc:
        store.fail(file_id, str(exc))
    except MemoryError:
        store.fail(file_id, "The file is too large to index on this machine.")
    except StoreError:
        raise
    except Exception:   # a library failing on a hostile file must not stop the worker
        LOG.exception("indexing %s failed", file_id)
        store.fail(file_id, "The file could not be indexed (the details are in the server log).")
    return "failed"


class Indexer:
    """A background thread that indexes every waiting file of one workspace."""

    def __init__(self, store: KnowledgeStore):
        self.store = store
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="knowledge-indexer", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for new files now (after an upload) rather than at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        try:
            self.store.remove_orphan_files()
        except Exception:
            LOG.exception("knowledge indexer: tidying the knowledge folder failed")
        while True:
            try:
                for file_id in self.store.waiting_files():
                    if self.store.claim(file_id):
                        index_file(self.store, file_id)
            except StoreError as exc:     # the database was busy: try again at the next poll
                LOG.warning("knowledge indexer: %s", exc)
            except Exception:
                LOG.exception("knowledge indexer failed")
            self._wake.wait(POLL_S)
            self._wake.clear()


_indexers: dict[tuple[str, str], Indexer] = {}
_lock = threading.Lock()


def indexer_for(store: KnowledgeStore) -> Indexer:
    """The process's one indexer for this workspace (started on first use)."""
    key = (str(store.engine.url), str(store.files_dir))
    with _lock:
        if key not in _indexers:
            _indexers[key] = Indexer(store)
        return _indexers[key]
