"""Untrusted text never loads anything remote and `$` stays a dollar; normal Markdown survives.

Rendered here with markdown-it (a CommonMark renderer, like Streamlit's) to check what a browser
would be given.
"""
import html
import random
import re

import pytest
from markdown_it import MarkdownIt

from components.safe_text import inline_code, plain, safe_markdown, safe_stream

RENDERER = MarkdownIt("commonmark").enable(["table", "strikethrough"])

ATTACKS = [
    "![](http://127.0.0.1:9/?q=secret)",
    "Sure! ![logo](http://h/a.png \"t\") done",
    "![ref][r]\n\n[r]: http://h/ref.png",
    "![collapsed][]\n\n[collapsed]: http://h/c.png",
    "[![nested](http://h/n.png)](http://h/link)",
    "| a | b |\n|---|---|\n| `x | ![](http://h/t.png) `| y |",
    "`unclosed ![](http://h/odd.png)",
    "> quoted ![](http://h/q.png)",
    "- item ![](http://h/l.png)\n  - deeper ![](http://h/d.png)",
    "\\\\![](http://h/bs.png)",
    "text\n    ```\n![](http://h/after-indented.png)",
]


def rendered(markdown: str) -> str:
    return RENDERER.render(markdown)


@pytest.mark.parametrize("text", ATTACKS)
def test_no_image_survives(text):
    assert "<img" not in rendered(safe_markdown(text))
    assert "<img" in rendered(text)   # the attack was real


def test_dollars_stay_dollars():
    out = safe_markdown("It costs $5, or $10 with tax. $$x$$")
    assert out == "It costs \\$5, or \\$10 with tax. \\$\\$x\\$\\$"
    assert "It costs $5, or $10 with tax." in html.unescape(rendered(out))
    assert safe_markdown("already \\$5") == "already \\$5"   # an escaped dollar is not escaped twice


def test_normal_markdown_and_code_are_kept():
    reply = ("**Bold** and *soft*\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
             "Run `echo $HOME` first.\n\n```bash\necho $PATH ![x](y)\n```\n\n[docs](https://example.com)")
    page = rendered(safe_markdown(reply))
    for part in ("<strong>Bold</strong>", "<em>soft</em>", "<li>one</li>", "<table>",
                 "<code>echo $HOME</code>", "echo $PATH ![x](y)\n</code>",
                 '<a href="https://example.com">docs</a>'):
        assert part in page


@pytest.mark.parametrize("text", ATTACKS + [
    "Hello **world** costs $5, see `code $y` then\n```bash\necho $HOME\n```\nbye ![z](q) \\$ end",
    "1. step\n   ```python\n   print('$')\n   ```\n2. next ![i](u)",
])
def test_streamed_text_is_safe_at_every_moment_and_ends_as_the_stored_rendering(text):
    rng = random.Random(text)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 12))))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        shown = ""
        for delta in safe_stream(chunks):
            shown += delta
            assert "<img" not in rendered(shown)
            outside_code = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?(```|$)", "", shown, flags=re.S))
            assert not re.search(r"(?<!\\)\$", outside_code)   # every dollar outside code escaped
        assert shown == safe_markdown(text)


def test_titles_and_names_are_plain_text():
    title = "1. **Big** ![x](http://h/t.png) costs $5 :red[alarm] <b>x</b> _a_ # [link](u)"
    inline = RENDERER.renderInline(plain(title))
    assert "<" not in inline.replace("&lt;", "")          # no tags: no strong, img, a, b
    assert html.unescape(inline) == title
    assert plain("two\nlines") == "two lines"


def test_inline_code_holds_any_backticks():
    for text in ("calc(1)", "a`b``c", "`edge`", "![](http://h/x.png)"):
        out = RENDERER.renderInline(inline_code(text))
        assert out.startswith("<code>") and html.unescape(out[6:-7]).strip() == text
