"""AppTest fixtures and actions: a fresh workspace per test, a signed-in app, what downloads hold."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from components.provider_panel import PANEL_OPEN
from components.threads import ACTIONS_OPEN
from studio.accounts import OPERATOR

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "ws"))
    monkeypatch.setenv("STUDIO_PROVIDER", "local")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("STUDIO_MODEL", raising=False)
    st.cache_resource.clear()   # it survives between AppTest instances
    yield tmp_path / "ws"
    st.cache_resource.clear()


def accounts(workspace: Path):
    """The login accounts of a test workspace (in its database, as the app keeps them)."""
    from studio.accounts import Accounts
    from studio.store import Store
    workspace.mkdir(parents=True, exist_ok=True)
    return Accounts(Store(f"sqlite:///{workspace / 'studio.db'}").engine)


def new_app(panels_open: bool = True) -> AppTest:
    """The app, its sidebar panels (Provider, This thread) open unless `panels_open` is False:
    they draw their widgets only while open, and most tests use them."""
    at = AppTest.from_file(APP, default_timeout=120)
    if panels_open:
        at.session_state[PANEL_OPEN] = True
        at.session_state[ACTIONS_OPEN] = True
    return at


def login(at: AppTest, username: str, password: str) -> AppTest:
    form_inputs = [t for t in at.text_input if t.label in ("Username", "Password")]
    form_inputs[0].input(username)
    form_inputs[1].input(password)
    return click(at, "Log in")


def add_reply_to_new_dataset(at: AppTest, reply_id: str, corrected: str, dataset: str) -> AppTest:
    """With a reply's ✏️ editor open: correct the reply and add it to a new dataset."""
    at.text_area(key=f"edited_{reply_id}").input(corrected)
    at.selectbox(key=f"dataset_for_{reply_id}").set_value("\nnew")
    at = at.run()
    at.text_input(key=f"new_dataset_{reply_id}").input(dataset)
    return click(at.run(), "Add to dataset")


def click(at: AppTest, label: str) -> AppTest:
    """Click the button labelled `label` and run the page again."""
    next(b for b in at.button if b.label == label).click()
    return at.run()


@pytest.fixture
def signed_in(workspace):
    """An AppTest where the admin 'ada' is signed in, landed on the chat page."""
    accounts(workspace).add_user("ada", "correct-horse", name="Ada", actor=OPERATOR)
    at = new_app().run()
    return login(at, "ada", "correct-horse")


@pytest.fixture
def downloads(monkeypatch):
    """What the page's download buttons hold: media file id -> (file name, content).
    AppTest keeps no copy of a download that a test can read."""
    files = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        files[file_id] = (filename, path_or_data)
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return files


@pytest.fixture(scope="session")
def fake_server():
    from tests.fakes.fake_openai import FakeOpenAI
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def on_openai(workspace, fake_server, monkeypatch):
    """The app configured for OpenAI, pointed at the fake server; 'ada' signed in."""
    fake_server.reset()
    monkeypatch.setenv("STUDIO_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-app-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.base_url)
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    return login(new_app().run(), "ada", "correct-horse")
