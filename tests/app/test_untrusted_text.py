"""Model output, thread titles and assistant names load nothing remote and keep `$` a dollar.

What the page hands the browser is rendered here with markdown-it (CommonMark, like Streamlit's
renderer); tests/e2e/test_untrusted_text.py checks a real browser makes no request.
"""
from markdown_it import MarkdownIt

from studio.accounts import OPERATOR
from studio.store import Actor, Store
from tests.app.conftest import login, new_app

RENDERER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
TRAP = "![x](http://127.0.0.1:9/?q=secret)"


def test_a_reply_with_an_image_and_dollars_is_shown_as_typed(on_openai):
    at = on_openai.run()
    at.chat_input[0].set_value(f"**Look** {TRAP} costs $5 and $10").run()
    assert not at.exception, at.exception
    reply = at.chat_message[1].markdown[-1].value
    page = RENDERER.render(reply)
    assert "<img" not in page
    assert "<strong>Look</strong>" in page                        # normal Markdown still works
    assert "costs $5 and $10" in page and "\\$5" in reply         # dollars escaped, shown as dollars
    # the thread title (from the message) is plain text in the sidebar
    [title] = [b.label for b in at.sidebar.button if b.label.startswith("▶")]
    assert "<" not in RENDERER.renderInline(title).replace("&lt;", "")


def test_an_assistant_name_and_description_are_not_markdown(signed_in, workspace):
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    [demo] = store.list_assistants(Actor("ada"))
    demo.name = f"**Bot** {TRAP} $5"
    demo.description = f"Says hi {TRAP}"
    store.save_assistant(demo, Actor("ada"))
    at = signed_in.run()
    assert not at.exception, at.exception
    header = RENDERER.renderInline(at.title[0].value)
    assert "<img" not in header and "<strong>" not in header and "$5" in header
    assert "<img" not in RENDERER.render(at.caption[0].value)


def test_an_admin_reading_a_thread_sees_its_title_as_plain_text(workspace):
    from tests.app.conftest import accounts
    users = accounts(workspace)
    users.add_user("ada", "correct-horse", actor=OPERATOR)
    users.add_user("bob", "battery-staple", actor=OPERATOR)
    bob = login(new_app().run(), "bob", "battery-staple")
    bob.chat_input[0].set_value(f"{TRAP} $1 and $2").run()
    thread_id = Store(f"sqlite:///{workspace / 'studio.db'}").list_threads(Actor("bob"))[0].id
    ada = new_app()
    ada.query_params["thread"] = thread_id
    ada = login(ada.run(), "ada", "correct-horse")
    assert not ada.exception, ada.exception
    title = RENDERER.renderInline(ada.title[0].value)
    assert "<img" not in title and "$1 and $2" in title
    assert "<img" not in RENDERER.render(ada.chat_message[0].markdown[0].value)
