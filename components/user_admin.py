"""The Users page's widgets: the list of accounts, adding one, and managing one.

Every change goes straight to the accounts database, in a button's callback (so the page drawn
after it already shows the change). Problems a person can cause (a taken name, a weak password,
the last admin) come back as a message; what they typed stays in the form.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from components import context
from components.auth import COOKIE_EXP
from studio.accounts import Accounts, AccountsUnavailable, UserError

NOTICE = "users_notice"            # (kind, text) shown at the top of the page after a change
CONFIRM_REMOVE = "users_confirm_remove"
NEW_USER_FIELDS = ("new_username", "new_name", "new_password", "new_repeat", "new_admin")


def _tell(kind: str, text: str) -> None:
    st.session_state[NOTICE] = (kind, text)


def _change(action, done: str) -> None:
    try:
        action()
    except (UserError, AccountsUnavailable) as exc:
        _tell("error", str(exc))
    else:
        _tell("success", done)


def notice() -> None:
    """The outcome of the last change, once."""
    kind, text = st.session_state.pop(NOTICE, (None, None))
    if kind == "error":
        st.error(text)
    elif kind == "success":
        st.success(text)


def users_table(accounts: Accounts) -> None:
    locks = accounts.locks()
    rows = [{"Username": a.username, "Name": a.name, "Role": "admin" if a.admin else "user",
             "Login": f"locked until {locks[a.username]:%H:%M:%S} UTC" if a.username in locks else ""}
            for a in accounts.list_users()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, use_container_width=True)


def add_user_form(accounts: Accounts) -> None:
    def add() -> None:
        fields = {k: st.session_state.get(k) for k in NEW_USER_FIELDS}
        if fields["new_password"] != fields["new_repeat"]:
            _tell("error", "The two passwords differ; type them again.")
            return
        try:
            account = accounts.add_user(fields["new_username"] or "", fields["new_password"] or "",
                                        name=fields["new_name"] or "", admin=bool(fields["new_admin"]))
        except (UserError, AccountsUnavailable) as exc:
            _tell("error", str(exc))
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
            lambda: accounts.set_admin(username, False), f"{username} is no longer an admin."))
    else:
        role.button("Make admin", on_click=_change, args=(
            lambda: accounts.set_admin(username, True), f"{username} is now an admin."))
    if username in accounts.locks():
        unlock.button("Unlock login", on_click=_change, args=(
            lambda: accounts.unlock(username), f"{username} can try to log in again now."))

    _reset_password_form(accounts, username, yourself)
    _remove(accounts, username, yourself)


def _reset_password_form(accounts: Accounts, username: str, yourself: bool) -> None:
    def reset() -> None:
        password, repeat = st.session_state.get("reset_password"), st.session_state.get("reset_repeat")
        if password != repeat:
            _tell("error", "The two passwords differ; type them again.")
            return

        def change() -> None:
            accounts.set_password(username, password or "")
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
    st.warning(f"Remove **{username}**? They can no longer log in; their threads and assistants "
               "stay in the workspace.")
    yes, no = st.columns(2)

    def remove() -> None:
        st.session_state.pop(CONFIRM_REMOVE, None)
        st.session_state.pop("managed_user", None)
        _change(lambda: accounts.remove_user(username), f"Removed {username}.")

    yes.button(f"Yes, remove {username}", type="primary", on_click=remove)
    no.button("Cancel", on_click=lambda: st.session_state.pop(CONFIRM_REMOVE, None))


def only_admins() -> None:
    """Stop the page for anyone but an admin (the role as the database has it now)."""
    if not context.is_admin():
        st.error("Only an administrator can manage users.")
        st.stop()
