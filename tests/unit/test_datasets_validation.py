"""Each validation rule, the seeded split and the cost estimate, as a user of the wizard meets them."""
import json

import pytest

from studio.assistants import compile_instructions, load_demo_assistant
from studio.datasets import (DatasetError, PrepareOptions, auto_epochs, load_price_table, prepare, read_source,
                             save_price_override, system_prompt_from_assistant)
from studio.datasets.pricing import estimate_cost
from studio.datasets.validation import promised_signature

OPENAI = "gpt-4o-mini-2024-07-18"


def table(rows, header=("comment", "reply")):
    import csv
    import io
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return read_source(out.getvalue().encode(), "comments.csv")


def many(n, start=0):
    return [(f"Question number {i} about data", f"Answer number {i} -Sam") for i in range(start, start + n)]


def run(rows, **options):
    options.setdefault("model", OPENAI)
    return prepare(table(rows), PrepareOptions("comment", "reply", **options))


def codes(prepared, severity=None):
    return {(i.row, i.code) for i in prepared.issues if severity is None or i.severity == severity}


def jsonl_source(lines):
    return read_source(("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n").encode(), "t.jsonl")


def test_examples_are_openai_chat_messages_with_system_prompt_and_suffix():
    prepared = run([("Great video", "Thanks!")] + many(11), system_prompt="Be kind.", suffix=" -Sam",
                   validation_fraction=0)
    first = prepared.examples[0]
    assert first.row == 2
    assert first.messages == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Great video"},
                              {"role": "assistant", "content": "Thanks! -Sam"}]
    # A response that already ends with the signature does not get it twice; the report says so.
    assert prepared.examples[1].response == "Answer number 0 -Sam"
    assert (3, "suffix_present") in codes(prepared, "info")


def test_the_system_prompt_from_an_assistant_is_the_one_the_chat_sends():
    spec = load_demo_assistant("amy")
    text = system_prompt_from_assistant(spec)
    assert text == compile_instructions(spec)
    assert "Viewer comment: Could you do a video on gradient boosting next?" in text
    assert promised_signature(text) == "-Sam"


@pytest.mark.parametrize("prompt, response, code, reason", [
    ("", "Thanks -Sam", "empty_prompt", "the prompt is empty"),
    ("   ", "Thanks -Sam", "empty_prompt", "the prompt is only whitespace"),
    ("Nice", "", "empty_response", "the response is empty"),
    ("Nice", "\t ", "empty_response", "the response is only whitespace"),
])
def test_empty_or_blank_cells_leave_the_row_out_with_its_number(prompt, response, code, reason):
    prepared = run(many(12) + [(prompt, response)], strip_whitespace=False)
    [issue] = [i for i in prepared.issues if i.code == code]
    assert (issue.row, issue.severity) == (14, "error") and issue.message == f"{reason}: left out"
    bad = prepared.examples[-1]
    assert bad.split == "excluded" and bad.excluded_because == reason
    assert prepared.counts.excluded_for_errors == 1 and prepared.counts.kept == 12


def test_rows_the_user_excludes_are_counted_and_left_out():
    prepared = run(many(15), exclude_rows=frozenset({3, 5}))
    assert prepared.counts.rows == 15 and prepared.counts.kept == 13 and prepared.counts.excluded_by_user == 2
    assert {e.row for e in prepared.examples if e.split == "excluded"} == {3, 5}
    assert all(e.tokens > 0 for e in prepared.examples)   # excluded rows still show their size


@pytest.mark.parametrize("messages, code, words", [
    ([{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Hello"}], "wrong_roles",
     "start with a user"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}],
     "wrong_roles", "must alternate"),
    ([{"role": "user", "content": "a"}], "wrong_roles", "last message must be the assistant"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "c"}],
     "wrong_roles", "system message must come first"),
    ([{"role": "user", "content": "a"}, {"role": "bot", "content": "c"}], "wrong_roles", "role 'bot'"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": ["parts"]}], "not_text", "a list of parts"),
    ([{"role": "user", "content": 42}, {"role": "assistant", "content": "c"}], "not_text", "int as content"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "c", "weight": 2}], "bad_weight",
     "weight 2"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "c", "weight": True}], "bad_weight",
     "weight True"),
    ([{"role": "user", "content": "a", "weight": 0}, {"role": "assistant", "content": "c"}], "bad_weight",
     "only assistant messages"),
    (["not an object"], "wrong_shape", "is not an object"),
])
def test_imported_jsonl_with_wrong_roles_order_content_or_weight_is_reported(messages, code, words):
    good = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(12)]
    prepared = prepare(jsonl_source(good + [{"messages": messages}]), PrepareOptions(model=OPENAI))
    found = [i for i in prepared.issues if i.row == 13]
    assert any(i.code == code and words in i.message and i.severity == "error" for i in found), found
    assert prepared.examples[-1].split == "excluded" and prepared.counts.kept == 12


def test_weights_zero_and_one_are_kept_as_written():
    lines = [{"messages": [{"role": "user", "content": f"q{i}"},
                           {"role": "assistant", "content": f"a{i}", "weight": i % 2}]} for i in range(12)]
    prepared = prepare(jsonl_source(lines), PrepareOptions(model=OPENAI, validation_fraction=0))
    assert not [i for i in prepared.issues if i.severity == "error"]
    assert prepared.examples[1].messages[1] == {"role": "assistant", "content": "a1", "weight": 1}


def test_exact_and_normalized_duplicates_are_warnings_with_the_first_row():
    rows = many(12) + [("Question number 3 about data", "Answer number 3 -Sam"),
                       ("  question NUMBER 4 about data!!", "answer number 4 -sam")]
    prepared = run(rows)
    found = {(i.row, i.code): i.message for i in prepared.issues if i.severity == "warning"}
    assert found[(14, "duplicate")] == "repeats row 5 exactly"
    assert found[(15, "near_duplicate")] == "repeats row 6 apart from case, spacing or punctuation"
    assert prepared.counts.kept == 14   # warnings keep the row unless the user excludes it


def test_texts_normalized_together_equal_each_normalized_alone():
    # normalize_all joins the ASCII texts with NUL and works on the join: check it against
    # normalize() on texts with NUL, control characters, odd spacing and non-ASCII letters.
    import random
    from studio.datasets.validation import normalize, normalize_all
    rng = random.Random(0)
    alphabet = ([chr(c) for c in range(0, 128)] + ["  ", " ", " ", "Ab", "_x", "é", "ß", "–", "🎉", "ﬁ", "\u00a0",
                                                  "\u2028", "\x85", "İ", "Σ"])
    texts = ["".join(rng.choice(alphabet[:131 if n % 2 else None]) for _ in range(rng.randint(0, 30)))
             for n in range(3000)]   # every other text ASCII only
    texts += ["", "", " ", "\x00", "a\x00b", "!!", "Great video!!", "great  video", " \t\x1c "]
    assert normalize_all(texts) == [normalize(t) for t in texts]
    assert normalize_all([]) == [] and normalize_all([""]) == [""]
    assert normalize_all(["Great video!!", "great  video"]) == ["great video", "great video"]


def test_a_long_prompt_repeated_on_every_row_is_normalized_once(monkeypatch):
    # A class's dataset often asks one long question many times: checking it for duplicates
    # must not cost a normalization per row (it did: 20,000 rows took seconds, not a fraction).
    from studio.datasets import validation
    seen = []
    real = validation.normalize
    monkeypatch.setattr(validation, "normalize", lambda text: seen.append(text) or real(text))
    prompt = "Résumez cet article, s'il vous plaît : " + "données très intéressantes " * 50
    prepared = run([(prompt, f"Réponse {i} -Sam") for i in range(300)] + [(prompt, "Réponse 0 -Sam")])
    assert (302, "duplicate") in codes(prepared)
    assert seen.count(prompt) <= 1 and len(seen) <= 302


def test_a_repeated_prompt_never_lands_on_both_sides_of_the_split():
    rows = many(30) + [("Question number 7 about data", "Another reply -Sam")] * 3
    for seed in range(10):
        prepared = run(rows, seed=seed)
        sides = {e.split for e in prepared.examples if e.prompt == "Question number 7 about data"}
        assert len(sides) == 1
        assert not [i for i in prepared.issues if i.code == "train_validation_overlap"]


def test_the_same_prompt_in_given_train_and_validation_files_is_flagged():
    from studio.datasets import read_chat_jsonl
    train = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
             for i in range(12)]
    val = [{"messages": [{"role": "user", "content": "Q3!"}, {"role": "assistant", "content": "b"}]}]
    validation = read_chat_jsonl((json.dumps(val[0]) + "\n").encode(), "v.jsonl", source_file="validation")
    prepared = prepare(jsonl_source(train), PrepareOptions(model=OPENAI), validation_source=validation)
    assert prepared.counts.train == 12 and prepared.counts.validation == 1
    [issue] = [i for i in prepared.issues if i.code == "train_validation_overlap"]
    assert issue.row == 13 and issue.message == "its prompt is also in the training set (row 4)"


def test_examples_over_the_models_token_limit_are_left_out(tmp_path):
    prices = save_price_override(tmp_path, OPENAI, 3.0, max_example_tokens=40)
    rows = many(12) + [("long " * 60, "ok -Sam")]
    prepared = prepare(table(rows), PrepareOptions("comment", "reply", model=OPENAI), price_table=prices)
    [issue] = [i for i in prepared.issues if i.code == "too_long"]
    assert issue.row == 14 and issue.severity == "error" and "at most 40: left out" in issue.message
    assert prepared.examples[-1].split == "excluded" and prepared.tokens.limit == 40


def test_fewer_than_ten_examples_block_openai_but_not_local():
    prepared = run(many(9), validation_fraction=0)
    [blocking] = prepared.blocking("openai")
    assert blocking.code == "too_few_examples" and "OpenAI refuses fewer than 10" in blocking.message
    assert prepared.blocking("local") == []
    assert (0, "few_examples") in codes(prepared, "warning")


def test_fewer_than_fifty_is_a_warning_and_fifty_is_fine():
    assert (0, "few_examples") in codes(run(many(49), validation_fraction=0), "warning")
    assert (0, "few_examples") not in codes(run(many(50), validation_fraction=0))


def test_nothing_to_train_blocks_everywhere():
    prepared = run([("", "x"), ("y", "")])
    assert [i.code for i in prepared.blocking("local")] == ["no_examples"]


def test_a_signature_with_another_dash_than_promised_is_flagged_per_row():
    system = "You are ShawGPT. End with your signature '\u2013ShawGPT'. Be brief."
    rows = [(f"Question {i}", f"Answer {i} -ShawGPT") for i in range(11)] + [("Thanks", "Welcome \u2013ShawGPT")]
    prepared = run(rows, system_prompt=system, validation_fraction=0)
    mismatched = sorted(i.row for i in prepared.issues if i.code == "signature_mismatch")
    assert mismatched == list(range(2, 13))   # row 13 already ends with the promised en dash
    message = next(i.message for i in prepared.issues if i.code == "signature_mismatch")
    assert message == ("ends with '-ShawGPT' (hyphen-minus U+002D) but the system prompt promises "
                       "'\u2013ShawGPT' (en dash U+2013)")


def test_a_missing_signature_is_flagged_and_a_matching_one_is_not():
    system = compile_instructions(load_demo_assistant("amy"))   # promises "-Sam"
    prepared = run(many(11) + [("Hi", "Hello there")], system_prompt=system, validation_fraction=0)
    assert [(i.row, i.code) for i in prepared.issues if i.code.startswith("signature")] == [(13, "signature_missing")]


@pytest.mark.parametrize("text, promise", [
    ("concludes with its signature '\u2013ShawGPT'.", "\u2013ShawGPT"),
    ('end every reply with "-Sam".', "-Sam"),
    ("sign with \u201c\u2014 Ana\u201d always", "\u2014 Ana"),
    ("Be brief and kind.", None),
    ("Use 'quotes' for - emphasis", None),
])
def test_promised_signatures_are_found_in_quotes(text, promise):
    assert promised_signature(text) == promise


def test_the_split_is_reproducible_and_follows_the_seed():
    rows = many(100)
    first = [e.split for e in run(rows, seed=7).examples]
    assert first == [e.split for e in run(rows, seed=7).examples]
    assert first.count("validation") == 20
    assert first != [e.split for e in run(rows, seed=8).examples]
    # A row's side depends on its own prompt and the seed, not on the order of the file.
    shuffled = list(reversed(rows))
    by_prompt = {e.prompt: e.split for e in run(shuffled, seed=7).examples}
    assert {e.prompt: e.split for e in run(rows, seed=7).examples} == by_prompt


def test_the_split_matches_the_documented_algorithm():
    import hashlib
    from studio.datasets.validation import normalize
    rows = many(10)
    prepared = run(rows, seed=3, validation_fraction=0.3)
    scores = sorted((int.from_bytes(hashlib.sha256(f"3\x1f{normalize(p)}".encode()).digest()[:8], "big"), p)
                    for p, _ in rows)
    assert {e.prompt for e in prepared.validation} == {p for _, p in scores[:3]}


@pytest.mark.parametrize("fraction", [-0.1, 0.6, float("nan")])
def test_a_validation_fraction_out_of_range_is_refused(fraction):
    with pytest.raises(DatasetError, match="validation fraction must be between 0 and 0.5"):
        run(many(12), validation_fraction=fraction)


def test_missing_or_identical_columns_are_explained():
    with pytest.raises(DatasetError, match="no column 'answer'; its columns are: comment, reply"):
        prepare(table(many(3)), PrepareOptions("comment", "answer"))
    with pytest.raises(DatasetError, match="two different columns"):
        prepare(table(many(3)), PrepareOptions("comment", "comment"))


@pytest.mark.parametrize("n_train, epochs", [(5, 20), (10, 10), (20, 5), (33, 3), (34, 3), (1000, 3),
                                             (8333, 3), (8334, 2), (10000, 2), (30000, 1)])
def test_automatic_epochs_follow_openais_documented_rule(n_train, epochs):
    assert auto_epochs(n_train) == epochs


def test_cost_is_train_tokens_times_epochs_at_the_dated_price(tmp_path):
    table_ = load_price_table(None)
    assert table_.as_of and table_.price_for("gpt-4o-mini").model == OPENAI
    estimate = estimate_cost([1000] * 50, OPENAI, table_)
    assert (estimate.epochs, estimate.epochs_automatic, estimate.billed_tokens) == (3, True, 150_000)
    assert estimate.cost == pytest.approx(150_000 / 1e6 * table_.price_for(OPENAI).training_per_million)
    assert estimate_cost([1000] * 50, OPENAI, table_, epochs=2).billed_tokens == 100_000
    local = estimate_cost([1000] * 50, "smollm2-135m-instruct", table_)
    assert local.local and local.cost == 0
    unknown = estimate_cost([10], "gpt-9-preview", table_)
    assert unknown.cost is None and unknown.price_per_million is None


def test_a_workspace_price_overrides_the_shipped_table(tmp_path):
    save_price_override(tmp_path, OPENAI, 4.5)
    table_ = load_price_table(tmp_path)
    assert table_.price_for(OPENAI).training_per_million == 4.5 and table_.price_for(OPENAI).overridden
    assert load_price_table(None).price_for(OPENAI).training_per_million != 4.5
    save_price_override(tmp_path, OPENAI, None)
    assert not load_price_table(tmp_path).price_for(OPENAI).overridden
    with pytest.raises(DatasetError):
        save_price_override(tmp_path, OPENAI, -1)


def test_garbage_made_while_datasets_are_prepared_is_still_collected():
    # A server prepares datasets while other sessions run: the collector must keep collecting
    # (it was switched off during preparations, and overlapping ones kept it off for good).
    import gc
    import threading
    import weakref

    from studio.datasets.prepare import older_objects_frozen

    class Node:
        pass

    def cyclic_garbage():
        node = Node()
        node.me = node
        return weakref.ref(node)

    inside, leave = threading.Event(), threading.Event()

    def another_preparation():
        with older_objects_frozen():
            inside.set()
            leave.wait(10)

    other = threading.Thread(target=another_preparation)
    other.start()
    inside.wait(10)
    with older_objects_frozen():
        probe = cyclic_garbage()
        for _ in range(20_000):   # enough allocations for the collector to run by itself
            cyclic_garbage()
        assert probe() is None
    leave.set()
    other.join()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_table_built_by_hand_with_non_text_cells_reports_them_as_empty():
    # Through the engine's API (not the file readers, which give text only): a number or a
    # missing cell is not a prompt, and says so instead of failing the whole dataset.
    import pandas as pd

    from studio.datasets.types import SourceTable
    frame = pd.DataFrame({"comment": ["a", 5, None, "b"], "reply": ["x -Sam", "y", "z", None]}, dtype=object)
    source = SourceTable("csv", "t.csv", "0" * 64, frame, [2, 3, 4, 5])
    prepared = prepare(source, PrepareOptions("comment", "reply", model=OPENAI, strip_whitespace=False))
    assert {(3, "empty_prompt"), (4, "empty_prompt"), (5, "empty_response")} <= codes(prepared, "error")


def test_the_split_takes_any_row_numbers():
    from studio.datasets import assign_split
    from studio.datasets.types import Example
    examples = [Example(row, [{"role": "user", "content": f"p{i}"}, {"role": "assistant", "content": "a"}])
                for i, row in enumerate([2**70, 1, 2, 3])]
    assign_split(examples, 0.5, 3)
    assert [e.split for e in examples].count("validation") == 2
