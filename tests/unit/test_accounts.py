"""Login accounts in the workspace database: rules, locks, cookies, first run, old users.yaml,
and accounts that survive any mix of concurrent logins and page runs."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import bcrypt
import pytest
import yaml
from sqlalchemy import create_engine, func, select

from studio import accounts as accounts_module
from studio.accounts import (COOKIE_EXPIRY_DAYS, MAX_FAILURES, OPERATOR, SETUP_TOKEN_LIFETIME, Accounts,
                             AccountsUnavailable, LoginLocked, NotAdmin, UserError)
from studio.store import Actor, NotAllowed, Store
from studio.types import Message, Thread
from tests.unit.conftest import lock_out


@pytest.fixture
def url(db_path):
    return f"sqlite:///{db_path}"


@pytest.fixture
def people(store):
    return Accounts(store.engine)


@pytest.fixture
def clock(monkeypatch):
    """Move the accounts' clock forward without waiting."""
    offset = {"by": timedelta(0)}
    real_now = accounts_module._now
    monkeypatch.setattr(accounts_module, "_now", lambda: real_now() + offset["by"])

    def advance(seconds: float) -> None:
        offset["by"] += timedelta(seconds=seconds)
    return advance


def cookie_exp() -> float:
    return time.time() + COOKIE_EXPIRY_DAYS * 86400


# --- names and passwords -----------------------------------------------------------------------

def test_the_first_account_is_an_admin_and_names_are_case_insensitive(people):
    assert not people.has_users()
    assert people.add_user(" Ada ", "correct-horse", name="Ada L.", actor=OPERATOR).admin
    assert not people.add_user("bob", "battery-staple", actor=OPERATOR).admin
    assert [(a.username, a.name, a.admin) for a in people.list_users()] == [
        ("ada", "Ada L.", True), ("bob", "bob", False)]
    assert people.get("ADA").username == "ada"
    with pytest.raises(UserError, match="already exists"):
        people.add_user("ADA", "correct-horse", actor=OPERATOR)
    with pytest.raises(UserError, match="2–32 characters"):
        people.add_user("a b", "correct-horse", actor=OPERATOR)


@pytest.mark.parametrize("password, problem", [
    ("short", "at least 8 characters"),
    (" leading-space", "cannot start or end with a space"),
    ("trailing-space ", "cannot start or end with a space"),
    ("x" * 73, "at most 72 bytes"),
    ("é" * 37, "at most 72 bytes"),            # 37 characters, 74 bytes
    ("tab\there-inside", "control characters"),
    ("nul\x00inside!", "control characters"),
])
def test_a_password_that_breaks_the_rule_is_refused_with_the_reason(people, password, problem):
    with pytest.raises(UserError, match=problem):
        people.add_user("ada", password, actor=OPERATOR)
    assert not people.has_users()


@pytest.mark.parametrize("password", ["x" * 72, "é" * 36, "inner spaces are fine", "émoji 🙂 ok"])
def test_a_password_at_the_edge_of_the_rule_is_accepted_and_logs_in(people, password):
    people.add_user("ada", password, actor=OPERATOR)
    assert people.authenticate("ada", password).username == "ada"
    assert people.authenticate("ada", password + " ") is None      # checked as typed, not trimmed
    assert people.authenticate("ada", password + "y" * 80) is None  # too long for bcrypt: just wrong


# --- login failures ----------------------------------------------------------------------------

def test_five_failures_lock_a_name_for_30_seconds_then_twice_as_long(people, clock):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    for _ in range(4):
        assert people.authenticate("ada", "wrong-password") is None
    with pytest.raises(LoginLocked) as locked:
        people.authenticate("ada", "wrong-password")
    assert locked.value.message == "Too many failed logins for this name. Try again in 30 seconds."
    with pytest.raises(LoginLocked):                       # even the right password must wait
        people.authenticate("ada", "correct-horse")
    clock(31)
    with pytest.raises(LoginLocked) as locked:             # the next failure locks for longer
        people.authenticate("ada", "wrong-password")
    assert "60 seconds" in locked.value.message
    clock(61 + 120)
    assert people.authenticate("ada", "correct-horse").username == "ada"
    assert people.authenticate("ada", "wrong-password") is None   # a success starts the count anew


def test_a_locked_name_is_refused_without_checking_the_password(people, monkeypatch):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    lock_out(people, "ada")
    checks = []
    monkeypatch.setattr(accounts_module.bcrypt, "checkpw", lambda *a: checks.append(a) or True)
    with pytest.raises(LoginLocked):
        people.authenticate("ada", "correct-horse")
    assert checks == []


def test_an_unknown_name_takes_the_same_path_as_a_known_one(people, monkeypatch):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    checks = []
    real_check = bcrypt.checkpw
    monkeypatch.setattr(accounts_module.bcrypt, "checkpw",
                        lambda password, hashed: checks.append(hashed[:7]) or real_check(password, hashed))
    assert people.authenticate("ada", "wrong-password") is None
    assert people.authenticate("nobody", "wrong-password") is None
    # One bcrypt check each, at the same cost (a dummy hash for the unknown name)...
    assert checks == [b"$2b$12$", b"$2b$12$"]
    # ...and the unknown name locks like a known one, so a lock tells nothing about who exists.
    for _ in range(3):
        people.authenticate("nobody", "wrong-password")
    with pytest.raises(LoginLocked):
        people.authenticate("nobody", "wrong-password")
    assert set(people.locks()) == {"nobody"}


@pytest.mark.parametrize("typed", ["", "ada\x00", "a" * 10_000, "ada; drop table users", "ädä"])
def test_a_name_that_cannot_be_an_account_is_just_a_wrong_login(people, typed):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    assert people.authenticate(typed, "correct-horse") is None
    assert people.locks() == {} and people.authenticate("ada", "correct-horse")


def test_a_password_change_or_unlock_ends_a_lock(people):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    lock_out(people, "ada")
    people.unlock("ada", actor=OPERATOR)
    assert people.authenticate("ada", "correct-horse")
    lock_out(people, "ada")
    people.set_password("ada", "new-correct-horse", actor=OPERATOR)
    assert people.authenticate("ada", "new-correct-horse")


# --- cookies -----------------------------------------------------------------------------------

def test_a_cookie_signs_in_until_logout_revokes_it_for_good(people):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    exp = cookie_exp()
    assert people.check_cookie("ada", exp) is None          # never issued (e.g. forged with a leaked key)
    people.record_cookie("ada", exp)
    assert people.check_cookie("ada", exp).username == "ada"
    other = cookie_exp() + 1                                 # the same user in another browser
    people.record_cookie("ada", other)
    people.revoke_cookie("ada", exp)
    assert people.check_cookie("ada", exp) is None           # a copy of the logged-out cookie
    assert people.check_cookie("ada", other).username == "ada"


def test_a_removed_user_or_a_new_password_ends_their_cookies(people, store):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    people.add_user("bob", "battery-staple", actor=OPERATOR)
    ada, bob = cookie_exp(), cookie_exp() + 1
    people.record_cookie("ada", ada)
    people.record_cookie("bob", bob)
    people.set_password("ada", "new-correct-horse", actor=OPERATOR)
    assert people.check_cookie("ada", ada) is None
    people.remove_user("bob", actor=OPERATOR, store=store)
    assert people.check_cookie("bob", bob) is None
    people.add_user("bob", "another-battery", actor=OPERATOR)                 # same name, new person
    assert people.check_cookie("bob", bob) is None


def test_an_expired_cookie_signs_nobody_in(people, clock):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    exp = time.time() + 60
    people.record_cookie("ada", exp)
    assert people.check_cookie("ada", exp)
    clock(61)
    assert people.check_cookie("ada", exp) is None


def test_the_cookie_key_is_made_once_and_shared(url, people, tmp_path):
    key = people.cookie_key()
    assert len(key) >= 32
    assert Accounts(Store(url).engine).cookie_key() == key
    elsewhere = Accounts(Store(f"sqlite:///{tmp_path / 'other.db'}").engine)
    assert elsewhere.cookie_key() != key


def test_passwords_are_stored_only_as_bcrypt_hashes(tmp_path, people):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("studio.db*"))   # with the WAL file
    assert b"correct-horse" not in raw and b"$2b$12$" in raw


# --- admins ------------------------------------------------------------------------------------

def test_the_last_admin_cannot_be_demoted_or_removed(people, store):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    people.add_user("bob", "battery-staple", actor=OPERATOR)
    for change in (lambda: people.set_admin("ada", False, actor=OPERATOR),
                   lambda: people.remove_user("ada", actor=OPERATOR, store=store)):
        with pytest.raises(UserError, match="last admin"):
            change()
    people.set_admin("ada", True, actor=OPERATOR)                             # re-granting is not a demotion
    people.set_admin("bob", True, actor=OPERATOR)
    people.set_admin("ada", False, actor=OPERATOR)
    assert [a.username for a in people.list_users() if a.admin] == ["bob"]
    people.remove_user("ada", actor=OPERATOR, store=store)
    with pytest.raises(UserError, match="no user 'ada'"):
        people.remove_user("ada", actor=OPERATOR, store=store)


def test_two_admins_demoting_each_other_at_once_leave_one_admin(url, people):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    people.add_user("bob", "battery-staple", admin=True, actor=OPERATOR)
    results = []

    def demote(name):
        try:
            Accounts(Store(url).engine).set_admin(name, False, actor=OPERATOR)
            results.append("done")
        except UserError:
            results.append("refused")
    threads = [threading.Thread(target=demote, args=(n,)) for n in ("ada", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["done", "refused"]
    assert len([a for a in people.list_users() if a.admin]) == 1


# --- first run ---------------------------------------------------------------------------------

def test_only_one_of_two_simultaneous_first_run_claims_wins(url, people):
    results = []

    def claim(name):
        try:
            Accounts(Store(url).engine).create_first_admin(name, "correct-horse")
            results.append(name)
        except UserError as exc:
            results.append(str(exc))
    threads = [threading.Thread(target=claim, args=(n,)) for n in ("ada", "eve")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [a.username for a in people.list_users()]
    assert len(winners) == 1 and people.get(winners[0]).admin
    assert any("already been created" in r for r in results)
    with pytest.raises(UserError, match="already been created"):
        people.create_first_admin("mallory", "correct-horse")


def test_setup_tokens_are_one_time(people):
    token = people.new_setup_token()
    assert people.setup_token_is_valid(token) and not people.setup_token_is_valid("guess")
    assert not people.setup_token_is_valid("")
    people.create_first_admin("ada", "correct-horse")
    assert not people.setup_token_is_valid(token)


# --- a workspace from before the database ------------------------------------------------------

def old_user_file(path, usernames):
    path.write_text(yaml.safe_dump({
        "credentials": {"usernames": usernames},
        "cookie": {"name": "assistant_studio_auth", "expiry_days": 30, "key": "k" * 64}}))
    return path


def test_an_old_users_yaml_is_imported_once_then_renamed(tmp_path, people):
    old = old_user_file(tmp_path / "users.yaml", {
        "ada": {"first_name": "Ada", "password": bcrypt.hashpw(b"correct-horse", bcrypt.gensalt()).decode(),
                "roles": ["admin"]},
        "bob": {"first_name": "Bob", "password": bcrypt.hashpw(b"battery-staple", bcrypt.gensalt()).decode(),
                "roles": ["user"]},
        "Bad Name": {"password": "plain"}})
    assert people.import_user_file(old) == 2
    assert not old.exists() and (tmp_path / "users.yaml.imported").exists()
    assert [(a.username, a.name, a.admin) for a in people.list_users()] == [
        ("ada", "Ada", True), ("bob", "Bob", False)]
    assert people.authenticate("bob", "battery-staple")
    old_user_file(old, {"eve": {"password": bcrypt.hashpw(b"x" * 8, bcrypt.gensalt()).decode()}})
    assert people.import_user_file(old) == 0                 # the database has accounts: left alone
    assert people.get("eve") is None


def test_an_unreadable_users_yaml_is_an_error_not_a_fresh_start(tmp_path, people):
    old = tmp_path / "users.yaml"
    old.write_text("credentials: {usernames: [unclosed\n")
    with pytest.raises(AccountsUnavailable, match="could not be imported"):
        people.import_user_file(old)
    assert old.exists() and not people.has_users()


def test_a_database_that_cannot_be_opened_is_accounts_unavailable(tmp_path):
    with pytest.raises(AccountsUnavailable, match="could not be used"):
        Accounts(create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'studio.db'}"))


# --- nothing destroys the accounts -------------------------------------------------------------

def test_concurrent_failed_logins_and_page_runs_leave_every_user_and_the_cookie_key(url, people, monkeypatch):
    # Cheap hashes: the point is how the database behaves under many small writes and reads.
    real_gensalt = bcrypt.gensalt
    monkeypatch.setattr(accounts_module.bcrypt, "gensalt", lambda: real_gensalt(4))
    names = ["ada", "bob", "carol", "dave", "erin"]
    for name in names:
        people.add_user(name, f"{name}-password", actor=OPERATOR)
    exp = cookie_exp()
    people.record_cookie("carol", exp)
    key = people.cookie_key()
    errors, done, stop = [], {"failures": 0, "runs": 0}, threading.Event()

    def failing_logins(name):
        replica = Accounts(Store(url).engine)    # as another app replica would
        while not stop.is_set():
            try:
                assert replica.authenticate(name, "wrong-password") is None
                done["failures"] += 1
            except LoginLocked:
                replica.unlock(name, actor=OPERATOR)
            except Exception as exc:   # noqa: BLE001 - any failure is the finding
                errors.append(exc)

    def page_runs():
        replica = Accounts(Store(url).engine)
        while not stop.is_set():
            try:
                assert replica.has_users()
                assert sorted(replica.credentials()["usernames"]) == names
                assert replica.cookie_key() == key
                assert replica.check_cookie("carol", exp).username == "carol"
                assert replica.authenticate("erin", "erin-password")
                done["runs"] += 1
            except Exception as exc:   # noqa: BLE001
                errors.append(exc)

    threads = ([threading.Thread(target=failing_logins, args=(n,)) for n in ("ada", "bob", "nobody")]
               + [threading.Thread(target=page_runs) for _ in range(3)])
    for t in threads:
        t.start()
    time.sleep(8)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert done["failures"] >= 20 and done["runs"] >= 10, done   # it really did hammer
    assert [a.username for a in people.list_users()] == names
    assert people.cookie_key() == key
    for name in names:
        people.unlock(name, actor=OPERATOR)
        assert people.authenticate(name, f"{name}-password")


# --- who may change accounts -------------------------------------------------------------------

def test_only_an_admin_the_database_knows_now_can_change_accounts(people, store):
    people.add_user("ada", "correct-horse", actor=OPERATOR)                  # the first: admin
    people.add_user("bob", "battery-staple", admin=True, actor=OPERATOR)
    people.add_user("carol", "carol-password", actor=OPERATOR)
    bob_as_his_page_remembers = Actor("bob", admin=True)
    people.set_admin("bob", False, actor=Actor("ada", admin=True))          # demoted meanwhile
    changes = (
        lambda actor: people.add_user("mallory", "mallory-password", admin=True, actor=actor),
        lambda actor: people.set_admin("carol", True, actor=actor),
        lambda actor: people.set_password("ada", "taken-over-password", actor=actor),
        lambda actor: people.unlock("carol", actor=actor),
        lambda actor: people.remove_user("carol", actor=actor, store=store))
    for actor in (bob_as_his_page_remembers, Actor("carol"), Actor("gone", admin=True), Actor("")):
        for change in changes:
            with pytest.raises(NotAdmin, match="Nothing was changed"):
                change(actor)
    assert people.get("mallory") is None
    assert [(a.username, a.admin) for a in people.list_users()] == [("ada", True), ("bob", False),
                                                                     ("carol", False)]
    assert people.authenticate("ada", "correct-horse") and people.authenticate("carol", "carol-password")
    # Anyone may still change their own password.
    people.set_password("bob", "new-battery-staple", actor=bob_as_his_page_remembers)
    assert people.authenticate("bob", "new-battery-staple")


def test_forty_logins_at_once_check_no_more_passwords_than_the_limit(people, monkeypatch):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    checked = []
    real_check = accounts_module._password_matches
    monkeypatch.setattr(accounts_module, "_password_matches",
                        lambda password, stored: checked.append(password) or real_check(password, stored))
    start = threading.Barrier(40)
    outcomes = []

    def attempt(i):
        start.wait()
        try:
            outcomes.append(people.authenticate("ada", f"wrong-password-{i}"))
        except LoginLocked:
            outcomes.append("locked")
    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(checked) == MAX_FAILURES, len(checked)
    assert outcomes.count(None) == MAX_FAILURES - 1 and outcomes.count("locked") == 40 - (MAX_FAILURES - 1)
    with pytest.raises(LoginLocked):                       # the right password came too late
        people.authenticate("ada", "correct-horse")
    assert len(checked) == MAX_FAILURES


def test_a_right_password_clears_the_attempts_counted_before_it(people):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    for _ in range(MAX_FAILURES - 1):
        assert people.authenticate("ada", "wrong-password") is None
    assert people.authenticate("ada", "correct-horse")
    for _ in range(MAX_FAILURES - 1):                      # a fresh count: no lock yet
        assert people.authenticate("ada", "wrong-password") is None


def test_unlock_says_whether_the_name_was_locked(people):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    assert people.unlock("ada", actor=OPERATOR) is False
    lock_out(people, "ada")
    assert people.unlock("ada", actor=Actor("ada", admin=True)) is True
    assert people.authenticate("ada", "correct-horse")


# --- removing an account -----------------------------------------------------------------------

def keep_a_thread(store, owner, text):
    actor = Actor(owner)
    store.seed_demo_assistant(actor)
    spec = store.list_assistants(actor)[0]
    thread = store.save_thread(Thread(owner=owner, assistant_id=spec.id, provider="local"), actor)
    store.add_message(thread, Message("user", text), actor)
    return thread


def test_a_name_given_again_after_removal_starts_with_a_clean_slate(people, store):
    admin = Actor("ada", admin=True)
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    people.add_user("bob", "battery-staple", actor=OPERATOR)
    people.add_user("b_b", "b-underscore-b", actor=OPERATOR)
    people.add_user("bxb", "b-x-b-password", actor=OPERATOR)   # '_' must not match it as a wildcard
    bobs = keep_a_thread(store, "bob", "bob's private question")
    adas = keep_a_thread(store, "ada", "ada's question")
    keep_a_thread(store, "bxb", "bxb's question")
    store.seed_demo_assistant(Actor("b_b"))
    assert str(store.count_user_data("bob", admin)) == "1 thread and 1 assistant"

    deleted = people.remove_user("bob", actor=admin, store=store)
    assert (deleted.threads, deleted.assistants) == (1, 1)
    people.remove_user("b_b", actor=admin, store=store)
    people.add_user("bob", "another-battery", actor=OPERATOR)  # the same name, a new person
    bob = Actor("bob")
    assert store.list_threads(bob) == [] and store.list_assistants(bob) == []
    assert store.get_thread(bobs.id, admin) is None
    store.seed_demo_assistant(bob)                             # welcomed like any newcomer
    assert [a.name for a in store.list_assistants(bob)] == ["Comment responder"]
    # Nobody else lost anything.
    assert store.get_thread(adas.id, admin).messages[0].content == "ada's question"
    assert len(store.list_threads(Actor("bxb"))) == 1
    store.seed_demo_assistant(Actor("bxb"))                    # bxb's "seeded" flag is still there
    assert len(store.list_assistants(Actor("bxb"))) == 1


def test_a_refused_removal_deletes_no_data(people, store):
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    people.add_user("bob", "battery-staple", actor=OPERATOR)
    thread = keep_a_thread(store, "bob", "bob's question")
    with pytest.raises(NotAdmin):
        people.remove_user("bob", actor=Actor("bob", admin=True), store=store)
    with pytest.raises(UserError, match="last admin"):
        people.remove_user("ada", actor=OPERATOR, store=store)
    assert people.get("bob") and store.get_thread(thread.id, Actor("bob")).messages
    with pytest.raises(NotAllowed):                            # and the store asks for an admin too
        store.delete_user_data("bob", Actor("bob"))


# --- setup tokens expire -----------------------------------------------------------------------

def test_a_setup_token_expires_after_a_day(people, clock):
    token = people.new_setup_token()
    clock(SETUP_TOKEN_LIFETIME.total_seconds() - 60)
    assert people.setup_token_is_valid(token)
    clock(120)
    assert not people.setup_token_is_valid(token)
    fresh = people.new_setup_token()                           # and expired ones are deleted
    assert people.setup_token_is_valid(fresh)
    with people.engine.connect() as db:
        assert db.execute(select(func.count()).select_from(accounts_module.setup_tokens)).scalar() == 1
