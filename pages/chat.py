"""Chat with an assistant. The current thread lives in st.session_state."""
import streamlit as st

from components import session
from components.feedback import reply_feedback
from components.layout import shared_sidebar
from components.provider_panel import provider_notes
from components.safe_text import plain, safe_markdown
from components.threads import (assistant_label, current_thread, read_only_reason, remember_in_url,
                                start_thread, thread_sidebar)
from components.transcript import show_messages
from components.turns import last_turn_actions, message_box, take_turn, unsent_notice
from studio.providers import ProviderError

shared_sidebar()
store = session.store()
user = session.current_user()
assistants = store.list_assistants(session.actor(), everyone=session.is_admin())
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
        st.title(plain(thread.title))
        st.info(f"{reason} You can read and export this thread, but not continue it. "
                "Start a ➕ New thread to chat.")
        show_messages(thread.messages, thread.id)
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
    provider = session.provider_for(spec, name=thread.provider if thread and thread.messages else None)
except ProviderError as exc:
    provider, provider_error = None, str(exc)
if thread is None and provider is not None:
    thread = start_thread(spec, provider)
# Pinned to the bottom wherever it is called; called before the rest is drawn, the box can be
# typed in while a long thread is still drawing.
prompt = message_box(f"Message {spec.name}…", disabled=provider is None)
thread_sidebar(store, thread, spec)

st.title(plain(spec.name))
if spec.description:
    st.caption(safe_markdown(spec.description))
if provider is not None:
    provider_notes(provider, spec, thread)
if provider_error:
    st.error(safe_markdown(provider_error))

action = None   # "retry" or "continue", from the buttons under the last message
feedback = reply_feedback(store, thread, spec) if thread is not None else None
if thread is not None:
    show_messages(thread.messages, thread.id, feedback=feedback)
    action = last_turn_actions(thread, can_send=provider is not None)
unsent_notice()
if (prompt is not None or action) and provider is not None:
    take_turn(store, provider, thread, spec, prompt, action, feedback)
