"""In a real browser: two playground panes on two OpenAI models (the fake server, streaming a
word every 80 ms), one message, both replies streaming at the same time, each with its figures.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

if not Path("/usr/bin/chromium").exists() and os.environ.get("CI") != "true":
    pytest.skip("/usr/bin/chromium is missing: browser tests need Debian's chromium", allow_module_level=True)
if os.environ.get("CI") != "true":
    pytest.importorskip("playwright.sync_api")

from playwright.sync_api import expect  # noqa: E402

from studio.accounts import OPERATOR, Accounts  # noqa: E402
from studio.store import Store  # noqa: E402
from tests.e2e.conftest import ARTIFACTS, running_app  # noqa: E402
from tests.e2e.test_journeys import settle, signed_in_page  # noqa: E402

USERNAME, PASSWORD = "pat", "correct-horse-battery"
MESSAGE = "one two three four five six seven eight nine ten"


def pick(page, pane: int, model: str) -> None:
    page.get_by_role("combobox", name="Model").nth(pane).click()
    page.get_by_role("option").filter(has_text=f"{model} · openai").first.click()
    settle(page)


def test_two_panes_stream_one_message_side_by_side(browser, tmp_path_factory, fake_server):
    fake_server.delta_delay = 0.08   # a word every 80 ms: long enough to see both panes mid-reply
    workspace = tmp_path_factory.mktemp("playground-workspace")
    Accounts(Store(f"sqlite:///{workspace / 'studio.db'}").engine).add_user(USERNAME, PASSWORD, actor=OPERATOR)
    with running_app(workspace, STUDIO_PROVIDER="openai", OPENAI_API_KEY="sk-test-e2e-playground",
                     OPENAI_BASE_URL=fake_server.base_url) as url:
        page = signed_in_page(browser, url, USERNAME, PASSWORD)
        page.get_by_role("link", name="Playground").click()
        settle(page)
        pick(page, 0, "gpt-4.1-mini")
        pick(page, 1, "gpt-4o")
        box = page.locator('[data-testid="stChatInput"] textarea')
        box.fill(MESSAGE)
        box.press("Enter")
        # both panes show part of their reply, with the cursor, at the same moment
        page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stChatMessage"]')]
            .filter(m => m.innerText.includes('You said') && m.innerText.includes('▌')).length >= 2""",
                               timeout=30_000)
        replies = page.locator('[data-testid="stChatMessage"]').filter(has_text=f"You said: {MESSAGE}")
        expect(replies).to_have_count(2)
        expect(page.get_by_text("first token").first).to_be_visible()
        expect(page.locator('[data-testid="stCaptionContainer"]').filter(has_text="first token")).to_have_count(2)
        models = sorted(r.body["model"] for r in fake_server.requests_to("/v1/responses"))
        assert models == ["gpt-4.1-mini", "gpt-4o"]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "playground-two-panes.png"), full_page=True)
        assert page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count() == 0
        page.context.close()
