"""Pages of text into overlapping chunks, counted in the embedding model's tokens.

A chunk never spans two pages (so its page number is exact) and never starts or ends inside a
word. Its text is cut from the page as written, by the tokenizer's character offsets.
"""
from __future__ import annotations

from dataclasses import dataclass

from studio.knowledge.embedding import MAX_TOKENS, tokenizer
from studio.knowledge.extract import Page

DEFAULT_SIZE = 200       # tokens; MiniLM reads at most 256, so a chunk is embedded whole
DEFAULT_OVERLAP = 40
MIN_SIZE = 32


@dataclass
class Chunk:
    """A passage of a file: its text, page (or None) and token span within the page."""
    text: str
    page: int | None
    start_token: int
    end_token: int


def check_sizes(size: int, overlap: int) -> None:
    """ValueError with the rule when the chunk settings are unusable."""
    if not MIN_SIZE <= size <= MAX_TOKENS:
        raise ValueError(f"Chunk size must be between {MIN_SIZE} and {MAX_TOKENS} tokens "
                         f"(the embedding model reads at most {MAX_TOKENS}).")
    if not 0 <= overlap <= size // 2:
        raise ValueError(f"Overlap must be between 0 and half the chunk size ({size // 2} tokens).")


def chunk_pages(pages: list[Page], size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    """Windows of `size` tokens, each starting `size - overlap` tokens after the last."""
    check_sizes(size, overlap)
    chunks: list[Chunk] = []
    for page in pages:
        chunks.extend(_chunk_text(page.text, page.number, size, overlap))
    return chunks


def _chunk_text(text: str, page: int | None, size: int, overlap: int) -> list[Chunk]:
    encoding = tokenizer().encode(text, add_special_tokens=False)
    offsets = encoding.offsets
    words = encoding.word_ids          # tokens of one word share an id
    total = len(offsets)
    chunks, start = [], 0
    while start < total:
        end = min(start + size, total)
        while end < total and end > start + 1 and words[end] is not None and words[end] == words[end - 1]:
            end -= 1                   # do not split a word between two chunks
        piece = text[offsets[start][0]:offsets[end - 1][1]].strip()
        if piece:
            chunks.append(Chunk(piece, page, start, end))
        if end >= total:
            break
        nxt = max(end - overlap, start + 1)
        while nxt < end and words[nxt] is not None and words[nxt] == words[nxt - 1]:
            nxt += 1                   # start on a word's first piece
        start = nxt
    return chunks
