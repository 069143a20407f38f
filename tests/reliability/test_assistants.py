"""Bad input in the assistant editor and in imported assistant files: the problem named with its
field, the form kept as typed, and the stored assistants unchanged."""
from __future__ import annotations

import json

import pytest

from studio.assistants import AssistantFileError, read_assistant_file
from tests.reliability.conftest import assert_clear, only_message, store_of


def open_assistants(at):
    at.switch_page("pages/assistants.py")
    return at.run()


def saved_assistants(workspace, actor):
    return [(a.name, a.description, a.instructions, a.model, a.example_label_prompt)
            for a in store_of(workspace).list_assistants(actor)]


# --- the editor --------------------------------------------------------------------------------

EDITOR_REFUSED = {
    "name-empty": ("Name", "", ["give the assistant a name"]),
    "name-only-spaces": ("Name", "    ", ["give the assistant a name"]),
    "name-with-newline": ("Name", "Support\nbot", ["name", "one line"]),
    "name-with-nul": ("Name", "Support\x00bot", ["name", "NUL"]),
    "name-with-escape-sequence": ("Name", "\x1b[2JSupport", ["name", "control characters"]),
    "description-with-nul": ("Description", "Answers\x00 tickets", ["description", "NUL"]),
    "model-with-newline": ("Model", "gpt-4o\nmini", ["model", "one line"]),
    "model-201-chars": ("Model", "m" * 201, ["model", "too long", "at most 200"]),
    "prompt-label-61-chars": ("Label for the prompt", "L" * 61, ["label", "too long", "at most 60"]),
    "instructions-with-nul": ("Instructions", "Be brief.\x00", ["instructions", "NUL"]),
    "instructions-with-bell": ("Instructions", "Be brief.\x07", ["instructions", "control characters"]),
    "instructions-over-20000-chars": ("Instructions", "Be brief. " * 2_001, ["instructions", "too long", "20,000"]),
}


def type_into(at, field: str, value: str) -> None:
    if field == "Instructions":
        at.text_area[0].input(value)
    else:
        {t.label: t for t in at.text_input}[field].input(value)


def typed(at, field: str) -> str:
    return at.text_area[0].value if field == "Instructions" else {t.label: t.value for t in at.text_input}[field]


def save(at):
    at.button(key="FormSubmitter:assistant_" + at.selectbox[0].value + "-Save").click()
    return at.run()


@pytest.mark.parametrize("field, value, says", EDITOR_REFUSED.values(), ids=EDITOR_REFUSED.keys())
def test_the_editor_names_the_problem_and_keeps_what_was_typed(signed_in, workspace, ada, field, value, says):
    at = open_assistants(signed_in)
    before = saved_assistants(workspace, ada)
    other = "Instructions" if field != "Instructions" else "Description"
    type_into(at, other, "Something else I typed")     # a second field, to check it is kept too
    type_into(at, field, value)
    at = save(at)
    assert_clear(only_message(at), *says)
    assert typed(at, field) == value and typed(at, other) == "Something else I typed"
    assert saved_assistants(workspace, ada) == before
    assert not at.success


@pytest.mark.parametrize("field, value", [
    ("Name", "مساعد الدعم 👩🏽‍💻 Ångström cafe\u0301"),
    ("Instructions", "Réponds en français.\n\tSois bref. 🙂\nעברית ו-English באותה שורה"),
], ids=["name-rtl-emoji-combining", "instructions-mixed-scripts-tabs-newlines"])
def test_the_editor_saves_mixed_scripts_exactly(signed_in, workspace, ada, field, value):
    at = open_assistants(signed_in)
    type_into(at, field, value)
    at = save(at)
    assert not at.exception and not at.error, [e.value for e in at.error]
    [spec] = store_of(workspace).list_assistants(ada)
    assert (spec.name if field == "Name" else spec.instructions) == value
    assert at.success[0].value == f"Saved “{spec.name}”."


# --- importing a file on the page ----------------------------------------------------------------

def upload(at, name: str, content: bytes):
    at.file_uploader[0].set_value((name, content, "application/json"))
    return at.run()


PAGE_IMPORT_REFUSED = {
    "empty-file": (b"", ["empty"]),
    "not-json": (b"name = 'Sam'\n", ["not valid JSON", "line 1"]),
    "nul-escaped-in-name": (b'{"name": "Sam\\u0000"}', ["name", "NUL"]),
    "wrong-types": (json.dumps({"name": ["Sam"], "instructions": 42, "examples": {"prompt": "q"}}).encode(),
                    ["name: must be text", "instructions: must be text", "examples: must be a list"]),
    "misspelt-field": (json.dumps({"name": "Sam", "instruction": "Be brief."}).encode(),
                       ["'instruction'", "did you mean 'instructions'"]),
    "nested-too-deeply": (b"[" * 100_000 + b"]" * 100_000, ["nested too deeply"]),
}


@pytest.mark.parametrize("content, says", PAGE_IMPORT_REFUSED.values(), ids=PAGE_IMPORT_REFUSED.keys())
def test_a_bad_file_on_the_page_lists_its_problems_and_imports_nothing(signed_in, workspace, ada, content, says):
    at = open_assistants(signed_in)
    before = saved_assistants(workspace, ada)
    at = upload(at, "class-assistant.json", content)
    message = only_message(at)
    assert_clear(message, "class-assistant.json is not a valid assistant file", *says)
    assert not [b for b in at.button if b.key == "import"]
    assert saved_assistants(workspace, ada) == before


def test_a_file_with_a_byte_order_mark_and_odd_text_imports_exactly(signed_in, workspace, ada):
    data = {"name": "Ассистент 🤖 e\u0301", "instructions": "שלום\n\tBe brief.", "tools": ["calculator", "calculator"]}
    at = upload(open_assistants(signed_in), "bom.json", b"\xef\xbb\xbf" + json.dumps(data, ensure_ascii=False).encode())
    at.button(key="import").click()
    at = at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    imported = next(a for a in store_of(workspace).list_assistants(ada) if a.name == data["name"])
    assert imported.instructions == data["instructions"] and imported.tools == ["calculator"]


# --- reading a file (what the page and `assistants import` both call) ----------------------------

FILE_REFUSED = {
    "utf-16-text": ('{"name": "Sam"}'.encode("utf-16"), ["not a text file", "UTF-8"]),
    "json-null": (b"null", ["holds null", "one JSON object"]),
    "json-number": (b"42", ["holds a number"]),
    "json-string": (b'"Sam"', ["holds text"]),
    "trailing-comma": (b'{"name": "Sam",}', ["not valid JSON", "column"]),
    "name-missing": (b'{"instructions": "Be brief."}', ["name: is missing"]),
    "name-201-chars": (json.dumps({"name": "n" * 201}).encode(), ["name", "too long", "at most 200"]),
    "name-true": (b'{"name": true}', ["name: must be text, not true/false"]),
    "tools-a-string": (b'{"name": "Sam", "tools": "calculator"}', ["tools: must be a list, not text"]),
    "tool-misspelt": (b'{"name": "Sam", "tools": ["calculater"]}',
                      ["unknown tool 'calculater'", "did you mean 'calculator'"]),
    "provider-unknown": (b'{"name": "Sam", "provider": "anthropic"}', ["unknown provider 'anthropic'", "local"]),
    "example-without-response": (b'{"name": "Sam", "examples": [{"prompt": "hi"}]}',
                                 ["examples #1", "response", "missing"]),
    "example-blank-prompt": (b'{"name": "Sam", "examples": [{"prompt": "  ", "response": "hi"}]}',
                             ["examples #1", "prompt", "empty"]),
    "example-as-a-pair-list": (b'{"name": "Sam", "examples": [["hi", "hello"]]}', ["examples #1", "pair of texts"]),
    "101-examples": (json.dumps({"name": "Sam", "examples": [{"prompt": "q", "response": "a"}] * 101}).encode(),
                     ["examples", "too many", "at most 100"]),
    "example-with-escape-sequence": (json.dumps({"name": "Sam",
                                                 "examples": [{"prompt": "\x1b[31m", "response": "a"}]}).encode(),
                                     ["examples #1", "control characters"]),
    "label-with-newline": (json.dumps({"name": "Sam", "example_label_prompt": "Q\nA"}).encode(),
                           ["example_label_prompt", "one line"]),
}


@pytest.mark.parametrize("content, says", FILE_REFUSED.values(), ids=FILE_REFUSED.keys())
def test_reading_a_bad_assistant_file_names_every_problem(content, says):
    with pytest.raises(AssistantFileError) as refused:
        read_assistant_file(content, owner="ada")
    assert refused.value.problems
    for problem in refused.value.problems:
        assert_clear(problem)
    assert_clear("\n".join(refused.value.problems), *says)
