"""The current thread in session state, and the sidebar that lists, resumes and manages threads."""
from __future__ import annotations

import streamlit as st

from components import session
from components.errors import shows_store_errors
from components.safe_text import plain, safe_markdown
from studio.chat import delete_thread, new_thread
from studio.export import thread_to_json, thread_to_markdown
from studio.providers import Provider, ProviderError
from studio.store import NotAllowed, Store, StoreError
from studio.types import AssistantSpec, Thread

THREAD = "thread"   # session_state key holding the current Thread
DELETE_FAILED = "delete_failed"   # session_state key: (thread id, why the provider's copy was kept)
ACTIONS_OPEN = "thread_actions_open"   # session_state key: whether "This thread" is expanded
SHOWN_THREADS = 50


def may_read(thread: Thread) -> bool:
    return thread.owner == session.current_user() or session.is_admin()


def current_thread() -> Thread | None:
    """The thread in session state; after a browser reload, the one named in the URL."""
    thread = st.session_state.get(THREAD)
    if thread is None and (thread_id := st.query_params.get("thread")):
        try:
            thread = session.store().get_thread(thread_id, session.actor())
        except NotAllowed:   # someone else's thread id in the URL: a fresh start, no hint
            thread = None
        if thread is not None:
            st.session_state[THREAD] = thread
            st.session_state["assistant_id"] = thread.assistant_id
    if thread is not None and not may_read(thread):   # checked on every run, not only on load
        st.session_state.pop(THREAD, None)
        st.query_params.pop("thread", None)
        return None
    return thread


def read_only_reason(thread: Thread, assistants_by_id: dict) -> str | None:
    """Why this user may read but not continue `thread`, or None if they may continue it."""
    if thread.owner != session.current_user():
        return f"This thread belongs to {plain(thread.owner)}."
    if thread.assistant_id not in assistants_by_id:
        return "This thread's assistant was deleted."
    return None


def assistant_label(spec: AssistantSpec, user: str) -> str:
    # Admins see everyone's assistants: name the owner of those that are not theirs.
    return spec.name if spec.owner == user else f"{spec.name} · {spec.owner}"


def start_thread(spec: AssistantSpec, provider: Provider) -> Thread:
    thread = new_thread(session.current_user(), spec, provider)
    st.session_state[THREAD] = thread
    st.query_params.pop("thread", None)
    return thread


def remember_in_url(thread: Thread) -> None:
    # The thread id in the URL is what lets a browser reload land back on the same thread.
    if st.query_params.get("thread") != thread.id:
        st.query_params["thread"] = thread.id


def _forget_thread() -> None:
    st.session_state.pop(THREAD, None)
    st.query_params.pop("thread", None)


@shows_store_errors
def _open_thread(store: Store, thread_id: str) -> None:
    # A callback: it runs before the page is drawn, so it may set the assistant picker's value.
    opened = store.get_thread(thread_id, session.actor())
    if opened is None:
        return
    st.session_state[THREAD] = opened
    st.session_state["assistant_id"] = opened.assistant_id
    st.query_params["thread"] = opened.id


def thread_sidebar(store: Store, current: Thread | None, spec: AssistantSpec | None) -> None:
    with st.sidebar:
        st.subheader("Threads")
        st.button("➕ New thread", width="stretch", key="new_thread", on_click=_forget_thread)
        show_all = session.is_admin() and st.toggle("All users' threads", key="all_threads")
        threads = store.list_threads(session.actor(), everyone=show_all)
        if not threads:
            st.caption("No threads yet: your first message starts one.")
        if len(threads) > SHOWN_THREADS:
            st.caption(f"The newest {SHOWN_THREADS} of {len(threads)} threads.")
        for thread in threads[:SHOWN_THREADS]:
            is_current = current is not None and thread.id == current.id
            # Titles come from what users typed: plain text, never Markdown (no images, no LaTeX).
            label = ("▶ " if is_current else "") + plain(thread.title)
            if show_all and thread.owner != session.current_user():
                label += f" · {plain(thread.owner)}"
            st.button(label, key=f"open_{thread.id}", width="stretch",
                      type="primary" if is_current else "secondary",
                      on_click=_open_thread, args=(store, thread.id))
        if current is not None and current.messages:
            _thread_actions(store, current, spec)


def _thread_actions(store: Store, thread: Thread, spec: AssistantSpec | None) -> None:
    own = thread.owner == session.current_user()   # an admin reading someone's thread may only export it
    actions = st.expander("This thread", key=ACTIONS_OPEN, on_change="rerun")
    if not actions.open:   # lazy: the exports are built only while it is open
        return
    with actions:
        if own:
            title = st.text_input("Title", value=thread.title, key=f"title_{thread.id}")
            if st.button("Rename", key="rename_thread"):
                try:
                    thread.title = store.rename_thread(thread.id, title, session.actor())
                except StoreError as exc:   # e.g. a blank title: said here, the old title kept
                    st.error(str(exc), icon="⚠️")
                else:
                    st.rerun()
        else:
            st.caption(f"Read-only: this thread belongs to {plain(thread.owner)}. You can export it.")
        st.download_button("Export Markdown", thread_to_markdown(thread, spec),
                           file_name=f"{thread.id}.md", mime="text/markdown", key="export_md")
        st.download_button("Export JSON", thread_to_json(thread, spec),
                           file_name=f"{thread.id}.json", mime="application/json", key="export_json")
        if own:
            _delete_controls(store, thread)


def _delete_controls(store: Store, thread: Thread) -> None:
    failed = st.session_state.get(DELETE_FAILED)
    if failed and failed[0] == thread.id:
        st.error(safe_markdown(failed[1]))
        st.button("Delete it here only", key="delete_here_only", on_click=_delete, args=(store, thread, False),
                  help="Deletes the app's copy; the copy on the provider's account stays.")
    with st.popover("Delete thread", width="stretch"):
        st.write("Delete this thread for good?"
                 + (" Its copy on the OpenAI account (the Conversation) is deleted too." if thread.provider_ref
                    else ""))
        st.button("Yes, delete", key="confirm_delete_thread", type="primary",
                  on_click=_delete, args=(store, thread))


@shows_store_errors
def _delete(store: Store, thread: Thread, remote: bool = True) -> None:
    # A callback: the page is then drawn without the deleted thread.
    try:
        provider = session.provider_for(None, name=thread.provider)
    except ProviderError:
        provider = None   # delete_thread says whether the provider's copy needed it
    try:
        delete_thread(store, thread, session.actor(), provider, remote=remote)
    except ProviderError as exc:   # the thread is kept; the page offers to delete it here only
        st.session_state[DELETE_FAILED] = (thread.id, str(exc))
        return
    st.session_state.pop(DELETE_FAILED, None)
    _forget_thread()
    st.toast(f"Deleted “{plain(thread.title)}”.")
