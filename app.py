"""Assistant Studio: entry point. `streamlit run app.py`"""
import streamlit as st

from components import session
from components.auth import require_login
from components.errors import error_boundary
from components.knowledge import knowledge_store
from components.user_admin import to_chat_instead

st.set_page_config(page_title="Assistant Studio", page_icon="🤖", layout="wide")

# One boundary for the whole run: anything unexpected becomes a short message with an error id
# (the traceback goes to the server log); st.stop and st.rerun pass through it.
with error_boundary():
    require_login()
    knowledge_store()   # starts the indexer, which resumes files a stopped app left queued
    pages = [
        st.Page("pages/chat.py", title="Chat", icon="💬", default=True),
        st.Page("pages/assistants.py", title="Assistants", icon="🧩", url_path="assistants"),
        st.Page("pages/knowledge.py", title="Knowledge", icon="📚", url_path="knowledge"),
        st.Page("pages/finetune.py", title="Fine-tuning", icon="🎯", url_path="finetune"),
        st.Page("pages/playground.py", title="Playground", icon="⚖️", url_path="playground"),
    ]
    if session.is_admin():   # the role as the database has it on this run (require_login read it)
        pages.append(st.Page("pages/users.py", title="Users", icon="👥", url_path="users"))
    else:   # /users opened (or still open) by someone else: the chat page, with a note
        pages.append(st.Page(to_chat_instead, title="Users", url_path="users", visibility="hidden"))
    page = st.navigation(pages)
    page.run()
