"""Counting words and characters: something language models are notoriously bad at."""
from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")       # "don't", "well-known" count as one word
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
WORDS_PER_MINUTE = 230                                 # a typical adult reading speed


def text_statistics(text: str, word: str | None = None) -> dict:
    """Count the words, characters, sentences, lines and paragraphs in a text.

    Also estimates reading time and, if `word` is given, how often that word
    occurs (case-insensitive, whole words only).

    Args:
        text: The text to analyse.
        word: Optional word to count occurrences of.
    """
    words = _WORD.findall(text)
    stripped = text.strip()
    stats = {
        "words": len(words),
        "characters": len(text),
        "characters_without_spaces": len(re.sub(r"\s", "", text)),
        "sentences": len(_SENTENCE_END.findall(stripped)) or (1 if words else 0),
        "lines": len(stripped.splitlines()) if stripped else 0,
        "paragraphs": len([p for p in re.split(r"\n\s*\n", stripped) if p.strip()]),
        "reading_time_minutes": round(len(words) / WORDS_PER_MINUTE, 1),
    }
    if word:
        target = word.strip().lower()
        stats["occurrences"] = {word: sum(1 for w in words if w.lower() == target)}
    return stats
