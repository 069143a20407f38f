"""The login form's notice (account created, session ended) stays until the form is sent.

In a browser the login cookie component asks for a rerun right after the page loads; a notice
drawn on one run only was gone within a second, before anyone could read it.
"""
from components import auth as gate
from tests.app.conftest import login, new_app

NOTICE = "Account 'ada' created. Log in with it."


def test_the_account_created_notice_outlasts_a_rerun_and_goes_once_signed_in(workspace, monkeypatch):
    monkeypatch.setattr(gate, "visitor_is_local", lambda: True)   # no setup token asked
    at = new_app().run()
    inputs = {t.label: t for t in at.text_input}
    inputs["Username"].input("ada")
    inputs["Password"].input("correct-horse")
    inputs["Repeat password"].input("correct-horse")
    next(b for b in at.button if b.label == "Create admin account").click()
    at.run()
    assert [s.value for s in at.success] == [NOTICE]

    at.run()   # the rerun the login cookie component asks for
    assert [s.value for s in at.success] == [NOTICE]
    assert [b.label for b in at.button] == ["Log in"]

    at = login(at, "ada", "correct-horse")
    assert not at.exception
    assert at.title[0].value == "Comment responder"
    assert NOTICE not in [s.value for s in at.success]
