"""The current thread in session state, and the sidebar that lists, resumes and manages threads."""
from __future__ import annotations

import streamlit as st

from components import context
from studio.chat import new_thread
from studio.export import thread_to_json, thread_to_markdown
from studio.providers import Provider
from studio.store import Store
from studio.types import AssistantSpec, Thread

THREAD = "thread"   # session_state key holding the current Thread
SHOWN_THREADS = 50


def may_read(thread: Thread) -> bool:
    return thread.owner == context.current_user() or context.is_admin()


def current_thread() -> Thread | None:
    """The thread in session state; after a browser reload, the one named in the URL."""
    thread = st.session_state.get(THREAD)
    if thread is None and (thread_id := st.query_params.get("thread")):
        thread = context.store().get_thread(thread_id)
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
    if thread.owner != context.current_user():
        return f"This thread belongs to {thread.owner}."
    if thread.assistant_id not in assistants_by_id:
        return "This thread's assistant was deleted."
    return None


def assistant_label(spec: AssistantSpec, user: str) -> str:
    # Admins see everyone's assistants: name the owner of those that are not theirs.
    return spec.name if spec.owner == user else f"{spec.name} · {spec.owner}"


def turn_errors() -> dict:
    """The last failed turn's error per thread id, for this session."""
    return st.session_state.setdefault("turn_errors", {})


def start_thread(spec: AssistantSpec, provider: Provider) -> Thread:
    thread = new_thread(context.current_user(), spec, provider)
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


def _open_thread(store: Store, thread_id: str) -> None:
    # A callback: it runs before the page is drawn, so it may set the assistant picker's value.
    opened = store.get_thread(thread_id)
    if opened is None:
        return
    st.session_state[THREAD] = opened
    st.session_state["assistant_id"] = opened.assistant_id
    st.query_params["thread"] = opened.id


def thread_sidebar(store: Store, current: Thread | None, spec: AssistantSpec | None) -> None:
    with st.sidebar:
        st.subheader("Threads")
        st.button("➕ New thread", width="stretch", key="new_thread", on_click=_forget_thread)
        show_all = context.is_admin() and st.toggle("All users' threads", key="all_threads")
        threads = store.list_threads(None if show_all else context.current_user())
        if not threads:
            st.caption("No threads yet: your first message starts one.")
        if len(threads) > SHOWN_THREADS:
            st.caption(f"The newest {SHOWN_THREADS} of {len(threads)} threads.")
        for thread in threads[:SHOWN_THREADS]:
            is_current = current is not None and thread.id == current.id
            label = ("▶ " if is_current else "") + thread.title
            if show_all and thread.owner != context.current_user():
                label += f" · {thread.owner}"
            st.button(label, key=f"open_{thread.id}", width="stretch",
                      type="primary" if is_current else "secondary",
                      on_click=_open_thread, args=(store, thread.id))
        if current is not None and current.messages:
            _thread_actions(store, current, spec)


def _thread_actions(store: Store, thread: Thread, spec: AssistantSpec | None) -> None:
    with st.expander("This thread", expanded=False):
        title = st.text_input("Title", value=thread.title, key=f"title_{thread.id}")
        if st.button("Rename", key="rename_thread") and title.strip():
            store.rename_thread(thread.id, title)
            thread.title = store.get_thread(thread.id).title
            st.rerun()
        st.download_button("Export Markdown", thread_to_markdown(thread, spec),
                           file_name=f"{thread.id}.md", mime="text/markdown", key="export_md")
        st.download_button("Export JSON", thread_to_json(thread, spec),
                           file_name=f"{thread.id}.json", mime="application/json", key="export_json")
        if st.button("Delete thread", key="delete_thread", type="secondary"):
            store.delete_thread(thread.id)
            _forget_thread()
            st.toast(f"Deleted “{thread.title}”.")
            st.rerun()
