"""The login gate: the first-run page, then streamlit-authenticator's login form and cookie.

The accounts live in the workspace database (studio.accounts). The library draws the form and
sets or deletes the cookie; it gets a fresh credentials dict each run and never writes anything.
Who signs in is decided here: a locked name is refused before its password is checked, failures
are counted, a cookie signs in only while the database still lists it, and the account (its
roles, whether it still exists) is read again on every page run.

The library is built only on runs that need its cookie component (the login form, the logout
click): that component is an iframe whose answer costs every page load a second script run.
A signed-in reload reads the cookie the browser sent with the page (st.context.cookies) instead.
"""
from __future__ import annotations

import sys
import threading
from datetime import datetime, timezone

import streamlit as st
import streamlit.components.v1 as components
import streamlit_authenticator as stauth
from streamlit.runtime.backend_operation_handler import connection_locality
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit_authenticator.controllers import AuthenticationController

from components import session
from studio.accounts import (COOKIE_EXPIRY_DAYS, COOKIE_NAME, SETUP_TOKEN_LIFETIME, Account, Accounts,
                             AccountsUnavailable, LoginLocked, UserError)
from studio.settings import ConfigError
from studio.store import StoreError

# What streamlit-authenticator keeps in session state; everything else is the app's and belongs
# to the user who is signing out.
LIBRARY_KEYS = {"logout", "authentication_status", "name", "username", "email", "roles", "init"}
COOKIE_EXP = "login_cookie_exp"    # the expiry date of this session's login cookie: its identity
NOTICE = "login_notice"            # a message for the login form (kept across a sign-out)
INCOMPLETE = "login_incomplete"    # the login form was sent with a field left empty
PASSED = "login_gate_passed"       # require_login let this session in (cleared with the session)


def visitor_is_local() -> bool:
    """Whether the first admin may be created without a setup token: the browser's connection
    comes from a loopback address, and STUDIO_FIRST_RUN_LOCAL does not turn that off (behind a
    proxy or tunnel on the same machine every visitor would look local).

    The raw peer address is used: st.context.ip_address reports both loopback and "unknown" as
    None, and an unknown address is not local. (AppTest has no server connection, so a test is
    a visitor from elsewhere unless it patches this.)"""
    if not session.base_settings().first_run_local:
        return False
    ctx = get_script_run_ctx()
    return ctx is not None and connection_locality(ctx.session_id) == "loopback"


# When this server process last printed a setup token, per database: the first-run page prints
# one when first drawn and a fresh one once that has expired, not one per visitor.
_token_printed: dict[str, datetime] = {}
_token_lock = threading.Lock()


def _print_setup_token(accounts: Accounts, database_url: str) -> None:
    # The console (or log) of the server is where its operator looks, and a visitor from
    # elsewhere needs the token to claim the workspace.
    with _token_lock:
        now = datetime.now(timezone.utc)
        printed = _token_printed.get(database_url)
        if printed and now - printed < SETUP_TOKEN_LIFETIME:
            return
        token = accounts.new_setup_token()
        _token_printed[database_url] = now
    hours = round(SETUP_TOKEN_LIFETIME.total_seconds() / 3600)
    print(f"\nAssistant Studio has no account yet. To create the first admin from a browser on "
          f"another machine, enter this one-time setup token on the first-run page (valid for "
          f"{hours} hours; after that, opening the page prints a new one):\n\n    {token}\n",
          file=sys.stderr, flush=True)


def first_run_form(accounts: Accounts) -> None:
    """Ask for the first admin account (no default password ships)."""
    _print_setup_token(accounts, session.settings().database_url)
    local = visitor_is_local()
    st.title("Welcome to Assistant Studio")
    st.write("This is a fresh workspace. Create the first account; it will be the administrator.")
    if not local:
        st.info("Enter the one-time setup token the server printed in its console (or log) when "
                f"this page was first opened; it is valid for {SETUP_TOKEN_LIFETIME.total_seconds() / 3600:g} "
                "hours. It is asked for because you "
                "are not on the server's own machine, or the server asks everyone for it.")
    with st.form("first_admin"):
        username = st.text_input("Username")
        name = st.text_input("Display name (optional)")
        password = st.text_input("Password", type="password",
                                 help="At least 8 characters, at most 72 bytes, no space at either end.")
        repeat = st.text_input("Repeat password", type="password")
        token = "" if local else st.text_input("Setup token", type="password")
        submitted = st.form_submit_button("Create admin account", type="primary")
    if submitted:
        if password != repeat:
            st.error("The two passwords differ; type them again.")
            return
        if not local and not accounts.setup_token_is_valid(token):
            st.error("That setup token is not right or has expired. Copy it from the server's console or log, "
                     "or create the account on the server with `python -m studio users add NAME`.")
            return
        try:
            account = accounts.create_first_admin(username, password, name=name)
        except UserError as exc:
            st.error(str(exc))
            return
        st.session_state[NOTICE] = f"Account '{account.username}' created. Log in with it."
        st.rerun()


def _sign_in(account: Account) -> None:
    # What the library's own login sets, from the database's account.
    st.session_state.update(email=None, name=account.name, roles=account.roles,
                            authentication_status=True, username=account.username)


class _AppDecides(AuthenticationController):
    """The library's controller, its login decided by the accounts database instead of its dict."""

    def __init__(self, accounts: Accounts, credentials: dict):
        super().__init__(credentials, auto_hash=False)
        self.accounts = accounts

    def login(self, username: str | None = None, password: str | None = None, *args,
              token: dict | None = None, **kwargs) -> bool | None:
        if username is not None and token is None:   # the form was sent
            if not username.strip() or not password:
                # Not a failed attempt (nothing was checked): ask for what is missing.
                st.session_state[INCOMPLETE] = True
                return False
            # The password is checked as typed (never trimmed).
            account = self.accounts.authenticate(username, password)   # may raise LoginLocked
            if account is None:
                st.session_state["authentication_status"] = False
                return False
            _sign_in(account)
            return True
        return None   # a cookie was read before the library was built (sign_in_from_cookie)


class Authenticator(stauth.Authenticate):
    def __init__(self, accounts: Accounts):
        credentials = accounts.credentials()
        super().__init__(
            credentials, COOKIE_NAME, accounts.cookie_key(), COOKIE_EXPIRY_DAYS, auto_hash=False,
            # The cookie is read from st.context, so the library's pre-login pause is not needed.
            login_sleep_time=session.base_settings().login_sleep)
        self.accounts = accounts
        self.authentication_controller = _AppDecides(accounts, credentials)



def sign_in_from_cookie(accounts: Accounts) -> None:
    """Sign this session in from the login cookie its browser sent, if the database still lists
    it. Not after a logout in this session: the browser sent the cookie before it was deleted."""
    token = st.context.cookies.get(COOKIE_NAME)
    if not isinstance(token, str) or not token or st.session_state.get("logout"):   # AppTest: a mock
        return
    claims = accounts.cookie_claims(token)
    account = accounts.check_cookie(*claims) if claims else None
    if account is not None:
        _sign_in(account)
        st.session_state[COOKIE_EXP] = claims[1]


def logout_button() -> None:
    """The sidebar's "Log out": ends this session, and its cookie for good (a copy of it no
    longer signs in), then has the library delete the cookie in this browser."""
    if not st.sidebar.button("Log out", key="Logout"):
        return
    accounts = session.accounts()
    username, cookie_exp = st.session_state.get("username"), st.session_state.get(COOKIE_EXP)
    if username and cookie_exp:
        try:
            accounts.revoke_cookie(username, cookie_exp)
        except AccountsUnavailable as exc:
            print(f"could not end the login cookie of {username}: {exc}", file=sys.stderr)
    _clear_session()
    with st.sidebar:
        # The library signs the session out and deletes the cookie through its component,
        # whose answer reruns the script: that run shows the login form.
        Authenticator(accounts).logout("Log out", location="unrendered")
    # Stop here: the rest of the page would be drawn once for nobody.
    st.stop()


def _delete_cookie_in_browser() -> None:
    """Delete the login cookie in this browser, again on each login-form run after a logout.
    The library's own deletion runs in a component that a quick rerun can unmount before it
    acts (seen under load); this script needs no download and cannot trigger a rerun."""
    components.html(f"<script>document.cookie = '{COOKIE_NAME}=; Max-Age=0; path=/';"
                    "</script>", height=0)


def _clear_session() -> None:
    # The next person to sign in on this tab must not inherit this user's thread or the API key
    # they typed in the sidebar.
    for key in [k for k in st.session_state if k not in LIBRARY_KEYS]:
        del st.session_state[key]


def _end_session(notice: str) -> None:
    """Sign this session out (the account was removed, or its password or cookie ended)."""
    _clear_session()
    st.session_state.update(name=None, authentication_status=None, username=None, email=None,
                            roles=None, logout=True)   # `logout`: the library reads no cookie now
    st.session_state[NOTICE] = notice
    st.rerun()


def _signed_out() -> None:
    """The only page a signed-out visitor can reach: empty, the forms are drawn around it."""


def _no_pages_until_signed_in() -> None:
    # In a run that never calls st.navigation, Streamlit falls back to the pages/ folder: the
    # sidebar lists its files and /chat or /assistants run them directly, past this gate. One
    # hidden, empty page closes that door. It is declared before the forms are drawn: widgets
    # drawn after st.navigation keep one identity whatever page the URL asked for (before it, a
    # first submit after the URL's page changed would be lost).
    st.navigation([st.Page(_signed_out, title="Log in", default=True)], position="hidden")


def require_login(from_page: bool = False) -> None:
    """Show the first-run or login form and stop the script until someone is signed in.

    `from_page`: called by a page that Streamlit ran directly, without app.py (see signed_in_page).
    """
    hidden = from_page   # a page run cannot declare st.navigation

    def hide_pages() -> None:
        nonlocal hidden
        if not hidden:
            _no_pages_until_signed_in()
            hidden = True

    try:
        accounts = session.accounts()
        if not accounts.has_users():
            hide_pages()
            first_run_form(accounts)
            st.stop()
        if not st.session_state.get("authentication_status"):
            sign_in_from_cookie(accounts)
        if not st.session_state.get("authentication_status"):
            hide_pages()
            auth = Authenticator(accounts)
            notice_slot = st.empty()   # above the form; filled below unless the form was just sent
            auth.login(fields={"Form name": "Log in to Assistant Studio", "Login": "Log in"})
            status = st.session_state.get("authentication_status")
            # The notice stays until the form is sent: the rerun that the cookie component asks
            # for right after the page loads would otherwise wipe it within a second.
            if status is not None:
                st.session_state.pop(NOTICE, None)
            elif notice := st.session_state.get(NOTICE):
                notice_slot.success(notice)
            if st.session_state.pop(INCOMPLETE, False):
                st.error("Type your username and password to log in.")
            elif status is False:
                st.error("Wrong username or password.")
            if not status:
                if st.session_state.get("logout"):
                    _delete_cookie_in_browser()
                st.stop()
            exp_date = auth.cookie_controller.cookie_model.exp_date   # the cookie just set
            if exp_date:
                accounts.record_cookie(st.session_state["username"], exp_date)
                st.session_state[COOKIE_EXP] = exp_date
        _refresh_account(accounts)
    except LoginLocked as exc:
        hide_pages()
        st.error(exc.message)
        st.stop()
    except (AccountsUnavailable, StoreError, ConfigError) as exc:   # e.g. STUDIO_DATA_DIR is a file
        hide_pages()
        st.error(f"Nobody can sign in right now. {exc} An administrator must fix this.", icon="⚠️")
        st.stop()
    user = st.session_state.get("username")
    if st.session_state.get("seeded_for") != user:   # once per session: a user's first visit gets the demo
        session.store().seed_demo_assistant(session.actor())
        st.session_state["seeded_for"] = user
    st.session_state[PASSED] = True


def _refresh_account(accounts: Accounts) -> None:
    """Read the signed-in account again, every run: a removed account, a changed password or a
    cookie ended elsewhere signs this session out; a changed role applies now."""
    username, cookie_exp = st.session_state.get("username"), st.session_state.get(COOKIE_EXP)
    account = (accounts.check_cookie(username, cookie_exp) if cookie_exp
               else accounts.get(username or ""))
    if account is None:
        _end_session("Your session has ended (the account was changed or removed). Log in again.")
    st.session_state.update(name=account.name, roles=account.roles)


def signed_in_page() -> None:
    """The gate again, at the top of every page.

    With a pages/ folder beside app.py, Streamlit keeps its legacy multipage handling and may run
    a page file directly, without app.py (seen after a logout). Such a run must not get past here,
    and it reads the account again like any other run.
    """
    if not st.session_state.get("authentication_status") or not st.session_state.get(PASSED):
        require_login(from_page=True)
    else:
        try:
            _refresh_account(session.accounts())
        except AccountsUnavailable as exc:
            st.error(f"Nobody can sign in right now. {exc} An administrator must fix this.", icon="⚠️")
            st.stop()
