"""The command line, run as a user would: `python -m studio ...` in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.accounts import Accounts
from studio.store import Actor, Store
from studio.types import AssistantSpec
from tests.fakes.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
READER = Actor("tests", admin=True)   # admins may read every thread


def cli(*args, env=None, stdin=""):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, env=full_env, input=stdin,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def ws(tmp_path):
    return {"STUDIO_DATA_DIR": str(tmp_path), "STUDIO_PROVIDER": "local"}


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


def test_users_add_reads_the_password_from_a_pipe(ws, tmp_path):
    result = cli("users", "add", "Ada", env=ws, stdin="correct-horse\n")
    assert result.returncode == 0 and "Added ada (admin)" in result.stdout
    assert Accounts(Store(f"sqlite:///{tmp_path / 'studio.db'}").engine).authenticate("ada", "correct-horse")
    again = cli("users", "add", "ada", env=ws, stdin="correct-horse\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    short = cli("users", "add", "bob", env=ws, stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr


def test_chat_on_the_embedded_model_streams_a_reply_into_a_stored_thread(ws, tmp_path):
    result = cli("chat", "Nice video!", env=ws)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    thread_id = result.stderr.strip().splitlines()[-1].removeprefix("thread: ")
    thread = Store(f"sqlite:///{tmp_path / 'studio.db'}").get_thread(thread_id, READER)
    assert [m.role for m in thread.messages] == ["user", "assistant"]
    assert thread.messages[1].content.strip() == result.stdout.strip()


def test_chat_on_openai_continues_a_thread_with_its_own_assistant(ws, tmp_path, fake):
    env = {**ws, "OPENAI_API_KEY": "sk-test-cli-123", "OPENAI_BASE_URL": fake.base_url}
    store = Store(f"sqlite:///{tmp_path / 'studio.db'}")
    store.seed_demo_assistant(Actor("cli"))
    store.save_assistant(AssistantSpec(name="Another", owner="cli", instructions="Be someone else."), Actor("cli"))
    first = cli("chat", "first", "--provider", "openai", "--assistant", "comment responder", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "You said: first"
    thread_id = first.stderr.strip().splitlines()[-1].removeprefix("thread: ")
    second = cli("chat", "second", "--thread", thread_id, env={**env, "STUDIO_PROVIDER": "local"})
    assert second.stdout.strip() == "You said: second"
    thread = Store(f"sqlite:///{tmp_path / 'studio.db'}").get_thread(thread_id, READER)
    assert [m.content for m in thread.messages] == ["first", "You said: first", "second", "You said: second"]
    assert len(fake.conversations[thread.provider_ref].items) == 4
    assert "Sam" in fake.last("/v1/responses").body["instructions"]   # the thread's assistant, not "Another"
    wrong = cli("chat", "third", "--thread", thread_id, "--provider", "local", env=env)
    assert wrong.returncode == 1 and "runs on openai" in wrong.stderr


def test_chat_errors_are_clear_and_exit_non_zero(ws, fake):
    env = {**ws, "OPENAI_API_KEY": "sk-bad", "OPENAI_BASE_URL": fake.base_url}
    result = cli("chat", "hi", "--provider", "openai", env=env)
    assert result.returncode == 1
    assert "API key was rejected" in result.stderr and "sk-bad" not in result.stderr
    missing = cli("chat", "hi", "--assistant", "nobody", env=ws)
    assert missing.returncode == 1 and "No assistant named 'nobody'" in missing.stderr
    no_key = cli("chat", "hi", "--provider", "openai", env=ws)
    assert no_key.returncode == 1 and "OPENAI_API_KEY" in no_key.stderr
    bad_setting = cli("models", env={**ws, "STUDIO_PROVIDER": "nope"})
    assert bad_setting.returncode == 1 and "STUDIO_PROVIDER must be one of" in bad_setting.stderr


def test_models_lists_shutdown_dates(ws, fake):
    env = {**ws, "OPENAI_API_KEY": "sk-test-cli-123", "OPENAI_BASE_URL": fake.base_url}
    result = cli("models", "--provider", "openai", env=env)
    assert result.returncode == 0, result.stderr
    assert "gpt-4o  (shuts down 2027-01-14)" in result.stdout
    local = cli("models", env=ws)
    assert local.stdout.strip() == "smollm2-135m-instruct"
