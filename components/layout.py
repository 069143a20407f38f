"""The sidebar every page shares: who is signed in, log out, and the provider panel."""
from __future__ import annotations

import streamlit as st

from components import session
from components.auth import logout_button, signed_in_page
from components.errors import guard_page
from components.playground import keep_settings
from components.provider_panel import provider_panel
from components.safe_text import plain

PAGE_NOTE = "page_note"   # a note for the next page drawn (e.g. why /users led to the chat page)


def shared_sidebar() -> None:
    signed_in_page()
    guard_page()   # a page Streamlit ran without app.py gets the error boundary here
    keep_settings()   # the playground's panes, while another page is open
    note = st.session_state.pop(PAGE_NOTE, None)
    if note:   # a toast: the page's next rerun (the login cookie asks for one) would clear a plain note
        st.toast(note, icon="ℹ️", duration="long")
    # Drawn by each page (not by app.py): elements app.py draws before page.run() are dropped
    # from AppTest's tree on reruns, so the panel could not be tested there.
    with st.sidebar:
        st.caption(f"Signed in as **{plain(st.session_state.get('name') or session.current_user())}**"
                   + (" · admin" if session.is_admin() else ""))
        logout_button()
    provider_panel()
