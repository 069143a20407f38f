"""The Playground page, with OpenAI pointed at the fake server: panes set up, one message sent to
all of them, each reply under its own pane with its figures; an evaluation run over the panes'
configurations, its results and exports; feedback."""
from __future__ import annotations

import time

import pytest

from studio.accounts import OPERATOR
from studio.evaluation.runs import EvalStore
from studio.store import Actor, Store
from tests.app.conftest import accounts, add_reply_to_new_dataset, login, new_app


@pytest.fixture
def on_openai(workspace, fake_server, monkeypatch):
    fake_server.reset()
    monkeypatch.setenv("STUDIO_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-playground-0123")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.base_url)
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    at = login(new_app().run(), "ada", "correct-horse")
    at.switch_page("pages/playground.py")
    return at.run()


def pick_model(at, pane: int, model: str, provider: str = "openai"):
    at.selectbox(key=f"pane{pane}_model").set_value(f"{provider}\n{model}")
    return at.run()


def texts(at) -> list[str]:
    return [m.value for m in at.markdown]


def test_two_panes_answer_one_message_each_with_its_own_model(on_openai, fake_server):
    at = on_openai
    assert not at.exception, at.exception
    at = pick_model(at, 0, "gpt-4.1-mini")
    at = pick_model(at, 1, "gpt-4o")
    assert at.number_input(key="pane1_seed").disabled        # the Responses API has no seed
    assert any("takes no seed" in c.value for c in at.caption)
    at.text_area(key="pane1_system").input("You are pane B.")
    at = at.run()
    at.chat_input[0].set_value("Hello panes")
    at = at.run()
    assert not at.exception, at.exception
    bodies = [r.body for r in fake_server.requests_to("/v1/responses")]
    assert sorted(b["model"] for b in bodies) == ["gpt-4.1-mini", "gpt-4o"]
    assert next(b for b in bodies if b["model"] == "gpt-4o").get("instructions") == "You are pane B."
    assert "instructions" not in next(b for b in bodies if b["model"] == "gpt-4.1-mini")
    assert sum("You said: Hello panes" in t for t in texts(at)) == 2
    captions = [c.value for c in at.caption]
    assert sum("first token" in c and "tokens" in c for c in captions) == 2
    # the conversations stay after the next run, each in its own pane
    at = at.run()
    assert sum("You said: Hello panes" in t for t in texts(at)) == 2


def test_a_retiring_model_is_flagged_and_a_failing_pane_leaves_the_other(on_openai, fake_server):
    at = pick_model(on_openai, 0, "gpt-4o")
    assert any("shuts down on 2027-01-14" in w.value for w in at.warning)
    fake_server.models = [m for m in fake_server.models if m["id"] != "gpt-4o"]   # retired meanwhile
    at = pick_model(at, 1, "gpt-4.1-mini")
    at.chat_input[0].set_value("Still there?")
    at = at.run()
    assert not at.exception
    assert any("gpt-4o" in e.value and "does not exist" in e.value for e in at.error)
    assert sum("You said: Still there?" in t for t in texts(at)) == 1


def test_an_evaluation_runs_over_the_panes_and_exports(on_openai, fake_server, workspace, downloads):
    at = pick_model(on_openai, 0, "gpt-4.1-mini")
    at = pick_model(at, 1, "gpt-4o")
    at.radio(key="eval_source").set_value("Upload a JSONL or CSV file")
    at = at.run()
    data = b"prompt,response\nhi,You said: hi\nbye,You said: bye\n"
    at.file_uploader(key="eval_upload_0").upload("eval.csv", data, "text/csv")
    at = at.run()
    assert any("2 case(s)" in c.value for c in at.caption)
    next(t for t in at.text_input if t.label.startswith("Rule")).input(r"You said")
    next(b for b in at.button if b.label == "Start evaluation").click()
    at = at.run()
    assert not at.exception, at.exception
    evals = EvalStore(Store(f"sqlite:///{workspace / 'studio.db'}").engine)
    run = evals.list(Actor("ada"))[0]
    deadline = time.time() + 30
    while evals.get(run.id, Actor("ada")).status == "running" and time.time() < deadline:
        time.sleep(0.1)
    assert evals.get(run.id, Actor("ada")).status == "finished"
    at = at.run()
    assert not at.exception, at.exception
    summary = at.dataframe[0].value
    assert list(summary["answered"]) == [2, 2] and list(summary["rule_passed"]) == [2, 2]
    exported = [content for name, content in downloads.values() if str(name).endswith(".csv")]
    assert exported and b"configuration" in exported[-1]


def test_pane_settings_and_conversations_survive_a_visit_to_another_page(on_openai, fake_server):
    at = on_openai
    at.number_input(key="playground_count").set_value(3)
    at = pick_model(at.run(), 0, "gpt-4o")
    at = pick_model(at, 1, "gpt-4.1-mini")
    at = pick_model(at, 2, "gpt-5-mini")
    at.chat_input[0].set_value("Remember me")
    at = at.run()
    at.switch_page("pages/chat.py")
    at = at.run()
    at.switch_page("pages/playground.py")
    at = at.run()
    assert not at.exception, at.exception
    assert at.number_input(key="playground_count").value == 3
    assert at.selectbox(key="pane0_model").value == "openai\ngpt-4o"
    assert sum("You said: Remember me" in t for t in texts(at)) == 3
    # clearing the panes deletes their conversations on OpenAI too
    next(b for b in at.button if b.label == "Clear conversations").click()
    at = at.run()
    assert fake_server.conversations == {}
    assert not any("You said: Remember me" in t for t in texts(at))


def test_a_pane_reply_goes_into_a_dataset_with_the_pane_named(on_openai, workspace):
    from studio.datasets.storage import DatasetStore
    at = pick_model(on_openai, 0, "gpt-4.1-mini")
    at = pick_model(at, 1, "gpt-4o")
    at.text_area(key="pane1_system").input("You are Sam.")
    at.chat_input[0].set_value("Nice edit!")
    at = at.run()
    edit = [b for b in at.button if str(b.key).startswith("edit_")]
    assert len(edit) == 2
    edit[1].click()
    at = add_reply_to_new_dataset(at.run(), edit[1].key.removeprefix("edit_"), "Thank you! -Sam", "pane picks")
    assert not at.exception, at.exception
    version = DatasetStore(Store(f"sqlite:///{workspace / 'studio.db'}").engine).find("pane picks", Actor("ada"))
    example = version.prepared.examples[0]
    assert example.messages == [{"role": "system", "content": "You are Sam."},
                                {"role": "user", "content": "Nice edit!"},
                                {"role": "assistant", "content": "Thank you! -Sam"}]
    assert example.origin.startswith("playground pane 2 (gpt-4o (openai))")


def test_one_pane_tries_the_embedded_model_with_a_seed(signed_in):
    at = signed_in
    at.switch_page("pages/playground.py")
    at = at.run()
    at.number_input(key="playground_count").set_value(1)
    at = at.run()
    assert at.selectbox(key="pane0_model").value == "local\nsmollm2-135m-instruct"
    assert not at.number_input(key="pane0_seed").disabled      # the embedded model takes a seed
    at.number_input(key="pane0_seed").set_value(7)
    at.chat_input[0].set_value("Say hello")
    at = at.run()
    assert not at.exception, at.exception
    assert any("first token" in c.value and c.value.endswith("no cost") for c in at.caption)   # runs here
    assert len(at.chat_message) == 2
