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
from studio.chat import CONTINUE_PROMPT
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
    as the user corrected them; "Continue" requests folded into the reply they continued), and
    the reply itself (its edited text, if edited). `where` names the conversation (e.g. "chat
    thread “Pricing” with Sam"). Raises DatasetError for a reply that cannot teach anything
    (rated 👎, cut off or stopped and not corrected, or empty)."""
    if reply.role != "assistant":
        raise DatasetError("Only an assistant's reply can become a training example.")
    if reply.rating == 0 and not reply.edited.strip():
        raise DatasetError("This reply is rated 👎 and not corrected: edit it to the reply you want, then add it.")
    if reply.cut_off and not reply.edited.strip():
        raise DatasetError("This reply was cut off by a length limit: correct it to the whole reply first.")
    if reply.stopped and not reply.edited.strip():
        raise DatasetError("This reply was stopped before it was finished: correct it to the whole reply first.")
    target = _clean(reply.edited or reply.content)
    if not target:
        raise DatasetError("The reply is empty: edit it first.")
    turns: list[dict] = []
    for m in history:
        text = _clean(m.edited or m.content)
        if m.role not in ("user", "assistant") or not text:
            continue
        if m.role == "user" and text == CONTINUE_PROMPT:
            continue               # its reply goes on with the one before
        if turns and turns[-1]["role"] == m.role:
            turns[-1]["content"] += ("\n\n" if m.role == "user" else " ") + text
        else:
            turns.append({"role": m.role, "content": text})
    turns = turns[-MAX_HISTORY_MESSAGES:]
    while turns and turns[0]["role"] != "user":   # a chat example starts with the user
        turns.pop(0)
    if turns and turns[-1]["role"] == "assistant":   # the reply continued an earlier one: one reply
        target = f"{turns.pop()['content']} {target}"
    if not turns:
        raise DatasetError("This reply has no user message before it.")
    system = _clean(system_prompt)
    messages = ([{"role": "system", "content": system}] if system else []) + turns
    messages.append({"role": "assistant", "content": target})
    how = ["corrected"] if reply.edited else []
    how += ["👍"] if reply.rating == 1 else ["👎"] if reply.rating == 0 else []
    origin = (f"{where}, reply {reply.id[-8:]} ({' · '.join(how) or 'as written'}), added by {user} "
              f"{utcnow():%Y-%m-%d %H:%M} UTC")
    return FeedbackExample(messages, origin)


def add_to_dataset(datasets: DatasetStore, name: str, new: list[FeedbackExample], actor: Actor,
                   model_dir: Path | None = None, data_dir: Path | None = None) -> DatasetVersion:
    """Save `new` as the next version of the actor's dataset `name` (made if it does not exist),
    after its existing rows, built the way the dataset was (its system prompt and response
    suffix); the whole set is checked again. Raises DatasetError (nothing added), StoreError
    (e.g. the dataset changed meanwhile in another tab: nothing added)."""
    if not new:
        raise DatasetError("There is nothing to add.")
    current = datasets.find(name, actor)
    if current is not None and current.prepared is None:
        raise DatasetError(f"'{name}' could not be read; nothing was added.")
    if current is not None and current.prepared.validation_given:
        raise DatasetError(f"'{current.name}' came with its own validation file, whose split would be lost: add "
                           "the reply to another dataset, or to the files and import them again.")
    old = current.prepared.examples if current is not None else []
    options = current.options if current is not None else PrepareOptions()
    system = _dataset_system(old, options)
    for example in new:
        _shape_like_dataset(example, system, options.suffix)
        for e in old:
            if e.messages == example.messages:
                raise DatasetError(f"This reply is already in '{current.name}' (row {e.row}): nothing was added.")
    first = max((e.row for e in old), default=0) + 1
    rows = [Example(e.row, e.messages, origin=e.origin) for e in old]
    rows += [Example(first + i, f.messages, origin=f.origin) for i, f in enumerate(new)]
    data = ("\n".join(json.dumps({"messages": e.messages}, ensure_ascii=False) for e in rows) + "\n").encode()
    label = original_source(current.source_name) + ADDED if current is not None else "rated replies"
    source = ChatSource(label, hashlib.sha256(data).hexdigest(), rows)
    prepared = prepare(source, options, model_dir=model_dir, data_dir=data_dir)
    return datasets.save_version(current.name if current is not None else name, prepared, actor, source_bytes=data,
                                 after_version=current.version if current is not None else 0)


ADDED = " + replies"


def original_source(source_name: str) -> str:
    """The file a dataset was first made from (its rows without an origin come from there)."""
    return source_name.removesuffix(ADDED)


def _clean(text: str) -> str:
    return (text or "").replace("\x00", "").strip()


_KEEP = object()   # the reply's own system prompt stays


def _dataset_system(old: list[Example], options: PrepareOptions):
    """The system prompt the dataset's rows share: its option, else the one every row has (None:
    the rows have none); _KEEP when they differ or there are no rows yet."""
    if options.system_prompt.strip():
        return options.system_prompt.strip()
    firsts = {e.messages[0]["content"] if e.messages and e.messages[0].get("role") == "system" else None
              for e in old if e.messages}
    return firsts.pop() if len(firsts) == 1 else _KEEP


def _shape_like_dataset(example: FeedbackExample, system, suffix: str) -> None:
    if system is not _KEEP:
        body = [m for m in example.messages if m["role"] != "system"]
        example.messages = ([{"role": "system", "content": system}] if system else []) + body
    signature = suffix.strip()
    last = example.messages[-1]
    if signature and not last["content"].rstrip().endswith(signature):
        last["content"] += suffix
