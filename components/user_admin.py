"""The Users page's widgets: the list of accounts, adding one, and managing one.

Every change goes straight to the accounts database, in a button's callback (so the page drawn
after it already shows the change). Callbacks run before the script reads the role again, so
each change names the signed-in user and the accounts check, as they make it, that this user is
still an admin. Problems a person can cause (a taken name, a weak password, the last admin, a
role taken away meanwhile) come back as a message; what they typed stays in the form.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from components import session
from components.auth import COOKIE_EXP
from components.layout import PAGE_NOTE
from studio.accounts import Accounts, AccountsUnavailable, NotAdmin, UserError
from studio.store import StoreError

NOTICE = "users_notice"            # (kind, text) shown at the top of the page after a change
CONFIRM_REMOVE = "users_confirm_remove"
NEW_USER_FIELDS = ("new_username", "new_name", "new_password", "new_repeat", "new_admin")


def _tell(kind: str, text: str) -> None:
    st.session_state[NOTICE] = (kind, text)


def _tell_failure(exc: Exception) -> None:
    # "refused": the role was taken away meanwhile; the page after it is not the Users page.
    _tell("refused" if isinstance(exc, NotAdmin) else "error", str(exc))


def _change(action, done) -> None:
    """Run `action`; tell its outcome: `done` (a text, or a function of what `action` returned)."""
    try:
        result = action()
    except (UserError, AccountsUnavailable, StoreError) as exc:
        _tell_failure(exc)
    else:
        _tell("success", done(result) if callable(done) else done)


def notice() -> None:
    """The outcome of the last change, once."""
    kind, text = st.session_state.pop(NOTICE, (None, None))
    if kind in ("error", "refused"):
        st.error(text)
    elif kind == "success":
        st.success(text)


def users_table(accounts: Accounts) -> None:
    locks = accounts.locks()
    rows = [{"Username": a.username, "Name": a.name, "Role": "admin" if a.admin else "user",
             "Login": f"locked until {locks[a.username]:%H:%M:%S} UTC" if a.username in locks else ""}
            for a in accounts.list_users()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def add_user_form(accounts: Accounts) -> None:
    def add() -> None:
        fields = {k: st.session_state.get(k) for k in NEW_USER_FIELDS}
        if fields["new_password"] != fields["new_repeat"]:
            _tell("error", "The two passwords differ; type them again.")
            return
        try:
            account = accounts.add_user(fields["new_username"] or "", fields["new_password"] or "",
                                        name=fields["new_name"] or "", admin=bool(fields["new_admin"]),
                                        actor=session.actor())
        except (UserError, AccountsUnavailable) as exc:
            _tell_failure(exc)
            return
        for key in ("new_username", "new_name", "new_password", "new_repeat"):
            st.session_state[key] = ""
        st.session_state["new_admin"] = False
        _tell("success", f"Added {account.username} ({'admin' if account.admin else 'user'}). "
                         "Give them their password in person or by a private channel.")

    with st.form("add_user"):
        st.subheader("Add a user")
        st.text_input("Username", key="new_username",
                      help="2–32 characters: lowercase letters, digits, '.', '_' or '-'.")
        st.text_input("Display name (optional)", key="new_name")
        st.text_input("Password", type="password", key="new_password",
                      help="At least 8 characters, at most 72 bytes, no space at either end.")
        st.text_input("Repeat password", type="password", key="new_repeat")
        st.checkbox("Administrator", key="new_admin", help="Admins manage users and can read every thread.")
        st.form_submit_button("Add user", on_click=add)


def manage_user(accounts: Accounts, me: str) -> None:
    """Pick an account; change its role or password, unlock it or remove it."""
    people = {a.username: a for a in accounts.list_users()}
    st.subheader("Manage a user")
    username = st.selectbox("User", list(people), key="managed_user",
                            format_func=lambda u: f"{u} ({people[u].name})" if people[u].name != u else u)
    if username is None:
        return
    account = people[username]
    yourself = username == me
    if yourself:
        st.caption("This is your own account: another admin can remove it or take its admin role.")

    role, unlock = st.columns(2)
    if account.admin:
        role.button("Remove admin role", disabled=yourself, on_click=_change, args=(
            lambda: accounts.set_admin(username, False, actor=session.actor()),
            f"{username} is no longer an admin."))
    else:
        role.button("Make admin", on_click=_change, args=(
            lambda: accounts.set_admin(username, True, actor=session.actor()), f"{username} is now an admin."))
    if username in accounts.locks():
        unlock.button("Unlock login", on_click=_change, args=(
            lambda: accounts.unlock(username, actor=session.actor()),
            f"{username} can try to log in again now."))

    _reset_password_form(accounts, username, yourself)
    _remove(accounts, username, yourself)


def _reset_password_form(accounts: Accounts, username: str, yourself: bool) -> None:
    def reset() -> None:
        password, repeat = st.session_state.get("reset_password"), st.session_state.get("reset_repeat")
        if password != repeat:
            _tell("error", "The two passwords differ; type them again.")
            return

        def change() -> None:
            accounts.set_password(username, password or "", actor=session.actor())
            if yourself and st.session_state.get(COOKIE_EXP):
                # The change ends every session of the account; this one, which made it, goes on.
                accounts.record_cookie(username, st.session_state[COOKIE_EXP])
        _change(change, f"Changed the password of {username}; their other sessions must log in again.")
        if st.session_state.get(NOTICE, ("",))[0] == "success":
            st.session_state["reset_password"] = st.session_state["reset_repeat"] = ""

    with st.form("reset_password_form"):
        st.text_input("New password", type="password", key="reset_password",
                      help="At least 8 characters, at most 72 bytes, no space at either end.")
        st.text_input("Repeat new password", type="password", key="reset_repeat")
        st.form_submit_button("Set password", on_click=reset)


def _remove(accounts: Accounts, username: str, yourself: bool) -> None:
    if st.session_state.get(CONFIRM_REMOVE) != username:
        st.button("Remove user…", disabled=yourself,
                  on_click=lambda: st.session_state.update({CONFIRM_REMOVE: username}))
        return
    store = session.store()
    owned = store.count_user_data(username, session.actor())
    st.warning(f"Remove **{username}**? They can no longer log in, and their {owned} are deleted "
               "for good, so that nobody given this name later sees them. This cannot be undone.")
    yes, no = st.columns(2)

    def remove() -> None:
        st.session_state.pop(CONFIRM_REMOVE, None)
        st.session_state.pop("managed_user", None)
        _change(lambda: accounts.remove_user(username, actor=session.actor(), store=store),
                lambda deleted: f"Removed {username} and their {deleted}.")

    yes.button(f"Yes, remove {username}", type="primary", on_click=remove)
    no.button("Cancel", on_click=lambda: st.session_state.pop(CONFIRM_REMOVE, None))


ADMINS_ONLY = "The Users page is for administrators only."


def _refusal() -> str:
    # A change refused because the role was taken away meanwhile says so (nothing was changed).
    kind, text = st.session_state.pop(NOTICE, (None, None))
    return text if kind == "refused" else ADMINS_ONLY


def to_chat_instead() -> None:
    """What /users runs for someone who is not (or no longer) an admin: the chat page, with a
    note saying why, instead of Streamlit's "page not found"."""
    reason = _refusal()
    st.session_state[PAGE_NOTE] = reason
    try:
        st.switch_page("pages/chat.py")
    except StreamlitAPIException:   # no chat page reachable from this run: refuse right here
        st.session_state.pop(PAGE_NOTE, None)
        st.error(reason)
        st.stop()


def only_admins() -> None:
    """Anyone but an admin (the role as the database has it now) goes to the chat page. For a
    run of the page file without app.py (see components.auth.signed_in_page)."""
    if not session.is_admin():
        to_chat_instead()
