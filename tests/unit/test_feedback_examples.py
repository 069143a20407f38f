"""Rated and corrected replies: kept with the message, and made into dataset rows that say where
they came from."""
from __future__ import annotations

from pathlib import Path

import pytest

from studio.datasets import PrepareOptions, prepare, read_source
from studio.datasets.feedback import add_to_dataset, example_from_reply
from studio.datasets.storage import DatasetStore
from studio.chat import CONTINUE_PROMPT
from studio.datasets.types import DatasetError
from studio.store import Actor, NotAllowed
from studio.types import AssistantSpec, Message, Thread

ROOT = Path(__file__).resolve().parents[2]
ADA = Actor("ada")


def chat() -> tuple[list[Message], Message]:
    history = [Message("user", "Loved the video!"), Message("assistant", "Thanks!", edited="Thank you so much! -Sam"),
               Message("user", "What camera do you use?")]
    return history, Message("assistant", "A camera.", rating=1, edited="A Sony A7 IV, mostly handheld. -Sam")


def test_a_reply_becomes_an_example_with_the_conversation_and_its_corrections():
    history, reply = chat()
    example = example_from_reply(history, reply, "You are Sam.", "chat thread “Camera”", "ada")
    assert example.messages == [
        {"role": "system", "content": "You are Sam."},
        {"role": "user", "content": "Loved the video!"},
        {"role": "assistant", "content": "Thank you so much! -Sam"},
        {"role": "user", "content": "What camera do you use?"},
        {"role": "assistant", "content": "A Sony A7 IV, mostly handheld. -Sam"}]
    assert "chat thread “Camera”" in example.origin and "corrected · 👍" in example.origin
    with pytest.raises(DatasetError, match="rated 👎 and not corrected"):
        example_from_reply(history, Message("assistant", "meh", rating=0), "", "x", "ada")


def test_feedback_is_stored_with_the_message(store):
    thread = Thread(owner="ada", assistant_id="a", provider="local", messages=[Message("user", "hi")])
    store.save_assistant(AssistantSpec(name="a", id="a", owner="ada"), ADA)
    store.save_thread(thread, ADA)
    reply = Message("assistant", "hello")
    store.add_message(thread, reply, ADA)
    store.set_feedback(thread, reply.id, ADA, edited="Hello there! -Sam")
    store.set_feedback(thread, reply.id, ADA, rating=1)       # e.g. from a tab that never saw the correction
    again = store.get_thread(thread.id, ADA).messages[-1]
    assert (again.rating, again.edited) == (1, "Hello there! -Sam")
    store.set_feedback(thread, reply.id, ADA, rating=None, edited="")
    again = store.get_thread(thread.id, ADA).messages[-1]
    assert (again.rating, again.edited) == (None, "")
    with pytest.raises(NotAllowed):
        store.set_feedback(thread, reply.id, Actor("bob", admin=True), rating=0)


def test_rows_are_added_to_a_new_or_an_existing_dataset_with_their_origin(store):
    datasets = DatasetStore(store.engine)
    history, reply = chat()
    example = example_from_reply(history, reply, "", "chat thread “Camera”", "ada")
    fresh = add_to_dataset(datasets, "from chat", [example], ADA)
    assert fresh.version == 1 and [e.origin for e in fresh.prepared.examples] == [example.origin]

    data = (ROOT / "data" / "samples" / "comments.csv").read_bytes()
    prepared = prepare(read_source(data, "comments.csv"),
                       PrepareOptions("comment", "reply", system_prompt="You are Sam.", seed=7))
    first = datasets.save_version("comments", prepared, ADA, source_bytes=data)
    second = add_to_dataset(datasets, "Comments", [example], ADA)
    assert second.version == 2 and second.name == first.name
    rows = datasets.get_version(second.id, ADA).prepared.examples
    assert len(rows) == len(prepared.examples) + 1
    added = rows[-1]
    assert added.origin == example.origin and added.row == max(e.row for e in prepared.examples) + 1
    assert added.messages[0] == {"role": "system", "content": "You are Sam."}     # the dataset's own prompt
    assert rows[0].origin == "" and datasets.get_version(second.id, ADA).source_name == "comments.csv + replies"
    # the old rows keep their side of the split (same seed, their own prompts)
    before = {e.row: e.split for e in prepared.examples}
    moved = [e.row for e in rows[:-1] if e.split != before[e.row]]
    assert len(moved) <= 1


def test_added_rows_are_built_like_the_dataset_and_not_added_twice(store):
    datasets = DatasetStore(store.engine)
    data = (ROOT / "data" / "samples" / "comments.csv").read_bytes()
    prepared = prepare(read_source(data, "comments.csv"), PrepareOptions("comment", "reply", suffix=" -Sam"))
    datasets.save_version("signed", prepared, ADA, source_bytes=data)
    history, reply = chat()
    reply.edited = "A Sony A7 IV."
    example = example_from_reply(history, reply, "", "chat", "ada")
    version = add_to_dataset(datasets, "signed", [example], ADA)
    assert version.prepared.examples[-1].messages[-1]["content"] == "A Sony A7 IV. -Sam"
    again = example_from_reply(history, reply, "", "chat", "ada")
    with pytest.raises(DatasetError, match="already in 'signed'"):
        add_to_dataset(datasets, "signed", [again], ADA)


def test_a_version_saved_meanwhile_is_not_overwritten(store, monkeypatch):
    from studio.store import StoreError
    datasets = DatasetStore(store.engine)
    history, reply = chat()
    add_to_dataset(datasets, "race", [example_from_reply(history, reply, "", "chat", "ada")], ADA)
    real_find = datasets.find
    stale = real_find("race", ADA)
    add_to_dataset(datasets, "race", [example_from_reply(history[:1], Message("assistant", "x"), "", "b", "ada")], ADA)
    monkeypatch.setattr(datasets, "find", lambda *a, **k: stale)     # the other tab read v1 before v2 was saved
    with pytest.raises(StoreError, match="changed meanwhile"):
        add_to_dataset(datasets, "race", [example_from_reply(history, Message("assistant", "y"), "", "c", "ada")],
                       ADA)


def test_cut_off_replies_continuations_and_validation_files():
    history = [Message("user", "Tell me everything"), Message("assistant", "Part one"),
               Message("user", CONTINUE_PROMPT)]
    with pytest.raises(DatasetError, match="cut off"):
        example_from_reply(history, Message("assistant", "and part", cut_off=True), "", "x", "ada")
    with pytest.raises(DatasetError, match="stopped before it was finished"):   # the user stopped it
        example_from_reply(history, Message("assistant", "and part", stopped=True), "", "x", "ada")
    corrected = Message("assistant", "and part", stopped=True, edited="and part two.")
    assert example_from_reply(history, corrected, "", "x", "ada").messages[-1]["content"] == "Part one and part two."
    example = example_from_reply(history, Message("assistant", "part two."), "", "x", "ada")
    assert example.messages == [{"role": "user", "content": "Tell me everything"},
                                {"role": "assistant", "content": "Part one part two."}]


def test_a_dataset_with_its_own_validation_file_is_not_resplit(store):
    from studio.datasets.reading import read_chat_jsonl
    datasets = DatasetStore(store.engine)
    line = b'{"messages": [{"role": "user", "content": "q%d"}, {"role": "assistant", "content": "a%d"}]}\n'
    train = read_chat_jsonl(b"".join(line % (i, i) for i in range(12)), "train.jsonl")
    valid = read_chat_jsonl(b"".join(line % (i, i) for i in range(20, 23)), "valid.jsonl", source_file="validation")
    datasets.save_version("given", prepare(train, PrepareOptions(), validation_source=valid), ADA)
    history, reply = chat()
    with pytest.raises(DatasetError, match="own validation file"):
        add_to_dataset(datasets, "given", [example_from_reply(history, reply, "", "x", "ada")], ADA)
