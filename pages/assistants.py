"""Create, edit, duplicate, delete, export and import assistants."""
import streamlit as st

from components import session
from components.layout import shared_sidebar
from components.assistant_files import export_button, import_from_file
from components.assistant_form import assistant_form
from components.errors import shows_store_errors
from components.finetune_jobs import tuned_models
from components.knowledge import knowledge_bases_of
from components.safe_text import plain
from studio.types import AssistantSpec

shared_sidebar()
store = session.store()
user = session.current_user()


# Button callbacks run before the page is drawn, so they may pick what the selector shows.
@shows_store_errors
def create() -> None:
    fresh = store.save_assistant(AssistantSpec(name="New assistant", owner=user,
                                               instructions="You are a helpful assistant."),
                                 session.actor())
    st.session_state["editing"] = fresh.id


@shows_store_errors
def duplicate(assistant_id: str) -> None:
    st.session_state["editing"] = store.duplicate_assistant(assistant_id, session.actor()).id


@shows_store_errors
def delete(assistant_id: str) -> None:
    store.delete_assistant(assistant_id, session.actor())
    st.session_state.pop("editing", None)


def show(assistant_id: str) -> None:
    st.session_state["editing"] = assistant_id


st.title("Assistants")
st.caption("An assistant is its instructions, few-shot examples, model and tools. "
           "They are stored in this workspace.")
st.button("➕ New assistant", on_click=create)
import_from_file(show=show)

assistants = store.list_assistants(session.actor(), everyone=session.is_admin())
by_id = {a.id: a for a in assistants}
if not assistants:
    st.info("No assistants yet. Create one with the button above, or import one from a file.")
    st.stop()
if st.session_state.get("editing") not in by_id:
    st.session_state["editing"] = assistants[0].id
spec_id = st.selectbox("Assistant", list(by_id), key="editing",
                       format_func=lambda i: by_id[i].name
                       + (f"  ·  {by_id[i].owner}" if by_id[i].owner != user else ""))
spec = by_id[spec_id]

saved = assistant_form(spec, models=tuned_models(), bases=knowledge_bases_of(spec.owner))
if saved is not None:
    store.save_assistant(saved, session.actor())   # a StoreError keeps the form as typed
    st.session_state["saved_notice"] = saved.name
    st.rerun()
if notice := st.session_state.pop("saved_notice", None):
    st.success(f"Saved “{plain(notice)}”.")

left, middle, right = st.columns(3)
left.button("Duplicate", key="duplicate", on_click=duplicate, args=(spec.id,))
export_button(spec, middle)
with right.popover("Delete"):
    st.write(f"Delete “{plain(spec.name)}”? Threads already started with it stay readable and exportable.")
    st.button("Yes, delete", key="confirm_delete", type="primary", on_click=delete, args=(spec.id,))
