from studio.auth import UserFile
from tests.app.conftest import login, new_app


def create_first_admin(at, username, password, repeat):
    inputs = {t.label: t for t in at.text_input}
    inputs["Username"].input(username)
    inputs["Password"].input(password)
    inputs["Repeat password"].input(repeat)
    at.button[0].click()
    return at.run()


def test_first_run_asks_for_an_admin_account_and_then_logs_in(workspace):
    at = new_app().run()
    assert at.title[0].value == "Welcome to Assistant Studio"
    assert not at.exception
    create_first_admin(at, "ada", "correct-horse", "correct-horse")
    assert UserFile(workspace / "users.yaml").is_admin("ada")
    assert any("created" in s.value for s in at.success)
    at = login(at, "ada", "correct-horse")
    assert not at.exception
    assert at.title[0].value == "Comment responder"   # the seeded demo assistant


def test_first_run_rejects_mismatched_passwords_and_keeps_the_form(workspace):
    at = create_first_admin(new_app().run(), "ada", "correct-horse", "correct-hors")
    assert "differ" in at.error[0].value
    assert not UserFile(workspace / "users.yaml").has_users()
    assert {t.label: t.value for t in at.text_input}["Username"] == "ada"


def test_wrong_password_is_refused(workspace):
    UserFile(workspace / "users.yaml").add_user("ada", "correct-horse")
    at = login(new_app().run(), "ada", "wrong-password")
    assert "Wrong username or password" in at.error[0].value
    assert not any(t.value == "Comment responder" for t in at.title)
