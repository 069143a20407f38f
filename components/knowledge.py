"""The knowledge page's parts: pick or create a base, upload files and watch them index,
the chunk settings, and the retrieval inspector."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from components import session
from components.errors import shows_store_errors
from components.safe_text import plain
from studio.knowledge.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE, MIN_SIZE
from studio.knowledge.embedding import MAX_TOKENS, EmbeddingUnavailable
from studio.knowledge.extract import SUPPORTED, ExtractionError, max_file_bytes
from studio.knowledge.hosted import Mirror, static_chunking
from studio.knowledge.hosted_turns import SyncState, start_sync, sync_state
from studio.knowledge.indexer import indexer_for
from studio.knowledge.search import search
from studio.knowledge.storage import KnowledgeStore
from studio.knowledge.types import KnowledgeBase, KnowledgeFile
from studio.providers import ProviderError
from studio.store import Actor, StoreError

CHOSEN = "knowledge_base"        # session_state: the base shown
NOTES = "knowledge_notes"        # session_state: [(level, text, base id or None)] what the last action did
UPLOADS = "knowledge_uploads"    # session_state: bumps the uploader's key to empty it after adding
STAGES = {"queued": "⏳ queued", "extracting": "📄 extracting", "chunking": "✂️ chunking",
          "embedding": "🧮 embedding", "ready": "✅ ready", "failed": "❌ failed"}


def knowledge_store() -> KnowledgeStore:
    s = session.settings()
    return _knowledge_store(s.database_url, str(s.data_dir))


@st.cache_resource(show_spinner=False)
def _knowledge_store(database_url: str, data_dir: str) -> KnowledgeStore:
    from pathlib import Path
    store = KnowledgeStore(session.store().engine, Path(data_dir) / "knowledge")
    indexer_for(store)     # files a stopped process left queued are picked up again
    return store


def openai_mirror(store: KnowledgeStore) -> Mirror | None:
    """The copy on OpenAI when this session talks to OpenAI with a key; else None."""
    s = session.settings()
    if s.provider != "openai" or not s.api_key:
        return None
    try:
        provider = session.provider_for(None)
        return Mirror(store, provider) if provider.capabilities.hosted_retrieval else None
    except (ProviderError, StoreError):
        return None


def knowledge_bases_of(owner: str) -> dict[str, str]:
    """`owner`'s knowledge bases, id -> name (what an assistant of theirs may attach)."""
    return {b.id: b.name for b in knowledge_store().list_bases(Actor(owner))}


def base_picker(store: KnowledgeStore) -> KnowledgeBase | None:
    """The base the page shows (the user's own; an admin may list everyone's), and a form to make one."""
    actor = session.actor()
    everyone = actor.admin and st.sidebar.toggle("Show every user's knowledge bases", key="kb_everyone")
    bases = store.list_bases(actor, everyone=everyone)
    with st.expander("New knowledge base", expanded=not bases):
        with st.form("kb_new", clear_on_submit=True):
            name = st.text_input("Name", max_chars=100, placeholder="e.g. Channel articles")
            if st.form_submit_button("Create"):
                try:
                    made = store.create_base(name, actor)
                    st.session_state[CHOSEN] = made.id
                    st.rerun()
                except StoreError as exc:
                    st.error(str(exc))
    if not bases:
        st.info("No knowledge base yet: create one, then upload documents to it. "
                "data/samples/knowledge/ holds four short articles to try.")
        return None
    by_id = {b.id: b for b in bases}
    if st.session_state.get(CHOSEN) not in by_id:
        st.session_state[CHOSEN] = bases[0].id
    chosen = st.selectbox("Knowledge base", list(by_id), key=CHOSEN,
                          format_func=lambda i: by_id[i].name + (f"  ({by_id[i].owner})" if everyone else ""))
    return by_id[chosen]


def upload_form(store: KnowledgeStore, base: KnowledgeBase) -> None:
    """Several files at once; each gets its own message, and the others go on."""
    limit_mb = max_file_bytes() / 1e6
    key = f"kb_files_{st.session_state.get(UPLOADS, 0)}"
    files = st.file_uploader(
        f"Add documents (PDF, Word, Markdown, text, HTML, CSV; up to {limit_mb:g} MB each)",
        type=sorted({s.lstrip(".") for s in SUPPORTED}), accept_multiple_files=True, key=key,
        max_upload_size=max(1, int(limit_mb)))
    if files and st.button(f"Add {len(files)} file{'s' if len(files) > 1 else ''}", type="primary"):
        notes = []
        for upload in files:
            try:
                record, known = store.add_file(base.id, upload.name, upload.getvalue(), session.actor())
                notes.append(("info", f"{upload.name}: already in this knowledge base as {record.name} "
                                      "(same content).", base.id) if known
                             else ("success", f"{record.name}: added, indexing.", base.id))
            except (ExtractionError, StoreError) as exc:
                notes.append(("error", f"{plain(upload.name)}: {exc}", base.id))
        indexer_for(store).wake()
        st.session_state[NOTES] = notes
        st.session_state[UPLOADS] = st.session_state.get(UPLOADS, 0) + 1
        st.rerun()
    show_notes(base)


def show_notes(base: KnowledgeBase) -> None:
    """What the last action did. Successes and infos show once (the file list then says how
    indexing goes); a refused file's reason (or a warning) stays until the next action, as it
    has no row of its own. Another base's notes wait for that base."""
    notes = st.session_state.get(NOTES, [])
    here = [n for n in notes if n[2] in (None, base.id)]
    for level, note, _ in here:
        getattr(st, level)(plain(note))
    st.session_state[NOTES] = [n for n in notes if n not in here or n[0] in ("error", "warning")]


def files_view(store: KnowledgeStore, base: KnowledgeBase) -> None:
    """The files and their status; while any is being indexed, a part that redraws itself."""
    files = _files(store, base)
    if files is not None and any(f.working for f in files):
        _live_files(store, base)
    elif files is not None:
        _draw_files(store, files)


@st.fragment(run_every=1.5)
def _live_files(store: KnowledgeStore, base: KnowledgeBase) -> None:
    files = _files(store, base)
    if files is None:
        return
    _draw_files(store, files)
    if not any(f.working for f in files):
        st.rerun()          # all done: draw the page once more, without the timer


def _files(store: KnowledgeStore, base: KnowledgeBase) -> list[KnowledgeFile] | None:
    try:
        return store.list_files(base.id, session.actor())
    except StoreError as exc:
        st.error(str(exc))
        return None


def _draw_files(store: KnowledgeStore, files: list[KnowledgeFile]) -> None:
    if not files:
        st.caption("No documents yet.")
        return
    working = [f for f in files if f.working]
    ready = sum(f.status == "ready" for f in files)
    if working:
        st.progress((len(files) - len(working)) / len(files),
                    text=f"Indexing: {len(files) - len(working)} of {len(files)} files done")
    st.caption(f"{len(files)} files · {ready} ready · {sum(f.chunks for f in files)} chunks")
    for record in files:
        _file_row(store, record)


def _file_row(store: KnowledgeStore, record: KnowledgeFile) -> None:
    left, middle, right = st.columns([5, 3, 1])
    pages = f" · {record.pages} page{'s' if record.pages != 1 else ''}" if record.kind == "PDF" and record.pages else ""
    left.markdown(f"**{plain(record.name)}**  \n{record.kind} · {record.size / 1024:,.0f} KB{pages}")
    status = STAGES.get(record.status, record.status)
    if record.working and record.total:
        middle.progress(min(record.done / record.total, 1.0), text=f"{status} {record.done}/{record.total}")
    elif record.status == "ready":
        middle.write(f"{status} · {record.chunks} chunks")
    else:
        middle.write(status)
    if record.status == "failed":
        middle.caption(plain(record.error))
        middle.button("Retry", key=f"retry_{record.id}", on_click=_retry, args=(store, record.id))
    right.button("🗑️", key=f"delete_{record.id}", help="Delete this file and its chunks",
                 on_click=_delete_file, args=(store, record.id))


@shows_store_errors
def _delete_file(store: KnowledgeStore, file_id: str) -> None:
    store.delete_file(file_id, session.actor())


@shows_store_errors
def _retry(store: KnowledgeStore, file_id: str) -> None:
    store.retry(file_id, session.actor())
    indexer_for(store).wake()


def settings_form(store: KnowledgeStore, base: KnowledgeBase) -> None:
    """Rename, chunk settings (re-indexes every file), delete."""
    with st.form(f"kb_settings_{base.id}"):
        name = st.text_input("Name", value=base.name, max_chars=100)
        size = st.number_input("Chunk size (tokens)", MIN_SIZE, MAX_TOKENS, base.chunk_size, step=8,
                               help=f"Default {DEFAULT_SIZE}. The embedding model reads at most {MAX_TOKENS} tokens.")
        overlap = st.number_input("Overlap (tokens)", 0, MAX_TOKENS // 2, base.chunk_overlap, step=8,
                                  help=f"Default {DEFAULT_OVERLAP}; at most half the chunk size.")
        if st.form_submit_button("Save"):
            try:
                if name != base.name:
                    store.rename_base(base.id, name, session.actor())
                if (size, overlap) != (base.chunk_size, base.chunk_overlap):
                    count = store.set_chunking(base.id, int(size), int(overlap), session.actor())
                    indexer_for(store).wake()
                    st.session_state[NOTES] = [("success", f"Chunk settings saved: {count} files are being "
                                                           "indexed again.", base.id)]
                st.rerun()
            except StoreError as exc:
                st.error(str(exc))
    confirm = st.checkbox("Delete this knowledge base, its files and chunks", key=f"kb_confirm_{base.id}")
    if st.button("Delete knowledge base", disabled=not confirm, key=f"kb_delete_{base.id}"):
        try:
            store.get_base(base.id, session.actor())     # NotAllowed before anything on OpenAI goes
            mirror = openai_mirror(store)
            if mirror is not None:
                try:
                    mirror.delete_base(base.id)
                except ProviderError as exc:
                    st.session_state[NOTES] = [("warning", f"The OpenAI copy (vector store) could not be "
                                                           f"deleted: {exc} Delete it in OpenAI's dashboard.",
                                                None)]
            store.delete_base(base.id, session.actor())
            st.session_state.pop(CHOSEN, None)
            st.rerun()
        except StoreError as exc:
            st.error(str(exc))


def inspector(store: KnowledgeStore, base: KnowledgeBase, mirror: Mirror | None = None) -> None:
    """Type a query, see the ranked chunks with their scores: the local index's three, or, on
    OpenAI, what its vector store search returns."""
    with st.form(f"kb_inspect_{base.id}"):
        query = st.text_input("Query", placeholder="e.g. How many examples do I need to fine-tune?")
        left, right = st.columns(2)
        where = "local"
        if mirror is not None:
            where = left.radio("Index", ["OpenAI vector store", "local"], horizontal=True,
                               help="Turns on OpenAI use its vector store; the local index serves the "
                                    "embedded model and compatible servers.")
        mode = left.radio("Search", ["hybrid", "vector", "keyword"], horizontal=True,
                          help="hybrid: vector and keyword rankings merged by reciprocal rank fusion "
                               "(the local index only)")
        k = right.slider("Results", 1, 20, 5)
        asked = st.form_submit_button("Search")
    if not asked or not query.strip():
        return
    if where != "local":
        _hosted_results(mirror, base, query, k)
        return
    try:
        with st.spinner("Searching…"):
            found = search(store, [base.id], query, k=k, mode=mode)
    except (StoreError, EmbeddingUnavailable) as exc:
        st.error(str(exc))
        return
    if not found:
        st.info("Nothing found: the knowledge base has no ready files, or no chunk shares a word or "
                "meaning with the query.")
        return
    if not any(p.relevant for p in found):
        st.warning("None of these passages looks relevant: a chat turn would say the documents do not cover it.")
    st.dataframe(pd.DataFrame([{
        "rank": i + 1, "file": p.file_name, "page": p.page, "vector": round(p.vector, 3),
        "keyword": round(p.keyword, 2), "fused": round(p.fused, 4), "relevant": p.relevant,
        "passage": p.text} for i, p in enumerate(found)]), hide_index=True, width="stretch",
        column_config={"passage": st.column_config.TextColumn(width="large")})


def _hosted_results(mirror: Mirror, base: KnowledgeBase, query: str, k: int) -> None:
    try:
        if mirror.vector_store_of(base.id) is None:
            st.info("This knowledge base is not on OpenAI yet: see the OpenAI copy tab.")
            return
        with st.spinner("Searching the OpenAI vector store…"):
            found = mirror.search(base.id, query, k)
    except (ProviderError, StoreError) as exc:
        st.error(str(exc))
        return
    if not found:
        st.info("OpenAI's search found nothing for this query (or no file is ready there yet).")
        return
    st.caption("OpenAI's vector store search gives one relevance score (0–1) per passage; it does not "
               "report vector and keyword scores apart, nor page numbers.")
    st.dataframe(pd.DataFrame([{
        "rank": i + 1, "file": h.file_name, "score": round(h.score, 3), "passage": h.text}
        for i, h in enumerate(found)]), hide_index=True, width="stretch",
        column_config={"passage": st.column_config.TextColumn(width="large")})


REMOTE = {"uploading": "⏫ uploading", "processing": "⚙️ processing", "ready": "✅ ready", "failed": "❌ failed"}


def hosted_view(store: KnowledgeStore, base: KnowledgeBase, mirror: Mirror) -> None:
    """The knowledge base's copy on OpenAI: each file's state there; syncs start by themselves
    when files changed (in the background), and on demand."""
    actor = session.actor()
    chunking = static_chunking(base)["static"]
    st.caption(f"Turns on OpenAI search this copy with file search. Chunks there: "
               f"{chunking['max_chunk_size_tokens']} tokens, overlap {chunking['chunk_overlap_tokens']} "
               "(OpenAI's smallest chunk is 100 tokens). Files deleted here are deleted there at the next sync.")
    if base.owner != actor.name:
        st.info("Only the owner's session copies a knowledge base to OpenAI.")
        return
    try:
        local = store.list_files(base.id, actor)
        state = sync_state(mirror, base.id)
        if (state is None or not state.running) and mirror.needs_sync(base, local) and not _failed_last(state):
            state = start_sync(mirror, base.id, actor)
    except StoreError as exc:
        st.error(str(exc))
        return
    left, right = st.columns(2)
    if left.button("Sync now", key=f"kb_sync_{base.id}", disabled=bool(state and state.running)):
        start_sync(mirror, base.id, actor, retry_failed=True)
        st.rerun()
    right.caption("Sync now also retries files that failed.")
    if state is not None and state.running:
        _live_sync(store, base, mirror)
    else:
        _draw_remote(store, base, mirror, state)


def _failed_last(state: SyncState | None) -> bool:
    return state is not None and bool(state.error)     # a failed sync waits for "Sync now"


@st.fragment(run_every=1.0)
def _live_sync(store: KnowledgeStore, base: KnowledgeBase, mirror: Mirror) -> None:
    state = sync_state(mirror, base.id)
    _draw_remote(store, base, mirror, state)
    if state is None or not state.running:
        st.rerun()


def _draw_remote(store: KnowledgeStore, base: KnowledgeBase, mirror: Mirror, state: SyncState | None) -> None:
    if state is not None and state.running:
        stage = {"uploading": "Uploading files", "processing": "OpenAI is processing the batch"}.get(
            state.stage, "Starting the sync")
        st.progress(state.done / state.total if state.total else 0.0, text=f"{stage}: {state.done} of {state.total}")
    elif state is not None and state.error:
        st.error(plain(state.error))
    try:
        local = store.list_files(base.id, session.actor())
        remote = mirror.files(base.id)
    except StoreError as exc:
        st.error(str(exc))
        return
    if not local:
        st.caption("No documents yet.")
        return
    ready = sum(r.status == "ready" for r in remote.values())
    st.caption(f"{ready} of {len(local)} files ready on OpenAI")
    for record in local:
        copy = remote.get(record.id)
        left, right = st.columns([5, 4])
        left.markdown(f"**{plain(record.name)}**")
        if record.status == "failed":
            right.write("— not copied: the app could not read it")
        elif copy is None:
            right.write("⏳ waiting for the sync")
        else:
            right.write(REMOTE.get(copy.status, copy.status))
            if copy.error:
                right.caption(plain(copy.error))
