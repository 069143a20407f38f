"""Untrusted text never loads anything remote and `$` stays a dollar; normal Markdown survives.

Rendered here with markdown-it (a CommonMark renderer, like Streamlit's) to check what a browser
would be given.
"""
import html
import random
import re

import pytest
from markdown_it import MarkdownIt

import studio.safe_markdown as safe_markdown_module
from components.safe_text import inline_code, plain, safe_markdown, safe_stream
from studio.safe_markdown import PARSE_ALLOWANCE, PARSE_RATE, StreamRender, safe_file_markdown

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


# --- streaming: incremental, equal to the full rendering, linear -------------------------

DOCUMENTS = [
    "Hello **world** costs $5, see `code $y` then\n```bash\necho $HOME\n```\nbye ![z](q) \\$ end",
    "1. step\n   ```python\n   print('$')\n   ```\n2. next ![i](u)\n10. ten $\n\n-     code in an item $",
    "| a | b |\n|---|---|\n| `x | $y$ `| y |\n| 1 | $2 |\n| `$ok` | ![i](u) |\nshort\n\ntext $1",
    "a | b\n-- | --\n`c | $d` | e\n\n- x | y\n  - | -\n  z\n\ntext `a | $b` end\n| h |\n|---|\n| `$1` |",
    "para $1\n```\ncode $x\n![a](b)\n  ```\nafter ![c](d) $2\n\n~~~~\n~~~\nin $\n~~~~~\nout $",
    "\t```\n\tcode\n```\n$\n  \t~~~\n~~~\n$x\n```\n``` x\n````\n$y ![a](b)\n```   \nout $",
    "> quote ![q](u)\n> ```\n> code $x\n> ```\n>     ind $\nlazy $y\n\n    indented $z\n    ![a](b)\n\npara",
    "- a $1\n- b\n  ```\n  $code\n  ```\n- c | d\n-|-\n- e ![x](y)\n\n* x\n\n  more $\n\n      code $ in item",
    "Title\n=====\n\ntext\n---\n# H $1\n***\n<div>\n$raw ![x](y)\n</div>\n\n<!-- c $ ![x](y)\n-->\nend $",
    "[r]: http://h/ref.png\n'ti\ntle'\n    code?\n\n![ref][r] $\n\n[foo]:\n/url\n\n    after ref $",
    "x\r\ny $\r\n```\r\n$ code\r\n```\r\nz ![a](b)\r",
    "`` a ` $b `` and ``` c `` $d ``` and `unclosed $e\n`\n\\`$ \\\\`$x` ",
    ">x\n>`y $`\n>```\n>$z\n\n12. item $\n\n1234567890. not $\n",
]


def stream(text: str, deltas: list[str]) -> str:
    """Feed `deltas` one by one; at every step the display must be the full rendering of the
    text so far; returns everything shown."""
    render, so_far, shown = StreamRender(), "", ""
    for delta in deltas:
        so_far += delta
        shown += render.feed(delta)
        assert not render.stalled
        assert shown == safe_markdown(so_far, partial=True), so_far
    shown += render.finish()
    assert not render.stalled
    return shown


def random_deltas(rng: random.Random, text: str) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(1, len(text) // 2)))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_streamed_rendering_equals_the_full_rendering_at_every_step(text):
    rng = random.Random(text)
    for deltas in [list(text), *(random_deltas(rng, text) for _ in range(25))]:
        assert stream(text, deltas) == safe_markdown(text)


def test_a_long_mixed_reply_streams_to_its_full_rendering():
    rng = random.Random(3)
    for _ in range(15):
        text = rng.choice(["\n\n", "\n"]).join(rng.choice(DOCUMENTS) for _ in range(8))
        assert stream(text, re.findall(r"\s*\S+|\s+", text)) == safe_markdown(text)


def reply(deltas: int, block: str | None = None) -> list[str]:
    """A model-like reply of about `deltas` word-sized deltas: prose with dollars and images,
    lists, code, tables, quotes; or `block` repeated line after line."""
    rng = random.Random(deltas)
    if block is None:
        blocks = ["Costs $5 ![c](http://h/c.png) and **more** words with `echo $HOME` in them. " * 4,
                  "\n".join(f"- item {i} at $3" for i in range(6)),
                  "```bash\n" + "echo $PATH ![x](y) | tee log\n" * 8 + "```",
                  "| a | b |\n|---|---|\n" + "\n".join(f"| {i} | `$x` ![i](u) |" for i in range(6)),
                  "> quoted $1\n> twice ![q](u)", "## Heading $2"]
        text = ""
        while len(re.findall(r"\s*\S+|\s+", text)) < deltas:
            text += rng.choice(blocks) + "\n\n"
    else:
        text = "\n".join([block] * deltas)
    return re.findall(r"\s*\S+|\s+", text)[:deltas]


def parsed_characters(monkeypatch, deltas: list[str]) -> int:
    """Characters handed to markdown-it to stream `deltas` (the final rendering included)."""
    counted = [0]
    original = safe_markdown_module._tokens

    def counting(text):
        counted[0] += len(text)
        return original(text)

    monkeypatch.setattr(safe_markdown_module, "_tokens", counting)
    shown = "".join(safe_stream(deltas))
    monkeypatch.setattr(safe_markdown_module, "_tokens", original)
    assert shown == safe_markdown("".join(deltas))
    return counted[0]


def test_a_5000_delta_reply_is_parsed_in_linear_time(monkeypatch):
    small, large = reply(1000), reply(5000)
    per_char_small = parsed_characters(monkeypatch, small) / len("".join(small))
    per_char_large = parsed_characters(monkeypatch, large) / len("".join(large))
    # Re-parsing the whole text at every delta would read about 2,500 characters per character
    # here; linear work reads a few, and no more per character for a reply five times as long.
    assert per_char_large < 8
    assert per_char_large < per_char_small * 1.5


@pytest.mark.parametrize("block", ["> a long block quote costs $5 ![q](u)",
                                   "  - a nested list item at $5 ![q](u)",
                                   "a paragraph wrapped at every line, $5 ![q](u)"])
def test_a_long_block_with_no_restart_point_stays_linear(monkeypatch, block):
    deltas = reply(5000, block)
    size = len("".join(deltas))
    assert parsed_characters(monkeypatch, deltas) <= (PARSE_RATE + 1) * size + PARSE_ALLOWANCE


# --- tables and files ---------------------------------------------------------------------

def test_dollars_in_a_code_span_that_a_table_cell_cuts_are_escaped():
    table = "| a | b |\n|---|---|\n| `x | $y$ `| z |\n| `$HOME` | b |"
    out = safe_markdown(table)
    assert "`x | \\$y\\$ `" in out          # markdown-it and GFM split the cell first: no span
    assert "`$HOME`" in out                  # a span inside one cell is code: left as typed
    assert "<code>x | $y$ </code>" not in rendered(out) and "<code>$HOME</code>" in rendered(out)
    prose = "Run `echo $HOME | grep x` first."
    assert safe_markdown(prose) == prose     # outside a table the pipe cuts nothing


def test_a_file_shows_raw_html_as_typed_and_closes_a_fence_left_open():
    viewer = MarkdownIt("commonmark", {"html": True}).enable("table")
    text = 'Hi <img src="http://h/x.png"> <script>alert(1)</script> $5 `<b>`\n\n```\nopen ![x](y)'
    page = viewer.render(safe_file_markdown(text) + "\n\n```\n![x](http://h/after.png)\n```\n")
    assert "<img" not in page and "<script" not in page
    assert "$5" in page and "<code>&lt;b&gt;</code>" in page
    assert "open ![x](y)" in page and "![x](http://h/after.png)\n</code>" in page   # code stays code
