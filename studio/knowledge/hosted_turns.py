"""Background syncs of knowledge bases to OpenAI, and what a turn on OpenAI searches.

A sync (studio.knowledge.hosted.Mirror.sync) runs in one thread per (account, base) of this
process, so a page or a turn that starts one goes on at once; its state (stage, progress, error)
is kept here for the page. `stores_for_turn` picks a turn's vector stores: the current copy
serves while a sync runs, and a turn waits only for a base with no copy yet.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import openai

from studio.knowledge.hosted import (RETRY_AFTER_S, TURN_STORES, TURN_WAIT_S, Mirror, SyncProblem)
from studio.knowledge.types import KnowledgeBase, KnowledgeFile
from studio.store import Actor, StoreError

log = logging.getLogger(__name__)


@dataclass
class SyncState:
    """A running or finished sync, for the page: its stage and progress, or why it stopped."""
    stage: str = "starting"
    done: int = 0
    total: int = 0
    error: str = ""
    running: bool = True
    ended: float = 0.0         # time.monotonic() when it ended


_syncs: dict[tuple[str, str], tuple[threading.Thread, SyncState]] = {}
_syncs_lock = threading.Lock()


def start_sync(mirror: Mirror, base_id: str, actor: Actor, retry_failed: bool = False) -> SyncState:
    """Sync the base in a background thread, unless one is already syncing it; returns its state."""
    key = (mirror.account, base_id)
    with _syncs_lock:
        running = _syncs.get(key)
        if running is not None and running[0].is_alive():
            return running[1]
        state = SyncState()
        worker = Mirror(mirror.store, mirror.provider)      # its own lease token and outcomes

        def progress(stage: str, done: int, total: int) -> None:
            state.stage, state.done, state.total = stage, done, total

        def work() -> None:
            try:
                worker.sync(base_id, actor, retry_failed=retry_failed, progress=progress)
            except (SyncProblem, StoreError) as exc:
                state.error = str(exc)
            except Exception as exc:     # a thread's error must reach the page, not vanish
                log.exception("sync of knowledge base %s failed", base_id)
                state.error = f"The sync stopped on an unexpected error ({type(exc).__name__})."
            finally:
                state.ended = time.monotonic()
                state.running = False

        thread = threading.Thread(target=work, name=f"kb-sync-{base_id}", daemon=True)
        _syncs[key] = (thread, state)
        thread.start()
        return state


def sync_state(mirror: Mirror, base_id: str) -> SyncState | None:
    found = _syncs.get((mirror.account, base_id))
    return None if found is None else found[1]


def wait_for_sync(mirror: Mirror, base_id: str, timeout: float) -> SyncState | None:
    found = _syncs.get((mirror.account, base_id))
    if found is not None:
        found[0].join(timeout)
        return found[1]
    return None


def join_syncs(timeout: float) -> bool:
    """Wait for this process's running syncs (e.g. before a CLI command exits); False if some
    are still running after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    for thread, _ in list(_syncs.values()):
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread, _ in _syncs.values())


@dataclass
class HostedKnowledge:
    """What a turn on OpenAI searches: vector stores, and notes about bases not (fully) there."""
    vector_stores: list[str]
    notes: list[str]


def stores_for_turn(mirror: Mirror, base_ids: list[str], owner: str, actor: Actor,
                    wait_s: float = TURN_WAIT_S) -> HostedKnowledge:
    """The vector stores of the assistant's bases (only the assistant owner's, as for local
    retrieval). Changes are synced in the background while the current store serves; a turn
    waits (up to `wait_s`) only for a base with no store yet. Copies of files deleted here are
    deleted by the turn itself first. A base that cannot be used is left out, with a note."""
    stores, notes = [], []
    for base_id in base_ids:
        try:
            base = mirror.store.get_base(base_id, actor)
        except StoreError:
            base = None
        if base is None or base.owner != owner:
            continue
        local = mirror.store.list_files(base.id, actor)
        readable = [f for f in local if f.status != "failed"]
        store_id = mirror.vector_store_of(base.id)
        if store_id is not None and not mirror.store_exists(store_id):
            mirror.forget_store(base, store_id)           # deleted on the dashboard: rebuilt now
            store_id = None
        if mirror.needs_sync(base, local) or (store_id is None and readable):
            state = sync_state(mirror, base.id)
            if not (state and not state.running and state.error and time.monotonic() - state.ended < RETRY_AFTER_S):
                start_sync(mirror, base.id, actor)
            if store_id is None and readable:
                state = wait_for_sync(mirror, base.id, wait_s)
                store_id = mirror.vector_store_of(base.id)
            state = sync_state(mirror, base.id)
            if state is not None and state.error and not state.running:
                notes.append(f"{base.name}: {state.error}")
        if store_id is not None and _deleted_there(mirror, base, local):
            try:
                mirror._remove_gone(base, store_id, {f.id for f in readable})
            except (openai.APIError, openai.OpenAIError):
                notes.append(f"{base.name}: files deleted here could not be deleted on OpenAI yet, so it "
                             "was not searched.")
                continue
        remote = mirror.files(base.id)
        ready = [r for r in remote.values() if r.status == "ready"]
        failed = [r for r in remote.values() if r.status == "failed"]
        if ready and store_id:
            stores.append(store_id)
        elif readable and not failed:
            notes.append(f"{base.name}: its files are not on OpenAI yet.")
        elif local and not readable:
            notes.append(f"{base.name}: the app could not read its files (see the Knowledge page).")
        if failed:
            notes.append(f"{base.name}: {len(failed)} file(s) could not be copied to OpenAI "
                         "(see the Knowledge page).")
    if len(stores) > TURN_STORES:
        notes.append(f"OpenAI's file search reads at most {TURN_STORES} knowledge bases at once; "
                     f"only the first {TURN_STORES} were searched.")
    return HostedKnowledge(stores[:TURN_STORES], notes)


def _deleted_there(mirror: Mirror, base: KnowledgeBase, local: list[KnowledgeFile]) -> bool:
    here = {f.id for f in local if f.status != "failed"}
    return any(file_id not in here and row.remote_id for file_id, row in mirror.files(base.id).items())
