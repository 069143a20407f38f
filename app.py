"""Assistant Studio: entry point. `streamlit run app.py`"""
import streamlit as st

from components import context
from components.auth import require_login
from components.provider_panel import provider_panel

st.set_page_config(page_title="Assistant Studio", page_icon="🤖", layout="wide")

auth = require_login()
store = context.store()
store.seed_demo_assistant(context.current_user())

page = st.navigation([
    st.Page("pages/chat.py", title="Chat", icon="💬", default=True),
    st.Page("pages/assistants.py", title="Assistants", icon="🧩", url_path="assistants"),
])

with st.sidebar:
    st.caption(f"Signed in as **{st.session_state.get('name') or context.current_user()}**"
               + (" · admin" if context.is_admin() else ""))
    auth.logout("Log out", location="sidebar")
provider_panel()

page.run()
