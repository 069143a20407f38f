"""A user's first session in a real browser: create the admin, log in, chat with the embedded
model (streamed), reload without being logged out, log out.

The tests run in file order on one tab and one app server (see conftest.py): each journey starts
where the previous one left the user. If an earlier one fails, the later ones are skipped.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

# In CI a missing browser or playwright is a broken install: let the import (or the `browser`
# fixture) fail instead of skipping, so it is seen.
if os.environ.get("CI") != "true":
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is missing: browser tests need Debian's chromium",
                    allow_module_level=True)
    pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Page, expect  # noqa: E402

USERNAME, PASSWORD, DISPLAY_NAME = "ada", "correct-horse-battery", "Ada Lovelace"
FIRST_MESSAGE = "Loved the video on pandas groupby!"
SECOND_MESSAGE = "Can you make a follow-up on merge?"
CURSOR = "▌"
COOKIE = "assistant_studio_auth"   # the re-login cookie's name (studio.accounts.COOKIE_NAME)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"   # git-ignored
# A whole chat turn, from Enter to the redrawn thread. The first one also loads the model (~25 s),
# and on a busy 2-core machine the embedded model can take seconds a token: this bound is there
# to catch a stuck turn, not a slow one.
REPLY_TIMEOUT_MS = 300_000

USER_MESSAGES = '[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarUser"])'
ASSISTANT_MESSAGES = '[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarAssistant"])'

# Records every distinct text the newest assistant message shows, as the DOM changes.
RECORD_STREAM_JS = """
() => {
  const seen = [];
  window.__streamSamples = seen;
  const sample = () => {
    const msgs = document.querySelectorAll('%s');
    if (!msgs.length) return;
    const text = msgs[msgs.length - 1].querySelector('[data-testid="stChatMessageContent"]')?.innerText ?? '';
    if (seen.length && seen[seen.length - 1][1] === text) return;
    seen.push([Math.round(performance.now()), text]);
  };
  window.__streamObserver = new MutationObserver(sample);
  window.__streamObserver.observe(document.body, {subtree: true, childList: true, characterData: true});
}
""" % ASSISTANT_MESSAGES

# Records every distinct text of the main area, to catch what flashes by between two states.
RECORD_MAIN_JS = """
() => {
  const seen = [];
  window.__mainTexts = seen;
  window.__mainObserver = new MutationObserver(() => {
    const text = document.querySelector('[data-testid="stMain"]')?.innerText ?? '';
    if (seen[seen.length - 1] !== text) seen.push(text);
  });
  window.__mainObserver.observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""

done: set[str] = set()   # journeys that passed, so later ones can skip instead of failing confusingly


def needs(*journeys: str) -> None:
    missing = [j for j in journeys if j not in done]
    if missing:
        pytest.skip(f"needs the earlier journey(s): {', '.join(missing)}")


def login_form(page: Page):
    return page.locator('[data-testid="stForm"]').filter(has_text="Log in to Assistant Studio")


def log_in(page: Page, username: str, password: str) -> None:
    form = login_form(page)
    expect(form).to_be_visible()
    settle(page)
    form.get_by_role("textbox", name="Username").fill(username)
    form.get_by_role("textbox", name="Password", exact=True).fill(password)
    form.get_by_role("button", name="Log in").click()


def signed_in_page(browser, url: str, username: str, password: str) -> Page:
    """A new browser page on the app at `url`, logged in and idle on the chat (30 s timeouts)."""
    expect.set_options(timeout=30_000)
    context = browser.new_context(base_url=url, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto("/")
    log_in(page, username, password)
    expect(chat_input(page)).to_be_visible()
    settle(page)
    return page


def reply_text(page: Page) -> str:
    """The text of the last assistant message (without its avatar), once it has been drawn."""
    reply = page.locator(ASSISTANT_MESSAGES).last.locator('[data-testid="stChatMessageContent"]')
    expect(reply).not_to_have_text("")
    return reply.inner_text().strip()


def chat_input(page: Page):
    return page.locator('[data-testid="stChatInput"] textarea')


def settle(page: Page, quiet_ms: int = 1000) -> None:
    """Wait until the app is idle: no script run in progress or asked for, and no rerun requested
    for `quiet_ms`.

    Needed because streamlit-authenticator's cookie manager is a component iframe that asks for
    a rerun of its own shortly after it appears (and again when the cookies change). A click or a
    chat message sent just then is dropped, or cut short, by that rerun.

    The run and connection states are read from the app root's `data-test-*` attributes:
    Streamlit's "Running..." widget is not drawn at all with `toolbarMode = "minimal"`
    (.streamlit/config.toml). While the websocket reconnects the page is not idle either.
    """
    page.evaluate("() => { window.__idleSince = undefined; }")
    page.wait_for_function("""(quiet) => {
        const now = performance.now();
        const app = document.querySelector('[data-testid="stApp"]')?.dataset ?? {};
        if (app.testConnectionState !== 'CONNECTED'
                || ['initial', 'running', 'rerunRequested', 'stopRequested'].includes(app.testScriptState)) {
            window.__idleSince = undefined;
            return false;
        }
        if (window.__idleSince === undefined) window.__idleSince = now;
        return now - Math.max(window.__idleSince, window.__lastRerunRequest || 0) >= quiet;
    }""", arg=quiet_ms, polling=100, timeout=REPLY_TIMEOUT_MS)


def send_and_watch_stream(page: Page, text: str) -> list[str]:
    """Send a message and wait for the turn to finish; return the distinct texts the
    assistant's reply showed while it arrived."""
    settle(page)
    users_before = page.locator(USER_MESSAGES).count()
    replies_before = page.locator(ASSISTANT_MESSAGES).count()
    page.evaluate(RECORD_STREAM_JS)
    box = chat_input(page)
    box.fill(text)
    box.press("Enter")
    expect(page.locator(USER_MESSAGES)).to_have_count(users_before + 1)
    expect(page.locator(USER_MESSAGES).last).to_contain_text(text)
    expect(page.locator(ASSISTANT_MESSAGES)).to_have_count(replies_before + 1, timeout=REPLY_TIMEOUT_MS)
    # The turn ends with a rerun that draws the stored thread: wait for the runs to end. (A reply
    # without the cursor is no sign of the end: st.write_stream draws its first chunk without it.)
    settle(page)
    last_reply = page.locator(ASSISTANT_MESSAGES).last.locator('[data-testid="stChatMessageContent"]')
    expect(last_reply).to_have_text(re.compile(r"\S"))
    expect(last_reply).not_to_contain_text(CURSOR)
    expect(page).to_have_url(re.compile(r"[?&]thread=thread_"))
    return page.evaluate("() => { window.__streamObserver.disconnect(); return window.__streamSamples; }")


def test_first_run_creates_the_admin_then_logs_in(page: Page):
    page.goto("/")
    expect(page.get_by_role("heading", name="Welcome to Assistant Studio")).to_be_visible()
    expect(page.locator('[data-testid="stSidebarNavLink"]')).to_have_count(0)   # no way past the gate
    form = page.locator('[data-testid="stForm"]')
    form.get_by_role("textbox", name="Username").fill(USERNAME)
    form.get_by_role("textbox", name="Display name").fill(DISPLAY_NAME)
    form.get_by_role("textbox", name="Password", exact=True).fill(PASSWORD)
    form.get_by_role("textbox", name="Repeat password").fill(PASSWORD)
    form.get_by_role("button", name="Create admin account").click()

    expect(login_form(page)).to_be_visible()
    expect(page.get_by_text(f"Account '{USERNAME}' created. Log in with it.")).to_be_visible()
    expect(page.get_by_role("heading", name="Welcome to Assistant Studio")).to_have_count(0)

    log_in(page, USERNAME, PASSWORD)
    expect(page.get_by_role("heading", name="Comment responder")).to_be_visible()
    expect(login_form(page)).to_have_count(0)
    expect(page.get_by_text(f"Signed in as {DISPLAY_NAME}")).to_be_visible()
    expect(page.locator('[data-testid="stSidebarNavLink"]')).to_have_text(
        [re.compile(r"Chat$"), re.compile(r"Assistants$"), re.compile(r"Knowledge$"), re.compile(r"Fine-tuning$"),
         re.compile(r"Playground$"), re.compile(r"Users$")])   # after their icons; Users: admins only
    expect(chat_input(page)).to_have_attribute("placeholder", "Message Comment responder…")
    # The login cookie (set from the browser by a component) is what a reload signs in with.
    deadline = time.monotonic() + 30   # a wait, not a speed check: a loaded 2-core machine took over 15 s
    while not any(c["name"] == COOKIE for c in page.context.cookies()):
        assert time.monotonic() < deadline, f"no '{COOKIE}' cookie after logging in"
        page.wait_for_timeout(100)
    done.add("first run")


def stored_reply(workspace: Path, url: str):
    """The last message of the thread named in `url`, as the app saved it."""
    from studio.store import Actor, Store
    thread_id = parse_qs(urlparse(url).query)["thread"][0]
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    try:
        return store.get_thread(thread_id, Actor(USERNAME, admin=True)).messages[-1]
    finally:
        store.engine.dispose()


def test_chat_reply_streams_in_and_starts_a_thread(page: Page, workspace: Path):
    needs("first run")
    samples = send_and_watch_stream(page, FIRST_MESSAGE)

    expect(page.locator(USER_MESSAGES).first).to_contain_text(FIRST_MESSAGE)
    final = reply_text(page)
    assert final, "the assistant's reply is empty"
    # Streaming: the reply was seen growing, with the cursor, before it was complete.
    partial_lengths = {len(s) for _, s in samples if s.strip() and CURSOR in s}
    assert len(partial_lengths) >= 2, f"the reply did not stream in; texts seen: {samples!r}"
    assert CURSOR not in final

    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_role("button", name=f"▶ {FIRST_MESSAGE}")).to_be_visible()
    # A reply that the length limit stopped (nearly always: tests/conftest.py caps replies at 24
    # tokens) is marked, with Continue under it; a finished one is not.
    saved = stored_reply(workspace, page.url)
    assert saved.role == "assistant"
    marker = page.locator(ASSISTANT_MESSAGES).last.get_by_text("Cut off: this reply reached the length limit")
    continue_button = page.get_by_role("button", name="Continue")
    expect(marker).to_have_count(1 if saved.cut_off else 0)
    expect(continue_button).to_have_count(1 if saved.cut_off else 0)
    done.add("chat")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)


def test_reload_keeps_the_login_and_the_thread(page: Page):
    needs("chat")
    url = page.url
    reply = reply_text(page)

    page.reload()
    expect(page.get_by_role("heading", name="Comment responder")).to_be_visible()
    expect(login_form(page)).to_have_count(0)
    assert page.url == url
    expect(page.locator(USER_MESSAGES)).to_have_count(1)
    expect(page.locator(USER_MESSAGES).first).to_contain_text(FIRST_MESSAGE)
    expect(page.locator(ASSISTANT_MESSAGES)).to_have_count(1)
    # innerText, as reply_text read it: the reply and its cut-off marker are separate paragraphs.
    expect(page.locator(ASSISTANT_MESSAGES).first.locator('[data-testid="stChatMessageContent"]')
           ).to_have_text(reply, use_inner_text=True)
    expect(page.locator('[data-testid="stSidebar"]').get_by_role("button", name=f"▶ {FIRST_MESSAGE}")
           ).to_be_visible()

    # The same thread goes on after the reload.
    send_and_watch_stream(page, SECOND_MESSAGE)
    expect(page.locator(USER_MESSAGES)).to_have_count(2)
    expect(page.locator(USER_MESSAGES).nth(1)).to_contain_text(SECOND_MESSAGE)
    expect(page.locator(ASSISTANT_MESSAGES)).to_have_count(2)
    assert reply_text(page)
    assert page.url == url, "the second message started another thread"
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_role("button", name=f"▶ {FIRST_MESSAGE}")).to_be_visible()
    expect(sidebar.get_by_role("button", name=re.compile(re.escape(SECOND_MESSAGE)))).to_have_count(0)
    done.add("reload")


def test_reload_keeps_the_page(page: Page):
    needs("first run", "reload")
    nav = page.locator('[data-testid="stSidebarNavLink"]')
    # Chat -> Assistants -> Chat keeps the thread, and the thread is back in the URL for a reload.
    settle(page)
    nav.filter(has_text="Assistants").click()
    expect(page.get_by_role("heading", name="Assistants")).to_be_visible()
    settle(page)
    nav.filter(has_text="Chat").click()
    expect(page.locator(USER_MESSAGES).first).to_contain_text(FIRST_MESSAGE)
    expect(page).to_have_url(re.compile(r"[?&]thread=thread_"))
    settle(page)
    page.reload()
    expect(page.locator(USER_MESSAGES)).to_have_count(2)
    expect(page.locator(USER_MESSAGES).first).to_contain_text(FIRST_MESSAGE)
    settle(page)

    # A reload on the Assistants page stays there, signed in.
    nav.filter(has_text="Assistants").click()
    expect(page.get_by_role("heading", name="Assistants")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/assistants"))
    settle(page)
    page.reload()
    expect(page.get_by_role("heading", name="Assistants")).to_be_visible()
    expect(login_form(page)).to_have_count(0)
    expect(page.get_by_role("textbox", name="Name")).to_have_value("Comment responder")
    settle(page)


def test_log_out_then_a_wrong_password_is_refused(page: Page):
    needs("first run")
    settle(page)
    page.evaluate(RECORD_MAIN_JS)
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Log out").click()
    expect(login_form(page)).to_be_visible()
    settle(page)
    shown = page.evaluate("() => { window.__mainObserver.disconnect(); return window.__mainTexts; }")
    # No page is drawn for the signed-out session on the way to the login form.
    assert not [t for t in shown if "You have no assistants yet" in t or "Traceback" in t], shown
    expect(page.get_by_role("heading", name="Comment responder")).to_have_count(0)

    log_in(page, USERNAME, "not-my-password")
    expect(page.get_by_text("Wrong username or password")).to_be_visible()
    expect(login_form(page)).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "wrong-password.png"), full_page=True)
    expect(page.get_by_role("heading", name="Comment responder")).to_have_count(0)

    # Logged out for good: a reload does not sign back in from the cookie.
    page.reload()
    expect(login_form(page)).to_be_visible()
    expect(page.get_by_role("heading", name="Comment responder")).to_have_count(0)

    # Signed out, no page can be reached: no page links, and a page's own URL shows the login form.
    expect(page.locator('[data-testid="stSidebarNavLink"]')).to_have_count(0)
    page.goto("/assistants")
    expect(login_form(page)).to_be_visible()
    settle(page)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.get_by_role("heading", name="Assistants")).to_have_count(0)
    expect(page.get_by_text("Signed in as")).to_have_count(0)
