"""Shared fixtures for the engine's unit tests: a fresh workspace database per test."""
from __future__ import annotations

import pytest

from studio.accounts import MAX_FAILURES, Accounts, LoginLocked
from studio.store import Store
from tests.fakes.fake_openai import FakeOpenAI


@pytest.fixture
def db_path(tmp_path):
    """The workspace database file (SQLite), as the app names it."""
    return tmp_path / "studio.db"


@pytest.fixture
def store(db_path) -> Store:
    return Store(f"sqlite:///{db_path}")


@pytest.fixture(scope="module")
def server():
    """The fake OpenAI server, one per test module."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(server):
    """The fake server reset for this test, its fine-tuning jobs ticking every 10 ms."""
    server.reset()
    server.ft_step_s = 0.01
    return server


def lock_out(people: Accounts, username: str) -> None:
    """Fail `username`'s logins until the name is locked (the last try is refused as locked)."""
    for _ in range(MAX_FAILURES - 1):
        people.authenticate(username, "wrong-password")
    with pytest.raises(LoginLocked):
        people.authenticate(username, "wrong-password")
