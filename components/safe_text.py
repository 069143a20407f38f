"""Untrusted text (model output, thread titles, assistant and user names) for Streamlit's Markdown.

The escaping is plain Python in studio/safe_markdown.py (the thread export uses it too):
- `safe_markdown`: keeps bold, lists, links, tables and code; every `![` loses its image meaning
  (shown as typed) and `$` stays a dollar. Code blocks are left as they are.
- `safe_stream`: the same for a reply as it streams in (for st.write_stream), in linear time.
- `plain`: for titles, buttons and headers: no Markdown at all.
- `inline_code`: text shown as one code span whatever backticks it holds.
"""
from studio.safe_markdown import inline_code, plain, safe_markdown, safe_stream

__all__ = ["inline_code", "plain", "safe_markdown", "safe_stream"]
