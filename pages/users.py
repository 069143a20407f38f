"""Users: who can sign in, and who is an administrator. Admins only."""
import streamlit as st

from components import session
from components.layout import shared_sidebar
from components.user_admin import add_user_form, manage_user, notice, only_admins, users_table

shared_sidebar()
only_admins()
accounts = session.accounts()

st.title("Users")
st.caption("Accounts are kept in the workspace database. A password has at least 8 characters, "
           "at most 72 bytes and no space at either end. After 5 failed logins a name is locked "
           "for 30 seconds, then twice as long after each further failure.")
notice()
users_table(accounts)
add_user_form(accounts)
manage_user(accounts, me=session.current_user())
