"""In a real browser: upload the sample CSV, preview it, save it, train locally (one short epoch,
in the worker process the page starts), watch the loss chart and the job succeed, then chat with
the tuned model."""
from __future__ import annotations

from pathlib import Path

from studio.accounts import OPERATOR, Accounts
from studio.finetune.jobs import JobStore
from studio.store import Actor, Store
from tests.e2e.test_journeys import chat_input, reply_text, settle, signed_in_page

ROOT = Path(__file__).resolve().parents[2]
USERNAME, PASSWORD = "sam", "correct-horse-battery"
TRAIN_TIMEOUT_MS = 600_000


def test_sample_csv_to_a_tuned_model_that_answers_in_the_chat(browser, app_url, workspace):
    from playwright.sync_api import expect
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    Accounts(store.engine).add_user(USERNAME, PASSWORD, actor=OPERATOR)
    page = signed_in_page(browser, app_url, USERNAME, PASSWORD)
    page.get_by_role("link", name="Fine-tuning").click()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        str(ROOT / "data" / "samples" / "comments.csv"))
    expect(page.get_by_text("Validation report")).to_be_visible()
    expect(page.get_by_text("The exact JSONL line of row")).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Save dataset").click()
    expect(page.get_by_text("Saved comments, version 1")).to_be_visible()
    settle(page)

    page.get_by_role("tab", name="Training jobs").click()
    form = page.locator('[data-testid="stForm"]').filter(has_text="Start training on this machine")
    form.get_by_role("spinbutton", name="Epochs").fill("1")
    form.get_by_role("spinbutton", name="Max length (tokens)").fill("128")
    form.get_by_role("spinbutton", name="Epochs").press("Enter")   # Enter in a field starts no job
    form.get_by_role("textbox", name="Name suffix").fill("sam")
    form.get_by_role("textbox", name="Name suffix").press("Enter")
    settle(page)
    assert JobStore(store.engine).list(Actor(USERNAME)) == []
    form.get_by_role("button", name="Start training on this machine").click()
    # The worker loads the model, then reports steps: the loss chart appears and grows.
    expect(page.locator('[data-testid="stVegaLiteChart"]')).to_be_visible(timeout=TRAIN_TIMEOUT_MS)
    expect(page.get_by_text("Finished model: smollm2-135m-instruct:ft:sam:")).to_be_visible(timeout=TRAIN_TIMEOUT_MS)
    model = page.get_by_text("Finished model:").inner_text().split("Finished model:")[1].split()[0].rstrip(".")
    assert page.locator('[data-testid="stException"]').count() == 0

    # The tuned model in the chat: an assistant that uses it.
    page.get_by_role("link", name="Assistants").click()
    settle(page)
    picker = page.get_by_role("combobox", name="Or one of your fine-tuned models")
    picker.click()
    page.keyboard.press("ArrowDown")                             # opens the list (a click alone may not)
    page.get_by_role("option").filter(has_text=model).click()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved “Comment responder”.")).to_be_visible()
    page.get_by_role("link", name="Chat").click()
    settle(page)
    expect(page.get_by_text(model)).to_be_visible()              # "Runs on ... · model <id>"
    chat_input(page).fill("Loved the video on p-values!")
    chat_input(page).press("Enter")
    assert reply_text(page)
    settle(page)
    assert page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count() == 0
    page.context.close()
