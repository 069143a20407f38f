"""No tracebacks for users: a short message with an error id; the traceback goes to the log."""
import logging
import re
from pathlib import Path

import pytest
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException
from streamlit.testing.v1 import AppTest

from components.errors import error_boundary
from studio.accounts import OPERATOR
from studio.store import Store
from tests.app.conftest import accounts, login

CHAT_PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "chat.py")


def broken_store(monkeypatch):
    def list_assistants(self, *args, **kwargs):
        raise RuntimeError("database on fire near sk-live-0123456789abcdef")
    monkeypatch.setattr(Store, "list_assistants", list_assistants)


def error_id_shown(at) -> str:
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error if "error id" in e.value]
    assert "database on fire" not in error and "Traceback" not in error
    return re.search(r"error id \*\*([0-9a-f]{8})\*\*", error).group(1)


def assert_logged(caplog, error_id):
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    text = record.getMessage()
    assert "Traceback" in text and "database on fire" in text and "list_assistants" in text
    assert "0123456789abcdef" not in text   # the key-like text is redacted


def test_a_failing_page_shows_an_error_id_and_logs_the_traceback(signed_in, monkeypatch, caplog):
    broken_store(monkeypatch)
    with caplog.at_level(logging.ERROR, logger="assistant_studio.errors"):
        at = signed_in.run()
    assert_logged(caplog, error_id_shown(at))
    assert any(b.label == "Log out" for b in at.sidebar.button)   # what was drawn before stays


def test_the_configured_and_the_session_key_never_reach_the_log_whatever_their_shape(signed_in, monkeypatch,
                                                                                     caplog):
    configured, typed = "configured-plain-key", "letmein-please-twenty"   # no sk-, short, not random
    monkeypatch.setenv("OPENAI_API_KEY", configured)
    signed_in.session_state["provider_overrides"] = {"api_key": typed}

    def list_assistants(self, *args, **kwargs):
        raise RuntimeError(f"server said: bad key {typed} (configured: {configured})")

    monkeypatch.setattr(Store, "list_assistants", list_assistants)
    with caplog.at_level(logging.ERROR, logger="assistant_studio.errors"):
        at = signed_in.run()
    assert not at.exception, at.exception
    [record] = [r for r in caplog.records if "server said" in r.getMessage()]
    text = record.getMessage()
    assert "bad key *** (configured: ***)" in text
    assert configured not in text and typed not in text


def test_a_page_run_without_app_py_gets_the_same_boundary(workspace, monkeypatch, caplog):
    # Streamlit may run a pages/ file directly (legacy multipage handling); it is gated and guarded.
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    at = AppTest.from_file(CHAT_PAGE, default_timeout=120).run()
    assert not at.exception and not at.chat_input        # the login form, nothing of the page
    at = login(at, "ada", "correct-horse")
    assert at.chat_input and not at.exception
    broken_store(monkeypatch)
    with caplog.at_level(logging.ERROR, logger="assistant_studio.errors"):
        at.run()
    assert_logged(caplog, error_id_shown(at))


@pytest.mark.parametrize("control", [StopException, RerunException])
def test_streamlit_control_flow_passes_through_the_boundary(control, caplog):
    args = () if control is StopException else (None,)
    with pytest.raises(control):
        with error_boundary():
            raise control(*args)
    assert not caplog.records
