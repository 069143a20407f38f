"""Token counts against known values, and the exact bytes of every export format."""
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from studio.datasets import (PrepareOptions, count_tokens, counter_for, export_files, openai_jsonl, prepare,
                             read_source, sharegpt_json, write_files)
from studio.datasets.tokens import encoding_for, estimate_counter

MODEL_DIR = Path(os.environ["STUDIO_MODEL_CACHE"])
EXAMPLE = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Great video 🎉"},
           {"role": "assistant", "content": "Thanks, \"glad\" it helped – really!\n-Sam"}]


@pytest.mark.parametrize("encoding, text, ids", [
    # Published tiktoken outputs (OpenAI's "How to count tokens with tiktoken").
    ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ("o200k_base", "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
    ("cl100k_base", "hello world", [15339, 1917]),
    ("o200k_base", "hello world", [24912, 2375]),
])
def test_openai_vocabularies_ship_offline_and_match_tiktoken(encoding, text, ids):
    import quicktok
    assert list(quicktok.get_encoding(encoding).encode(text)) == ids


def test_openai_example_tokens_are_content_plus_four_per_message():
    counter = counter_for("gpt-4o-mini-2024-07-18")
    assert counter.exact and counter.name == "o200k_base (quicktok)"
    import quicktok
    enc = quicktok.get_encoding("o200k_base")
    content = sum(len(enc.encode(m["content"])) for m in EXAMPLE)
    assert count_tokens([EXAMPLE], "gpt-4o-mini-2024-07-18") == [content + 4 * 3]
    assert encoding_for("gpt-4.1-mini-2025-04-14") == "o200k_base" and encoding_for("gpt-3.5-turbo") == "cl100k_base"


def test_the_embedded_models_count_is_its_chat_template_tokenized():
    from transformers import AutoTokenizer
    from studio.datasets.tokens import load_local_tokenizer
    load_local_tokenizer(MODEL_DIR)   # builds the tokenizer copy if the model cache is not there yet
    folder = MODEL_DIR / "smollm2-135m-instruct"
    folder = folder if (folder / "tokenizer.json").exists() else MODEL_DIR / "smollm2-135m-instruct-tokenizer"
    reference = AutoTokenizer.from_pretrained(folder)
    examples = [EXAMPLE, EXAMPLE[1:],   # no system message: the template adds its default one
                [{"role": "user", "content": "\n\n  leading space"}, {"role": "assistant", "content": "x  \n"}],
                [{"role": "user", "content": "数据科学 ünïcödé"}, {"role": "assistant", "content": "42 -Sam"},
                 {"role": "user", "content": "again?"}, {"role": "assistant", "content": "yes"}]]
    expected = [len(reference(reference.apply_chat_template(m, tokenize=False), add_special_tokens=False)["input_ids"])
                for m in examples]
    counter = counter_for("smollm2-135m-instruct", MODEL_DIR)
    assert counter.exact and counter.count_examples(examples) == expected


def test_a_tables_columns_count_as_its_examples_do():
    prompts = ["Great video 🎉", "Line\nbreak?", "two  spaces", "<|im_start|>user", "x", "数据科学 ünïcödé"]
    responses = ["Thanks -Sam", "Yes\r\nit works", " lead", "ok", "<|endoftext|>", "42"]
    for model in ("smollm2-135m-instruct", "gpt-4o-2024-08-06", "some-other-model"):
        counter = counter_for(model, MODEL_DIR)
        for system in ("", "You are Sam. Sign every reply '-Sam'."):
            examples = [([{"role": "system", "content": system}] if system else [])
                        + [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
                        for p, r in zip(prompts, responses, strict=True)]
            assert counter.count_chats(system, prompts, responses) == counter.count_examples(examples), (model, system)
        # A text of a str subclass (a hand-built table of numpy strings) is text in both.
        numpy_text = [[{"role": "user", "content": np.str_("hello there")}, {"role": "assistant", "content": "hi"}]]
        assert counter.count_examples(numpy_text) == counter.count_chats("", ["hello there"], ["hi"])
        with pytest.raises(ValueError):
            counter.count_chats("", prompts, responses[:-1])


def test_without_a_tokenizer_the_count_is_a_labelled_overestimate():
    counter = counter_for("some-other-model")
    assert not counter.exact and "estimate" in counter.name
    exact = counter_for("gpt-4o-2024-08-06").count_examples([EXAMPLE])[0]
    assert counter.count_examples([EXAMPLE])[0] >= exact
    assert estimate_counter("why").count_examples([[{"role": "user", "content": "日本語のテキスト"}]])[0] >= 8


def prepared_sample(tmp_path=None, **options):
    rows = [("Great video 🎉", 'Thanks, "glad" it helped – really! -Sam'), ("Line\nbreak?", "Yes\nit works -Sam"),
            ("Question, with comma", "Answer, with comma -Sam")]
    import csv
    out = io.StringIO()
    csv.writer(out).writerows([("comment", "reply"), *rows])
    options.setdefault("model", "gpt-4o-mini-2024-07-18")
    return prepare(read_source(out.getvalue().encode(), "c.csv"),
                   PrepareOptions("comment", "reply", system_prompt="Be kind.", validation_fraction=0.34, **options))


def test_openai_jsonl_bytes_are_exact():
    prepared = prepared_sample()
    data = openai_jsonl(prepared.examples[:2])
    expected = ('{"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": '
                '"Great video 🎉"}, {"role": "assistant", "content": "Thanks, \\"glad\\" it helped – really! -Sam"}]}\n'
                '{"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": '
                '"Line\\nbreak?"}, {"role": "assistant", "content": "Yes\\nit works -Sam"}]}\n').encode("utf-8")
    assert data == expected
    assert not data.startswith(b"\xef\xbb\xbf") and b"\r" not in data


def test_sharegpt_json_bytes_are_exact():
    prepared = prepared_sample()
    data = sharegpt_json(prepared.examples[:1])
    assert data == ('[\n  {\n    "conversations": [\n      {\n        "from": "system",\n        "value": "Be kind."\n'
                    '      },\n      {\n        "from": "human",\n        "value": "Great video 🎉"\n      },\n'
                    '      {\n        "from": "gpt",\n        "value": "Thanks, \\"glad\\" it helped – really! -Sam"\n'
                    '      }\n    ]\n  }\n]\n').encode("utf-8")


def test_parquet_holds_the_same_messages():
    import pyarrow.parquet as pq
    prepared = prepared_sample()
    files = export_files(prepared)
    assert sorted(files) == ["train.jsonl", "train.parquet", "train.sharegpt.json", "validation.jsonl",
                             "validation.parquet", "validation.sharegpt.json"]
    table = pq.read_table(io.BytesIO(files["train.parquet"]))
    assert table.column_names == ["messages"]
    assert table.column("messages").to_pylist() == [e.messages for e in prepared.train]


def test_written_files_round_trip_and_describe_the_dataset(tmp_path):
    prepared = prepared_sample()
    write_files(prepared, tmp_path / "out")
    out = tmp_path / "out"
    lines = (out / "train.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and [json.loads(x) for x in lines[:-1]] == [e.to_json() for e in prepared.train]
    assert [json.loads(x) for x in (out / "validation.jsonl").read_text().splitlines()] == \
        [e.to_json() for e in prepared.validation]
    shared = json.loads((out / "validation.sharegpt.json").read_text(encoding="utf-8"))
    assert shared[0]["conversations"][1]["from"] == "human"
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["options"]["seed"] == 0 and manifest["counts"]["train"] == prepared.counts.train
    assert manifest["source"]["sha256"] == prepared.source_sha256
    # Writing a version without validation examples removes the old validation files.
    write_files(_no_validation(prepared), out)
    assert not (out / "validation.jsonl").exists() and (out / "train.jsonl").exists()


def _no_validation(prepared):
    from dataclasses import replace
    examples = [replace(e, split="train") for e in prepared.examples]
    return replace(prepared, examples=examples)


def test_openai_jsonl_is_json_dumps_of_each_example_whatever_its_shape():
    from studio.datasets.types import Example
    shapes = [EXAMPLE, EXAMPLE[1:], [{"content": "Be kind.", "role": "system"}] + EXAMPLE[1:],
              [EXAMPLE[0], {"role": "user", "content": "x", "name": "amy"},
               {"role": "assistant", "content": "y", "weight": 0}], [{"role": "system", "content": 5}],
              [{"role": "user", "content": "é\"\\\n\t\u2028\x00\x7f🎉 </script>"},
               {"role": "assistant", "content": "Be kind."}]]
    examples = [Example(i, m) for i, m in enumerate(shapes * 2)]
    assert openai_jsonl(examples) == "".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n"
                                             for m in shapes * 2).encode("utf-8")


def test_a_table_rows_example_is_an_example_whose_messages_are_made_when_read():
    import copy
    import dataclasses
    import pickle

    from studio.datasets.types import Example, TableExample

    def dumped(examples):
        return "".join(json.dumps({"messages": e.messages}, ensure_ascii=False) + "\n" for e in examples).encode()

    rows = TableExample.from_table([2, 3, 4], "Sign '-Sam'.", ["Hi \"there\"", "é\n🎉", "Hi"], ["Yo -Sam", "ok\\", "x"])
    assert [(e.prompt, e.response, e.split, e.tokens, e.built) for e in rows[:2]] == \
        [('Hi "there"', "Yo -Sam", "train", 0, False), ("é\n🎉", "ok\\", "train", 0, False)]
    assert openai_jsonl(rows) == dumped(rows)                     # from the texts (nothing made yet)
    rows[0].messages[-1]["weight"] = 0                            # made on first read; changes stay
    rows[1].messages = [{"role": "user", "content": "new"}, {"role": "assistant", "content": "reply"}]
    assert rows[0].messages[-1] == {"role": "assistant", "content": "Yo -Sam", "weight": 0}
    assert rows[1].prompt == "new" and openai_jsonl(rows) == dumped(rows)
    assert openai_jsonl(TableExample.from_table([5], "", ["a"], ["b"])) == b'{"messages": [{"role": "user", ' \
        b'"content": "a"}, {"role": "assistant", "content": "b"}]}\n'
    for twin in (dataclasses.replace(rows[2], split="validation"), pickle.loads(pickle.dumps(rows[2])),
                 copy.deepcopy(rows[2])):
        assert twin.messages == rows[2].messages and twin.prompt == "Hi" and twin.response == "x"
    with pytest.raises(ValueError):
        TableExample.from_table([2, 3], "", ["a"], ["b", "c"])
    plain = Example(4, [{"role": "system", "content": "Sign '-Sam'."}, {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "x"}])
    fresh = TableExample.from_table([4], "Sign '-Sam'.", ["Hi"], ["x"])[0]
    assert fresh == plain and plain == fresh and fresh != dataclasses.replace(plain, tokens=3)


def test_threads_reading_a_table_rows_messages_at_once_get_one_list():
    import operator
    import sys
    import threading

    from studio.datasets.types import TableExample
    n = 100_000
    rows = TableExample.from_table(list(range(n)), "", ["p"] * n, ["r"] * n)
    seen: list[list] = [[], []]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)   # switch threads as often as possible
    try:
        threads = [threading.Thread(target=lambda out=out: out.extend(e.messages for e in rows)) for out in seen]
        [t.start() for t in threads]
        [t.join() for t in threads]
    finally:
        sys.setswitchinterval(interval)
    assert all(map(operator.is_, seen[0], seen[1]))


def test_fast_local_counts_match_the_tokenizer_on_odd_text():
    import random
    from studio.datasets.tokens import WordCachedCounter, load_local_tokenizer
    tokenizer = load_local_tokenizer(MODEL_DIR)
    assert WordCachedCounter.fits(tokenizer)
    rng = random.Random(0)
    alphabet = ([chr(c) for c in range(32, 127)] + list("éß–—“”’…€½²Ⅻ①数据科学日本語한국어Ελληνικάрусский")
                + ["🎉", "👍🏽", "\u200d", "\ufe0f", "\n", "\r\n", "\t", "  ", "\xa0", "\u3000", "\x85", "\u2028",
                   "\x1c", "'s", "'LL", "<|im_end|>", "<|endoftext|>", "123456"])
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(3000)]
    expected = [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    assert WordCachedCounter(tokenizer)(texts) == expected


def test_fast_local_counts_match_the_tokenizer_on_words_between_single_spaces():
    # The common shape (a comment or a reply, after the template's newline) takes the per-word path.
    import random
    from studio.datasets.tokens import WordCachedCounter, load_local_tokenizer
    tokenizer = load_local_tokenizer(MODEL_DIR)
    rng = random.Random(1)
    pieces = (["the", "The", "don't", "IT'S", "'s", "'ll", "you're", "42", "3.14", "1,000", "!!", "?", "--", "(a)",
               "\"quoted\"", "café", "naïve", "數據", "日本語", "한국어", "Ελληνικά", "🎉", "👍🏽", "a\u200db",
               "x\ufe0f", "<|im_end|>", "e-mail", "U.S.A.", "...", "'", "’s", "½", "①"])
    texts = []
    for _ in range(4000):
        words = " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        texts.append(rng.choice(["", "\n"]) + words + rng.choice(["", "", " ", "  ", "\n", "\t"]))
    texts += ["", "\n", " ", "\n ", "\n\n", "a  b", " a", "a "]
    counter = WordCachedCounter(tokenizer)
    for prefix in ("", "\n", "\t"):   # what the template writes before the text: counted with it
        expected = [len(e.ids) for e in tokenizer.encode_batch([prefix + t for t in texts], add_special_tokens=False)]
        assert counter(texts, prefix=prefix) == expected
        assert counter(texts[::-1], prefix=prefix) == expected[::-1]   # again, from what the first call kept
    assert len(counter.first) > 20 and len(counter.later) > 20   # most went word by word


def test_one_counter_shared_by_threads_with_a_small_cache_still_counts_exactly(monkeypatch):
    import random
    from concurrent.futures import ThreadPoolExecutor

    from studio.datasets.tokens import WordCachedCounter, load_local_tokenizer
    tokenizer = load_local_tokenizer(MODEL_DIR)
    monkeypatch.setattr(WordCachedCounter, "MAX_CACHED", 2000)   # full again and again while others read it
    counter = WordCachedCounter(tokenizer)
    rng = random.Random(2)
    words = [f"w{n}" for n in range(20000)] + ["don't", "!!", "café", "数据"]
    batches = [[" ".join(rng.choice(words) for _ in range(rng.randint(1, 9))) + rng.choice(["", "", "\t"])
                for _ in range(200)] for _ in range(40)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda batch: counter(batch, prefix="\n"), batches))
    for batch, counts in zip(batches, results, strict=True):
        expected = tokenizer.encode_batch(["\n" + t for t in batch], add_special_tokens=False)
        assert counts == [len(e.ids) for e in expected]


def test_a_character_newer_than_pythons_unicode_tables_is_counted_by_the_tokenizer():
    from studio.datasets.tokens import WordCachedCounter, load_local_tokenizer
    tokenizer = load_local_tokenizer(MODEL_DIR)
    texts = ["\u0558's", "x \ua7ce's y", "\U000187f8'll"]   # assigned after this Python's Unicode 14
    assert WordCachedCounter(tokenizer)(texts) == [len(tokenizer.encode(t, add_special_tokens=False).ids)
                                                   for t in texts]
