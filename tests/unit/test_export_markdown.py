"""The Markdown export opened in another viewer (one that renders raw HTML) loads nothing remote
and runs no HTML, whoever wrote the text: the user, the model, a tool or the assistant's name."""
from markdown_it import MarkdownIt

from studio.export import thread_to_markdown
from studio.types import AssistantSpec, Citation, Message, Thread, ToolCall

VIEWER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
IMG = "![x](http://127.0.0.1:9/{}.png)"


def test_an_exported_thread_loads_no_image_and_runs_no_html():
    spec = AssistantSpec(name=f"Bot {IMG.format('name')} <img src=http://h/n.png>")
    thread = Thread(owner="ada", assistant_id="a", provider="local", title=f"Title {IMG.format('title')}",
                    messages=[
        Message("user", "Price $5 <script>alert(1)</script>"),
        Message("assistant", f"See {IMG.format('reply')} <img src=\"http://h/h.png\">\n\n```\nleft open"),
        Message("assistant", f"```\n{IMG.format('in-code')}\n```\nafter", citations=[
            Citation(title=f"Source {IMG.format('citation')}")], tool_calls=[
            ToolCall(name="web", arguments={"q": IMG.format("args")},
                     result=f"one <img src=x>\n{IMG.format('result')} ```")]),
    ])
    markdown = thread_to_markdown(thread, spec)
    page = VIEWER.render(markdown)
    assert "<img" not in page and "<script" not in page
    assert "Price $5" in page                           # dollars as typed in a file
    # Code stays code: the fence the first reply left open is closed, so the second reply's
    # fence still holds its image as text.
    assert f"{IMG.format('in-code')}\n</code>" in page
    assert "<code>left open\n</code>" in page
    assert "## Bot " in markdown and "[1] Source" in markdown
