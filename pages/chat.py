"""Chat with an assistant. The current thread lives in st.session_state."""
import streamlit as st

from components import context
from components.layout import shared_sidebar
from components.model_loading import ensure_local_model
from components.provider_panel import provider_notes
from components.threads import (assistant_label, current_thread, read_only_reason, remember_in_url,
                                start_thread, thread_sidebar, turn_errors)
from components.transcript import show_messages, stream_turn
from studio.chat import needs_retry, run_turn
from studio.providers import ProviderError

shared_sidebar()
store = context.store()
user = context.current_user()
assistants = store.list_assistants(None if context.is_admin() else user)
if not assistants:
    st.info("You have no assistants yet.")
    st.page_link("pages/assistants.py", label="Create one on the Assistants page", icon="🧩")
    st.stop()

thread = current_thread()
by_id = {a.id: a for a in assistants}
if thread is not None and thread.messages:
    remember_in_url(thread)   # page switches drop query params; a reload must still find the thread
    if reason := read_only_reason(thread, by_id):
        thread_sidebar(store, thread, by_id.get(thread.assistant_id))
        st.title(thread.title)
        st.info(f"{reason} You can read and export this thread, but not continue it. "
                "Start a ➕ New thread to chat.")
        show_messages(thread.messages)
        st.stop()
if st.session_state.get("assistant_id") not in by_id:
    st.session_state["assistant_id"] = next((a.id for a in assistants if a.owner == user), assistants[0].id)
spec_id = st.sidebar.selectbox("Assistant", list(by_id), key="assistant_id",
                               format_func=lambda i: assistant_label(by_id[i], user))
spec = by_id[spec_id]
if thread is not None and thread.assistant_id != spec.id:
    thread = None   # another assistant was picked: its next message starts a new thread

provider_error = None
try:
    provider = context.provider_for(spec, name=thread.provider if thread and thread.messages else None)
except ProviderError as exc:
    provider, provider_error = None, str(exc)
if thread is None and provider is not None:
    thread = start_thread(spec, provider)
thread_sidebar(store, thread, spec)

st.title(spec.name)
if spec.description:
    st.caption(spec.description)
if provider is not None:
    provider_notes(provider, spec, thread)
if provider_error:
    st.error(provider_error)

if thread is not None:
    show_messages(thread.messages)

retry = False
failure = turn_errors().get(thread.id) if thread is not None else None
if thread is not None and needs_retry(thread):
    if failure is None or failure.retryable:
        st.warning(failure.message if failure else "The last message has no reply yet.")
        retry = st.button("↻ Retry", key="retry", disabled=provider is None)
    elif failure.code == "context_length_exceeded":   # the same text would fail again
        st.error(failure.message + " Your message is kept above; send a shorter one to go on.")
    else:
        st.error(failure.message + " Fix this (e.g. in the sidebar's Provider panel), then retry.")
        retry = st.button("↻ Retry", key="retry", disabled=provider is None)
elif failure is not None:
    st.error(turn_errors().pop(thread.id).message)

prompt = st.chat_input(f"Message {spec.name}…", disabled=provider is None)
if (prompt is not None or retry) and provider is not None:
    turn_errors().pop(thread.id, None)
    if prompt is not None:
        with st.chat_message("user"):
            st.markdown(prompt)
    if provider.name == "local":
        ensure_local_model(context.settings().model_dir)
    error = stream_turn(run_turn(store, provider, thread, spec, prompt))
    if error is not None:
        turn_errors()[thread.id] = error
    if thread.messages:
        remember_in_url(thread)
    st.rerun()
