"""The provider contract: the same behaviour from every provider (see conftest.CASES).

Providers with an OpenAI-wire server behind them talk to the fake in tests/fakes through the
real openai SDK, so its transport, retries and error classes are exercised too.
"""
from __future__ import annotations

import socket
from datetime import date

import pytest

import openai

from studio.assistants import compile_instructions
from studio.local_model import get_runtime
from studio.providers.base import ProviderError
from studio.types import (AssistantSpec, Done, ErrorEvent, FewShotExample, Message, TextDelta, Thread,
                          ToolCallFinished, ToolCallStarted)
from tests.contract.conftest import API_KEY
from tests.fakes.fake_openai import FakeAPIError

CALC_TWICE = ('Work out [[call calculator {"expression": "2+2"}]] and '
              '[[call calculator {"expression": "3*7"}]] please')


def thread_with(*texts: str, provider: str = "") -> Thread:
    """A thread whose messages alternate user/assistant, starting (and ending) with the user."""
    roles = ["user", "assistant"]
    return Thread(owner="tester", assistant_id="asst_test", provider=provider,
                  messages=[Message(role=roles[i % 2], content=t) for i, t in enumerate(texts)])


def run_turn(provider, thread: Thread, spec: AssistantSpec | None = None) -> list:
    return list(provider.stream_reply(thread, spec or AssistantSpec(name="Tester")))


def reply_text(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def only_error(events: list, secret: str = "") -> ErrorEvent:
    """The turn ended with exactly one ErrorEvent and no Done, and no key shows in it."""
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1 and events[-1] is errors[0], events
    assert not any(isinstance(e, Done) for e in events)
    error = errors[0]
    assert error.message.strip()
    assert "sk-bad" not in error.message and "sk-test" not in error.message
    assert not secret or secret not in error.message
    return error


def needs_tools(case, provider) -> None:
    if not provider.capabilities.function_tools:
        pytest.skip(f"{case.name} has no function tools")


def needs_server(case) -> None:
    if case.fake is None:
        pytest.skip(f"{case.name} has no HTTP server to inspect")


def turn_and_done(provider, thread, spec=None) -> tuple[list, Done]:
    events = run_turn(provider, thread, spec)
    assert isinstance(events[-1], Done), events
    assert not any(isinstance(e, ErrorEvent) for e in events)
    return events, events[-1]


# --- streaming ---------------------------------------------------------------------------

def test_reply_streams_in_several_deltas_and_ends_with_done(case, provider):
    events, done = turn_and_done(provider, thread_with("hello there, friend"))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1
    if case.fake:
        assert reply_text(events) == "You said: hello there, friend"
        assert done.cut_off is False
    else:   # a real model: any non-empty reply
        assert reply_text(events).strip()
    assert done.usage.output_tokens > 0


def test_instructions_and_examples_reach_the_model(case, provider):
    spec = AssistantSpec(name="Responder", instructions="Answer viewers kindly. Sign off with -- Ana.",
                         examples=[FewShotExample("Love the video!", "Thank you so much! -- Ana")],
                         model="gpt-4o" if case.fake else "")
    turn_and_done(provider, thread_with("Nice one"), spec)
    prompt = case.last_prompt()
    assert prompt == compile_instructions(spec)
    assert "Sign off with -- Ana." in prompt and "Love the video!" in prompt
    if case.fake:
        request = case.turn_requests()[-1]
        assert request.body["model"] == "gpt-4o"
        assert request.body["stream"] is True
    else:   # and the model's chat template puts it in the text the model reads
        runtime = get_runtime(provider.model_dir)
        rendered = runtime.tokenizer.decode(runtime.prompt_ids(case.generated[-1]))
        assert "Sign off with -- Ana." in rendered and "Viewer comment: Love the video!" in rendered


def test_default_model_is_used_when_spec_has_none(case, provider):
    needs_server(case)
    turn_and_done(provider, thread_with("hi"))
    assert case.turn_requests()[-1].body["model"] == provider.default_model()


def test_no_user_message_is_an_error(provider):
    events = run_turn(provider, thread_with("hi", "hello"))   # ends with the assistant
    only_error(events)


# --- history -----------------------------------------------------------------------------

def test_server_thread_is_reused_across_turns(case, provider):
    if not provider.capabilities.server_threads:
        pytest.skip("threads are kept by the app")
    thread = thread_with("first question")
    events, done = turn_and_done(provider, thread)
    ref = done.provider_ref
    assert ref and ref in case.fake.conversations
    thread.provider_ref = ref
    thread.messages += [Message("assistant", reply_text(events)), Message("user", "second question")]
    _, done2 = turn_and_done(provider, thread)
    assert done2.provider_ref == ref
    assert case.fake.count("/v1/conversations", "POST") == 1
    items = case.fake.conversations[ref].items
    assert [(i["role"], i["content"][0]["text"]) for i in items] == [
        ("user", "first question"), ("assistant", "You said: first question"),
        ("user", "second question"), ("assistant", "You said: second question")]
    # Only the new message travels; the conversation holds the rest.
    assert case.turn_requests()[-1].body["input"] == [
        {"type": "message", "role": "user", "content": "second question"}]
    assert case.turn_requests()[-1].body["conversation"] == ref


def test_server_thread_is_seeded_with_earlier_history(case, provider):
    if not provider.capabilities.server_threads:
        pytest.skip("threads are kept by the app")
    texts = [f"message {n}" for n in range(25)]   # > 20 items: needs a second items call
    _, done = turn_and_done(provider, thread_with(*texts))
    items = case.fake.conversations[done.provider_ref].items
    assert [i["content"][0]["text"] for i in items[:24]] == texts[:24]
    assert items[24]["content"][0]["text"] == "message 24"


def test_deleted_server_thread_is_recreated(case, provider):
    if not provider.capabilities.server_threads:
        pytest.skip("threads are kept by the app")
    thread = thread_with("first")
    _, done = turn_and_done(provider, thread)
    del case.fake.conversations[done.provider_ref]   # e.g. deleted in the OpenAI dashboard
    thread.provider_ref = done.provider_ref
    thread.messages += [Message("assistant", "You said: first"), Message("user", "again")]
    events, done2 = turn_and_done(provider, thread)
    assert reply_text(events) == "You said: again"
    assert done2.provider_ref != done.provider_ref
    assert len(case.fake.conversations[done2.provider_ref].items) == 4


def test_app_kept_history_is_sent(case, provider):
    if provider.capabilities.server_threads:
        pytest.skip("the server keeps the thread")
    turn_and_done(provider, thread_with("first question", "You said: first question", "second"))
    assert [(m["role"], m["content"]) for m in case.last_chat()] == [
        ("user", "first question"), ("assistant", "You said: first question"), ("user", "second")]


def test_a_message_left_unanswered_joins_the_next(case, provider):
    if provider.capabilities.server_threads:
        pytest.skip("the server keeps the thread")
    # A failed turn leaves a user message with no reply (and maybe an empty one); chat
    # templates need user and assistant to alternate.
    thread = thread_with("first question", "You said: first question", "lost question")
    thread.messages += [Message("assistant", ""), Message("user", "next question")]
    turn_and_done(provider, thread)
    assert [(m["role"], m["content"]) for m in case.last_chat()] == [
        ("user", "first question"), ("assistant", "You said: first question"),
        ("user", "lost question\n\nnext question")]


# --- tools -------------------------------------------------------------------------------

def test_parallel_tool_calls_run_and_results_go_back(case, provider):
    needs_tools(case, provider)
    spec = AssistantSpec(name="Calc", tools=["calculator"])
    events, _ = turn_and_done(provider, thread_with(CALC_TWICE), spec)
    started = [i for i, e in enumerate(events) if isinstance(e, ToolCallStarted)]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert len(started) == 2 and len(finished) == 2
    assert max(started) < events.index(finished[0])   # both announced before either finishes
    assert [(c.call.name, c.call.arguments, c.call.result, c.call.error) for c in finished] == [
        ("calculator", {"expression": "2+2"}, "4", False),
        ("calculator", {"expression": "3*7"}, "21", False)]
    assert reply_text(events) == "Results: 4; 21"
    if case.fake:
        first, second = case.turn_requests()
        assert case.tool_names(first) == ["calculator"]
        assert "4" in str(second.body) and "21" in str(second.body)


def test_tool_errors_go_back_to_the_model(case, provider):
    needs_tools(case, provider)
    spec = AssistantSpec(name="Calc", tools=["calculator"])
    events, _ = turn_and_done(provider, thread_with('[[call calculator {"expression": "1/0"}]]'), spec)
    finished = [e.call for e in events if isinstance(e, ToolCallFinished)]
    assert len(finished) == 1 and finished[0].error
    assert reply_text(events).startswith("Results: Error")


def test_text_before_and_after_a_tool_round_is_kept_apart(case, provider):
    needs_tools(case, provider)
    spec = AssistantSpec(name="Calc", tools=["calculator"])
    message = '[[say Let me check.]] [[call calculator {"expression": "6*7"}]]'
    events, _ = turn_and_done(provider, thread_with(message), spec)
    assert reply_text(events) == "Let me check.\n\nResults: 42"


def test_tools_are_only_offered_when_switched_on(case, provider):
    needs_server(case)
    events, _ = turn_and_done(provider, thread_with(CALC_TWICE))
    assert not any(isinstance(e, (ToolCallStarted, ToolCallFinished)) for e in events)
    assert reply_text(events).startswith("You said: Work out")
    assert case.tool_names(case.turn_requests()[-1]) == []


def test_code_interpreter(case, provider):
    if not provider.capabilities.code_interpreter:
        pytest.skip(f"{case.name} has no code interpreter")
    spec = AssistantSpec(name="Coder", tools=["code_interpreter"])
    events, _ = turn_and_done(provider, thread_with("Run [[code print(1+1)]]"), spec)
    started = [e.call for e in events if isinstance(e, ToolCallStarted)]
    finished = [e.call for e in events if isinstance(e, ToolCallFinished)]
    assert len(started) == 1 and len(finished) == 1
    call = finished[0]
    assert (call.kind, call.name, call.arguments, call.result) == (
        "code_interpreter", "code_interpreter", {"code": "print(1+1)"}, "2")
    assert reply_text(events) == "The code printed: 2"
    if case.fake:
        assert case.tool_names(case.turn_requests()[-1]) == ["code_interpreter"]


# --- models --------------------------------------------------------------------------------

def test_list_models_with_shutdown_dates(case, provider):
    needs_server(case)
    models = {m.id: m for m in provider.list_models()}
    assert {"gpt-4.1-mini", "gpt-4o", "gpt-5-mini"} <= set(models)
    assert models["gpt-4o"].shutdown_date == date(2027, 1, 14)
    assert models["gpt-5-mini"].shutdown_date is None
    assert all(m.provider == provider.name for m in models.values())


def test_list_models_failure_is_a_clear_provider_error(case):
    needs_server(case)
    with pytest.raises(ProviderError) as info:
        case.make(api_key="sk-bad").list_models()
    assert "401" in str(info.value) and "sk-bad" not in str(info.value)


# --- errors --------------------------------------------------------------------------------

def test_rejected_key(case):
    needs_server(case)
    error = only_error(run_turn(case.make(api_key="sk-bad"), thread_with("hi")), case.api_key)
    assert "API key was rejected (401)" in error.message
    assert error.retryable is False


def test_unreachable_server(case):
    needs_server(case)
    with socket.socket() as sock:   # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = case.make(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    error = only_error(run_turn(provider, thread_with("hi")), case.api_key)
    assert f"Could not reach http://127.0.0.1:{port}/v1" in error.message
    assert error.retryable is True


def test_base_url_without_the_api_path(case):
    needs_server(case)
    wrong = case.fake.base_url.removesuffix("/v1")   # a common slip: the /v1 is missing
    error = only_error(run_turn(case.make(base_url=wrong), thread_with("hi")), case.api_key)
    assert "404" in error.message and "base URL" in error.message
    assert error.retryable is False


def test_unknown_model(case, provider):
    spec = AssistantSpec(name="x", model="gpt-0-nope")
    error = only_error(run_turn(provider, thread_with("hi"), spec), case.api_key)
    assert "'gpt-0-nope'" in error.message
    if case.fake:
        assert "Model 'gpt-0-nope' does not exist" in error.message
    assert error.retryable is False


@pytest.mark.parametrize("model, status", [("rate-limited", "429"), ("server-error", "500")])
def test_transient_errors_are_retried_then_reported(case, provider, model, status):
    needs_server(case)
    spec = AssistantSpec(name="x", model=model)
    error = only_error(run_turn(provider, thread_with("hi"), spec), case.api_key)
    assert status in error.message
    assert error.retryable is True
    assert len(case.turn_requests()) == 1 + provider.client.max_retries   # the SDK retried


@pytest.mark.parametrize("model", ["fail-midstream", "fail-midstream-error"])
def test_failure_in_the_middle_of_the_stream(case, provider, model):
    needs_server(case)
    events = run_turn(provider, thread_with("one two three four five"), AssistantSpec(name="x", model=model))
    error = only_error(events, case.api_key)
    assert reply_text(events) == "You said: "   # the text that arrived before the failure
    assert error.retryable is True
    assert "Retry" in error.message


def test_failure_in_the_middle_of_local_generation(case_for, monkeypatch):
    provider = case_for("local").make(max_new_tokens=8)
    runtime = get_runtime(provider.model_dir)
    generate = runtime.generate

    def fails_after_a_few_tokens(ids, max_new_tokens, *args, **kwargs):
        generate(ids, 3, *args, **kwargs)   # streams three tokens, then:
        raise RuntimeError("out of memory while generating")
    monkeypatch.setattr(runtime, "generate", fails_after_a_few_tokens)
    events = run_turn(provider, thread_with("Tell me about the sea"))
    error = only_error(events)
    assert error.retryable is True
    assert "out of memory while generating" in error.message and "Retry" in error.message


def test_too_long_input(case, provider):
    # 40k words: past the fake's limit and the embedded model's 8k-token window
    error = only_error(run_turn(provider, thread_with("word " * 40_000)), case.api_key)
    assert "too long" in error.message
    assert error.retryable is False


def test_missing_key_is_reported_without_a_request(case):
    if case.name != "openai":
        pytest.skip("only the hosted API requires a key")
    error = only_error(run_turn(case.make(api_key=""), thread_with("hi")))
    assert "OPENAI_API_KEY" in error.message
    assert case.fake.requests == []


# --- app-kept history and the context window ----------------------------------------------

def test_oldest_history_is_trimmed_to_fit_the_context_window(fake, case_for):
    provider = case_for("compatible").make(context_window=2048)
    texts = [f"{n:02d} " + "lorem ipsum " * 40 for n in range(30)] + ["latest question"]
    turn_and_done(provider, thread_with(*texts), AssistantSpec(name="x", instructions="Be brief."))
    sent = fake.last("/v1/chat/completions").body["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[-1] == {"role": "user", "content": "latest question"}
    assert 2 < len(sent) < len(texts) + 1
    assert sent[1]["role"] == "user"   # trimming never leaves the assistant speaking first
    kept = [m["content"][:2] for m in sent[1:-1]]
    assert kept == sorted(kept) and kept[-1] == "29"   # the newest history survives


def test_message_larger_than_the_context_window_fails_before_any_request(fake, case_for):
    provider = case_for("compatible").make(context_window=1024)
    error = only_error(run_turn(provider, thread_with("word " * 2_000)))
    assert "too long" in error.message and error.retryable is False
    assert fake.count("/v1/chat/completions") == 0


def test_compatible_server_without_a_configured_model_uses_the_first_listed(fake, case_for):
    provider = case_for("compatible").make(default_model="")
    turn_and_done(provider, thread_with("hi"))
    assert fake.last("/v1/chat/completions").body["model"] == fake.models[0]["id"]


def test_compatible_server_models_are_listed_once_not_before_every_turn(fake, case_for):
    case = case_for("compatible")
    for text in ("hi", "again"):   # each page run makes a new provider
        turn_and_done(case.make(default_model=""), thread_with(text))
    assert fake.count("/v1/models") == 1
    turn_and_done(case.make(default_model="", api_key="sk-other-key-0000"), thread_with("hi"))
    assert fake.count("/v1/models") == 2   # another key may see other models


# --- replies cut off by a length limit ---------------------------------------------------

def test_a_reply_stopped_by_a_length_limit_is_marked_cut_off(case, fake):
    if case.fake:
        fake.output_token_limit = 3   # the model's own cap, in the fake's words
        provider = case.make()
    else:
        provider = case.make(max_new_tokens=2)
    events, done = turn_and_done(provider, thread_with("Tell me a long story about the sea"))
    assert done.cut_off is True
    if case.fake:
        assert reply_text(events) == "You said: Tell "


def test_compatible_asks_for_no_more_than_the_room_kept_for_the_reply(fake, case_for):
    provider = case_for("compatible").make(context_window=4096)
    turn_and_done(provider, thread_with("hi"))
    assert fake.last("/v1/chat/completions").body["max_completion_tokens"] == provider.reply_reserve == 1024
    fake.output_token_limit = None
    events, done = turn_and_done(case_for("compatible").make(context_window=16), thread_with("a b c d e f"))
    assert reply_text(events) == "You said: a b " and done.cut_off   # a reserve of 4 words


# --- the wire, as OpenAI's specification has it -------------------------------------------

def test_openai_requests_mark_tools_not_strict_and_send_no_truncation(fake, case_for):
    spec = AssistantSpec(name="Calc", tools=["calculator"])
    turn_and_done(case_for("openai").make(), thread_with(CALC_TWICE), spec)
    requests = fake.requests_to("/v1/responses", "POST")
    assert len(requests) == 2
    for request in requests:
        assert "truncation" not in request.body   # deprecated
        assert [(t["name"], t["strict"]) for t in request.body["tools"]] == [("calculator", False)]


def test_the_fake_refuses_requests_openai_would_refuse(fake):
    client = openai.OpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=0)
    tool = {"type": "function", "name": "calc", "parameters": {"type": "object", "properties": {}}}
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4o", input="hi", tools=[tool])
    assert (info.value.code, info.value.param) == ("missing_required_parameter", "tools[0].strict")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"max_output_tokens": 5})   # a Responses parameter
    assert (info.value.code, info.value.param) == ("unknown_parameter", "max_output_tokens")
    with pytest.raises(openai.BadRequestError) as info:
        client.conversations.create(items=[{"type": "message", "role": "user", "content": "hi", "seq": 1}])
    assert info.value.code == "unknown_parameter"
    client.responses.create(model="gpt-4o", input="hi", tools=[{**tool, "strict": False}])
    client.close()


def test_the_fake_refuses_a_function_call_left_without_its_output(fake):
    client = openai.OpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=0)
    calc = {"type": "function", "name": "calculator", "strict": False,
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}}}
    conversation = client.conversations.create()
    first = client.responses.create(model="gpt-4o", conversation=conversation.id, input=CALC_TWICE, tools=[calc])
    assert [item.type for item in first.output] == ["function_call", "function_call"]
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4o", conversation=conversation.id, input="never mind")
    assert f"No tool output found for function call {first.output[0].call_id}" in info.value.message
    client.close()


def test_a_servers_reason_given_in_detail_is_shown(case):
    needs_server(case)
    case.fake.error_style = "fastapi"   # {"detail": ...}, as `transformers serve` answers
    case.fake.refuse = lambda request: (FakeAPIError(400, "Chat template error: roles must alternate")
                                        if request.path == case.endpoint else None)
    error = only_error(run_turn(case.make(), thread_with("hi")), case.api_key)
    assert error.message == "The request was rejected (400): Chat template error: roles must alternate"


def test_openai_provider_at_a_server_without_conversations_suggests_compatible(fake, case_for):
    fake.conversations_api = False
    error = only_error(run_turn(case_for("openai").make(), thread_with("hi")))
    assert "404" in error.message and "Conversations API" in error.message
    assert "`compatible` provider" in error.message and error.retryable is False


@pytest.mark.parametrize("url, says", [
    ("http://[::1", "not valid"), ("http://localhost:99999/v1", "port must be a number"),
    ("localhost:8000/v1", "must start with http"), ("http:///v1", "no server name")])
def test_a_malformed_base_url_is_a_clear_provider_error(case, url, says):
    needs_server(case)
    with pytest.raises(ProviderError, match=says):
        case.make(base_url=url)


# --- a failed OpenAI turn leaves the Conversation as the app's copy says ---------------------

@pytest.mark.parametrize("model", ["fail-midstream", "server-error"])
def test_a_failed_first_turn_leaves_no_conversation_on_the_account(fake, case_for, model):
    provider = case_for("openai").make(max_retries=0)
    only_error(run_turn(provider, thread_with("hi"), AssistantSpec(name="x", model=model)))
    assert fake.count("/v1/conversations", "POST") == 1   # one was made for the turn...
    assert fake.conversations == {}                       # ...and deleted when the turn failed


def second_turn(case, text: str) -> tuple[Thread, str]:
    """A thread with one answered turn (its Conversation on the fake) and a new message."""
    provider = case.make(max_retries=0)
    thread = thread_with("first question")
    _, done = turn_and_done(provider, thread)
    thread.provider_ref = done.provider_ref
    thread.messages += [Message("assistant", "You said: first question"), Message("user", text)]
    return thread, done.provider_ref


def user_items(fake, conversation: str) -> list[str]:
    return [i["content"][0]["text"] for i in fake.conversations[conversation].items
            if i["type"] == "message" and i["role"] == "user"]


def test_retry_after_a_failed_tool_round_rebuilds_the_conversation(fake, case_for):
    case = case_for("openai")
    thread, first = second_turn(case, CALC_TWICE)
    spec = AssistantSpec(name="Calc", tools=["calculator"])
    # The model's function calls are in the Conversation, but their outputs never arrive.
    fake.refuse = lambda request: (FakeAPIError(500, "The server had an error.", "server_error")
                                   if "function_call_output" in str(request.body) else None)
    error = only_error(run_turn(case.make(max_retries=0), thread, spec))
    assert error.retryable and error.forget_provider_ref
    assert first not in fake.conversations   # it held two calls without outputs: the API refuses it
    fake.refuse = None
    thread.provider_ref = None                # what studio.chat.run_turn does on forget_provider_ref
    events, retried = turn_and_done(case.make(), thread, spec)
    assert reply_text(events) == "Results: 4; 21"
    assert user_items(fake, retried.provider_ref) == ["first question", CALC_TWICE]


def test_retry_after_a_failure_mid_reply_sends_the_message_once(fake, case_for):
    case = case_for("openai")
    thread, first = second_turn(case, "second question")
    error = only_error(run_turn(case.make(max_retries=0), thread, AssistantSpec(name="x", model="fail-midstream")))
    assert error.forget_provider_ref and first not in fake.conversations
    thread.provider_ref = None
    _, retried = turn_and_done(case.make(), thread)
    assert user_items(fake, retried.provider_ref) == ["first question", "second question"]


def test_a_refused_request_keeps_the_conversation(fake, case_for):
    case = case_for("openai")
    thread, first = second_turn(case, "second question")
    error = only_error(run_turn(case.make(max_retries=0), thread, AssistantSpec(name="x", model="rate-limited")))
    assert not error.forget_provider_ref   # refused before it started: nothing was added
    assert user_items(fake, first) == ["first question"]


def test_a_reply_abandoned_midway_leaves_no_half_turn(fake, case_for):
    case = case_for("openai")
    thread, first = second_turn(case, "second question")
    events = case.make().stream_reply(thread, AssistantSpec(name="x"))
    next(e for e in events if isinstance(e, TextDelta))
    events.close()   # the page reran mid-reply; the reply was never saved
    assert first not in fake.conversations
    _, again = turn_and_done(case.make(), thread)   # the app's copy rebuilds it
    assert user_items(fake, again.provider_ref) == ["first question", "second question"]


# --- deleting a thread ---------------------------------------------------------------------

def test_deleting_a_thread_deletes_the_providers_copy(case, provider):
    thread = thread_with("hello")
    _, done = turn_and_done(provider, thread)
    thread.provider_ref = done.provider_ref
    before = len(case.fake.requests) if case.fake else 0
    provider.delete_thread(thread)
    if provider.capabilities.server_threads:
        assert done.provider_ref not in case.fake.conversations
        provider.delete_thread(thread)   # already gone: nothing to do, no error
    elif case.fake:
        assert len(case.fake.requests) == before   # the app keeps the thread: nothing to delete


def test_a_conversation_that_cannot_be_deleted_is_a_provider_error(fake, case_for):
    case = case_for("openai")
    thread, first = second_turn(case, "bye")
    with pytest.raises(ProviderError, match="401") as info:
        case.make(api_key="sk-bad").delete_thread(thread)
    assert "sk-bad" not in str(info.value)
    assert first in fake.conversations
