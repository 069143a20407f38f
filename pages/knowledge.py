"""Knowledge: documents an assistant can answer from, with a view of what a search finds."""
import streamlit as st

from components.knowledge import (base_picker, files_view, hosted_view, inspector, knowledge_store, openai_mirror,
                                  settings_form, upload_form)
from components.layout import shared_sidebar

shared_sidebar()
st.title("Knowledge")
st.caption("Upload documents; an assistant with this knowledge base answers from them and cites the "
           "passages it used. The embedded model and compatible servers search a local index (MiniLM "
           "embeddings plus keyword ranking); on OpenAI the base is copied to a vector store and turns "
           "use OpenAI's file search.")
store = knowledge_store()
base = base_picker(store)
mirror = openai_mirror(store)
if base is not None:
    names = ["Documents", "Retrieval inspector", "Settings"] + (["OpenAI copy"] if mirror else [])
    tabs = st.tabs(names)
    with tabs[0]:
        upload_form(store, base)
        files_view(store, base)
    with tabs[1]:
        inspector(store, base, mirror)
    with tabs[2]:
        settings_form(store, base)
    if mirror is not None:
        with tabs[3]:
            hosted_view(store, base, mirror)
