"""The chat page on the embedded model: send, stream, threads."""
from components.provider_panel import PANEL_OPEN
from components.threads import ACTIONS_OPEN
from studio.accounts import OPERATOR
from studio.store import Actor, Store
from studio.types import Message, Thread
from tests.app.conftest import accounts, login, new_app


def chat_messages(at):
    return [(m.name, m.markdown[0].value if m.markdown else "") for m in at.chat_message]


def send(at, text):
    at.chat_input[0].set_value(text)
    return at.run()


def test_landing_on_chat_shows_the_demo_assistant_and_its_runtime(signed_in):
    at = signed_in
    assert not at.exception
    assert at.title[0].value == "Comment responder"
    assert any("Embedded model" in c.value for c in at.caption)
    assert at.chat_input[0].placeholder == "Message Comment responder…"


def test_sending_a_message_gets_a_reply_and_creates_a_titled_thread(signed_in, workspace):
    at = send(signed_in, "Loved the video on pandas groupby!")
    assert not at.exception, at.exception
    messages = chat_messages(at)
    assert messages[0] == ("user", "Loved the video on pandas groupby!")
    assert messages[1][0] == "assistant" and messages[1][1].strip()
    threads = Store(f"sqlite:///{workspace / 'studio.db'}").list_threads(Actor("ada"))
    assert [t.title for t in threads] == ["Loved the video on pandas groupby!"]
    assert at.query_params["thread"] == threads[0].id
    # the sidebar lists it, marked as current
    assert any(b.label == "▶ Loved the video on pandas groupby!" for b in at.sidebar.button)


def test_new_thread_then_resume_the_old_one(signed_in):
    at = send(signed_in, "First thread message")
    next(b for b in at.sidebar.button if b.label == "➕ New thread").click()
    at.run()
    assert chat_messages(at) == []
    at = send(at, "Second thread message")
    labels = [b.label for b in at.sidebar.button]
    assert "▶ Second thread message" in labels and "First thread message" in labels
    next(b for b in at.sidebar.button if b.label == "First thread message").click()
    at.run()
    assert chat_messages(at)[0] == ("user", "First thread message")
    assert len(chat_messages(at)) == 2


def test_rename_and_delete_a_thread(signed_in, workspace):
    at = send(signed_in, "Something to rename")
    title_box = next(t for t in at.sidebar.text_input if t.label == "Title")
    title_box.input("Renamed thread")
    next(b for b in at.sidebar.button if b.label == "Rename").click()
    at.run()
    assert any(b.label == "▶ Renamed thread" for b in at.sidebar.button)
    # Deleting asks first: the "Delete thread" popover holds the only button that deletes.
    [confirm] = [b for b in at.sidebar.button if "delete" in b.label.lower()]
    assert confirm.label == "Yes, delete"
    confirm.click()
    at.run()
    assert not any("Renamed thread" in b.label for b in at.sidebar.button)
    assert Store(f"sqlite:///{workspace / 'studio.db'}").list_threads(Actor("ada")) == []


def test_a_thread_is_reopened_from_the_url_in_a_new_session(signed_in, workspace):
    at = send(signed_in, "Remember me")
    thread_id = at.query_params["thread"]
    fresh = new_app()
    fresh.query_params["thread"] = thread_id
    fresh.run()
    fresh = login(fresh, "ada", "correct-horse")
    assert chat_messages(fresh)[0] == ("user", "Remember me")


def test_a_long_message_is_refused_clearly_and_kept(signed_in):
    text = "data " * 9000   # beyond the embedded model's 8k-token context
    at = send(signed_in, text)
    assert not at.exception
    assert any("too long" in e.value and "Shorten the message" in e.value for e in at.error)
    assert chat_messages(at)[0][0] == "user"          # the message is saved, not lost
    assert not any(b.label == "↻ Retry" for b in at.button)   # retrying the same text cannot help
    at = send(at, "A short one instead")
    assert chat_messages(at)[-1][0] == "assistant" and not at.error


def test_a_thread_offers_markdown_and_json_export(signed_in):
    at = send(signed_in, "Export me")
    buttons = at.get("download_button")
    labels = [b.proto.label for b in buttons]
    assert labels == ["Export Markdown", "Export JSON"]


def test_a_thread_whose_assistant_was_deleted_stays_readable(signed_in, workspace):
    at = send(signed_in, "Keep this conversation")
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    store.duplicate_assistant(store.list_assistants(Actor("ada"))[0].id, Actor("ada"))
    original = next(a for a in store.list_assistants(Actor("ada")) if a.name == "Comment responder")
    store.delete_assistant(original.id, Actor("ada"))
    next(b for b in at.sidebar.button if b.label == "➕ New thread").click()
    at.run()
    next(b for b in at.sidebar.button if b.label == "Keep this conversation").click()
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Keep this conversation"
    assert "assistant was deleted" in at.info[0].value
    assert chat_messages(at)[0] == ("user", "Keep this conversation")
    assert not at.chat_input


def test_a_message_over_the_length_limit_is_refused_clearly_and_shown_back(signed_in, workspace):
    from components.turns import MAX_MESSAGE_CHARS
    text = "word " * (MAX_MESSAGE_CHARS // 5) + "!"
    at = send(signed_in, text)
    assert not at.exception, at.exception
    assert any(f"the limit is {MAX_MESSAGE_CHARS:,}" in e.value and "not sent" in e.value for e in at.error)
    assert at.code[0].value == text                    # what they typed is there to copy
    assert not chat_messages(at)
    assert Store(f"sqlite:///{workspace / 'studio.db'}").list_threads(Actor("ada")) == []
    at = send(at, "A short one instead")
    assert chat_messages(at)[0] == ("user", "A short one instead") and not at.error


def test_a_cut_off_reply_is_marked_and_can_be_continued(signed_in, monkeypatch):
    monkeypatch.setenv("STUDIO_LOCAL_MAX_TOKENS", "2")   # every reply hits the cap
    at = send(signed_in, "Tell me about pandas")
    assert not at.exception, at.exception
    reply = at.chat_message[1]
    assert any("Cut off" in c.value for c in reply.caption)
    next(b for b in at.button if b.label == "⏩ Continue").click()
    at.run()
    assert not at.exception, at.exception
    from studio.chat import CONTINUE_PROMPT
    assert [name for name, _ in chat_messages(at)] == ["user", "assistant", "user", "assistant"]
    assert chat_messages(at)[2][1] == CONTINUE_PROMPT


def test_a_thread_deleted_in_another_tab_is_not_brought_back_by_this_one(signed_in, workspace, monkeypatch):
    monkeypatch.setenv("STUDIO_LOCAL_MAX_TOKENS", "2")   # a short reply is enough
    tab_a = send(signed_in, "My private note")
    thread_id = tab_a.query_params["thread"]
    tab_b = new_app()
    tab_b.query_params["thread"] = thread_id
    tab_b = login(tab_b.run(), "ada", "correct-horse")
    assert chat_messages(tab_b)[0] == ("user", "My private note")
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    store.delete_thread(thread_id, Actor("ada"))           # tab A deletes it

    tab_b = send(tab_b, "hello again")
    assert not tab_b.exception, tab_b.exception
    [error] = tab_b.error
    assert error.value.startswith("This thread was deleted (in another tab?). Start a new thread.")
    assert [c.value for c in tab_b.code] == ["hello again"]          # what was typed, to copy
    assert not [b for b in tab_b.button if b.label == "↻ Retry"]
    assert not store.has_thread(thread_id) and store.list_threads(Actor("ada")) == []


def test_a_typed_key_with_characters_a_key_cannot_hold_is_named_on_apply(signed_in):
    at = signed_in
    at.text_input(key="panel_api_key").input("sk-0123\x00456789")
    next(b for b in at.button if b.label == "Apply").click()
    at.run()
    [warning] = [w.value for w in at.sidebar.warning]
    assert "characters an API key cannot contain" in warning
    assert not any("456789" in m.value for m in [*at.warning, *at.error])   # the key is never shown
    at.run()   # said once; the turn says it again if a message is sent with that key
    assert not at.sidebar.warning


def test_the_sidebar_panels_draw_their_widgets_only_while_open(workspace):
    # Every page run is lighter for it: a closed panel costs one expander, not a form and two exports.
    accounts(workspace).add_user("ada", "correct-horse", name="Ada", actor=OPERATOR)
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    store.seed_demo_assistant(Actor("ada"))
    thread = Thread(owner="ada", assistant_id=store.list_assistants(Actor("ada"))[0].id, provider="local",
                    title="An old thread", messages=[Message("user", "hi"), Message("assistant", "hello")])
    store.save_thread(thread, Actor("ada"))
    at = new_app(panels_open=False)
    at.query_params["thread"] = thread.id
    at = login(at.run(), "ada", "correct-horse")
    assert not at.exception
    assert [e.label for e in at.sidebar.expander] == ["Provider: local", "This thread"]
    assert not at.radio and not at.get("download_button")
    at.session_state[PANEL_OPEN] = True   # what clicking the panel's header does
    at.run()
    assert at.radio(key="panel_provider").value == "local" and not at.get("download_button")
    at.session_state[ACTIONS_OPEN] = True
    at.run()
    assert [b.proto.label for b in at.get("download_button")] == ["Export Markdown", "Export JSON"]
