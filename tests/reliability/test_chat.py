"""Bad input typed into the chat page (on OpenAI, against the fake server): a clear message, and
the typed message kept: saved in its thread, or shown back when it cannot be sent."""
from __future__ import annotations

import pytest

from components.turns import MAX_MESSAGE_CHARS
from studio.accounts import OPERATOR
from tests.app.conftest import accounts, login, new_app
from tests.reliability.conftest import assert_clear, only_message, page_messages, store_of


def send(at, text: str):
    at.chat_input[0].set_value(text)
    return at.run()


def stored_messages(workspace, actor) -> list[tuple[str, str]]:
    """(role, content) of every message of the user's only thread; [] when there is no thread."""
    store = store_of(workspace)
    threads = store.list_threads(actor)
    assert len(threads) <= 1
    if not threads:
        return []
    return [(m.role, m.content) for m in store.get_thread(threads[0].id, actor).messages]


def shown_messages(at) -> list[tuple[str, str]]:
    return [(m.name, m.markdown[0].value if m.markdown else "") for m in at.chat_message]


# --- refused before sending ---------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "   \n\t  "], ids=["empty", "only-whitespace"])
def test_an_empty_message_asks_for_text_and_stores_nothing(on_openai, workspace, ada, text):
    at = send(on_openai, text)
    assert_clear(only_message(at), "type a message")
    assert stored_messages(workspace, ada) == []
    assert not at.chat_message


def test_a_message_over_the_length_limit_is_refused_and_shown_back(on_openai, workspace, ada, fake_server):
    text = "word " * (MAX_MESSAGE_CHARS // 5) + "END"
    at = send(on_openai, text)
    assert_clear(only_message(at), f"{len(text):,} characters", f"{MAX_MESSAGE_CHARS:,}", "shorten")
    assert at.code[0].value == text                       # every character is there to copy
    assert stored_messages(workspace, ada) == [] and fake_server.count("/v1/responses") == 0
    at = send(at, "a short one")                          # the box works again
    assert not page_messages(at)
    assert stored_messages(workspace, ada) == [("user", "a short one"), ("assistant", "You said: a short one")]


def test_a_message_over_the_models_context_is_kept_with_a_reason(on_openai, workspace, ada):
    text = "x" * 30_000   # under the page's limit, over the fake model's 20,000 characters
    at = send(on_openai, text)
    message = only_message(at)
    assert_clear(message, "too long for this model", "kept", "shorter")
    assert stored_messages(workspace, ada) == [("user", text)]
    assert shown_messages(at) == [("user", text)]
    assert not [b for b in at.button if b.label == "↻ Retry"]   # the same text would fail again


# --- accepted and kept exactly (or with only NUL dropped) -------------------------------------

ODD_TEXT = {
    "nul-in-the-middle": ("before\x00after", "beforeafter"),
    "control-characters": ("\x1b[31mred\x1b[0m bell\x07 back\x08space", None),
    "mixed-scripts-rtl-emoji-combining": ("مرحبا שלום hello 你好 👩🏽‍💻 cafe\u0301 Ω\u0308", None),
    "bidi-override": ("price \u202e0.01$\u202c please", None),
    "markdown-image-html-and-dollars": ("<script>alert(1)</script> ![x](http://127.0.0.1:9/x) costs $5 or $6", None),
    "thousands-of-newlines": ("top" + "\n" * 5_000 + "bottom", None),
    "zero-width-and-emoji-only": ("\u200b👍🏽\u200d", None),
}


@pytest.mark.parametrize("text, saved", ODD_TEXT.values(), ids=ODD_TEXT.keys())
def test_odd_text_is_sent_saved_and_answered(on_openai, workspace, ada, text, saved):
    saved = text if saved is None else saved
    at = send(on_openai, text)
    assert not at.exception, [e.value for e in at.exception]
    assert not page_messages(at), page_messages(at)
    assert stored_messages(workspace, ada) == [("user", saved), ("assistant", f"You said: {saved.strip()}")]
    [thread] = store_of(workspace).list_threads(ada)
    assert thread.title and "\x00" not in thread.title and "\n" not in thread.title


# --- the provider fails because of what was typed in the sidebar ------------------------------

def apply_provider(at, **fields):
    """Fill the sidebar's Provider panel (keys: provider, base_url, api_key, model) and Apply."""
    if "provider" in fields:
        at.radio(key="panel_provider").set_value(fields["provider"])
    for name in ("base_url", "api_key", "model"):
        if name in fields:
            at.text_input(key=f"panel_{name}").input(fields[name])
    next(b for b in at.button if b.label == "Apply").click()
    return at.run()


BAD_BASE_URLS = {
    "ipv6-unclosed": ("http://[::1", "not valid"),
    "port-out-of-range": ("http://localhost:99999/v1", "port"),
    "no-scheme": ("localhost:11434/v1", "http://"),
    "javascript-url": ("javascript:alert(1)", "http://"),
    "space-inside": ("http://exa mple.com/v1", "spaces"),
    "ftp-scheme": ("ftp://files.example.com/v1", "http://"),
}


@pytest.mark.parametrize("url, says", BAD_BASE_URLS.values(), ids=BAD_BASE_URLS.keys())
def test_a_malformed_base_url_is_named_and_stays_in_the_box_to_fix(signed_in, url, says):
    at = apply_provider(signed_in, provider="compatible", base_url=url, model="gpt-4.1-mini")
    assert_clear(only_message(at), "base URL", says)
    assert at.text_input(key="panel_base_url").value == url
    assert at.chat_input[0].proto.disabled                 # nothing can be typed in vain


def test_an_unreachable_server_keeps_the_message_and_offers_retry(signed_in, workspace, ada):
    at = apply_provider(signed_in, provider="compatible", base_url="http://127.0.0.1:9/v1",
                        model="gpt-4.1-mini")
    at = send(at, "are you there?")
    assert_clear(only_message(at), "could not reach", "127.0.0.1:9")
    assert stored_messages(workspace, ada) == [("user", "are you there?")]
    assert any(b.label == "↻ Retry" for b in at.button)


def test_an_unknown_model_name_keeps_the_message_and_names_the_model(on_openai, workspace, ada):
    at = apply_provider(on_openai, model="gpt-99-imaginary")
    at = send(at, "hello")
    assert_clear(only_message(at), "gpt-99-imaginary", "does not exist")
    assert stored_messages(workspace, ada) == [("user", "hello")]


def test_an_api_key_with_non_ascii_characters_is_named_as_the_problem(on_openai, workspace, ada):
    # e.g. pasted from a document that turned "-" into "–", or typed with a Cyrillic layout
    at = apply_provider(on_openai, api_key="sk–ключ-0123456789")
    at = send(at, "hello")
    message = only_message(at)
    assert_clear(message, "API key")
    assert "retry" not in message.lower()   # the same key fails again: say what to fix instead
    assert "ключ" not in message            # the key is never shown back
    assert stored_messages(workspace, ada) == [("user", "hello")]


# --- thread actions and the thread id in the URL ----------------------------------------------

def rename(at, title: str):
    next(t for t in at.sidebar.text_input if t.label == "Title").input(title)
    next(b for b in at.sidebar.button if b.label == "Rename").click()
    return at.run()


def test_renaming_a_thread_to_blank_says_so_and_keeps_the_title(on_openai, workspace, ada):
    at = rename(send(on_openai, "my first question"), "   ")
    assert_clear(only_message(at), "title")
    assert [t.title for t in store_of(workspace).list_threads(ada)] == ["my first question"]


def test_a_huge_title_with_nul_is_shortened_not_refused(on_openai, workspace, ada):
    at = rename(send(on_openai, "my first question"), "Budget\x00 " + "review " * 200)
    assert not at.exception and not page_messages(at)
    [thread] = store_of(workspace).list_threads(ada)
    assert thread.title.startswith("Budget review review") and len(thread.title) <= 60
    assert any(b.label.startswith("▶ Budget review") for b in at.sidebar.button)


@pytest.mark.parametrize("thread_id", ["thread_does_not_exist", "a\x00b", "x" * 5_000, "' OR '1'='1' --"],
                         ids=["unknown-id", "nul", "5000-chars", "sql-quote"])
def test_a_bad_thread_id_in_the_url_starts_fresh_and_touches_no_thread(workspace, ada, thread_id):
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    at = new_app()
    at.query_params["thread"] = thread_id
    at = login(at.run(), "ada", "correct-horse")
    assert not at.exception and not page_messages(at), page_messages(at)
    assert at.title[0].value == "Comment responder" and not at.chat_message
    assert store_of(workspace).list_threads(ada) == []
