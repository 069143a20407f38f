"""In a real browser: upload a PDF on the knowledge page, watch it become ready, give it to the
assistant, ask a question, open the citation and see the passage and its page.

The chat runs on a compatible server (the fake, which replies what [[say ...]] tells it, so the
reply cites [1] every time); retrieval, indexing and the citation mapping are the real ones.
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
from tests.e2e.test_journeys import chat_input, settle, signed_in_page  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PDF = ROOT / "data" / "samples" / "knowledge" / "retrieval-augmented-generation.pdf"
USERNAME, PASSWORD = "kim", "correct-horse-battery"


def test_a_pdf_becomes_ready_and_the_chat_cites_its_passage_and_page(browser, tmp_path_factory, fake_server):
    workspace = tmp_path_factory.mktemp("knowledge-workspace")
    Accounts(Store(f"sqlite:///{workspace / 'studio.db'}").engine).add_user(USERNAME, PASSWORD, actor=OPERATOR)
    with running_app(workspace, STUDIO_PROVIDER="compatible", OPENAI_BASE_URL=fake_server.base_url) as url:
        page = signed_in_page(browser, url, USERNAME, PASSWORD)

        page.get_by_role("link", name="Knowledge").click()
        page.get_by_role("textbox", name="Name").fill("RAG notes")
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_text("Add documents")).to_be_visible()
        settle(page)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(PDF))
        page.get_by_role("button", name="Add 1 file").click()
        expect(page.get_by_text("retrieval-augmented-generation.pdf: added, indexing.")).to_be_visible()
        expect(page.get_by_text("✅ ready · ")).to_be_visible(timeout=120_000)    # the page redraws itself
        expect(page.get_by_text("PDF · 4 KB · 5 pages")).to_be_visible()
        settle(page)

        page.get_by_role("link", name="Assistants").click()
        settle(page)
        page.get_by_role("combobox", name="Knowledge bases").click()
        page.keyboard.press("ArrowDown")                          # opens the list (a click alone may not)
        page.get_by_role("option").filter(has_text="RAG notes").click()
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("Saved “Comment responder”.")).to_be_visible()

        page.get_by_role("link", name="Chat").click()
        settle(page)
        chat_input(page).fill("[[say Each chunk becomes 384 numbers [1].]] How many dimensions do MiniLM vectors have?")
        chat_input(page).press("Enter")
        expect(page.get_by_text("Each chunk becomes 384 numbers [1].")).to_be_visible()
        label = "[1] retrieval-augmented-generation.pdf, page 4"
        source = page.locator('[data-testid="stExpander"]').filter(has_text=label)
        expect(source).to_be_visible()
        source.get_by_text(label).click()
        expect(source.get_by_text("384 numbers")).to_be_visible()
        expect(source.get_by_text("page 4 · fused score")).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "knowledge-citation.png"), full_page=True)
        assert page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count() == 0
        page.context.close()
