"""Each user has their own threads and assistants; an admin can see everyone's and manages the
accounts on the Users page."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from studio.accounts import OPERATOR, UserError
from studio.store import Actor, Store
from studio.types import Message, Thread
from tests.app.conftest import accounts, click, login, new_app

ROOT = Path(__file__).resolve().parents[2]


def seed_thread(workspace, owner, text):
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    store.seed_demo_assistant(Actor(owner))
    spec = store.list_assistants(Actor(owner))[0]
    thread = store.save_thread(Thread(owner=owner, assistant_id=spec.id, provider="local"), Actor(owner))
    store.add_message(thread, Message("user", text), Actor(owner))


def test_users_see_their_own_threads_and_admins_can_see_all(workspace):
    users = accounts(workspace)
    users.add_user("ada", "correct-horse", actor=OPERATOR)        # first user: admin
    users.add_user("bob", "battery-staple", actor=OPERATOR)
    seed_thread(workspace, "ada", "Ada's question")
    seed_thread(workspace, "bob", "Bob's question")

    bob = login(new_app().run(), "bob", "battery-staple")
    labels = [b.label for b in bob.sidebar.button]
    assert "Bob's question" in labels and "Ada's question" not in labels
    assert not [t for t in bob.sidebar.toggle if t.label == "All users' threads"]
    assert [o for o in bob.sidebar.selectbox(key="assistant_id").options] == ["Comment responder"]

    ada = login(new_app().run(), "ada", "correct-horse")
    assert "Bob's question" not in [b.label for b in ada.sidebar.button]
    ada.sidebar.toggle(key="all_threads").set_value(True).run()
    assert "Bob's question · bob" in [b.label for b in ada.sidebar.button]


# --- the Users page (admins only) ------------------------------------------------------------

def open_users(at):
    at.switch_page("pages/users.py")
    return at.run()


def manage(at, username):
    at.selectbox(key="managed_user").set_value(username)
    return at.run()


def set_password(at, password):
    """Type `password` twice in the managed user's password form and press Set password."""
    fields = {t.label: t for t in at.text_input}
    fields["New password"].input(password)
    fields["Repeat new password"].input(password)
    return click(at, "Set password")


def test_an_admin_lists_adds_and_promotes_users_on_the_users_page(signed_in, workspace):
    at = open_users(signed_in)
    assert not at.exception
    assert at.title[0].value == "Users"
    assert list(at.dataframe[0].value["Username"]) == ["ada"]

    fields = {t.label: t for t in at.text_input}
    fields["Username"].input("Bob")
    fields["Password"].input("battery-staple")
    fields["Repeat password"].input("battery-stapler")
    at = click(at, "Add user")
    assert "differ" in at.error[0].value
    assert {t.label: t.value for t in at.text_input}["Username"] == "Bob"   # kept for a second try
    {t.label: t for t in at.text_input}["Repeat password"].input("battery-staple")
    at = click(at, "Add user")
    assert "Added bob (user)" in at.success[0].value
    assert list(at.dataframe[0].value["Username"]) == ["ada", "bob"]

    at = click(manage(at, "bob"), "Make admin")
    assert accounts(workspace).get("bob").admin
    assert list(at.dataframe[0].value["Role"]) == ["admin", "admin"]


def test_a_non_admin_has_no_users_page_even_by_url(workspace):
    people = accounts(workspace)
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    people.add_user("bob", "battery-staple", actor=OPERATOR)
    bob = login(new_app().run(), "bob", "battery-staple")
    assert "Users" not in [t.value for t in bob.title]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        bob.switch_page("pages/users.py")   # not among bob's pages: /users leads to the chat page

    # Run as the only script (no app.py, no chat page to go to): the page refuses by itself.
    direct = AppTest.from_file(str(ROOT / "pages" / "users.py"), default_timeout=120).run()
    direct = login(direct, "bob", "battery-staple")
    assert not direct.exception
    assert [e.value for e in direct.error] == ["The Users page is for administrators only."]
    assert not direct.dataframe


def on_the_chat_page(at) -> bool:
    return any(t.value == "Comment responder" for t in at.title)


def test_a_removed_admin_role_applies_on_the_next_run(signed_in, workspace):
    people = accounts(workspace)
    people.add_user("bob", "battery-staple", admin=True, actor=OPERATOR)
    bob = open_users(login(new_app().run(), "bob", "battery-staple"))
    assert bob.title[0].value == "Users"
    people.set_admin("bob", False, actor=OPERATOR)
    bob.run()
    assert not bob.exception
    assert not bob.dataframe and on_the_chat_page(bob)   # not Streamlit's "page not found"
    assert [t.value for t in bob.toast] == ["The Users page is for administrators only."]


def fill_new_user(at, username, password, admin=False):
    fields = {t.label: t for t in at.text_input}
    fields["Username"].input(username)
    fields["Password"].input(password)
    fields["Repeat password"].input(password)
    at.checkbox(key="new_admin").set_value(admin)
    return at


def test_an_admin_demoted_while_the_users_page_is_open_can_change_nothing(signed_in, workspace):
    people = accounts(workspace)
    people.add_user("bob", "battery-staple", admin=True, actor=OPERATOR)
    people.add_user("carol", "carol-password", actor=OPERATOR)
    bob = open_users(login(new_app().run(), "bob", "battery-staple"))
    fill_new_user(bob, "mallory", "mallory-password", admin=True)
    people.set_admin("bob", False, actor=OPERATOR)        # meanwhile, by another admin
    bob = click(bob, "Add user")                           # the callback runs before the gate
    assert people.get("mallory") is None
    assert not bob.exception and on_the_chat_page(bob)
    assert "Nothing was changed" in bob.toast[0].value

    # The same for a removal confirmed on a page drawn while bob was still an admin.
    people.set_admin("bob", True, actor=OPERATOR)
    bob = click(manage(open_users(bob), "carol"), "Remove user…")
    people.set_admin("bob", False, actor=OPERATOR)
    bob = click(bob, "Yes, remove carol")
    assert people.get("carol") and "Nothing was changed" in bob.toast[0].value


def test_an_admin_resets_a_password_and_removes_a_user_after_confirming(signed_in, workspace):
    people = accounts(workspace)
    people.add_user("bob", "battery-staple", actor=OPERATOR)
    seed_thread(workspace, "bob", "Bob's question")
    at = manage(open_users(signed_in), "bob")
    at = set_password(at, "short")
    assert "at least 8" in at.error[0].value
    at = set_password(at, "new-battery-staple")
    assert "Changed the password of bob" in at.success[0].value
    assert people.authenticate("bob", "new-battery-staple")

    at = click(manage(at, "bob"), "Remove user…")
    assert people.get("bob")                      # nothing happens before the confirmation
    assert "their 1 thread and 1 assistant are deleted for good" in at.warning[0].value
    at = click(at, "Yes, remove bob")
    assert at.success[0].value == "Removed bob and their 1 thread and 1 assistant."
    assert people.get("bob") is None
    assert list(at.dataframe[0].value["Username"]) == ["ada"]

    # Whoever is given the name next starts with nothing of the old bob's.
    people.add_user("bob", "another-battery", actor=OPERATOR)
    bob = login(new_app().run(), "bob", "another-battery")
    assert "Bob's question" not in [b.label for b in bob.sidebar.button]
    assert [a.name for a in Store(f"sqlite:///{workspace / 'studio.db'}").list_assistants(Actor("bob"))] == [
        "Comment responder"]                      # only the demo, seeded anew for a newcomer


def test_an_admin_cannot_remove_or_demote_themselves_or_the_last_admin(signed_in, workspace):
    at = manage(open_users(signed_in), "ada")
    buttons = {b.label: b for b in at.button}
    assert buttons["Remove admin role"].disabled and buttons["Remove user…"].disabled
    people = accounts(workspace)
    with pytest.raises(UserError, match="last admin"):
        people.set_admin("ada", False, actor=OPERATOR)
    with pytest.raises(UserError, match="last admin"):
        people.remove_user("ada", actor=OPERATOR, store=Store(f"sqlite:///{workspace / 'studio.db'}"))
    assert people.get("ada").admin


def test_an_admin_changing_their_own_password_stays_signed_in(signed_in, workspace):
    at = manage(open_users(signed_in), "ada")
    at = set_password(at, "new-correct-horse")
    assert "Changed the password of ada" in at.success[0].value
    at.run()
    assert at.title[0].value == "Users"            # this session goes on
    assert accounts(workspace).authenticate("ada", "new-correct-horse")
