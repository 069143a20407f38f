"""Searching knowledge bases: a cached in-memory index per base, rebuilt when the base changes."""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from studio.knowledge import embedding
from studio.knowledge.index import SearchIndex
from studio.knowledge.storage import KnowledgeStore
from studio.knowledge.types import Passage

KEEP_INDEXES = 16

_cache: "OrderedDict[str, tuple[tuple, list[dict], SearchIndex]]" = OrderedDict()
_lock = threading.Lock()
_building: dict[str, threading.Lock] = {}     # one build per base at a time


def index_of(store: KnowledgeStore, base_id: str) -> tuple[list[dict], SearchIndex]:
    """The base's chunks and their index, built from the store when its ready files changed."""
    key = f"{store.engine.url}|{base_id}"
    with _lock:
        building = _building.setdefault(key, threading.Lock())
    with building:     # turns arriving together wait for one build instead of each making one
        state = store.state(base_id)
        with _lock:
            cached = _cache.get(key)
            if cached and cached[0] == state:
                _cache.move_to_end(key)
                return cached[1], cached[2]
        rows, vectors = store.chunks(base_id)
        index = SearchIndex([r["text"] for r in rows], vectors)
        with _lock:
            _cache[key] = (state, rows, index)
            _cache.move_to_end(key)
            while len(_cache) > KEEP_INDEXES:
                _cache.popitem(last=False)
        return rows, index


def search(store: KnowledgeStore, base_ids: list[str], query: str, k: int = 5, mode: str = "hybrid",
           query_vector: np.ndarray | None = None, relevant_only: bool = False) -> list[Passage]:
    """The `k` best passages for `query` across `base_ids` (the caller has checked access);
    `relevant_only` leaves out the ones that do not look relevant before the cut to `k`.
    Several bases: each one's top `k`, merged by cosine similarity (fused scores are ranks
    within one base: every base's best passage would score alike)."""
    query = " ".join((query or "").split())
    if not query or not base_ids:
        return []
    if query_vector is None:
        query_vector = embedding.encode_query(query)
    found: list[Passage] = []
    for base_id in dict.fromkeys(base_ids):
        rows, index = index_of(store, base_id)
        for hit in index.search(query, query_vector, k, mode):
            row = rows[hit.row]
            found.append(Passage(row["chunk_id"], base_id, row["file_id"], row["file_name"], row["page"],
                                 row["text"], hit.vector, hit.keyword, hit.fused, hit.relevant))
    if relevant_only:
        found = [p for p in found if p.relevant]
    if len(set(base_ids)) > 1:
        found.sort(key=lambda p: -p.vector)
    return found[:k]
