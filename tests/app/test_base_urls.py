"""Only admins may point the app at any address; other users pick among allowed servers."""
from studio.accounts import OPERATOR
from tests.app.conftest import accounts, login, new_app

OVERRIDES = "provider_overrides"


def two_users(workspace):
    users = accounts(workspace)
    users.add_user("ada", "correct-horse", actor=OPERATOR)        # the first user: admin
    users.add_user("bob", "battery-staple", actor=OPERATOR)


def test_only_an_admin_may_type_a_base_url(workspace):
    two_users(workspace)
    bob = login(new_app().run(), "bob", "battery-staple")
    assert not bob.exception, bob.exception
    assert "Base URL" not in [t.label for t in bob.text_input]
    assert any("Only an administrator" in c.value for c in bob.sidebar.caption)
    ada = login(new_app().run(), "ada", "correct-horse")
    assert "Base URL" in [t.label for t in ada.text_input]


def test_a_user_picks_a_server_from_the_allow_list(workspace, fake_server, monkeypatch):
    monkeypatch.setenv("STUDIO_ALLOWED_BASE_URLS", f"http://127.0.0.1:9/v1, {fake_server.base_url}")
    two_users(workspace)
    fake_server.reset()
    bob = login(new_app().run(), "bob", "battery-staple")
    server = bob.selectbox(key="panel_server")
    assert server.options == ["The configured server", "http://127.0.0.1:9/v1", fake_server.base_url]
    server.set_value(fake_server.base_url)
    bob.radio(key="panel_provider").set_value("compatible")
    {t.label: t for t in bob.text_input}["Default model"].input("gpt-4.1-mini")
    next(b for b in bob.button if b.label == "Apply").click()
    bob.run()
    bob.chat_input[0].set_value("hello").run()
    assert not bob.exception, bob.exception
    assert bob.chat_message[1].markdown[-1].value == "You said: hello"
    assert fake_server.count("/v1/chat/completions") == 1


def test_a_base_url_the_user_may_no_longer_use_is_dropped_on_the_next_run(workspace, fake_server):
    # e.g. typed while an admin, and the admin role was removed since
    two_users(workspace)
    fake_server.reset()
    bob = login(new_app().run(), "bob", "battery-staple")
    bob.session_state[OVERRIDES] = {"provider": "compatible", "base_url": fake_server.base_url,
                                    "api_key": ""}
    bob.run()
    assert not bob.exception, bob.exception
    assert "base_url" not in bob.session_state[OVERRIDES]
    assert any("not allowed for your account" in w.value for w in bob.sidebar.warning)
    assert fake_server.count("/v1/models") == 0 and fake_server.count("/v1/chat/completions") == 0
    assert bob.chat_input[0].proto.disabled   # compatible without a configured server: nothing to call
