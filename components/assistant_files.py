"""Assistants as files: an Export button, and an importer that asks when the name is taken."""
from __future__ import annotations

from typing import Callable

import streamlit as st

from components import session
from components.errors import shows_store_errors
from components.safe_text import plain
from studio.assistants import (MAX_FILE_BYTES, AssistantClash, AssistantFileError, assistant_file_bytes,
                               assistant_file_name, free_name, import_assistant, read_assistant_file)
from studio.providers import LABELS
from studio.types import AssistantSpec

# session_state keys
PENDING = "import_pending"     # the checked spec whose name is taken, waiting for an answer
CLASH = "import_clash"         # open the name-clash dialog on this run (a flag, not a click, opens it)
UPLOADS = "import_uploads"     # bumped after an import, so the uploader starts empty again
NOTICE = "import_notice"


def export_button(spec: AssistantSpec, where=st) -> None:
    """Download `spec` (as last saved) as a JSON file another workspace can import."""
    where.download_button("Export", data=assistant_file_bytes(spec), file_name=assistant_file_name(spec),
                          mime="application/json", key="export", on_click="ignore",
                          help="Download this assistant as it was last saved, as a JSON file "
                               "to import in another workspace.")


def import_from_file(show: Callable[[str], None]) -> None:
    """The importer: upload, see what the file holds or what is wrong with it, import.

    `show(assistant_id)` makes the page show the imported assistant; it runs in a callback,
    before the page draws its selector.
    """
    with st.expander("Import an assistant from a file"):
        uploaded = st.file_uploader("Assistant file (JSON)", type=["json"],
                                    key=f"import_file_{st.session_state.get(UPLOADS, 0)}",
                                    max_upload_size=MAX_FILE_BYTES // 1_000_000)
        if uploaded is not None:
            _preview(uploaded.name, uploaded.getvalue(), show)
    if notice := st.session_state.pop(NOTICE, None):
        st.success(notice)
    if st.session_state.get(CLASH) and st.session_state.get(PENDING) is not None:
        _clash_dialog(show)


def _preview(file_name: str, raw: bytes, show: Callable[[str], None]) -> None:
    try:
        spec = read_assistant_file(raw, owner=session.current_user())
    except AssistantFileError as exc:
        st.error(f"{plain(file_name)} is not a valid assistant file:\n"
                 + "\n".join(f"- {plain(problem)}" for problem in exc.problems))
        return
    runs_on = LABELS.get(spec.provider, "the session's provider") if spec.provider else "the session's provider"
    model = f", model {plain(spec.model)}" if spec.model else ""
    tools = ", ".join(spec.tools) or "none"
    st.markdown(f"**{plain(spec.name)}**: {len(spec.examples)} few-shot example(s); runs on "
                f"{runs_on}{model}; tools: {tools}.")
    st.button("Import", type="primary", key="import", on_click=_start, args=(spec, show))


@shows_store_errors
def _start(spec: AssistantSpec, show: Callable[[str], None]) -> None:
    try:
        saved = import_assistant(session.store(), spec, session.actor())
    except AssistantClash:
        st.session_state[PENDING] = spec
        st.session_state[CLASH] = True
        return
    _imported(saved, "Imported", show)


@shows_store_errors
def _finish(choice: str, show: Callable[[str], None]) -> None:
    spec = st.session_state.pop(PENDING, None)
    st.session_state[CLASH] = False
    if spec is not None:
        saved = import_assistant(session.store(), spec, session.actor(), on_clash=choice)
        _imported(saved, "Replaced" if choice == "replace" else "Imported", show)


def _cancel() -> None:
    st.session_state.pop(PENDING, None)
    st.session_state[CLASH] = False


def _imported(saved: AssistantSpec, verb: str, show: Callable[[str], None]) -> None:
    st.session_state[UPLOADS] = st.session_state.get(UPLOADS, 0) + 1
    st.session_state[NOTICE] = f"{verb} “{plain(saved.name)}”."
    show(saved.id)


@st.dialog("This name is taken", on_dismiss=_cancel)
def _clash_dialog(show: Callable[[str], None]) -> None:
    spec = st.session_state.get(PENDING)
    if spec is None:   # answered: a full rerun closes the dialog
        st.rerun()
    taken = [a.name for a in session.store().list_assistants(session.actor())]
    st.write(f"You already have an assistant named “{plain(spec.name)}”.")
    answered = [
        st.button("Replace it", key="import_replace", type="primary", on_click=_finish,
                  args=("replace", show),
                  help="The file's version takes its place; threads started with it go on with it."),
        st.button(f"Keep both: import as “{plain(free_name(spec.name, taken))}”", key="import_keep_both",
                  on_click=_finish, args=("keep_both", show)),
        st.button("Cancel", key="import_cancel", on_click=_cancel),
    ]
    if any(answered):
        st.rerun()
