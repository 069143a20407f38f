"""The provider contract: the same behaviour from every provider (see conftest.CASES).

Providers with an OpenAI-wire server behind them talk to the fake in tests/fakes through the
real openai SDK, so its transport, retries and error classes are exercised too.
"""
from __future__ import annotations

import socket
from datetime import date

import pytest

from studio.assistants import compile_instructions
from studio.providers.base import ProviderError
from studio.types import (AssistantSpec, Done, ErrorEvent, FewShotExample, Message, TextDelta, Thread,
                          ToolCallFinished, ToolCallStarted)

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
    else:   # a real model: any non-empty reply
        assert reply_text(events).strip()
    assert done.usage.output_tokens > 0


def test_instructions_and_examples_reach_the_server(case, provider):
    needs_server(case)
    spec = AssistantSpec(name="Responder", instructions="Answer viewers kindly. Sign off with -- Ana.",
                         examples=[FewShotExample("Love the video!", "Thank you so much! -- Ana")],
                         model="gpt-4o")
    turn_and_done(provider, thread_with("Nice one"), spec)
    request = case.turn_requests()[-1]
    prompt = case.system_prompt(request)
    assert prompt == compile_instructions(spec)
    assert "Sign off with -- Ana." in prompt and "Love the video!" in prompt
    assert request.body["model"] == "gpt-4o"
    assert request.body["stream"] is True


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
    needs_server(case)
    turn_and_done(provider, thread_with("first question", "You said: first question", "second"))
    sent = case.turn_requests()[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "first question"), ("assistant", "You said: first question"), ("user", "second")]


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
