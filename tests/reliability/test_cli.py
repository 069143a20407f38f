"""Bad input on the command line (`python -m studio ...`, run in-process through main()): a clear
`error:` line, exit status 1 (2 for a usage error), and nothing in the workspace lost or changed."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from studio.__main__ import main
from studio.accounts import Accounts
from studio.store import Actor, Store
from studio.types import Message, Thread
from tests.reliability.conftest import ada_and_bob, assert_clear

ROOT = Path(__file__).resolve().parents[2]
ADA, BOB = Actor("ada"), Actor("bob")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A workspace made once: admin ada (with the demo assistant), user bob with one thread."""
    folder = tmp_path_factory.mktemp("template")
    store = ada_and_bob(folder)
    store.seed_demo_assistant(ADA)
    store.seed_demo_assistant(BOB)
    spec = store.list_assistants(BOB)[0]
    thread = store.save_thread(Thread(owner="bob", assistant_id=spec.id, provider="openai"), BOB)
    store.add_message(thread, Message("user", "bob's private question"), BOB)
    store.engine.dispose()   # SQLite folds its write-ahead log into the file: one file to copy
    return folder / "studio.db"


@pytest.fixture
def ws(tmp_path, template, monkeypatch, fake_server):
    """A copy of the template workspace; the CLI talks to the fake OpenAI server."""
    folder = tmp_path / "ws"
    folder.mkdir()
    shutil.copy(template, folder / "studio.db")
    fake_server.reset()
    for name in list(os.environ):
        if name.startswith("OPENAI_") or name in ("STUDIO_PROVIDER", "STUDIO_MODEL", "STUDIO_USER",
                                                  "STUDIO_DATABASE_URL", "STUDIO_CONTEXT_WINDOW"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STUDIO_DATA_DIR", str(folder))
    monkeypatch.setenv("STUDIO_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cli-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.base_url)
    return folder


def run(monkeypatch, capsys, *argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """main(argv) with `stdin` piped in: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    try:
        status = main(list(argv))
    except SystemExit as exit_:   # argparse's usage errors
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def error_line(err: str) -> str:
    """The CLI's own `error: ...` message (one per failure; it may go on over a few lines)."""
    lines = err.strip().splitlines()
    [start] = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    return "\n".join(line for line in lines[start:] if not line.startswith("thread: ")).removeprefix("error: ")


def workspace_state(folder: Path) -> dict:
    """What a bad command must not change: accounts, assistants, threads and their messages."""
    store = Store(f"sqlite:///{folder / 'studio.db'}")
    admin = Actor("reader", admin=True)
    state = {
        "users": [(a.username, a.admin) for a in Accounts(store.engine).list_users()],
        "assistants": sorted((a.owner, a.name, a.instructions) for a in store.list_assistants(admin, everyone=True)),
        "threads": sorted((t.owner, tuple(m.content for m in store.get_thread(t.id, admin).messages))
                          for t in store.list_threads(admin, everyone=True)),
    }
    store.engine.dispose()
    return state


def check_refused(monkeypatch, capsys, ws, argv, says, stdin=b"", status=1) -> str:
    before = workspace_state(ws)
    code, out, err = run(monkeypatch, capsys, *argv, stdin=stdin)
    assert code == status, (code, out, err)
    assert "Traceback" not in err and "thread: " not in err, err
    message = error_line(err) if status == 1 else err.strip().splitlines()[-1]
    assert_clear(message, *says)
    after = workspace_state(ws)
    for part in before:
        assert after[part] == before[part], f"the {part} changed: {set(after[part]) ^ set(before[part])}"
    return message


# --- chat ------------------------------------------------------------------------------------

CHAT_REFUSED = {
    "empty-message": (["chat", ""], ["type a message first"]),
    "only-whitespace-message": (["chat", " \t\n "], ["type a message first"]),
    "message-not-utf8": (["chat", "caf\udce9 au lait"], ["message", "UTF-8"]),
    "assistant-name-not-utf8": (["chat", "hi", "--assistant", "\udcff"], ["--assistant", "UTF-8"]),
    "unknown-thread-id": (["chat", "hi", "--thread", "thread_nope"], ["no thread", "thread_nope"]),
    "thread-id-with-nul": (["chat", "hi", "--thread", "thread\x00x"], ["no thread"]),
    "unknown-assistant-rtl-name": (["chat", "hi", "--assistant", "مساعد"], ["no assistant named"]),
    "user-name-too-long": (["chat", "hi", "--user", "u" * 300], ["user name", "at most 128"]),
    "context-window-not-a-number": (["chat", "hi"], ["STUDIO_CONTEXT_WINDOW", "whole number"]),
}


@pytest.mark.parametrize("argv, says", CHAT_REFUSED.values(), ids=CHAT_REFUSED.keys())
def test_chat_refuses_with_a_clear_error_and_changes_nothing(ws, monkeypatch, capsys, fake_server, argv, says):
    if "STUDIO_CONTEXT_WINDOW" in says:
        monkeypatch.setenv("STUDIO_CONTEXT_WINDOW", "8k")
    check_refused(monkeypatch, capsys, ws, argv, says)
    assert fake_server.count("/v1/responses") == 0


def test_chat_with_an_unknown_provider_is_a_usage_error(ws, monkeypatch, capsys):
    check_refused(monkeypatch, capsys, ws, ["chat", "hi", "--provider", "gpt"], ["invalid choice", "openai"],
                  status=2)


def test_chat_on_someone_elses_thread_is_refused(ws, monkeypatch, capsys):
    [bobs] = Store(f"sqlite:///{ws / 'studio.db'}").list_threads(BOB)
    check_refused(monkeypatch, capsys, ws, ["chat", "hi", "--thread", bobs.id, "--user", "ada"],
                  ["another user"])


def only_thread_of(ws, actor) -> list[tuple[str, str]]:
    store = Store(f"sqlite:///{ws / 'studio.db'}")
    [thread] = store.list_threads(actor)
    return [(m.role, m.content) for m in store.get_thread(thread.id, actor).messages]


@pytest.mark.parametrize("argv, says", [
    (["chat", "x" * 30_000], ["too long for this model"]),
    (["chat", "hello", "--model", "gpt-4o\n"], ["does not exist", "gpt-4o"]),
], ids=["message-over-the-models-context", "model-name-with-newline"])
def test_a_failed_turn_keeps_the_message_in_a_thread_to_retry(ws, monkeypatch, capsys, argv, says):
    code, out, err = run(monkeypatch, capsys, *argv, "--user", "ada")
    assert code == 1 and "Traceback" not in err
    assert_clear(error_line(err), *says)
    assert only_thread_of(ws, ADA) == [("user", argv[1])]
    assert err.strip().splitlines()[-1].startswith("thread: ")   # so it can be continued


# --- models ----------------------------------------------------------------------------------

@pytest.mark.parametrize("url, says", [
    ("http://[::1", ["base URL", "not valid"]),
    ("http://localhost:99999/v1", ["port", "65535"]),
    ("localhost:11434/v1", ["http://"]),
], ids=["base-url-ipv6-unclosed", "base-url-port-out-of-range", "base-url-without-scheme"])
def test_models_with_a_malformed_base_url(ws, monkeypatch, capsys, url, says):
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    check_refused(monkeypatch, capsys, ws, ["models", "--provider", "compatible"], says)


# --- users -----------------------------------------------------------------------------------

USERS_REFUSED = {
    "add-empty-name": (["users", "add", ""], b"correct-horse\n", ["username", "2–32 characters"]),
    "add-name-with-space": (["users", "add", "Ada Lovelace"], b"correct-horse\n", ["username"]),
    "add-hebrew-name": (["users", "add", "שלום"], b"correct-horse\n", ["lowercase letters"]),
    "add-40-char-name": (["users", "add", "a" * 40], b"correct-horse\n", ["2–32 characters"]),
    "add-path-like-name": (["users", "add", "../../etc/passwd"], b"correct-horse\n", ["username"]),
    "add-name-not-utf8": (["users", "add", "caf\udce9"], b"correct-horse\n", ["UTF-8"]),
    "add-taken-name-other-case": (["users", "add", "BOB"], b"correct-horse\n", ["already exists"]),
    "add-empty-password": (["users", "add", "carol"], b"", ["at least 8"]),
    "add-password-only-spaces": (["users", "add", "carol"], b"          \n", ["space"]),
    "add-password-leading-space": (["users", "add", "carol"], b" correct-horse\n", ["start or end with a space"]),
    "add-password-with-tab": (["users", "add", "carol"], b"correct\thorse\n", ["control characters"]),
    "add-password-with-nul": (["users", "add", "carol"], b"correct\x00horse\n", ["control characters"]),
    "add-password-over-72-bytes": (["users", "add", "carol"], ("é" * 40 + "\n").encode(), ["72 bytes"]),
    "passwd-unknown-user": (["users", "passwd", "nobody"], b"correct-horse\n", ["no user 'nobody'"]),
    "passwd-too-short": (["users", "passwd", "bob"], b"short\n", ["at least 8"]),
    "remove-unknown-user": (["users", "remove", "nobody"], b"", ["no user 'nobody'"]),
    "remove-the-last-admin": (["users", "remove", "ada"], b"", ["last admin"]),
}


@pytest.mark.parametrize("argv, stdin, says", USERS_REFUSED.values(), ids=USERS_REFUSED.keys())
def test_users_refuses_with_a_clear_error_and_keeps_every_account(ws, monkeypatch, capsys, argv, stdin, says):
    check_refused(monkeypatch, capsys, ws, argv, says, stdin=stdin)
    people = Accounts(Store(f"sqlite:///{ws / 'studio.db'}").engine)
    assert people.authenticate("bob", "battery-staple")   # the old password still works


# --- assistants ------------------------------------------------------------------------------

def write(tmp_path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


IMPORT_REFUSED = {
    "missing-file": (None, ["cannot read", "no such file"]),
    "a-folder": ("FOLDER", ["cannot read", "directory"]),
    "empty-file": (b"", ["empty"]),
    "not-json": (b"name: Sam\n", ["not valid JSON", "line 1"]),
    "png-image": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["not a text file"]),
    "latin-1-text": ('{"name": "Caf\u00e9"}'.encode("latin-1"), ["not a text file", "UTF-8"]),
    "json-list": (b'[{"name": "a"}]', ["a list, not one assistant"]),
    "wrong-types": (json.dumps({"name": 7, "examples": "q/a", "tools": "calculator"}).encode(),
                    ["name: must be text", "examples: must be a list", "tools: must be a list"]),
    "name-clash-without-replace": (json.dumps({"name": "comment RESPONDER"}).encode(), ["already has", "--replace"]),
    "over-5-mb": (b'{"name": "big", "instructions": "' + b"x" * 5_000_001 + b'"}', ["too big", "5 MB"]),
}


@pytest.mark.parametrize("content, says", IMPORT_REFUSED.values(), ids=IMPORT_REFUSED.keys())
def test_assistants_import_refuses_a_bad_file_and_changes_nothing(ws, tmp_path, monkeypatch, capsys, content, says):
    if content is None:
        path = str(tmp_path / "nowhere" / "sam.json")
    elif content == "FOLDER":
        path = str(tmp_path)
    else:
        path = write(tmp_path, "file.json", content)
    check_refused(monkeypatch, capsys, ws, ["assistants", "import", path, "--user", "ada"], says)


def test_assistants_import_from_an_empty_pipe(ws, monkeypatch, capsys):
    check_refused(monkeypatch, capsys, ws, ["assistants", "import", "-", "--user", "ada"], ["empty"], stdin=b"")


def test_assistants_export_of_an_unknown_name(ws, monkeypatch, capsys):
    check_refused(monkeypatch, capsys, ws, ["assistants", "export", "Sam 🤖", "--user", "ada"],
                  ["no assistant named", "assistants list"])


def test_assistants_export_into_a_missing_folder(ws, tmp_path, monkeypatch, capsys):
    target = tmp_path / "no" / "such" / "folder" / "sam.json"
    check_refused(monkeypatch, capsys, ws, ["assistants", "export", "Comment responder", "-o", str(target),
                                            "--user", "ada"], ["cannot write", "no such file"])
    assert not target.exists()


# --- the workspace itself ----------------------------------------------------------------------

def test_a_workspace_path_that_is_a_file(ws, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_DATA_DIR", write(tmp_path, "not-a-folder", b"x"))
    code, _, err = run(monkeypatch, capsys, "users", "list")
    assert code == 1
    assert_clear(error_line(err), "STUDIO_DATA_DIR", "cannot be created")


def test_a_database_in_a_missing_folder_prints_no_traceback(tmp_path):
    # A subprocess: the engine logs the failure with its traceback, and a terminal must not show it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STUDIO_"))}
    env.update(STUDIO_DATA_DIR=str(tmp_path), STUDIO_PROVIDER="local",
               STUDIO_DATABASE_URL=f"sqlite:///{tmp_path / 'missing' / 'studio.db'}")
    result = subprocess.run([sys.executable, "-m", "studio", "chat", "hello"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "^^^" not in result.stderr, result.stderr
    assert_clear(error_line(result.stderr), "could not open the workspace database")
    assert "unable to open database file" in result.stderr   # the reason, in one line
