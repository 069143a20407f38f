"""A reply (and a thread title) holding a Markdown image that points at a local port makes the
browser send no request there; dollars stay dollars.

The workspace is seeded before the app starts: a user, the demo assistant, and a thread whose
stored reply carries the traps. A tiny HTTP server on 127.0.0.1 records every request it gets.
"""
from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

if not Path("/usr/bin/chromium").exists() and os.environ.get("CI") != "true":
    pytest.skip("/usr/bin/chromium is missing: browser tests need Debian's chromium",
                allow_module_level=True)
if os.environ.get("CI") != "true":
    pytest.importorskip("playwright.sync_api")

from playwright.sync_api import expect  # noqa: E402

from tests.e2e.conftest import running_app  # noqa: E402
from tests.e2e.test_journeys import ASSISTANT_MESSAGES, log_in, settle  # noqa: E402

USERNAME, PASSWORD = "ada", "correct-horse-battery"
# A 1x1 transparent PNG, so an image request (if one were made) would succeed.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082")


class Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):   # noqa: N802 (http.server's name)
        type(self).seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args):   # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def trap_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def seed(workspace: Path, trap: str) -> str:
    """A user, the demo assistant and a thread whose reply carries the traps; returns its id."""
    from studio.accounts import OPERATOR, Accounts
    from studio.store import Actor, Store
    from studio.types import Message, Thread
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    Accounts(store.engine).add_user(USERNAME, PASSWORD, actor=OPERATOR)
    ada = Actor(USERNAME, admin=True)
    store.seed_demo_assistant(ada)
    [demo] = store.list_assistants(ada)
    thread = Thread(owner=USERNAME, assistant_id=demo.id, provider="local", messages=[
        Message(role="user", content=f"Show me ![title]({trap}/title.png) for $5"),
        Message(role="assistant", content=(
            f"**Here** it is: ![secret]({trap}/reply.png?q=secret) and ![ref][r] and "
            f"<img src=\"{trap}/html.png\">. It costs $5, or $10 with tax.\n\n"
            # A code span that a cell boundary cuts holds no code: its dollars must not be math.
            "| a | b | c |\n|---|---|---|\n| `x | $y^2$ `| `$HOME` |\n\n"
            f"[r]: {trap}/ref.png")),
    ])
    store.save_thread(thread, ada)
    return thread.id


@pytest.fixture(scope="module")
def seeded_app(tmp_path_factory, trap_server):
    """`streamlit run app.py` on a seeded workspace; yields (base URL, thread id)."""
    workspace = tmp_path_factory.mktemp("untrusted-workspace")
    thread_id = seed(workspace, trap_server)
    with running_app(workspace) as url:
        yield url, thread_id


def test_a_reply_with_a_markdown_image_makes_no_request(browser, seeded_app, trap_server):
    url, thread_id = seeded_app
    context = browser.new_context(base_url=url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        page.goto("/")
        log_in(page, USERNAME, PASSWORD)
        expect(page.get_by_role("heading", name="Comment responder")).to_be_visible()
        settle(page)
        page.goto(f"/?thread={thread_id}")
        reply = page.locator(ASSISTANT_MESSAGES).last.locator('[data-testid="stChatMessageContent"]')
        expect(reply.locator("strong")).to_have_text("Here")               # Markdown still works
        settle(page)
        page.wait_for_timeout(1000)   # time for any image request to arrive
        assert Recorder.seen == [], f"the browser fetched {Recorder.seen}"
        assert page.locator(f'img[src^="{trap_server}"]').count() == 0

        expect(reply).to_contain_text(f"![secret]({trap_server}/reply.png?q=secret)")   # shown as typed
        expect(reply).to_contain_text("It costs $5, or $10 with tax.")   # dollars, not LaTeX
        assert page.locator(".katex").count() == 0
        expect(reply.locator("table")).to_contain_text("$y^2$")
        expect(reply.locator("table code")).to_have_text("$HOME")        # a whole span stays code
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar.get_by_role("button", name=f"▶ Show me ![title]({trap_server}/title.png) for $5")
               ).to_be_visible()

        # The trap works: the page can reach it, so "no request" above means none was made.
        page.evaluate("url => fetch(url).then(r => r.status)", f"{trap_server}/control")
        assert Recorder.seen == ["/control"]
    finally:
        context.close()
