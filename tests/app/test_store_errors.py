"""A workspace database that fails mid-use: the pages say so in a sentence, show no traceback and
keep what the user typed."""
import sqlite3
from contextlib import contextmanager

import pytest

import studio.store as store_module
from studio.store import Actor, Store


@pytest.fixture
def short_busy_timeout(monkeypatch):
    # Requested before the app starts, so the app's store waits 0.2 s for a lock, not 30.
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)


@contextmanager
def workspace_locked(workspace):
    """Another process holds the database's write lock (e.g. a long import from the CLI)."""
    other = sqlite3.connect(workspace / "studio.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_busy_workspace_keeps_the_chat_message_and_retry_sends_it(short_busy_timeout, on_openai, workspace):
    at = on_openai
    with workspace_locked(workspace):
        at.chat_input[0].set_value("words I do not want to type twice")
        at.run()
    assert not at.exception
    assert any("The workspace is busy" in w.value for w in at.warning)
    assert at.chat_message[0].markdown[0].value == "words I do not want to type twice"
    next(b for b in at.button if b.label == "↻ Retry").click()
    at.run()
    assert not at.exception and not at.warning
    assert at.chat_message[1].markdown[-1].value == "You said: words I do not want to type twice"
    [thread] = Store(f"sqlite:///{workspace / 'studio.db'}").list_threads(Actor("ada"))
    stored = Store(f"sqlite:///{workspace / 'studio.db'}").get_thread(thread.id, Actor("ada"))
    assert [m.content for m in stored.messages] == ["words I do not want to type twice",
                                                    "You said: words I do not want to type twice"]


def test_a_busy_workspace_keeps_the_assistant_form_as_typed(short_busy_timeout, signed_in, workspace):
    signed_in.switch_page("pages/assistants.py")
    at = signed_in.run()
    save = "FormSubmitter:assistant_" + at.selectbox[0].value + "-Save"
    {t.label: t for t in at.text_input}["Name"].input("Support bot")
    at.text_area[0].input("You answer support tickets.")
    with workspace_locked(workspace):
        at.button(key=save).click()
        at.run()
    assert not at.exception
    assert any("The workspace is busy and could not save the assistant" in e.value for e in at.error)
    assert {t.label: t.value for t in at.text_input}["Name"] == "Support bot"
    assert at.text_area[0].value == "You answer support tickets."
    at.button(key=save).click()
    at.run()
    assert at.success[0].value == "Saved “Support bot”."


def test_a_busy_workspace_on_a_button_callback_is_a_message(short_busy_timeout, signed_in, workspace):
    signed_in.switch_page("pages/assistants.py")
    at = signed_in.run()
    with workspace_locked(workspace):
        next(b for b in at.button if b.label == "Duplicate").click()
        at.run()
    assert not at.exception
    assert any("The workspace is busy and could not save the assistant" in e.value for e in at.error)
    names = [a.name for a in Store(f"sqlite:///{workspace / 'studio.db'}").list_assistants(Actor("ada"))]
    assert names == ["Comment responder"]
