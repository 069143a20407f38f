"""Browser fixtures: the app as a subprocess on 127.0.0.1, driven by Debian's headless Chromium.

One app server per test module (a fresh workspace, so the first-run form shows) and one
browser per session. Never `playwright install`: we launch /usr/bin/chromium directly.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"   # git-ignored
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
STARTUP_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.read().decode().strip() == "ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The app's workspace folder (STUDIO_DATA_DIR): a fresh one per test module."""
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="module")
def app_url(workspace):
    """Start `streamlit run app.py` on a free port with a fresh workspace; yield its base URL."""
    with running_app(workspace) as url:
        yield url


@contextmanager
def running_app(workspace: Path, **settings: str) -> Iterator[str]:
    """`streamlit run app.py` on a free port, on `workspace` with the embedded model (or the
    `settings` given, e.g. STUDIO_PROVIDER and OPENAI_BASE_URL); its base URL.
    Its log is printed when it stops (pytest shows it only for a failed test)."""
    port = _free_port()
    env = dict(os.environ)   # carries STUDIO_MODEL_CACHE and STUDIO_LOCAL_MAX_TOKENS from tests/conftest.py
    env.update(STUDIO_DATA_DIR=str(workspace), STUDIO_PROVIDER="local")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "STUDIO_MODEL", "STUDIO_DATABASE_URL"):
        env.pop(name, None)
    env.update(settings)
    log_path = workspace.parent / f"{workspace.name}-streamlit.log"
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false",
         # No file watcher: tests never edit sources, and watching the tree (with .venv) overflows inotify.
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _healthy(url):
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with {server.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer /_stcore/health in {STARTUP_TIMEOUT_S} s:\n"
                            f"{log_path.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        # Shown by pytest only when a test in the module failed (captured output).
        print(f"--- streamlit log ({log_path}) ---\n{log_path.read_text()[-5000:]}")


@pytest.fixture(scope="session")
def browser():
    # In CI a missing browser is a broken install, not a reason to skip: fail so it is seen.
    missing = pytest.fail if os.environ.get("CI") == "true" else pytest.skip
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing: browser tests need Debian's chromium (scripts/setup.sh --dev)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is missing: browser tests need it (scripts/setup.sh --dev)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# Notes when the page last sent anything to the app (a rerun request) over Streamlit's websocket.
TRACK_RERUN_REQUESTS_JS = """
(() => {
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (...args) {
    window.__lastRerunRequest = performance.now();
    return send.apply(this, args);
  };
})();
"""


@pytest.fixture(scope="module")
def page(browser, app_url):
    """One tab for the whole module: the journeys build on each other (sign-up, chat, reload...)."""
    from playwright.sync_api import expect
    expect.set_options(timeout=20_000)
    context = browser.new_context(base_url=app_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    context.add_init_script(TRACK_RERUN_REQUESTS_JS)
    page = context.new_page()
    yield page
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def screenshot_on_failure(request):
    """Keep a picture of the page when a browser test fails (tests/e2e/artifacts/, git-ignored)."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and "page" in request.fixturenames:
        ARTIFACTS.mkdir(exist_ok=True)
        request.getfixturevalue("page").screenshot(
            path=str(ARTIFACTS / f"failed-{request.node.name}.png"), full_page=True)


@pytest.fixture(scope="module")
def fake_server():
    """The fake OpenAI server, one per test module (a test may set its knobs, e.g. delta_delay)."""
    from tests.fakes.fake_openai import FakeOpenAI
    with FakeOpenAI() as server:
        yield server
