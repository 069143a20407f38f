"""Thread export from the chat page: the downloaded files hold the conversation."""
import json

from tests.app.test_chat_page import send


def test_exported_markdown_and_json_hold_the_conversation(signed_in, downloads):
    at = send(signed_in, "Export me: 5 $ and 7 $ please")
    assert not at.exception, at.exception
    markdown = next(data for name, data in downloads.values() if name and name.endswith(".md"))
    markdown = markdown.decode() if isinstance(markdown, bytes) else markdown
    assert "## You\n\nExport me: 5 $ and 7 $ please" in markdown
    assert "## Comment responder" in markdown

    raw = next(data for name, data in downloads.values() if name and name.endswith(".json"))
    thread = json.loads(raw)
    assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]
    assert thread["messages"][0]["content"] == "Export me: 5 $ and 7 $ please"
    assert thread["messages"][1]["content"].strip()
    assert thread["assistant"]["name"] == "Comment responder"
