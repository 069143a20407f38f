"""Knowledge: documents an assistant can answer from, with a view of what a search finds."""
import streamlit as st

from components.knowledge import base_picker, files_view, inspector, knowledge_store, settings_form, upload_form
from components.layout import shared_sidebar

shared_sidebar()
st.title("Knowledge")
st.caption("Upload documents; an assistant with this knowledge base answers from them and cites the "
           "passages it used. Search runs on this machine for every provider (MiniLM embeddings plus "
           "keyword ranking); OpenAI's hosted file search is not used yet.")
store = knowledge_store()
base = base_picker(store)
if base is not None:
    files_tab, search_tab, settings_tab = st.tabs(["Documents", "Retrieval inspector", "Settings"])
    with files_tab:
        upload_form(store, base)
        files_view(store, base)
    with search_tab:
        inspector(store, base)
    with settings_tab:
        settings_form(store, base)
