"""What one user does must not reach the next: sessions, keys, threads."""
from studio.accounts import OPERATOR
from studio.store import Actor, Store
from tests.app.conftest import accounts, login, new_app


def test_after_log_out_the_next_user_gets_nothing_of_the_previous_session(workspace, fake_server):
    users = accounts(workspace)
    users.add_user("ada", "correct-horse", actor=OPERATOR)
    users.add_user("bob", "battery-staple", actor=OPERATOR)
    fake_server.reset()
    at = login(new_app().run(), "ada", "correct-horse")
    at.radio(key="panel_provider").set_value("compatible")
    fields = {t.label: t for t in at.text_input}
    fields["Base URL"].input(fake_server.base_url)
    fields["API key (this session only)"].input("sk-ada-typed-key")
    next(b for b in at.button if b.label == "Apply").click()
    at.run()
    at.chat_input[0].set_value("ADA SECRET QUESTION").run()
    assert at.chat_message[0].markdown[0].value == "ADA SECRET QUESTION"

    next(b for b in at.sidebar.button if b.label == "Log out").click()
    at.run()
    at = login(at.run(), "bob", "battery-staple")        # same browser tab, same session
    assert not at.exception, at.exception
    assert not at.chat_message
    assert not any("ADA SECRET" in b.label for b in at.sidebar.button)
    assert any("Embedded model" in c.value for c in at.caption)   # Ada's provider choice is gone
    assert "thread" not in at.query_params


def test_the_configured_key_is_never_sent_to_a_base_url_typed_in_the_sidebar(signed_in, monkeypatch, fake_server):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-server-owner-secret")
    fake_server.reset()
    at = signed_in.run()
    at.radio(key="panel_provider").set_value("compatible")
    {t.label: t for t in at.text_input}["Base URL"].input(fake_server.base_url)
    {t.label: t for t in at.text_input}["Default model"].input("gpt-4.1-mini")
    next(b for b in at.button if b.label == "Apply").click()
    at.run()
    at.chat_input[0].set_value("hello").run()
    assert at.chat_message[1].markdown[-1].value == "You said: hello"
    assert "sk-server-owner-secret" not in fake_server.last("/v1/chat/completions").headers.get("authorization", "")


def test_another_users_thread_opened_by_url_is_refused_and_an_admin_may_only_read_it(workspace):
    users = accounts(workspace)
    users.add_user("ada", "correct-horse", actor=OPERATOR)        # admin
    users.add_user("bob", "battery-staple", actor=OPERATOR)
    users.add_user("eve", "eve-password", actor=OPERATOR)
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    bob = login(new_app().run(), "bob", "battery-staple")
    bob.chat_input[0].set_value("Bob's private note").run()
    thread_id = store.list_threads(Actor("bob"))[0].id

    eve = new_app()
    eve.query_params["thread"] = thread_id
    eve = login(eve.run(), "eve", "eve-password")
    assert not eve.chat_message and "thread" not in eve.query_params

    ada = new_app()
    ada.query_params["thread"] = thread_id
    ada = login(ada.run(), "ada", "correct-horse")
    assert ada.chat_message[0].markdown[0].value == "Bob's private note"
    assert "belongs to bob" in ada.info[0].value and not ada.chat_input
    # export only: no renaming or deleting someone else's thread
    assert [b.proto.label for b in ada.get("download_button")] == ["Export Markdown", "Export JSON"]
    assert not [t for t in ada.sidebar.text_input if t.label == "Title"]
    assert not [b for b in ada.sidebar.button if b.label in ("Rename", "Yes, delete")]


def test_an_admin_sees_whose_assistant_is_whose(workspace):
    users = accounts(workspace)
    users.add_user("ada", "correct-horse", actor=OPERATOR)
    users.add_user("bob", "battery-staple", actor=OPERATOR)
    Store(f"sqlite:///{workspace / 'studio.db'}").seed_demo_assistant(Actor("bob"))
    ada = login(new_app().run(), "ada", "correct-horse")
    picker = ada.sidebar.selectbox(key="assistant_id")
    assert sorted(picker.options) == ["Comment responder", "Comment responder · bob"]
    assert picker.format_func(picker.value) == "Comment responder"   # one's own comes first
