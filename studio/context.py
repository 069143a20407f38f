"""Fitting a conversation into a model's context window."""
from __future__ import annotations

import re
from typing import Callable

from studio.types import Message

PER_MESSAGE_OVERHEAD = 4   # role markers and separators, roughly, in chat templates


class ContextTooLong(ValueError):
    """Even the newest message alone does not fit."""


# What estimate_tokens counts, and what each costs. Calibrated against SmolLM2's tokenizer (a
# small, English-centric byte-level BPE vocabulary, so near the worst case among chat models):
# an English word costs one token per 4 letters; digits, ASCII punctuation and runs of layout
# whitespace often stand alone; any other character costs what its UTF-8 bytes can cost at most
# in a byte-level BPE (rare CJK characters take 3 tokens each, Hangul jamo 3, emoji 4).
_ASCII_WORD = re.compile(r"[A-Za-z]+")
_DIGIT = re.compile(r"[0-9]")
_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")
# A single space joins the word after it, but not a number (digits stand alone).
_LAYOUT = re.compile(r"[\t\n\v\f\r ]{2,}|[\t\n\v\f\r]| (?=[0-9])")
_PER_CHARACTER = (
    (re.compile(r"[\u0080-\u024f\u1e00-\u1eff]"), 2.0),   # accented Latin (2-3 bytes)
    (re.compile(r"[\u0250-\u07ff]"), 1.5),                 # Greek, Cyrillic, Hebrew, Arabic, ...
    (re.compile(r"[\u0800-\u1dff\u1f00-\uffff]"), 3.0),    # CJK, kana, Hangul, Thai, Indic, ...
    (re.compile(r"[\U00010000-\U0010ffff]"), 4.0),          # emoji, rare ideographs
)


def estimate_tokens(text: str) -> int:
    """A conservative token count for servers whose tokenizer we do not have.

    Meant never to count fewer tokens than a real tokenizer would, in any script: an
    undercount makes the server refuse the request, an overcount only drops older history
    sooner. (Four characters a token, the usual rule, undercounts Chinese or Japanese 3-4x.)
    """
    total = sum((len(word) + 3) // 4 for word in _ASCII_WORD.findall(text))
    total += len(_DIGIT.findall(text)) + len(_PUNCTUATION.findall(text))
    total += sum((len(run) + 1) // 2 for run in _LAYOUT.findall(text))
    for pattern, cost in _PER_CHARACTER:
        total += cost * len(pattern.findall(text))
    return int(total + 0.999) + 1


def fit_history(system: str, history: list[Message], budget: int,
                count: Callable[[str], int] = estimate_tokens) -> list[dict]:
    """Chat messages (system first) holding as much recent history as fits in `budget` tokens.

    The oldest turns are dropped first; raises ContextTooLong if the last message alone
    (with the system prompt) does not fit.
    """
    used = count(system) + PER_MESSAGE_OVERHEAD if system else 0
    kept: list[dict] = []
    for message in reversed(history):
        cost = count(message.content) + PER_MESSAGE_OVERHEAD
        if used + cost > budget:
            if not kept:
                raise ContextTooLong(
                    f"This message is too long for the model: about {cost} tokens, and with the "
                    f"instructions it can take only {max(budget - used, 0)} more. "
                    f"Shorten the message or the instructions.")
            break
        kept.append({"role": message.role, "content": message.content})
        used += cost
    kept.reverse()
    # A history must start with the user's turn for most chat templates.
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return ([{"role": "system", "content": system}] if system else []) + kept


def history_messages(system: str, thread_messages: list[Message], budget: int,
                     count: Callable[[str], int] = estimate_tokens) -> list[dict]:
    """The chat messages for a thread the app keeps: system prompt, the newest history that
    fits `budget`, and the new (last) message. Raises ContextTooLong like fit_history.

    Replies left empty by failed turns are skipped, and consecutive messages of one role (a
    message that got no reply, then the next) are merged: many chat templates insist that
    user and assistant alternate.
    """
    last = thread_messages[-1]
    history = [m for m in thread_messages if m is last or m.content.strip()]
    return merge_same_role(fit_history(system, history, budget, count))


def merge_same_role(messages: list[dict]) -> list[dict]:
    """Consecutive same-role messages (other than system) merged into one."""
    out: list[dict] = []
    for m in messages:
        if out and out[-1]["role"] == m["role"] != "system":
            out[-1] = {**out[-1], "content": out[-1]["content"] + "\n\n" + m["content"]}
        else:
            out.append(m)
    return out
