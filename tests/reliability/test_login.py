"""Bad input on the login form, the first-run form and the Users page: a clear message, the form
kept, and every account intact (nobody locked out by someone else's typing)."""
from __future__ import annotations

import shutil

import pytest

from components import auth as gate
from studio.accounts import Accounts
from studio.store import Store
from tests.app.conftest import click, login, new_app
from tests.app.test_users import manage, set_password
from tests.reliability.conftest import ada_and_bob, assert_clear, only_message

ACCOUNTS = [("ada", True), ("bob", False)]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A workspace database made once (bcrypt is slow on purpose): admin ada, user bob."""
    folder = tmp_path_factory.mktemp("accounts")
    ada_and_bob(folder).engine.dispose()
    return folder / "studio.db"


def password_hashes(people: Accounts) -> dict[str, str]:
    return {name: account["password"] for name, account in people.credentials()["usernames"].items()}


@pytest.fixture
def people(workspace, template) -> Accounts:
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, workspace / "studio.db")
    people = Accounts(Store(f"sqlite:///{workspace / 'studio.db'}").engine)
    people.hashes_before = password_hashes(people)
    return people


def assert_accounts_intact(people: Accounts) -> None:
    """Every account as it was: same names, roles and passwords, and no name locked."""
    assert [(a.username, a.admin) for a in people.list_users()] == ACCOUNTS
    assert password_hashes(people) == people.hashes_before
    assert not people.locks()


def signed_in_as(at) -> bool:
    return any(t.value == "Comment responder" for t in at.title)


# --- the login form ----------------------------------------------------------------------------

LOGIN_REFUSED = {
    "both-empty": ("", ""),
    "password-empty": ("ada", ""),
    "username-empty": ("", "correct-horse"),
    "username-10000-chars": ("a" * 10_000, "correct-horse"),
    "username-with-nul": ("ad\x00a", "correct-horse"),
    "username-sql-quote": ("ada' --", "correct-horse"),
    "username-hebrew": ("עדה", "correct-horse"),
    "username-with-escape-sequence": ("\x1b[2Jada", "correct-horse"),
    "password-with-nul": ("ada", "correct-horse\x00"),
    "password-trailing-space": ("ada", "correct-horse "),
    "password-100-bytes": ("ada", "🔑" * 25),
    "password-10000-chars": ("ada", "p" * 10_000),
}


@pytest.mark.parametrize("username, password", LOGIN_REFUSED.values(), ids=LOGIN_REFUSED.keys())
def test_a_bad_login_is_refused_with_a_message_and_hurts_no_account(people, username, password):
    at = login(new_app().run(), username, password)
    assert_clear(only_message(at), "username", "password")
    assert not signed_in_as(at)
    assert "Log in" in [b.label for b in at.button]   # the form is there for the next try
    assert_accounts_intact(people)


def test_a_username_in_capitals_with_spaces_around_signs_in(people):
    at = login(new_app().run(), "  ADA ", "correct-horse")
    assert not at.exception and not at.error
    assert signed_in_as(at)


# --- the first-run form --------------------------------------------------------------------------

@pytest.fixture
def first_run(workspace, monkeypatch):
    """A fresh workspace opened from a browser on the server's machine."""
    monkeypatch.setattr(gate, "visitor_is_local", lambda: True)
    return new_app().run()


def create_first_admin(at, username, password, name="", repeat=None):
    inputs = {t.label: t for t in at.text_input}
    inputs["Username"].input(username)
    inputs["Display name (optional)"].input(name)
    inputs["Password"].input(password)
    inputs["Repeat password"].input(password if repeat is None else repeat)
    next(b for b in at.button if b.label == "Create admin account").click()
    return at.run()


FIRST_RUN_REFUSED = {
    "username-empty": ("", "correct-horse", "", ["username", "2–32 characters"]),
    "username-with-space": ("Ada Lovelace", "correct-horse", "", ["username", "lowercase"]),
    "username-with-emoji": ("ada🙂", "correct-horse", "", ["username"]),
    "display-name-101-chars": ("ada", "correct-horse", "A" * 101, ["display name", "at most 100"]),
    "display-name-with-escape-sequence": ("ada", "correct-horse", "\x1b[31mAda",
                                          ["display name", "control characters"]),
    "password-only-spaces": ("ada", " " * 12, "", ["password", "space"]),
    "password-with-tab": ("ada", "correct\thorse", "", ["password", "control characters"]),
    "password-76-bytes-of-emoji": ("ada", "🙂" * 19, "", ["72 bytes"]),
    "password-7-chars": ("ada", "horse77", "", ["at least 8"]),
}


@pytest.mark.parametrize("username, password, name, says", FIRST_RUN_REFUSED.values(), ids=FIRST_RUN_REFUSED.keys())
def test_the_first_run_form_names_the_rule_and_keeps_the_form(first_run, workspace, username, password, name, says):
    at = create_first_admin(first_run, username, password, name)
    assert_clear(only_message(at), *says)
    fields = {t.label: t.value for t in at.text_input}
    assert fields["Username"] == username and fields["Display name (optional)"] == name
    assert at.title[0].value == "Welcome to Assistant Studio"
    people = Accounts(Store(f"sqlite:///{workspace / 'studio.db'}").engine)
    assert not people.has_users()


# --- the Users page (admin) ----------------------------------------------------------------------

@pytest.fixture
def users_page(people):
    at = login(new_app().run(), "ada", "correct-horse")
    at.switch_page("pages/users.py")
    return at.run()


ADD_REFUSED = {
    "taken-name-in-capitals": ("BOB", "", "new-password-1", ["already exists"]),
    "name-with-space": ("bob smith", "", "new-password-1", ["username"]),
    "name-33-chars": ("c" * 33, "", "new-password-1", ["2–32 characters"]),
    "display-name-with-nul": ("carol", "Car\x00ol", "new-password-1", ["display name", "control characters"]),
    "password-over-72-bytes": ("carol", "", "ü" * 37, ["72 bytes"]),
    "password-leading-space": ("carol", "", " new-password-1", ["space"]),
}


@pytest.mark.parametrize("username, name, password, says", ADD_REFUSED.values(), ids=ADD_REFUSED.keys())
def test_adding_a_user_names_the_rule_and_keeps_the_form(users_page, people, username, name, password, says):
    at = users_page
    fields = {t.label: t for t in at.text_input}
    fields["Username"].input(username)
    fields["Display name (optional)"].input(name)
    fields["Password"].input(password)
    fields["Repeat password"].input(password)
    at = click(at, "Add user")
    assert_clear(only_message(at), *says)
    kept = {t.label: t.value for t in at.text_input}
    assert kept["Username"] == username and kept["Display name (optional)"] == name
    assert_accounts_intact(people)


@pytest.mark.parametrize("password, says", [
    ("short", ["at least 8"]),
    ("new-password\x00", ["control characters"]),
    ("new-password ", ["space"]),
], ids=["too-short", "with-nul", "trailing-space"])
def test_resetting_a_password_to_a_bad_one_keeps_the_old_one(users_page, people, password, says):
    at = set_password(manage(users_page, "bob"), password)
    assert_clear(only_message(at), *says)
    assert_accounts_intact(people)   # bob keeps his old password
