"""Feedback under an assistant's reply (chat and playground): thumbs up/down, and a ✏️ that opens
an editor to correct the reply and add it, with the conversation before it, to a dataset.

Only one reply's editor is open at a time (OPEN), so a long transcript draws two small
widgets per reply, not a form each.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import streamlit as st

from components import session
from components.dataset_wizard import dataset_store
from components.safe_text import plain
from studio.datasets.feedback import add_to_dataset, example_from_reply
from studio.datasets.types import DatasetError
from studio.assistants import compile_instructions
from studio.store import MAX_EDITED_CHARS, Store, StoreError
from studio.types import AssistantSpec, Message, Thread

OPEN = "feedback_open"      # session_state: the id of the reply whose editor is open
NEW = "\nnew"               # the dataset picker's "a new dataset" entry


FAILED = "feedback_failed"  # session_state: reply id -> why its feedback was not saved (shown once)


@dataclass
class ReplyContext:
    """What a reply's feedback needs: the messages before it, the system prompt it was answered
    with, a name for where it is, and how to keep a changed rating or correction
    (`save(reply, {"rating": ...} or {"edited": ...})`; raises StoreError)."""
    history: list[Message]
    system_prompt: str
    where: str
    save: Callable[[Message, dict], None]


def reply_feedback(store: Store, thread: Thread, spec: AssistantSpec) -> Callable[[Message, list[Message]], None]:
    """The chat's feedback under each reply of `thread`: kept with the message in the store."""
    context = ReplyContext([], compile_instructions(spec), f"chat thread “{thread.title}” with {spec.name}",
                           lambda message, changes: store.set_feedback(thread, message.id, session.actor(), **changes))

    def draw(message: Message, history: list[Message]) -> None:
        feedback_bar(message, replace(context, history=history))
    return draw


def feedback_bar(message: Message, context: ReplyContext) -> None:
    """👍/👎 and ✏️ under a reply; the editor below it when its ✏️ was clicked."""
    key = f"rating_{message.id}"
    if key not in st.session_state:
        st.session_state[key] = message.rating
    if failed := st.session_state.get(FAILED, {}).pop(message.id, None):
        st.error(f"Your feedback was not saved: {failed}")
    editing = st.session_state.get(OPEN) == message.id
    # One light row (not columns): a long transcript draws one of these per reply.
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.feedback("thumbs", key=key, on_change=_rated, args=(message, context, key))
        st.button("✏️" + (" corrected" if message.edited else ""), key=f"edit_{message.id}",
                  help="Correct this reply, or add it to a fine-tuning dataset", on_click=_toggle,
                  args=(message.id,), type="primary" if editing else "tertiary")
    if editing:
        _editor(message, context)


def _toggle(message_id: str) -> None:
    st.session_state[OPEN] = None if st.session_state.get(OPEN) == message_id else message_id


def _rated(message: Message, context: ReplyContext, key: str) -> None:
    """(The thumbs' callback, before the page runs.) Keep the rating, or put the thumbs back."""
    if not _keep(message, context, rating=st.session_state[key]):
        st.session_state[key] = message.rating


def _keep(message: Message, context: ReplyContext, **changes) -> bool:
    old = (message.rating, message.edited)
    for name, value in changes.items():
        setattr(message, name, value)
    try:
        context.save(message, changes)
        return True
    except StoreError as exc:
        message.rating, message.edited = old
        st.session_state.setdefault(FAILED, {})[message.id] = str(exc)
        return False


def _editor(message: Message, context: ReplyContext) -> None:
    with st.container(border=True):
        text = st.text_area("The reply as it should be", value=message.edited or message.content,
                            key=f"edited_{message.id}", height=120, max_chars=MAX_EDITED_CHARS)
        cols = st.columns(2)
        if cols[0].button("Save correction", key=f"save_edit_{message.id}"):
            if _keep(message, context, edited="" if text.strip() == message.content.strip() else text.strip()):
                st.toast("Correction saved.")
            else:
                st.error(f"Your correction was not saved: {st.session_state[FAILED].pop(message.id)}")
        try:
            names = [d.name for d in dataset_store().list_datasets(session.actor())]
        except StoreError as exc:
            st.error(str(exc))
            return
        # A new dataset comes first: a pick that vanished (deleted in another tab) falls back to it,
        # never to someone else's choice of dataset.
        target = st.selectbox("Add to the fine-tuning dataset", [NEW, *names], key=f"dataset_for_{message.id}",
                              format_func=lambda n: "➕ a new dataset…" if n == NEW else n)
        if target == NEW:
            target = st.text_input("New dataset's name", key=f"new_dataset_{message.id}", max_chars=100).strip()
            taken = {" ".join(n.split()).casefold(): n for n in names}.get(" ".join(target.split()).casefold())
            if taken:
                st.warning(f"You already have “{plain(taken)}”: pick it in the list to add to it.")
                target = ""
        if st.button("Add to dataset", key=f"add_{message.id}", type="primary", disabled=not target):
            _add(message, context, text, target)


def _add(message: Message, context: ReplyContext, text: str, dataset: str) -> None:
    edited = "" if text.strip() == message.content.strip() else text.strip()
    if edited != message.edited and not _keep(message, context, edited=edited):
        st.error(f"Your correction was not saved: {st.session_state[FAILED].pop(message.id)}")
        return
    settings = session.settings()
    try:
        example = example_from_reply(context.history, message, context.system_prompt, context.where,
                                     session.current_user())
        version = add_to_dataset(dataset_store(), dataset, [example], session.actor(), model_dir=settings.model_dir,
                                 data_dir=settings.data_dir)
    except (DatasetError, StoreError) as exc:
        st.error(str(exc))
        return
    row = version.prepared.examples[-1] if version.prepared else None
    state = f" ({row.excluded_because})" if row is not None and row.excluded_because else ""
    st.success(f"Added to “{plain(version.name)}” as row {row.row if row else '?'}{state}: version "
               f"{version.version}, {version.counts.kept} rows kept.")
    st.page_link("pages/finetune.py", label="See it on the Fine-tuning page", icon="🎯")
