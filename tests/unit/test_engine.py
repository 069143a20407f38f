"""Unit tests for studio/: specs, few-shot compilation, store, settings, auth, context, turns."""
import ast
import json
from pathlib import Path

import pytest

from studio.assistants import compile_instructions, load_demo_assistant, spec_from_dict, spec_to_dict
from studio.auth import UserError, UserFile
from studio.chat import needs_retry, new_thread, run_turn
from studio.context import ContextTooLong, fit_history
from studio.export import thread_to_json, thread_to_markdown
from studio.providers.base import Capabilities, Provider
from studio.settings import Settings
from studio.store import Store, title_from
from studio.types import (AssistantSpec, Done, ErrorEvent, FewShotExample, Message, TextDelta,
                          ToolCall, ToolCallFinished)

STUDIO = Path(__file__).resolve().parents[2] / "studio"


def test_nothing_in_studio_imports_streamlit():
    offenders = []
    for path in STUDIO.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "streamlit"]
    assert offenders == []


# --- few-shot compilation ------------------------------------------------------

def test_few_shot_pairs_are_compiled_into_the_instructions_like_the_course_does():
    spec = AssistantSpec(name="x", instructions="You are Sam.",
                         examples=[FewShotExample("Nice video!", "Thanks! -Sam"),
                                   FewShotExample("Too quiet.", "Will fix. -Sam")])
    text = compile_instructions(spec)
    assert text.startswith("You are Sam.\n\nHere are examples of a viewer comment and how you reply:")
    assert "Viewer comment: Nice video!\nReply: Thanks! -Sam" in text
    assert text.index("Nice video!") < text.index("Too quiet.")


def test_empty_example_rows_are_ignored_and_labels_are_configurable():
    spec = AssistantSpec(name="x", instructions="", examples=[FewShotExample(" ", "")],
                         example_label_prompt="Question", example_label_response="Answer")
    assert compile_instructions(spec) == ""
    spec.examples.append(FewShotExample("2+2?", "4"))
    assert "Question: 2+2?\nAnswer: 4" in compile_instructions(spec)


def test_the_demo_assistant_has_instructions_and_three_examples():
    demo = load_demo_assistant("ada")
    assert demo.name == "Comment responder" and demo.owner == "ada"
    assert len(demo.examples) == 3 and all(e.response.endswith("-Sam") for e in demo.examples)
    assert spec_from_dict(spec_to_dict(demo)) == demo


# --- store ----------------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'studio.db'}")


def test_assistants_crud_duplicate_and_ownership(store):
    a = store.save_assistant(AssistantSpec(name="Alpha", owner="ada", tools=["calculator"]))
    store.save_assistant(AssistantSpec(name="beta", owner="bob"))
    assert [s.name for s in store.list_assistants("ada")] == ["Alpha"]
    assert [s.name for s in store.list_assistants(None)] == ["Alpha", "beta"]
    a.instructions = "Be brief."
    store.save_assistant(a)
    assert store.get_assistant(a.id).instructions == "Be brief."
    copy = store.duplicate_assistant(a.id, owner="ada")
    assert copy.id != a.id and copy.name == "Alpha (copy)" and copy.tools == ["calculator"]
    store.delete_assistant(a.id)
    assert [s.name for s in store.list_assistants("ada")] == ["Alpha (copy)"]


def test_demo_assistant_is_seeded_once_per_user(store):
    store.seed_demo_assistant("ada")
    store.seed_demo_assistant("ada")
    [demo] = store.list_assistants("ada")
    store.delete_assistant(demo.id)
    store.seed_demo_assistant("ada")
    assert store.list_assistants("ada") == []       # deleting it is respected
    store.seed_demo_assistant("bob")
    assert len(store.list_assistants("bob")) == 1


def test_threads_keep_messages_in_order_with_tool_calls_and_take_their_title(store):
    thread = new_thread("ada", AssistantSpec(name="A"), FakeProvider([]))
    store.create_thread(thread)
    store.add_message(thread, Message("user", "  What is 2+2?\nSecond line"))
    call = ToolCall(name="calculator", arguments={"expression": "2+2"}, result="4")
    store.add_message(thread, Message("assistant", "4", tool_calls=[call]))
    loaded = store.get_thread(thread.id)
    assert loaded.title == "What is 2+2? Second line"
    assert [m.role for m in loaded.messages] == ["user", "assistant"]
    assert loaded.messages[1].tool_calls[0].result == "4"
    store.rename_thread(thread.id, "Sums")
    store.set_provider_ref(thread, "conv_1")
    assert store.get_thread(thread.id).title == "Sums"
    assert store.get_thread(thread.id).provider_ref == "conv_1"
    assert [t.id for t in store.list_threads("ada")] == [thread.id] and store.list_threads("bob") == []
    store.delete_thread(thread.id)
    assert store.get_thread(thread.id) is None


def test_long_titles_are_shortened():
    assert len(title_from("word " * 50)) == 60 and title_from("word " * 50).endswith("…")


# --- settings -------------------------------------------------------------------

def test_settings_default_to_local_without_a_key_and_openai_with_one(tmp_path):
    env = {"STUDIO_DATA_DIR": str(tmp_path)}
    assert Settings.load(env=env).provider == "local"
    assert Settings.load(env={**env, "OPENAI_API_KEY": "sk-x"}).provider == "openai"
    assert Settings.load(env={**env, "STUDIO_PROVIDER": "compatible"}).provider == "compatible"
    with pytest.raises(ValueError):
        Settings.load(env={**env, "STUDIO_PROVIDER": "nope"})


def test_environment_wins_over_secrets_and_the_key_is_never_in_repr(tmp_path):
    s = Settings.load(env={"STUDIO_DATA_DIR": str(tmp_path), "STUDIO_MODEL": "m-env"},
                      secrets={"STUDIO_MODEL": "m-secret", "OPENAI_API_KEY": "sk-secret-123"})
    assert s.model == "m-env" and s.api_key == "sk-secret-123"
    assert "sk-secret-123" not in repr(s)
    assert s.database_url == f"sqlite:///{tmp_path / 'studio.db'}"
    assert s.with_overrides(provider="local", model=None).model == "m-env"


# --- users ----------------------------------------------------------------------

def test_first_user_is_admin_passwords_are_hashed_and_cookie_key_is_random(tmp_path):
    users = UserFile(tmp_path / "users.yaml")
    users.add_user("Ada", "correct-horse")
    users.add_user("bob", "battery-staple")
    assert users.is_admin("ada") and not users.is_admin("bob")
    raw = (tmp_path / "users.yaml").read_text()
    assert "correct-horse" not in raw and "$2b$" in raw
    assert users.check_password("ada", "correct-horse") and not users.check_password("ada", "nope")
    key = users.load()["cookie"]["key"]
    assert len(key) >= 32 and key == UserFile(tmp_path / "users.yaml").load()["cookie"]["key"]
    assert key != UserFile(tmp_path / "other.yaml").load()["cookie"]["key"]


@pytest.mark.parametrize("name,password,message", [
    ("a", "long-enough", "username"), ("ada!", "long-enough", "username"), ("ada", "short", "password")])
def test_bad_usernames_and_passwords_are_refused(tmp_path, name, password, message):
    with pytest.raises(UserError, match=message):
        UserFile(tmp_path / "users.yaml").add_user(name, password)


def test_duplicate_user_is_refused(tmp_path):
    users = UserFile(tmp_path / "users.yaml")
    users.add_user("ada", "correct-horse")
    with pytest.raises(UserError, match="already exists"):
        users.add_user("ADA", "correct-horse")


# --- context --------------------------------------------------------------------

def test_history_is_trimmed_oldest_first_and_starts_with_a_user_turn():
    history = [Message("user", "a" * 400), Message("assistant", "b" * 400), Message("user", "c" * 40)]
    msgs = fit_history("sys", history, budget=140)
    assert [m["role"] for m in msgs] == ["system", "user"] and msgs[-1]["content"] == "c" * 40
    assert len(fit_history("sys", history, budget=10_000)) == 4


def test_a_message_that_cannot_fit_is_refused_clearly():
    with pytest.raises(ContextTooLong, match="Shorten"):
        fit_history("sys", [Message("user", "x" * 4000)], budget=100)


# --- one turn, with a scripted provider ----------------------------------------

class FakeProvider(Provider):
    """A test double: replays scripted events."""
    name, label = "fake", "Fake"
    capabilities = Capabilities(function_tools=True, code_interpreter=False, server_threads=True,
                                fine_tuning=False)

    def __init__(self, events):
        self.events = events
        self.seen = []

    def default_model(self):
        return "fake-1"

    def list_models(self):
        return []

    def stream_reply(self, thread, spec):
        self.seen.append([m.content for m in thread.messages])
        yield from self.events


def test_a_turn_saves_the_user_message_first_then_the_reply_with_tool_calls(store):
    call = ToolCall(name="calculator", arguments={"expression": "6*7"}, result="42")
    provider = FakeProvider([ToolCallFinished(call), TextDelta("It is "), TextDelta("42."),
                             Done(provider_ref="conv_9")])
    spec = AssistantSpec(name="A", owner="ada")
    thread = new_thread("ada", spec, provider)
    events = list(run_turn(store, provider, thread, spec, "  6 times 7?  "))
    assert isinstance(events[-1], Done)
    saved = store.get_thread(thread.id)
    assert [(m.role, m.content) for m in saved.messages] == [("user", "6 times 7?"), ("assistant", "It is 42.")]
    assert saved.messages[1].tool_calls[0].result == "42" and saved.provider_ref == "conv_9"
    assert provider.seen == [["6 times 7?"]]


def test_a_failed_turn_keeps_the_message_and_retry_reruns_it(store):
    spec = AssistantSpec(name="A", owner="ada")
    failing = FakeProvider([TextDelta("half"), ErrorEvent("Rate limited (429).", retryable=True)])
    thread = new_thread("ada", spec, failing)
    events = list(run_turn(store, failing, thread, spec, "hello"))
    assert isinstance(events[-1], ErrorEvent)
    assert [m.role for m in store.get_thread(thread.id).messages] == ["user"]
    assert needs_retry(thread)
    working = FakeProvider([TextDelta("hi!"), Done()])
    list(run_turn(store, working, thread, spec, None))
    assert [m.content for m in store.get_thread(thread.id).messages] == ["hello", "hi!"]
    assert not needs_retry(thread)


def test_empty_messages_are_refused_and_nothing_is_stored(store):
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([Done()])
    thread = new_thread("ada", spec, provider)
    [event] = list(run_turn(store, provider, thread, spec, "   "))
    assert isinstance(event, ErrorEvent) and "empty" in event.message
    assert not store.has_thread(thread.id) and provider.seen == []


def test_a_provider_that_stops_early_is_reported(store):
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([TextDelta("partial")])
    thread = new_thread("ada", spec, provider)
    assert isinstance(list(run_turn(store, provider, thread, spec, "hi"))[-1], ErrorEvent)


# --- export ---------------------------------------------------------------------

def test_export_markdown_and_json():
    spec = AssistantSpec(name="Calc")
    thread = new_thread("ada", spec, FakeProvider([]))
    thread.title = "Sums"
    thread.messages = [Message("user", "2+2?"), Message("assistant", "4", tool_calls=[
        ToolCall(name="calculator", arguments={"expression": "2+2"}, result="4")])]
    md = thread_to_markdown(thread, spec)
    assert md.startswith("# Sums") and "## You\n\n2+2?" in md and "## Calc" in md
    assert 'Tool `calculator` {"expression": "2+2"} → 4' in md
    data = json.loads(thread_to_json(thread, spec))
    assert data["messages"][1]["tool_calls"][0]["name"] == "calculator"
    assert data["assistant"]["name"] == "Calc"
