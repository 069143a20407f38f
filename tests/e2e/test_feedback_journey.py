"""In a real browser: rate a chat reply 👍, correct it, add it to a new dataset, and find the row
on the fine-tuning page with where it came from (OpenAI is the fake server)."""
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
from tests.e2e.conftest import ARTIFACTS, running_app  # noqa: E402
from tests.e2e.test_journeys import ASSISTANT_MESSAGES, chat_input, settle, signed_in_page  # noqa: E402

USERNAME, PASSWORD = "ria", "correct-horse-battery"


def test_a_rated_corrected_reply_lands_in_a_dataset_with_its_origin(browser, tmp_path_factory, fake_server):
    workspace = tmp_path_factory.mktemp("feedback-workspace")
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    Accounts(store.engine).add_user(USERNAME, PASSWORD, actor=OPERATOR)
    with running_app(workspace, STUDIO_PROVIDER="openai", OPENAI_API_KEY="sk-test-e2e-feedback",
                     OPENAI_BASE_URL=fake_server.base_url, STUDIO_MODEL="gpt-4.1-mini") as url:
        page = signed_in_page(browser, url, USERNAME, PASSWORD)
        chat_input(page).fill("What camera do you use?")
        chat_input(page).press("Enter")
        # Waits for the whole reply: a streaming reply shows its first words at once, the rest paced.
        expect(page.locator(ASSISTANT_MESSAGES).last.locator('[data-testid="stChatMessageContent"]')).to_have_text(
            re.compile(r"^\s*You said: What camera do you use\?"))
        settle(page)
        page.locator('[data-testid="stFeedback"] button').first.click()      # 👍
        settle(page)
        thread = store.list_threads(Actor(USERNAME))[0]
        assert store.get_thread(thread.id, Actor(USERNAME)).messages[-1].rating == 1
        page.get_by_role("button", name="✏️").click()
        settle(page)
        page.get_by_role("textbox", name="The reply as it should be").fill("A Sony A7 IV, mostly handheld. -Sam")
        page.get_by_role("textbox", name="New dataset's name").fill("From chat")
        page.get_by_role("textbox", name="New dataset's name").press("Enter")
        settle(page)
        page.get_by_role("button", name="Add to dataset").click()
        expect(page.get_by_text("Added to “From chat” as row 1")).to_be_visible()
        page.get_by_role("link", name="See it on the Fine-tuning page").click()
        settle(page)
        page.get_by_role("tab", name="Saved datasets").click()
        page.get_by_text("Rows and where they came from").click()
        # the table is drawn on a canvas; its cells are also in the page for screen readers
        cells = page.locator('[data-testid^="glide-cell"]')
        expect(cells.filter(has_text="A Sony A7 IV, mostly handheld. -Sam").first).to_be_attached()
        expect(cells.filter(has_text="chat thread").filter(has_text="corrected · 👍").first).to_be_attached()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "feedback-dataset-row.png"), full_page=True)
        stored = store.get_thread(thread.id, Actor(USERNAME)).messages[-1]
        assert stored.edited == "A Sony A7 IV, mostly handheld. -Sam"
        assert page.locator('[data-testid="stException"]').count() == 0
        page.context.close()
