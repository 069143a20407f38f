"""In a real browser: stop a reply while it streams (the Stop of Streamlit's running widget), reload, and
find the part that came kept and marked stopped; Continue then gets the rest (OpenAI is the
fake server, whose Conversation the stopped turn drops and the next turn rebuilds)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

if not Path("/usr/bin/chromium").exists() and os.environ.get("CI") != "true":
    pytest.skip("/usr/bin/chromium is missing: browser tests need Debian's chromium", allow_module_level=True)
if os.environ.get("CI") != "true":
    pytest.importorskip("playwright.sync_api")

from playwright.sync_api import expect  # noqa: E402

from studio.accounts import OPERATOR, Accounts  # noqa: E402
from studio.store import Actor, Store  # noqa: E402
from tests.e2e.conftest import running_app  # noqa: E402
from tests.e2e.test_journeys import ASSISTANT_MESSAGES, chat_input, settle, signed_in_page  # noqa: E402

USERNAME, PASSWORD = "stella", "correct-horse-battery"
WORDS = " ".join(f"word{i}" for i in range(40))


def test_a_stopped_reply_is_kept_marked_stopped_and_continue_gets_the_rest(browser, tmp_path_factory, fake_server):
    workspace = tmp_path_factory.mktemp("stop-workspace")
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    Accounts(store.engine).add_user(USERNAME, PASSWORD, actor=OPERATOR)
    try:
        with running_app(workspace, STUDIO_PROVIDER="openai", OPENAI_API_KEY="sk-test-e2e-stop",
                         OPENAI_BASE_URL=fake_server.base_url, STUDIO_MODEL="gpt-4.1-mini") as url:
            page = signed_in_page(browser, url, USERNAME, PASSWORD)
            chat_input(page).fill("Hello")                   # a whole turn first: the thread's Conversation
            chat_input(page).press("Enter")
            expect(page.locator(ASSISTANT_MESSAGES).last).to_contain_text("You said: Hello")
            settle(page)
            first_conversation = store.list_threads(Actor(USERNAME))[0].provider_ref
            assert first_conversation in fake_server.conversations
            fake_server.delta_delay = 0.25   # 40 words: about 10 s, time enough to stop it
            chat_input(page).fill(WORDS)
            chat_input(page).press("Enter")
            reply = page.locator(ASSISTANT_MESSAGES).last.locator('[data-testid="stChatMessageContent"]')
            expect(reply).to_contain_text("word3", timeout=30_000)
            page.locator('[data-testid="stStatusWidget"]').get_by_role("button", name="Stop").click()
            settle(page)

            thread = store.list_threads(Actor(USERNAME))[0]
            stopped = store.get_thread(thread.id, Actor(USERNAME)).messages[-1]
            assert stopped.role == "assistant" and stopped.stopped
            assert stopped.content.startswith("You said: word0") and "word39" not in stopped.content
            assert first_conversation not in fake_server.conversations   # dropped: it lacked the part shown

            page.reload()
            settle(page)
            expect(page.get_by_text("Stopped: this reply was stopped before it was finished.")).to_be_visible()
            expect(page.locator(ASSISTANT_MESSAGES).last).to_contain_text(stopped.content.strip())
            fake_server.delta_delay = 0.0
            page.get_by_role("button", name="⏩ Continue").click()
            expect(page.locator(ASSISTANT_MESSAGES).last).to_contain_text(
                re.compile(r"You said: Continue exactly where your last reply stopped"), timeout=30_000)
            settle(page)
            assert page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count() == 0
            after = store.get_thread(thread.id, Actor(USERNAME))
            assert [m.role for m in after.messages] == ["user", "assistant"] * 3
            assert not after.messages[-1].stopped
            # The next turn rebuilt the Conversation from the app's copy: the stopped part is in it.
            rebuilt = fake_server.conversations[after.provider_ref]
            texts = [part.get("text", "") for item in rebuilt.items for part in item.get("content") or []]
            assert stopped.content.strip() in [t.strip() for t in texts]
            page.context.close()
    finally:
        fake_server.reset()
