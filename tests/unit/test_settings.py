"""Settings: a value a person can get wrong is a clear configuration error, never a traceback."""
import stat
import subprocess
import sys

import pytest

from studio.settings import ConfigError, Settings

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def load(tmp_path, **env):
    return Settings.load(env={"STUDIO_DATA_DIR": str(tmp_path / "ws"), **env})


@pytest.mark.parametrize("name, value, says", [
    ("STUDIO_CONTEXT_WINDOW", "abc", "STUDIO_CONTEXT_WINDOW must be a whole number"),
    ("STUDIO_CONTEXT_WINDOW", "8k", "STUDIO_CONTEXT_WINDOW must be a whole number"),
    ("STUDIO_CONTEXT_WINDOW", "4096.5", "STUDIO_CONTEXT_WINDOW must be a whole number"),
    ("STUDIO_CONTEXT_WINDOW", "-5", "between 256 and"),
    ("STUDIO_CONTEXT_WINDOW", "9" * 30, "between 256 and"),
    ("STUDIO_LOCAL_MAX_TOKENS", "0", "STUDIO_LOCAL_MAX_TOKENS must be between 1 and 4096"),
    ("STUDIO_LOCAL_MAX_TOKENS", "lots", "STUDIO_LOCAL_MAX_TOKENS must be a whole number"),
    ("STUDIO_PROVIDER", "gpt", "STUDIO_PROVIDER must be one of local, openai, compatible"),
    ("STUDIO_LOGIN_SLEEP", "abc", "STUDIO_LOGIN_SLEEP must be a number of seconds"),
    ("STUDIO_LOGIN_SLEEP", "nan", "STUDIO_LOGIN_SLEEP must be between 0 and 10 seconds"),
    ("STUDIO_LOGIN_SLEEP", "-1", "STUDIO_LOGIN_SLEEP must be between 0 and 10 seconds"),
    ("STUDIO_FIRST_RUN_LOCAL", "maybe", "STUDIO_FIRST_RUN_LOCAL must be 1 or 0"),
])
def test_a_bad_setting_names_itself_and_the_value(tmp_path, name, value, says):
    with pytest.raises(ConfigError, match=says) as caught:
        load(tmp_path, **{name: value})
    assert value in str(caught.value)


def test_numbers_in_range_and_secrets_are_read(tmp_path):
    settings = Settings.load(env={"STUDIO_DATA_DIR": str(tmp_path), "STUDIO_CONTEXT_WINDOW": " 32768 "},
                             secrets={"STUDIO_LOCAL_MAX_TOKENS": 64})
    assert (settings.context_window, settings.local_max_tokens) == (32768, 64)
    with pytest.raises(ConfigError, match="STUDIO_LOCAL_MAX_TOKENS"):
        Settings.load(env={"STUDIO_DATA_DIR": str(tmp_path)}, secrets={"STUDIO_LOCAL_MAX_TOKENS": "many"})


@pytest.mark.parametrize("value, local", [("", True), ("1", True), ("yes", True), ("0", False),
                                          ("false", False), ("OFF", False)])
def test_the_first_run_loopback_shortcut_is_on_unless_turned_off(tmp_path, value, local):
    assert load(tmp_path, STUDIO_FIRST_RUN_LOCAL=value).first_run_local is local


def test_the_workspace_folder_is_private(tmp_path):
    settings = load(tmp_path)
    folder = settings.ensure_data_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o755)   # a workspace made by an older version
    settings.ensure_data_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_workspace_that_cannot_be_created_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    settings = Settings.load(env={"STUDIO_DATA_DIR": str(tmp_path / "file" / "ws")})
    with pytest.raises(ConfigError, match="cannot be created"):
        settings.ensure_data_dir()


def test_the_cli_reports_a_bad_setting_without_a_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "STUDIO_DATA_DIR": str(tmp_path / "ws"), "STUDIO_CONTEXT_WINDOW": "abc"}
    done = subprocess.run([sys.executable, "-m", "studio", "models"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "STUDIO_CONTEXT_WINDOW must be a whole number" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_app_shows_a_bad_setting_as_a_message(tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "ws"))
    monkeypatch.setenv("STUDIO_CONTEXT_WINDOW", "abc")
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("STUDIO_CONTEXT_WINDOW must be a whole number" in e.value for e in at.error)
