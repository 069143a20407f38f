"""Fitting a conversation into a model's context window."""
from __future__ import annotations

from typing import Callable

from studio.types import Message

PER_MESSAGE_OVERHEAD = 4   # role markers and separators, roughly, in chat templates


class ContextTooLong(ValueError):
    """Even the newest message alone does not fit."""


def approx_tokens(text: str) -> int:
    """A cheap estimate (~4 characters a token) for servers whose tokenizer we do not have."""
    return len(text) // 4 + 1


def fit_history(system: str, history: list[Message], budget: int,
                count: Callable[[str], int] = approx_tokens) -> list[dict]:
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
