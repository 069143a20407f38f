"""Rated and corrected replies become training examples: the conversation that led to a reply,
with the reply as the user wants it, added to a new or existing dataset as a new version.

Each added row records where it came from (`Example.origin`), which the fine-tuning page
shows. The dataset is checked again as a chat JSONL with its own options (split seed,
exclusions, base model), so an added row is validated like any other.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from studio.datasets.prepare import prepare
from studio.datasets.storage import DatasetStore
from studio.datasets.types import ChatSource, DatasetError, DatasetVersion, Example, PrepareOptions
from studio.store import Actor
from studio.types import Message, utcnow

MAX_HISTORY_MESSAGES = 20     # the newest turns before the reply; a long chat is not one example


@dataclass
class FeedbackExample:
    """A reply made into chat-format messages, and a sentence saying where it came from."""
    messages: list[dict]
    origin: str


def example_from_reply(history: list[Message], reply: Message, system_prompt: str, where: str,
                       user: str) -> FeedbackExample:
    """The example a reply makes: `system_prompt`, the conversation before it (earlier replies
    as the user corrected them), and the reply itself (its edited text, if edited). `where`
    names the conversation (e.g. "chat thread “Pricing” with Sam"). Raises DatasetError for a
    reply that cannot teach anything (thumbs down and not corrected, or empty)."""
    if reply.role != "assistant":
        raise DatasetError("Only an assistant's reply can become a training example.")
    if reply.rating == 0 and not reply.edited.strip():
        raise DatasetError("This reply is rated 👎 and not corrected: edit it to the reply you want, then add it.")
    target = (reply.edited or reply.content).strip()
    if not target:
        raise DatasetError("The reply is empty: edit it first.")
    turns = [m for m in history if m.role in ("user", "assistant") and (m.edited or m.content).strip()]
    turns = turns[-MAX_HISTORY_MESSAGES:]
    while turns and turns[0].role != "user":   # a chat example starts with the user
        turns.pop(0)
    if not turns or turns[-1].role != "user":
        raise DatasetError("This reply has no user message before it.")
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt.strip() else [])
    messages += [{"role": m.role, "content": (m.edited or m.content).strip()} for m in turns]
    messages.append({"role": "assistant", "content": target})
    how = ("corrected" if reply.edited else "") + (" · 👍" if reply.rating == 1 else " · 👎" if reply.rating == 0
                                                    else "")
    origin = f"{where}, reply {reply.id[-8:]} ({how.strip(' ·') or 'as written'}), added by {user} " \
             f"{utcnow():%Y-%m-%d %H:%M} UTC"
    return FeedbackExample(messages, origin)


def add_to_dataset(datasets: DatasetStore, name: str, new: list[FeedbackExample], actor: Actor,
                   model_dir: Path | None = None, data_dir: Path | None = None) -> DatasetVersion:
    """Save `new` as the next version of the actor's dataset `name` (made if it does not exist),
    after its existing rows; the whole set is checked again (a dataset imported with its own
    validation file is split by its seed from then on). Raises DatasetError, StoreError."""
    if not new:
        raise DatasetError("There is nothing to add.")
    current = datasets.find(name, actor)
    if current is not None and current.prepared is None:
        raise DatasetError(f"'{name}' could not be read; nothing was added.")
    old = current.prepared.examples if current is not None else []
    options = current.options if current is not None else PrepareOptions()
    if options.system_prompt:     # the dataset's own system prompt, which its model was trained with
        for example in new:
            body = [m for m in example.messages if m["role"] != "system"]
            example.messages = [{"role": "system", "content": options.system_prompt}, *body]
    first = max((e.row for e in old), default=0) + 1
    rows = [Example(e.row, e.messages, origin=e.origin or _from_source(current, e.row)) for e in old]
    rows += [Example(first + i, f.messages, origin=f.origin) for i, f in enumerate(new)]
    data = ("\n".join(json.dumps({"messages": e.messages}, ensure_ascii=False) for e in rows) + "\n").encode()
    label = f"{current.source_name} + replies" if current is not None else "rated replies"
    if current is not None and current.source_name.endswith(" + replies"):
        label = current.source_name
    source = ChatSource(label, hashlib.sha256(data).hexdigest(), rows)
    prepared = prepare(source, options, model_dir=model_dir, data_dir=data_dir)
    return datasets.save_version(current.name if current is not None else name, prepared, actor, source_bytes=data)


def _from_source(version: DatasetVersion | None, row: int) -> str:
    return f"{version.source_name}, row {row}" if version is not None else ""
