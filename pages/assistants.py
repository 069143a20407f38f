"""Create, edit, duplicate and delete assistants."""
import streamlit as st

from components import context
from components.assistant_form import assistant_form
from studio.types import AssistantSpec

store = context.store()
user = context.current_user()
st.title("Assistants")
st.caption("An assistant is its instructions, few-shot examples, model and tools. "
           "They are stored in this workspace.")

assistants = store.list_assistants(None if context.is_admin() else user)
by_id = {a.id: a for a in assistants}
if st.button("➕ New assistant"):
    fresh = store.save_assistant(AssistantSpec(name="New assistant", owner=user,
                                               instructions="You are a helpful assistant."))
    st.session_state["editing"] = fresh.id
    st.rerun()
if not assistants:
    st.info("No assistants yet. Create one with the button above.")
    st.stop()

if st.session_state.get("editing") not in by_id:
    st.session_state["editing"] = assistants[0].id
spec_id = st.selectbox("Assistant", list(by_id), key="editing",
                       format_func=lambda i: by_id[i].name + (f"  ·  {by_id[i].owner}" if by_id[i].owner != user else ""))
spec = by_id[spec_id]

saved = assistant_form(spec)
if saved is not None:
    store.save_assistant(saved)
    st.toast(f"Saved “{saved.name}”.")
    st.session_state["saved_notice"] = saved.name
    st.rerun()
if notice := st.session_state.pop("saved_notice", None):
    st.success(f"Saved “{notice}”.")

left, right = st.columns(2)
if left.button("Duplicate", key="duplicate"):
    copy = store.duplicate_assistant(spec.id, owner=user)
    st.session_state["editing"] = copy.id
    st.rerun()
with right.popover("Delete"):
    st.write(f"Delete “{spec.name}”? Its threads stay readable.")
    if st.button("Yes, delete", key="confirm_delete", type="primary"):
        store.delete_assistant(spec.id)
        st.session_state.pop("editing", None)
        st.rerun()
