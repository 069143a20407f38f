"""Assistant Studio: entry point. `streamlit run app.py`"""
import streamlit as st

from components import context
from components.auth import require_login

st.set_page_config(page_title="Assistant Studio", page_icon="🤖", layout="wide")

require_login()
context.store().seed_demo_assistant(context.current_user())

st.navigation([
    st.Page("pages/chat.py", title="Chat", icon="💬", default=True),
    st.Page("pages/assistants.py", title="Assistants", icon="🧩", url_path="assistants"),
]).run()
