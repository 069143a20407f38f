"""The login gate: first-run admin creation, then streamlit-authenticator's login form."""
from __future__ import annotations

import os

import streamlit as st
import streamlit_authenticator as stauth

from components import context
from studio.auth import UserError


def first_run_form() -> None:
    """Ask for the first admin account (no default password ships)."""
    st.title("Welcome to Assistant Studio")
    st.write("This is a fresh workspace. Create the first account; it will be the administrator.")
    with st.form("first_admin"):
        username = st.text_input("Username")
        name = st.text_input("Display name (optional)")
        password = st.text_input("Password", type="password")
        repeat = st.text_input("Repeat password", type="password")
        submitted = st.form_submit_button("Create admin account", type="primary")
    if submitted:
        if password != repeat:
            st.error("The two passwords differ; type them again.")
            return
        try:
            context.user_file().add_user(username, password, name=name, admin=True)
        except UserError as exc:
            st.error(str(exc))
            return
        st.session_state["account_created"] = username.strip().lower()
        st.rerun()


# What streamlit-authenticator keeps in session state; everything else is the app's and belongs
# to the user who is signing out.
LIBRARY_KEYS = {"logout", "authentication_status", "name", "username", "email", "roles", "init"}


class Authenticator(stauth.Authenticate):
    def logout(self, *args, **kwargs) -> None:
        super().logout(*args, **kwargs)
        if not st.session_state.get("authentication_status"):
            # The next person to sign in on this tab must not inherit this user's thread or the
            # API key they typed in the sidebar.
            for key in [k for k in st.session_state if k not in LIBRARY_KEYS]:
                del st.session_state[key]
            # On the click the library signs the session out but lets the script go on, so the
            # page would be drawn once for nobody. Stop instead: the cookie manager's rerun (after
            # it deletes the cookie in the browser) then shows the login form.
            st.stop()


def authenticator() -> Authenticator:
    users = context.user_file()
    cookie = users.load()["cookie"]
    return Authenticator(
        str(users.path), cookie["name"], cookie["key"], cookie["expiry_days"],
        # The cookie is read from st.context, so the library's pre-login pause is not needed.
        login_sleep_time=float(os.environ.get("STUDIO_LOGIN_SLEEP", "0")))


def _signed_out() -> None:
    """The only page a signed-out visitor can reach: empty, the forms are drawn around it."""


def _no_pages_until_signed_in() -> None:
    # In a run that never calls st.navigation, Streamlit falls back to the pages/ folder: the
    # sidebar lists its files and /chat or /assistants run them directly, past this gate. One
    # hidden, empty page closes that door. It is declared before the forms are drawn: widgets
    # drawn after st.navigation keep one identity whatever page the URL asked for (before it, a
    # first submit after the URL's page changed would be lost).
    st.navigation([st.Page(_signed_out, title="Log in", default=True)], position="hidden")


def require_login(from_page: bool = False) -> Authenticator:
    """Show the first-run or login form and stop the script until someone is signed in.

    `from_page`: called by a page that Streamlit ran directly, without app.py (see signed_in_page).
    """
    if not context.user_file().has_users():
        if not from_page:
            _no_pages_until_signed_in()
        first_run_form()
        st.stop()
    auth = authenticator()
    auth.login(location="unrendered")   # signs in from the browser's cookie, drawing nothing
    if not st.session_state.get("authentication_status"):
        if not from_page:
            _no_pages_until_signed_in()
        created = st.session_state.get("account_created")
        if created:
            st.success(f"Account '{created}' created. Log in with it.")
        auth.login(fields={"Form name": "Log in to Assistant Studio", "Login": "Log in"})
        status = st.session_state.get("authentication_status")
        if status is False:
            st.error("Wrong username or password.")
        if not status:
            st.stop()
    # The sidebar's logout button needs this run's authenticator: building a second one would
    # render a second cookie-manager component with the same key.
    st.session_state["authenticator"] = auth
    user = st.session_state.get("username")
    if st.session_state.get("seeded_for") != user:   # once per session: a user's first visit gets the demo
        context.store().seed_demo_assistant(user)
        st.session_state["seeded_for"] = user
    return auth


def signed_in_page() -> None:
    """The gate again, at the top of every page.

    With a pages/ folder beside app.py, Streamlit keeps its legacy multipage handling and may run
    a page file directly, without app.py (seen after a logout). Such a run must not get past here.
    """
    if not st.session_state.get("authentication_status") or "authenticator" not in st.session_state:
        require_login(from_page=True)
