"""Assistant files: export one spec as JSON, import it into another workspace, with every field checked."""
import json
from dataclasses import replace

import pytest

import studio.assistants
from studio.assistants import (DEMO_ASSISTANT_FILE, MAX_FILE_BYTES, MAX_PROBLEMS, NAME_LENGTH, AssistantClash,
                               AssistantFileError, assistant_file_bytes, assistant_file_name,
                               import_assistant, read_assistant_file, spec_problems)
from studio.store import Actor
from studio.types import AssistantSpec, FewShotExample

ADA = Actor("ada")


def full_spec() -> AssistantSpec:
    return AssistantSpec(
        name="Ticket triage", description="Sorts support tickets", owner="bob",
        instructions="You sort tickets.\nBe brief.\tAlways.",
        examples=[FewShotExample("Printer is on fire", "urgent"), FewShotExample("Café menu?", "low — 日本語")],
        provider="compatible", model="qwen2.5:7b", tools=["calculator", "code_interpreter"],
        knowledge_bases=["kb_from_bobs_workspace"],
        example_label_prompt="Ticket", example_label_response="Priority")


def problems(data) -> list[str]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(AssistantFileError) as caught:
        read_assistant_file(raw, owner="ada")
    return caught.value.problems


def test_export_then_import_gives_the_same_spec_with_a_new_id_and_the_importers_ownership():
    original = full_spec()
    raw = assistant_file_bytes(original)
    data = json.loads(raw)
    assert "id" not in data and "owner" not in data and "knowledge_bases" not in data
    assert data["tools"] == ["calculator", "code_interpreter"] and data["provider"] == "compatible"
    back = read_assistant_file(raw, owner="ada")
    assert back.owner == "ada" and back.id != original.id and back.knowledge_bases == []
    assert replace(back, id=original.id, owner=original.owner, knowledge_bases=original.knowledge_bases) == original
    assert assistant_file_name(original) == "ticket-triage.json"


def test_the_shipped_demo_file_is_a_valid_assistant_file():
    spec = read_assistant_file(DEMO_ASSISTANT_FILE.read_bytes(), owner="ada")
    assert spec.name == "Comment responder" and len(spec.examples) == 3 and spec.owner == "ada"


def test_a_hand_written_file_may_leave_out_everything_but_the_name():
    spec = read_assistant_file(b'\xef\xbb\xbf{"name": "  Minimal  "}', owner="ada")   # with a UTF-8 BOM
    assert spec.name == "Minimal" and spec.tools == [] and spec.examples == [] and spec.provider == ""


def test_ids_and_owners_in_the_file_are_never_taken(store):
    raw = json.dumps({"name": "Sneaky", "id": "asst_victim", "owner": "admin",
                      "knowledge_base": "kb_private", "knowledge_bases": ["kb_private"]}).encode()
    store.save_assistant(AssistantSpec(name="Victim's", owner="admin", id="asst_victim"), Actor("admin"))
    saved = import_assistant(store, read_assistant_file(raw, owner="ada"), ADA)
    assert saved.owner == "ada" and saved.id != "asst_victim" and saved.knowledge_bases == []
    assert store.get_assistant("asst_victim", Actor("admin")).name == "Victim's"
    assert [a.name for a in store.list_assistants(ADA)] == ["Sneaky"]


@pytest.mark.parametrize("raw, message", [
    (b"", "The file is empty."),
    (b"   \n", "The file is empty."),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
    (b"\xff\xfe{\x00\"\x00", "not a text file"),                    # UTF-16 from an old editor
    (b'{"name": "x",}',
     "This is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 14)."),
    (b'{"name": "x"', "This is not valid JSON"),
    (b'[{"name": "a"}, {"name": "b"}]', "The file holds a list, not one assistant"),
    (b'"Comment responder"', "The file holds text, not an assistant"),
    (b"42", "The file holds a number, not an assistant"),
    (b"null", "The file holds null, not an assistant"),
    (b"[" * 200_000, "nested too deeply"),
    (b" " * (MAX_FILE_BYTES + 1), "The file is too big: an assistant file is at most 5 MB."),
    (b'{"name": "x", "temperature": ' + b"7" * 5_000 + b"}",
     "The file holds a number with more than 4,300 digits; an assistant file has no such numbers."),
])
def test_files_that_are_not_one_json_object_say_so(raw, message):
    [problem] = problems(raw)
    assert message in problem


def test_every_wrong_field_is_reported_at_once():
    found = problems({
        "name": "", "description": None, "instructions": ["not", "text"], "provider": "azure",
        "model": "gpt\nnext", "tools": ["calculater", "calculator", 3, "rm -rf /"],
        "examples": [["a", "b"], {"prompt": "only a prompt"}, {"prompt": " ", "response": 5},
                     {"prompt": "a", "response": "b", "weight": 1}],
        "instruction": "typo", "example_label_prompt": 7})
    assert found == [
        "name: is empty: give the assistant a name",
        "description: must be text, not null",
        "instructions: must be text, not a list",
        'examples #1: must be a pair of texts written {"prompt": "...", "response": "..."}, not a list',
        "examples #2 → response: is missing",
        "examples #3 → prompt: is empty",
        "examples #3 → response: must be text, not a number",
        "examples #4 → 'weight': is not a field of a few-shot example (known fields: prompt, response)",
        "provider: unknown provider 'azure': use local, openai, compatible, or \"\" for the workspace default",
        "model: contains control characters (it must be one line)",
        "tools #1: unknown tool 'calculater' (did you mean 'calculator'?); the tools are calculator, "
        "current_time, convert_time, add_to_date, date_difference, convert_units, text_statistics, "
        "code_interpreter",
        "tools #3: must be text, not a number",
        "tools #4: unknown tool 'rm -rf /'; the tools are calculator, current_time, convert_time, "
        "add_to_date, date_difference, convert_units, text_statistics, code_interpreter",
        "example_label_prompt: must be text, not a number",
        "'instruction': is not a field of an assistant (did you mean 'instructions'?)",
    ]


@pytest.mark.parametrize("data, message", [
    ({}, "name: is missing"),
    ({"name": True}, "name: must be text, not true/false"),
    ({"name": 12}, "name: must be text, not a number"),
    ({"name": "x" * (NAME_LENGTH + 1)}, "name: is too long (201 characters; at most 200)"),
    ({"name": "ok", "instructions": "y" * 20_001}, "instructions: is too long (20,001 characters; at most 20,000)"),
    ({"name": "ok", "examples": [{"prompt": "p", "response": "r"}] * 101},
     "examples: has too many items (101; at most 100)"),
    ({"name": "ok", "examples": {"prompt": "p", "response": "r"}}, "examples: must be a list, not an object"),
    ({"name": "ok", "examples": ["just a string"]}, 'examples #1: must be a pair of texts written'),
    ({"name": "ok", "tools": "calculator"}, "tools: must be a list, not text"),
    ({"name": "ok", "instructions": "before\x00after"}, "instructions: contains a NUL character"),
    ({"name": "tab\there"}, "name: contains control characters (it must be one line)"),
    ({"name": "ok", "provider": None}, "provider: must be text, not null"),
    ({"name": "ok", "homepage": "x"}, "'homepage': is not a field of an assistant (known fields: name, description"),
])
def test_each_invalid_field_has_its_own_message(data, message):
    [problem] = problems(data)
    assert problem.startswith(message), problem


def test_the_error_text_lists_the_problems_one_per_line():
    with pytest.raises(AssistantFileError) as caught:
        read_assistant_file(b'{"name": "", "tools": ["nope"]}', owner="ada")
    lines = str(caught.value).splitlines()
    assert lines[0] == "This is not a valid assistant file:"
    assert lines[1] == "- name: is empty: give the assistant a name"
    assert lines[2].startswith("- tools #1: unknown tool 'nope'")


def test_a_tool_named_twice_is_one_tool_and_multiline_text_is_kept():
    spec = read_assistant_file(json.dumps({"name": "x", "tools": ["calculator", "calculator"],
                                           "instructions": "line one\nline two\ttabbed"}).encode(), "ada")
    assert spec.tools == ["calculator"] and spec.instructions == "line one\nline two\ttabbed"


def test_spec_problems_checks_a_spec_the_same_way():
    assert spec_problems(full_spec()) == []
    assert spec_problems(replace(full_spec(), tools=["shell"]))[0].startswith("tools #1: unknown tool 'shell'")


def test_a_name_clash_fails_unless_told_to_replace_or_keep_both(store):
    first = import_assistant(store, read_assistant_file(assistant_file_bytes(full_spec()), "ada"), ADA)
    thread_keeps = first.id
    again = read_assistant_file(assistant_file_bytes(replace(full_spec(), name="TICKET triage ",
                                                             instructions="New version")), "ada")
    with pytest.raises(AssistantClash) as clash:
        import_assistant(store, again, ADA)
    assert clash.value.existing.id == first.id
    assert [a.instructions for a in store.list_assistants(ADA)] == [full_spec().instructions]

    both = import_assistant(store, again, ADA, on_clash="keep_both")
    assert both.name == "TICKET triage (2)" and both.id != first.id
    third = import_assistant(store, again, ADA, on_clash="keep_both")
    assert third.name == "TICKET triage (3)"

    replaced = import_assistant(store, again, ADA, on_clash="replace")
    assert replaced.id == thread_keeps   # threads started with it go on with the new spec
    stored = store.get_assistant(thread_keeps, ADA)
    assert stored.instructions == "New version" and stored.owner == "ada"
    assert len(store.list_assistants(ADA)) == 3


def test_another_users_assistant_of_the_same_name_is_no_clash(store):
    store.save_assistant(replace(full_spec(), owner="bob"), Actor("bob"))
    saved = import_assistant(store, read_assistant_file(assistant_file_bytes(full_spec()), "ada"), ADA)
    assert saved.name == "Ticket triage" and saved.owner == "ada"
    assert store.list_assistants(Actor("bob"))[0].instructions == full_spec().instructions


def test_keep_both_with_a_name_at_the_longest_stays_within_the_limit(store):
    long_name = "n" * NAME_LENGTH
    spec = read_assistant_file(json.dumps({"name": long_name}).encode(), "ada")
    import_assistant(store, spec, ADA)
    second = import_assistant(store, spec, ADA, on_clash="keep_both")
    assert len(second.name) == NAME_LENGTH and second.name.endswith(" (2)")


# --- hostile files: under the size cap, but built to make validation slow or the message huge ---------

@pytest.fixture
def work(monkeypatch):
    """Counts the costly steps of checking a file: difflib lookups and problems put into words."""
    counts = {"difflib": 0, "described": 0}
    studio.assistants._close_match.cache_clear()
    real_matches, real_describe = studio.assistants.difflib.get_close_matches, studio.assistants._describe

    def matches(*args, **kwargs):
        counts["difflib"] += 1
        return real_matches(*args, **kwargs)

    def describe(error):
        counts["described"] += 1
        return real_describe(error)

    monkeypatch.setattr(studio.assistants.difflib, "get_close_matches", matches)
    monkeypatch.setattr(studio.assistants, "_describe", describe)
    return counts


@pytest.mark.parametrize("data, says", [
    ({"name": "x", "tools": ["calculatr"] * 380_000}, "tools: has too many items (380000; at most 50)"),
    ({"name": "x", "examples": [{f"p{i}": 1 for i in range(300_000)}]},
     "examples #1: has 300,000 fields; a few-shot example has two, prompt and response"),
    ({"name": "x", **{f"field{i}": 1 for i in range(200_000)}},
     "The file has 200,000 fields that are not fields of an assistant (such as 'field0', 'field1', 'field2')"),
], ids=["380k-tools", "example-with-300k-fields", "200k-unknown-fields"])
def test_a_file_built_to_flood_the_checks_gets_one_short_message(data, says, work):
    raw = json.dumps(data).encode()
    assert len(raw) <= MAX_FILE_BYTES
    with pytest.raises(AssistantFileError) as caught:
        read_assistant_file(raw, owner="ada")
    assert caught.value.problems[0].startswith(says), caught.value.problems
    assert len(str(caught.value)) < 1_000
    assert work["difflib"] <= 1 and work["described"] <= 1


def test_many_problems_show_the_first_twenty_and_count_the_rest(work):
    tools = ["calculatr"] * 30 + ["clock"] * 20          # 50 items: the most a file may list
    found = problems({"name": "x", "tools": tools})
    assert len(found) == MAX_PROBLEMS + 1 and found[-1] == "... and 30 more problems"
    assert found[0].startswith("tools #1: unknown tool 'calculatr' (did you mean 'calculator'?)")
    assert work["difflib"] == 2                          # once per distinct name, not once per item
    assert work["described"] == MAX_PROBLEMS


def test_a_hundred_examples_each_with_many_fields_are_counted_not_listed(work):
    crowded = {"prompt": "p", "response": "r", **{f"extra{i}": 1 for i in range(25)}}
    found = problems({"name": "x", "examples": [crowded] * 100})
    assert found[0] == "examples #1: has 27 fields; a few-shot example has two, prompt and response"
    assert found[-1] == "... and 80 more problems" and len(found) == MAX_PROBLEMS + 1
    assert work["difflib"] == 0


def test_a_huge_value_is_quoted_back_only_in_part(work):
    [tool] = problems({"name": "x", "tools": ["c" * 4_000_000]})
    [field] = problems({"name": "x", "k" * 1_000_000: 1})
    [provider] = problems({"name": "x", "provider": "p" * 1_000_000})
    for problem in (tool, field, provider):
        assert len(problem) < 400 and "…'" in problem
    assert work["difflib"] == 0                          # a name that long is no typo
