"""The login gate as a visitor meets it: first run, the login form, locks, ended sessions."""
import re
import threading

import pytest

from components import auth as gate
from studio.accounts import OPERATOR
from studio.store import Store
from tests.app.conftest import accounts, login, new_app


@pytest.fixture
def on_the_server(monkeypatch):
    """The visitor's browser runs on the server's machine (AppTest's own address is a mock)."""
    monkeypatch.setattr(gate, "visitor_is_local", lambda: True)


def create_first_admin(at, username, password, repeat, token=None):
    inputs = {t.label: t for t in at.text_input}
    inputs["Username"].input(username)
    inputs["Password"].input(password)
    inputs["Repeat password"].input(repeat)
    if token is not None:
        inputs["Setup token"].input(token)
    next(b for b in at.button if b.label == "Create admin account").click()
    return at.run()


def test_first_run_asks_for_an_admin_account_and_then_logs_in(workspace, on_the_server):
    at = new_app().run()
    assert at.title[0].value == "Welcome to Assistant Studio"
    assert "Setup token" not in [t.label for t in at.text_input]
    assert not at.exception
    create_first_admin(at, "ada", "correct-horse", "correct-horse")
    assert accounts(workspace).get("ada").admin
    assert any("created" in s.value for s in at.success)
    at = login(at, "ada", "correct-horse")
    assert not at.exception
    assert at.title[0].value == "Comment responder"   # the seeded demo assistant


def test_first_run_rejects_mismatched_passwords_and_keeps_the_form(workspace, on_the_server):
    at = create_first_admin(new_app().run(), "ada", "correct-horse", "correct-hors")
    assert "differ" in at.error[0].value
    assert not accounts(workspace).has_users()
    assert {t.label: t.value for t in at.text_input}["Username"] == "ada"


def test_first_run_says_which_password_rule_is_broken(workspace, on_the_server):
    at = create_first_admin(new_app().run(), "ada", "correct-horse ", "correct-horse ")
    assert "cannot start or end with a space" in at.error[0].value
    at = create_first_admin(at, "ada", "é" * 40, "é" * 40)   # 40 characters, 80 bytes
    assert "at most 72 bytes" in at.error[0].value
    assert not at.exception and not accounts(workspace).has_users()


def test_a_visitor_from_another_machine_needs_the_setup_token_printed_by_the_server(workspace, capsys):
    at = new_app().run()
    token = re.search(r"setup token.*:\s+(\S+)\s*$", capsys.readouterr().err, re.S).group(1)
    assert "Setup token" in [t.label for t in at.text_input]
    new_app().run()                                   # another visitor: no second token printed
    assert "setup token" not in capsys.readouterr().err

    at = create_first_admin(at, "mallory", "correct-horse", "correct-horse", token="guessed")
    assert "setup token is not right" in at.error[0].value
    assert not accounts(workspace).has_users()

    at = create_first_admin(at, "ada", "correct-horse", "correct-horse", token=token)
    assert not at.error
    assert [a.username for a in accounts(workspace).list_users()] == ["ada"]
    assert not accounts(workspace).setup_token_is_valid(token)   # one time only


def asks_for_a_token(at) -> bool:
    return "Setup token" in [t.label for t in at.text_input]


def test_only_a_loopback_connection_skips_the_token_and_a_setting_turns_that_off(workspace, monkeypatch):
    peer = {"is": "loopback"}
    monkeypatch.setattr(gate, "connection_locality", lambda session_id: peer["is"])
    assert not asks_for_a_token(new_app().run())
    for elsewhere in ("private", "other", "unknown"):   # "unknown": no address known is not local
        peer["is"] = elsewhere
        assert asks_for_a_token(new_app().run()), elsewhere
    # Behind a proxy or tunnel on the same machine every visitor is loopback: the operator says so.
    peer["is"] = "loopback"
    monkeypatch.setenv("STUDIO_FIRST_RUN_LOCAL", "0")
    at = new_app().run()
    assert asks_for_a_token(at)
    at = create_first_admin(at, "mallory", "correct-horse", "correct-horse", token="")
    assert "setup token is not right" in at.error[0].value and not accounts(workspace).has_users()


def test_wrong_password_is_refused(workspace):
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    at = login(new_app().run(), "ada", "wrong-password")
    assert "Wrong username or password" in at.error[0].value
    assert not any(t.value == "Comment responder" for t in at.title)


def test_an_unknown_name_gets_the_same_answer_as_a_wrong_password(workspace):
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    at = login(new_app().run(), "nobody", "wrong-password")
    assert [e.value for e in at.error] == ["Wrong username or password."]


def test_five_failures_lock_the_name_with_a_message_that_says_when(workspace):
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    at = new_app().run()
    for _ in range(4):
        at = login(at, "ada", "wrong-password")
        assert at.error[0].value == "Wrong username or password."
    at = login(at, "ada", "wrong-password")
    assert re.fullmatch(r"Too many failed logins for this name\. Try again in \d+ seconds\.", at.error[0].value)
    at = login(at, "ada", "correct-horse")     # locked: even the right password waits
    assert "Try again in" in at.error[0].value
    assert not any(t.value == "Comment responder" for t in at.title)
    assert "Log in" in [b.label for b in at.button]   # the form stays


def test_a_removed_user_is_signed_out_on_the_next_run(signed_in, workspace):
    ada = signed_in
    people = accounts(workspace)
    people.add_user("bob", "battery-staple", actor=OPERATOR)
    bob = login(new_app().run(), "bob", "battery-staple")
    assert any(t.value == "Comment responder" for t in bob.title)
    people.remove_user("bob", actor=OPERATOR, store=Store(f"sqlite:///{workspace / 'studio.db'}"))
    bob.run()
    assert not bob.exception
    assert "Log in" in [b.label for b in bob.button]
    assert any("session has ended" in s.value for s in bob.success)
    assert not ada.run().exception


def test_a_password_change_ends_the_other_sessions_of_that_user(signed_in, workspace):
    accounts(workspace).set_password("ada", "new-correct-horse", actor=OPERATOR)
    at = signed_in.run()
    assert "Log in" in [b.label for b in at.button]
    at = login(at, "ada", "new-correct-horse")
    assert any(t.value == "Comment responder" for t in at.title)


def test_a_database_that_cannot_be_read_is_an_error_not_a_first_run(workspace, monkeypatch):
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    monkeypatch.setenv("STUDIO_DATABASE_URL", f"sqlite:///{workspace / 'missing-folder' / 'studio.db'}")
    at = new_app().run()
    assert not at.exception
    assert "Nobody can sign in right now" in at.error[0].value
    assert not any(t.value == "Welcome to Assistant Studio" for t in at.title)


def _share_apptest_runtime(monkeypatch) -> None:
    """AppTest is not made for threads: each run installs its own stand-in Runtime as a global
    and sets it to None when it ends, so a run starting in another thread at that moment fails
    with "Runtime hasn't been created!". Keep the last one installed for every thread."""
    from streamlit.runtime import Runtime
    last = {}

    def instance(cls):
        if cls._instance is not None:
            last["runtime"] = cls._instance
        if "runtime" not in last:
            raise RuntimeError("Runtime hasn't been created!")
        return last["runtime"]

    monkeypatch.setattr(Runtime, "instance", classmethod(instance))
    # Each run also patches config.get_option to say "global.appTest" is on and puts back the
    # function it found when it ends; a run ending in one thread can put back the plain one
    # under a run in another, which then records no widget details and fails its next run with
    # a KeyError. Install one that says so for the whole test, so every run puts back a "yes".
    from streamlit import config
    plain = config.get_option
    monkeypatch.setattr(config, "get_option", lambda name: True if name == "global.appTest" else plain(name))


def test_failed_logins_and_page_runs_at_once_lose_no_account(workspace, monkeypatch):
    _share_apptest_runtime(monkeypatch)
    people = accounts(workspace)
    for name in ("ada", "bob", "carol"):
        people.add_user(name, f"{name}-password", actor=OPERATOR)
    key = people.cookie_key()
    problems = []

    def failing_logins():
        at = new_app().run()
        for _ in range(6):
            at = login(at, "bob", "wrong-password")
            problems.extend(at.exception)
            if any("Try again" in e.value for e in at.error):
                people.unlock("bob", actor=OPERATOR)

    def page_runs():
        at = login(new_app().run(), "carol", "carol-password")
        for _ in range(6):
            at.run()
            problems.extend(at.exception)
            if not any(t.value == "Comment responder" for t in at.title):
                problems.append("carol was signed out")

    def recording(work):   # a thread that dies must fail the test, not only warn
        def run():
            try:
                work()
            except Exception as exc:
                problems.append(exc)
        return run

    threads = ([threading.Thread(target=recording(failing_logins)) for _ in range(2)]
               + [threading.Thread(target=recording(page_runs))])
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not problems, problems[:3]
    assert [a.username for a in people.list_users()] == ["ada", "bob", "carol"]
    assert people.cookie_key() == key
    assert not (workspace / "users.yaml").exists()      # the login library wrote no file of its own
    assert people.authenticate("bob", "bob-password")
