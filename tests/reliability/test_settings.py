"""Bad settings (environment, secrets, the servers an admin allows): the app says which setting is
wrong and what it should be, instead of a traceback or a first-run page, and no account is lost."""
from __future__ import annotations

import pytest

from studio.accounts import OPERATOR
from studio.settings import ConfigError, Settings
from tests.app.conftest import accounts, login, new_app
from tests.reliability.conftest import assert_clear, only_message


@pytest.fixture
def ada_and_bob(workspace):
    people = accounts(workspace)
    people.add_user("ada", "correct-horse", actor=OPERATOR)     # the first account: admin
    people.add_user("bob", "battery-staple", actor=OPERATOR)
    return people


def assert_nobody_lost(people) -> None:
    assert [(a.username, a.admin) for a in people.list_users()] == [("ada", True), ("bob", False)]


# --- the environment, as the app reads it on every page run ---------------------------------------

ENV_REFUSED = {
    "context-window-not-a-number": ("STUDIO_CONTEXT_WINDOW", "lots", ["STUDIO_CONTEXT_WINDOW", "whole number"]),
    "context-window-with-unit": ("STUDIO_CONTEXT_WINDOW", "128k", ["STUDIO_CONTEXT_WINDOW", "whole number", "128k"]),
    "max-tokens-out-of-range": ("STUDIO_LOCAL_MAX_TOKENS", "100000", ["STUDIO_LOCAL_MAX_TOKENS", "between 1 and 4096"]),
    "max-tokens-negative": ("STUDIO_LOCAL_MAX_TOKENS", "-1", ["STUDIO_LOCAL_MAX_TOKENS", "between"]),
    "login-sleep-infinite": ("STUDIO_LOGIN_SLEEP", "inf", ["STUDIO_LOGIN_SLEEP", "between 0 and 10"]),
    "provider-unknown": ("STUDIO_PROVIDER", "gpt-4o", ["STUDIO_PROVIDER", "local, openai, compatible"]),
}


@pytest.mark.parametrize("name, value, says", ENV_REFUSED.values(), ids=ENV_REFUSED.keys())
def test_a_bad_environment_setting_is_named_on_the_page(ada_and_bob, monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    at = new_app().run()
    assert_clear(only_message(at), "configuration is not valid", *says)
    assert not at.text_input                                  # neither a login nor a first-run form
    monkeypatch.delenv(name)
    assert_nobody_lost(ada_and_bob)


def test_a_workspace_path_that_is_a_file_is_named_on_the_page(ada_and_bob, monkeypatch, tmp_path):
    not_a_folder = tmp_path / "workspace.txt"
    not_a_folder.write_text("notes")
    monkeypatch.setenv("STUDIO_DATA_DIR", str(not_a_folder))
    at = new_app().run()
    assert_clear(only_message(at), "STUDIO_DATA_DIR")
    assert not_a_folder.read_text() == "notes"


@pytest.mark.parametrize("url, says", [
    ("sqlite-at-data-workspace.db", ["STUDIO_DATABASE_URL"]),
    ("postgresql://studio@127.0.0.1:1/studio", ["STUDIO_DATABASE_URL", "driver"]),
], ids=["database-url-not-a-url", "database-url-driver-not-installed"])
def test_a_database_url_that_cannot_be_used_is_an_error_not_a_first_run(ada_and_bob, monkeypatch, url, says):
    monkeypatch.setenv("STUDIO_DATABASE_URL", url)
    at = new_app().run()
    assert_clear(only_message(at), "nobody can sign in", *says)
    assert not any(t.value == "Welcome to Assistant Studio" for t in at.title)
    monkeypatch.delenv("STUDIO_DATABASE_URL")
    assert_nobody_lost(ada_and_bob)


def test_a_secret_of_the_wrong_type_is_named_on_the_page(ada_and_bob):
    at = new_app()
    at.secrets["STUDIO_CONTEXT_WINDOW"] = [8192, 16384]   # a TOML list where a number belongs
    at.run()
    assert_clear(only_message(at), "STUDIO_CONTEXT_WINDOW", "whole number")
    assert_nobody_lost(ada_and_bob)


@pytest.mark.parametrize("secrets, says", [
    ({"STUDIO_PROVIDER": 3}, ["STUDIO_PROVIDER", "one of"]),
    ({"STUDIO_LOCAL_MAX_TOKENS": {"max": 64}}, ["STUDIO_LOCAL_MAX_TOKENS", "whole number"]),
    ({"STUDIO_LOGIN_SLEEP": True}, ["STUDIO_LOGIN_SLEEP", "number of seconds"]),
    ({"STUDIO_CONTEXT_WINDOW": 4096.5}, ["STUDIO_CONTEXT_WINDOW", "whole number"]),
], ids=["secret-provider-a-number", "secret-max-tokens-a-table", "secret-login-sleep-a-boolean",
        "secret-context-window-a-fraction"])
def test_secrets_of_the_wrong_type_are_configuration_errors(tmp_path, secrets, says):
    with pytest.raises(ConfigError) as refused:
        Settings.load(env={"STUDIO_DATA_DIR": str(tmp_path)}, secrets=secrets)
    assert_clear(str(refused.value), *says)


# --- servers: the configured one, and those an admin allows others to pick ------------------------

def test_a_malformed_configured_base_url_is_named_on_the_chat_page(ada_and_bob, monkeypatch):
    monkeypatch.setenv("STUDIO_PROVIDER", "compatible")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://[::1/v1")
    at = login(new_app().run(), "bob", "battery-staple")
    assert_clear(only_message(at), "base URL", "not valid")
    assert at.chat_input[0].proto.disabled


@pytest.mark.parametrize("allowed, says", [
    ("http://localhost:99999/v1", ["port", "65535"]),
    ("intranet-llm/v1", ["http://"]),
], ids=["allowed-url-port-out-of-range", "allowed-url-without-scheme"])
def test_a_bad_url_on_the_allow_list_is_named_when_picked(ada_and_bob, monkeypatch, allowed, says):
    monkeypatch.setenv("STUDIO_ALLOWED_BASE_URLS", f"{allowed}, http://127.0.0.1:9/v1")
    at = login(new_app().run(), "bob", "battery-staple")
    at.selectbox(key="panel_server").set_value(allowed)
    at.radio(key="panel_provider").set_value("compatible")
    next(b for b in at.button if b.label == "Apply").click()
    at.run()
    assert_clear(only_message(at), "base URL", *says)
