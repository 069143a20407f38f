"""Feedback on a chat reply: 👍 kept with the message, the reply corrected and added to a new
dataset with the conversation before it, and the fine-tuning page showing where the row came from."""
from __future__ import annotations

import pytest

from studio.accounts import OPERATOR
from studio.datasets.storage import DatasetStore
from studio.store import Actor, Store
from tests.app.conftest import accounts, add_reply_to_new_dataset, login, new_app


@pytest.fixture
def chatting(workspace, fake_server, monkeypatch):
    fake_server.reset()
    monkeypatch.setenv("STUDIO_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-feedback-0123")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.base_url)
    monkeypatch.setenv("STUDIO_MODEL", "gpt-4.1-mini")
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    at = login(new_app().run(), "ada", "correct-horse")
    at.chat_input[0].set_value("What camera do you use?")
    return at.run()


def test_a_reply_is_rated_corrected_added_to_a_dataset_and_shown_with_its_origin(chatting, workspace):
    at = chatting
    assert not at.exception, at.exception
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    thread = store.list_threads(Actor("ada"))[0]
    reply_id = store.get_thread(thread.id, Actor("ada")).messages[-1].id
    at.feedback(key=f"rating_{reply_id}").set_value(1)
    at = at.run()
    assert store.get_thread(thread.id, Actor("ada")).messages[-1].rating == 1

    next(b for b in at.button if b.key == f"edit_{reply_id}").click()
    at = add_reply_to_new_dataset(at.run(), reply_id, "A Sony A7 IV. -Sam", "From chat")
    assert not at.exception, at.exception
    assert any("Added to “From chat” as row 1" in s.value for s in at.success)
    stored = store.get_thread(thread.id, Actor("ada")).messages[-1]
    assert (stored.rating, stored.edited) == (1, "A Sony A7 IV. -Sam")
    version = DatasetStore(store.engine).find("From chat", Actor("ada"))
    assert version.prepared.examples[0].messages[-2:] == [
        {"role": "user", "content": "What camera do you use?"}, {"role": "assistant", "content": "A Sony A7 IV. -Sam"}]

    at.switch_page("pages/finetune.py")
    at = at.run()
    assert not at.exception, at.exception
    rows = next(e for e in at.expander if e.label.startswith("Rows and where they came from"))
    table = rows.dataframe[0].value
    assert "chat thread" in table["from"][0] and "corrected · 👍" in table["from"][0]


def test_a_new_reply_in_a_thread_gets_its_feedback_at_once(chatting, workspace):
    at = chatting
    at.chat_input[0].set_value("And the lens?")
    at = at.run()
    assert not at.exception, at.exception
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    thread = store.list_threads(Actor("ada"))[0]
    newest = store.get_thread(thread.id, Actor("ada")).messages[-1]
    assert newest.content == "You said: And the lens?"
    assert at.feedback(key=f"rating_{newest.id}") is not None
    assert any(b.key == f"edit_{newest.id}" for b in at.button)
