"""Shared helpers for the bad-input tests (see README.md: the kinds of input and the count): what a
"clear message" is, and the app fixtures.

A clear message is words a user can act on: not empty, no traceback, not a bare "error", not
the page's last-resort "error id" message (that one means the input reached a bug), and no
Python exception class names (jargon a user cannot act on).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

# The AppTest fixtures (fresh workspace, signed-in admin, the fake OpenAI server).
from tests.app.conftest import fake_server, on_openai, signed_in, workspace  # noqa: F401

GENERIC = {"error", "an error occurred", "something went wrong", "invalid input", "failed", "oops"}
EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b")


def assert_clear(message: str, *says: str) -> None:
    """`message` is worded for a person, and contains each of `says` (case-insensitive)."""
    assert message and message.strip(), "no message at all"
    text = message.strip()
    assert "Traceback" not in text and 'File "' not in text, text
    assert text.lower().rstrip(".!") not in GENERIC, text
    assert "error id" not in text, f"the last-resort message (a bug was hit): {text}"
    assert not EXCEPTION_NAME.search(text), f"an exception class name: {text}"
    read = re.sub(r"\\(.)", r"\1", text).lower()   # as the reader sees Markdown: escapes removed
    for words in says:
        assert words.lower() in read, f"{words!r} not in {text!r}"


def page_messages(at) -> list[str]:
    """Every error and warning an AppTest run shows (main area and sidebar)."""
    return [e.value for e in at.error] + [w.value for w in at.warning]


def only_message(at) -> str:
    """The one error or warning the run shows; fails on a raised exception or several messages."""
    assert not at.exception, [e.value for e in at.exception]
    shown = page_messages(at)
    assert len(shown) == 1, shown
    return shown[0]


def store_of(folder: Path):
    """The Store of a test workspace (as the app opens it)."""
    from studio.store import Store
    return Store(f"sqlite:///{folder / 'studio.db'}")


def ada_and_bob(folder: Path):
    """A workspace database in `folder` with admin ada ("correct-horse") and user bob
    ("battery-staple"); returns its Store."""
    from studio.accounts import OPERATOR, Accounts
    store = store_of(folder)
    people = Accounts(store.engine)
    people.add_user("ada", "correct-horse", actor=OPERATOR)   # the first account is the admin
    people.add_user("bob", "battery-staple", actor=OPERATOR)
    return store


@pytest.fixture
def ada():
    from studio.store import Actor
    return Actor("ada")
