"""In a real browser: the login cookie signs a reload back in, and logging out ends that cookie
for good, so a copy taken before the logout signs nobody in. (AppTest cannot send cookies.)"""
from __future__ import annotations

import time

from tests.e2e.conftest import TRACK_RERUN_REQUESTS_JS
from tests.e2e.test_journeys import COOKIE, log_in, login_form, settle

USERNAME, PASSWORD = "ada", "correct-horse-battery"


def new_tab(browser, app_url):
    context = browser.new_context(base_url=app_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    context.add_init_script(TRACK_RERUN_REQUESTS_JS)
    return context, context.new_page()


def test_a_copy_of_the_login_cookie_no_longer_signs_in_after_logout(browser, app_url):
    from playwright.sync_api import expect
    expect.set_options(timeout=20_000)
    context, page = new_tab(browser, app_url)
    page.goto("/")
    form = page.locator('[data-testid="stForm"]')
    form.get_by_role("textbox", name="Username").fill(USERNAME)   # on 127.0.0.1: no setup token asked
    form.get_by_role("textbox", name="Password", exact=True).fill(PASSWORD)
    form.get_by_role("textbox", name="Repeat password").fill(PASSWORD)
    form.get_by_role("button", name="Create admin account").click()
    log_in(page, USERNAME, PASSWORD)
    expect(page.get_by_role("heading", name="Comment responder")).to_be_visible()
    deadline = time.monotonic() + 15
    while not any(c["name"] == COOKIE for c in context.cookies()):
        assert time.monotonic() < deadline, f"no '{COOKIE}' cookie after logging in"
        page.wait_for_timeout(100)

    page.reload()                                            # the cookie signs the reload in
    expect(page.get_by_role("heading", name="Comment responder")).to_be_visible()
    copied = [c for c in context.cookies() if c["name"] == COOKIE]

    settle(page)
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Log out").click()
    expect(login_form(page)).to_be_visible()
    deadline = time.monotonic() + 15                         # and this browser's cookie is deleted
    while any(c["name"] == COOKIE for c in context.cookies()):
        assert time.monotonic() < deadline, f"the '{COOKIE}' cookie is still there after logging out"
        page.wait_for_timeout(100)
    page.reload()
    expect(login_form(page)).to_be_visible()

    other, thief = new_tab(browser, app_url)                 # another browser with the copied cookie
    other.add_cookies(copied)
    thief.goto("/")
    expect(login_form(thief)).to_be_visible()
    settle(thief)
    expect(login_form(thief)).to_be_visible()
    expect(thief.get_by_role("heading", name="Comment responder")).to_have_count(0)
    expect(thief.locator('[data-testid="stException"]')).to_have_count(0)
    other.close()
    context.close()
