"""The chat page on OpenAI (the fake server): tool call blocks, code interpreter, errors and retry."""
from studio.accounts import OPERATOR
from studio.store import Actor, Store
from tests.app.conftest import accounts, login, new_app


def give_tools(workspace, tools):
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    [demo] = store.list_assistants(Actor("ada"))
    demo.tools = tools
    store.save_assistant(demo, Actor("ada"))


def send(at, text):
    at.chat_input[0].set_value(text)
    return at.run()


def test_parallel_tool_calls_are_shown_as_collapsible_blocks(on_openai, workspace, fake_server):
    give_tools(workspace, ["calculator", "convert_units"])
    at = on_openai.run()
    at = send(at, 'Two things [[call calculator {"expression": "6*7"}]] '
                  '[[call convert_units {"value": 100, "from_unit": "degC", "to_unit": "degF"}]]')
    assert not at.exception, at.exception
    labels = [e.label for e in at.expander]
    assert any("calculator(expression=\"6*7\")" in label for label in labels), labels
    assert any("convert_units(" in label for label in labels), labels
    reply = at.chat_message[1].markdown[-1].value
    assert "42" in reply and "212" in reply
    # both results went back to the model in one follow-up request
    outputs = [i for i in fake_server.last("/v1/responses").body["input"]
               if i.get("type") == "function_call_output"]
    assert len(outputs) == 2


def test_code_interpreter_code_and_output_are_shown(on_openai, workspace):
    give_tools(workspace, ["code_interpreter"])
    at = send(on_openai.run(), "Run it [[code print(1+1)]]")
    assert not at.exception
    block = next(e for e in at.expander if "Code interpreter" in e.label)
    assert [c.value for c in block.code] == ["print(1+1)", "2"]


def test_tools_are_plainly_unavailable_on_the_embedded_model(signed_in, workspace):
    give_tools(workspace, ["calculator"])
    at = signed_in.run()
    assert any("cannot call function tools" in i.value for i in at.info)


def test_a_rejected_key_is_a_clear_message_and_the_message_is_kept(on_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-bad")
    at = send(on_openai.run(), "Hello there")
    assert not at.exception
    assert any("API key was rejected" in e.value for e in at.error)
    assert "sk-bad" not in str([e.value for e in at.error])
    assert at.chat_message[0].markdown[0].value == "Hello there"
    assert any(b.label == "↻ Retry" for b in at.button)


def test_a_failure_mid_stream_can_be_retried(on_openai, workspace, monkeypatch):
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    [demo] = store.list_assistants(Actor("ada"))
    demo.model = "fail-midstream"
    store.save_assistant(demo, Actor("ada"))
    at = send(on_openai.run(), "one two three")
    assert any("Retry" in w.value for w in at.warning)
    demo.model = "gpt-4.1-mini"
    store.save_assistant(demo, Actor("ada"))
    next(b for b in at.button if b.label == "↻ Retry").click()
    at.run()
    assert not any("Retry" in w.value or "reply" in w.value for w in at.warning)
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert at.chat_message[1].markdown[-1].value == "You said: one two three"


def test_a_new_message_after_a_failed_turn_clears_the_failure_from_the_page(on_openai, workspace):
    # A reply in a thread whose page shows nothing stale skips the page's second run; after a
    # failure it must not: the warning and Retry would stay on screen.
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    [demo] = store.list_assistants(Actor("ada"))
    at = send(on_openai.run(), "first")
    demo.model = "fail-midstream"
    store.save_assistant(demo, Actor("ada"))
    at = send(at, "second")
    assert any(b.label == "↻ Retry" for b in at.button)
    demo.model = "gpt-4.1-mini"
    store.save_assistant(demo, Actor("ada"))
    at = send(at, "third")
    assert not any("Retry" in w.value or "reply" in w.value for w in at.warning)
    assert not any(b.label == "↻ Retry" for b in at.button)
    assert at.chat_message[-1].markdown[-1].value == "You said: third"
    at = send(at, "fourth")   # a plain reply: drawn once, as the stored thread would be
    assert [m.name for m in at.chat_message][-4:] == ["user", "assistant", "user", "assistant"]
    assert at.chat_message[-1].markdown[-1].value == "You said: fourth"
    [thread] = store.list_threads(Actor("ada"))
    stored = store.get_thread(thread.id, Actor("ada")).messages
    assert [m.content for m in stored][-2:] == ["fourth", "You said: fourth"]
    assert len(at.chat_message) == len(stored)


def test_openai_without_a_key_says_how_to_set_one(workspace, monkeypatch):
    monkeypatch.setenv("STUDIO_PROVIDER", "openai")
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    at = login(new_app().run(), "ada", "correct-horse")
    assert any("OPENAI_API_KEY" in e.value for e in at.error)
    assert at.chat_input[0].disabled


def test_a_model_with_a_shutdown_date_is_flagged_and_the_model_list_shows_dates(on_openai, workspace):
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    [demo] = store.list_assistants(Actor("ada"))
    demo.model = "gpt-4o"
    store.save_assistant(demo, Actor("ada"))
    at = on_openai.run()
    assert any("shut down on 2027-01-14" in w.value for w in at.warning)
    at.toggle(key="show_models").set_value(True).run()
    table = at.sidebar.dataframe[0].value
    assert table.set_index("model").loc["gpt-4o", "retires"] == "2027-01-14"


def test_a_thread_stays_on_its_provider_after_the_session_switches(signed_in, workspace, fake_server):
    at = signed_in
    at.chat_input[0].set_value("on the local model").run()
    fields = {t.label: t for t in at.text_input}
    at.radio(key="panel_provider").set_value("compatible")
    fields["Base URL"].input(fake_server.base_url)
    next(b for b in at.button if b.label == "Apply").click()
    at.run()
    assert any("started on local and stays there" in c.value for c in at.caption)
    assert any("Embedded model" in c.value for c in at.caption)


def test_tool_arguments_that_are_not_json_are_shown_not_crashed_on(on_openai, workspace):
    give_tools(workspace, ["calculator"])
    at = send(on_openai.run(), "[[call calculator 2+2]]")
    assert not at.exception, at.exception
    block = next(e for e in at.expander if "calculator(" in e.label)
    assert "Error" in [c.value for c in block.caption]
    at.run()          # the stored thread draws again without error
    assert not at.exception


def delete_current_thread(at):
    next(b for b in at.sidebar.button if b.label == "Yes, delete").click()
    return at.run()


def test_deleting_a_thread_also_deletes_its_openai_conversation(on_openai, workspace, fake_server):
    at = send(on_openai.run(), "Delete me later")
    [thread] = Store(f"sqlite:///{workspace / 'studio.db'}").list_threads(Actor("ada"))
    assert thread.provider_ref in fake_server.conversations
    popover_text = " ".join(m.value for m in at.sidebar.markdown)
    assert "Conversation" in popover_text and "deleted too" in popover_text
    at = delete_current_thread(at)
    assert not at.exception, at.exception
    assert thread.provider_ref not in fake_server.conversations
    assert Store(f"sqlite:///{workspace / 'studio.db'}").list_threads(Actor("ada")) == []


def test_when_the_conversation_cannot_be_deleted_the_thread_is_kept_until_asked(on_openai, workspace,
                                                                                  fake_server):
    from tests.fakes.fake_openai import FakeAPIError
    at = send(on_openai.run(), "Keep me if OpenAI fails")
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    fake_server.refuse = lambda r: FakeAPIError(500, "The server had an error", "server_error") \
        if r.method == "DELETE" else None
    at = delete_current_thread(at)
    assert not at.exception, at.exception
    assert any("kept" in e.value for e in at.sidebar.error)
    assert len(store.list_threads(Actor("ada"))) == 1
    next(b for b in at.sidebar.button if b.label == "Delete it here only").click()
    at.run()
    assert store.list_threads(Actor("ada")) == []
    assert not any("Keep me" in b.label for b in at.sidebar.button)
