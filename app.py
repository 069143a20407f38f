"""Assistant Studio: entry point. `streamlit run app.py`"""
import streamlit as st

from components.auth import require_login

st.set_page_config(page_title="Assistant Studio", page_icon="🤖", layout="wide")

require_login()

st.navigation([
    st.Page("pages/chat.py", title="Chat", icon="💬", default=True),
    st.Page("pages/assistants.py", title="Assistants", icon="🧩", url_path="assistants"),
]).run()
