"""A long thread draws its recent messages first; the provider is reused between runs."""
from __future__ import annotations

from studio.accounts import OPERATOR
from studio.providers import openai_provider
from studio.store import Actor, Store
from studio.types import Message, Thread
from tests.app.conftest import accounts, login, new_app


def seed_long_thread(workspace, owner: str, count: int) -> Thread:
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    store.seed_demo_assistant(Actor(owner))
    spec = store.list_assistants(Actor(owner))[0]
    thread = Thread(owner=owner, assistant_id=spec.id, provider="local", title="Long one",
                    messages=[Message("user" if n % 2 == 0 else "assistant", f"message {n}") for n in range(count)])
    return store.save_thread(thread, Actor(owner))


def open_thread(workspace, thread: Thread):
    at = login(new_app().run(), "ada", "correct-horse")
    at.button(key=f"open_{thread.id}").click()
    return at.run()


def drawn(at) -> list[str]:
    return [m.markdown[-1].value for m in at.chat_message]


def test_a_long_thread_shows_its_last_20_messages_and_reveals_the_rest(workspace):
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    thread = seed_long_thread(workspace, "ada", 50)
    at = open_thread(workspace, thread)
    assert not at.exception, at.exception
    assert drawn(at) == [f"message {n}" for n in range(30, 50)]
    earlier = next(b for b in at.button if b.label == "Show 30 earlier messages")
    earlier.click().run()
    assert drawn(at) == [f"message {n}" for n in range(50)]
    at.run()   # the reveal lasts for the session
    assert len(at.chat_message) == 50
    assert not [b for b in at.button if "earlier message" in b.label]


def test_a_short_thread_shows_every_message_and_no_button(workspace):
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    thread = seed_long_thread(workspace, "ada", 20)
    at = open_thread(workspace, thread)
    assert drawn(at) == [f"message {n}" for n in range(20)]
    assert not [b for b in at.button if "earlier message" in b.label]


def test_reruns_reuse_the_provider_and_a_new_key_gets_a_new_one(on_openai, monkeypatch):
    built = []
    original = openai_provider.OpenAIProvider.__init__

    def counting(self, *args, **kwargs):
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(openai_provider.OpenAIProvider, "__init__", counting)
    at = on_openai
    at.run()
    at.run()
    assert built == []   # the signed-in page built it already
    before = 0
    at.text_input(key="panel_api_key").input("sk-another-key-9876543210")
    next(b for b in at.button if b.label == "Apply").click()
    at.run()
    assert not at.exception, at.exception
    assert len(built) == before + 1
    assert built[-1]._api_key == "sk-another-key-9876543210"
    at.run()
    assert len(built) == before + 1


def test_a_streaming_reply_is_redrawn_at_most_ten_times_a_second_and_loses_no_text(monkeypatch):
    from components import transcript
    clock = iter([0.0, 0.03, 0.06, 0.12, 0.13, 0.5, 0.51])   # when each chunk arrives
    monkeypatch.setattr(transcript.time, "monotonic", lambda: next(clock))
    out = list(transcript.paced(["Hel", "lo", ", ", "wor", "ld", "!", "!"]))
    assert out == ["Hel", "lo, wor", "ld!", "!"]   # the first at once, then one per 0.1 s, then the rest
    assert "".join(out) == "Hello, world!!"
    clock = iter([0.0, 0.01, 0.02, 0.03])
    # An empty chunk (before a tool call or a notice is drawn) sends what is held at once.
    assert list(transcript.paced(["A", "b", transcript.FLUSH, "c"])) == ["A", "b", "c"]
