"""`python -m studio users ...`, run as an operator would, in a subprocess."""
import bcrypt
import yaml

from studio.accounts import Accounts
from studio.store import Actor, Store
from studio.types import Message, Thread
from tests.unit.conftest import lock_out
from tests.unit.test_cli import cli


def accounts_in(tmp_path) -> Accounts:
    return Accounts(Store(f"sqlite:///{tmp_path / 'studio.db'}").engine)


def test_users_list_passwd_and_remove(tmp_path):
    ws = {"STUDIO_DATA_DIR": str(tmp_path), "STUDIO_PROVIDER": "local"}
    assert cli("users", "add", "ada", env=ws, stdin="correct-horse\n").returncode == 0
    added = cli("users", "add", "bob", env=ws, stdin="battery-staple\n")
    assert "Added bob (user)" in added.stdout

    listed = cli("users", "list", env=ws)
    assert listed.returncode == 0
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [["ada", "admin"], ["bob", "user"]]

    changed = cli("users", "passwd", "bob", env=ws, stdin="new-battery-staple\n")
    assert changed.returncode == 0 and "Changed the password of bob" in changed.stdout
    people = accounts_in(tmp_path)
    assert people.authenticate("bob", "new-battery-staple") and not people.authenticate("bob", "battery-staple")
    spaced = cli("users", "passwd", "bob", env=ws, stdin=" padded-password\n")
    assert spaced.returncode == 1 and "cannot start or end with a space" in spaced.stderr
    nobody = cli("users", "passwd", "carol", env=ws, stdin="whatever-pass\n")
    assert nobody.returncode == 1 and "There is no user 'carol'" in nobody.stderr

    last_admin = cli("users", "remove", "ada", "--yes", env=ws)
    assert last_admin.returncode == 1 and "last admin" in last_admin.stderr
    removed = cli("users", "remove", "bob", "--yes", env=ws)
    assert removed.returncode == 0 and "Removed bob and their 0 threads and 0 assistants." in removed.stdout
    assert [a.username for a in accounts_in(tmp_path).list_users()] == ["ada"]
    assert "Traceback" not in last_admin.stderr + nobody.stderr


def test_an_old_users_yaml_is_imported_by_the_first_command(tmp_path):
    (tmp_path / "users.yaml").write_text(yaml.safe_dump({"credentials": {"usernames": {"ada": {
        "first_name": "Ada", "roles": ["admin"],
        "password": bcrypt.hashpw(b"correct-horse", bcrypt.gensalt()).decode()}}}}))
    listed = cli("users", "list", env={"STUDIO_DATA_DIR": str(tmp_path)})
    assert listed.stdout.split("\t")[:2] == ["ada", "admin"]
    assert (tmp_path / "users.yaml.imported").exists() and not (tmp_path / "users.yaml").exists()


def test_an_unreadable_users_yaml_stops_the_command_with_a_clear_message(tmp_path):
    (tmp_path / "users.yaml").write_text("credentials: [unclosed\n")
    result = cli("users", "add", "ada", env={"STUDIO_DATA_DIR": str(tmp_path)}, stdin="correct-horse\n")
    assert result.returncode == 1 and "could not be imported" in result.stderr
    assert "Traceback" not in result.stderr
    assert not accounts_in(tmp_path).has_users()


def test_users_remove_says_what_it_deletes_and_asks_first(tmp_path):
    ws = {"STUDIO_DATA_DIR": str(tmp_path), "STUDIO_PROVIDER": "local"}
    cli("users", "add", "ada", env=ws, stdin="correct-horse\n")
    cli("users", "add", "bob", env=ws, stdin="battery-staple\n")
    store, bob = Store(f"sqlite:///{tmp_path / 'studio.db'}"), Actor("bob")
    store.seed_demo_assistant(bob)
    thread = store.save_thread(Thread(owner="bob", assistant_id=store.list_assistants(bob)[0].id,
                                      provider="local"), bob)
    store.add_message(thread, Message("user", "bob's question"), bob)

    kept = cli("users", "remove", "bob", env=ws, stdin="n\n")
    assert kept.returncode == 1
    assert "also deletes their 1 thread and 1 assistant" in kept.stderr and "Nothing was removed." in kept.stderr
    assert accounts_in(tmp_path).get("bob") and store.list_threads(bob)
    nothing_typed = cli("users", "remove", "bob", env=ws)     # a script that forgot --yes
    assert nothing_typed.returncode == 1 and accounts_in(tmp_path).get("bob")

    removed = cli("users", "remove", "bob", env=ws, stdin="yes\n")
    assert removed.returncode == 0 and "Removed bob and their 1 thread and 1 assistant." in removed.stdout
    cli("users", "add", "bob", env=ws, stdin="another-battery\n")
    assert store.list_threads(bob) == [] and store.list_assistants(bob) == []
    missing = cli("users", "remove", "carol", "--yes", env=ws)
    assert missing.returncode == 1 and "There is no user 'carol'" in missing.stderr


def test_users_unlock_ends_a_lock(tmp_path):
    ws = {"STUDIO_DATA_DIR": str(tmp_path), "STUDIO_PROVIDER": "local"}
    cli("users", "add", "ada", env=ws, stdin="correct-horse\n")
    people = accounts_in(tmp_path)
    lock_out(people, "ada")
    unlocked = cli("users", "unlock", "ADA", env=ws)
    assert unlocked.returncode == 0 and "Unlocked ada" in unlocked.stdout
    assert people.authenticate("ada", "correct-horse")
    again = cli("users", "unlock", "ada", env=ws)
    assert again.returncode == 0 and "ada was not locked" in again.stdout
