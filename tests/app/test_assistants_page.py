"""The assistants page: create, edit, duplicate, delete, export and import; and the provider settings panel."""

import json
import re
from dataclasses import replace
from pathlib import Path


from studio.assistants import DEMO_ASSISTANT_FILE, read_assistant_file
from studio.store import Actor, Store

ADA = Actor("ada")



def open_assistants(at):
    at.switch_page("pages/assistants.py")
    return at.run()


def store_of(workspace):
    return Store(f"sqlite:///{workspace / 'studio.db'}")


def test_edit_instructions_examples_and_tools_and_see_the_compiled_prompt(signed_in, workspace):
    at = open_assistants(signed_in)
    assert not at.exception, at.exception
    assert at.title[0].value == "Assistants"
    fields = {t.label: t for t in at.text_input}
    fields["Name"].input("Support bot")
    at.text_area[0].input("You answer support tickets.")
    at.multiselect[0].select("calculator")
    at.button(key="FormSubmitter:assistant_" + at.selectbox[0].value + "-Save").click()
    at.run()
    assert not at.exception, at.exception
    assert at.success[0].value == "Saved “Support bot”."
    [saved] = store_of(workspace).list_assistants(Actor("ada"))
    assert saved.name == "Support bot" and saved.instructions == "You answer support tickets."
    assert saved.tools == ["calculator"] and len(saved.examples) == 3
    compiled = next(e for e in at.expander if e.label.startswith("What the model receives")).code[0].value
    assert compiled.startswith("You answer support tickets.") and "Viewer comment:" in compiled


def test_a_nameless_assistant_is_not_saved_and_the_edits_stay(signed_in, workspace):
    at = open_assistants(signed_in)
    {t.label: t for t in at.text_input}["Name"].input("")
    at.text_area[0].input("Draft instructions I typed")
    at.button(key="FormSubmitter:assistant_" + at.selectbox[0].value + "-Save").click()
    at.run()
    assert "Give the assistant a name" in at.error[0].value
    assert at.text_area[0].value == "Draft instructions I typed"
    assert store_of(workspace).list_assistants(Actor("ada"))[0].name == "Comment responder"


def test_new_duplicate_and_delete(signed_in, workspace):
    at = open_assistants(signed_in)
    next(b for b in at.button if b.label == "➕ New assistant").click()
    at.run()
    assert sorted(a.name for a in store_of(workspace).list_assistants(Actor("ada"))) == [
        "Comment responder", "New assistant"]
    next(b for b in at.button if b.label == "Duplicate").click()
    at.run()
    names = sorted(a.name for a in store_of(workspace).list_assistants(Actor("ada")))
    assert names == ["Comment responder", "New assistant", "New assistant (copy)"]
    assert at.selectbox[0].format_func(at.selectbox[0].value) == "New assistant (copy)"
    next(b for b in at.button if b.label == "Yes, delete").click()
    at.run()
    assert sorted(a.name for a in store_of(workspace).list_assistants(Actor("ada"))) == [
        "Comment responder", "New assistant"]


def test_the_chat_page_uses_the_picked_assistant(signed_in, workspace):
    store = store_of(workspace)
    store.duplicate_assistant(store.list_assistants(Actor("ada"))[0].id, Actor("ada"))
    at = signed_in.run()
    copy = next(a for a in store.list_assistants(Actor("ada")) if "copy" in a.name)
    at.sidebar.selectbox(key="assistant_id").set_value(copy.id).run()
    assert at.title[0].value == "Comment responder (copy)"


def test_switching_to_a_compatible_server_in_the_sidebar_keeps_the_key_out_of_the_workspace(
        signed_in, workspace, fake_server):
    fake_server.reset()
    at = signed_in
    at.sidebar.radio[0].set_value("compatible")
    fields = {t.label: t for t in at.sidebar.text_input}
    fields["Base URL"].input(fake_server.base_url)
    fields["API key (this session only)"].input("sk-typed-in-sidebar-42")
    fields["Default model"].input("gpt-4.1-mini")
    next(b for b in at.sidebar.button if b.label == "Apply").click()
    at.run()
    assert not at.exception, at.exception
    assert any("OpenAI-compatible server" in c.value for c in at.caption), [e.value for e in at.error]
    at.chat_input[0].set_value("hello compatible").run()
    assert at.chat_message[1].markdown[-1].value == "You said: hello compatible"
    assert fake_server.last("/v1/chat/completions").headers["authorization"] == "Bearer sk-typed-in-sidebar-42"
    for path in workspace.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert b"sk-typed-in-sidebar-42" not in path.read_bytes(), path


# --- assistants as files --------------------------------------------------------

def shown(markdown: str) -> str:
    """Markdown as the reader sees it: backslash escapes removed."""
    return re.sub(r"\\(.)", r"\1", markdown)


def upload(at, name: str, content: bytes):
    at.file_uploader[0].set_value((name, content, "application/json"))
    return at.run()


def click(at, key: str):
    at.button(key=key).click()
    return at.run()


def test_export_downloads_the_saved_assistant_as_a_file_that_imports_back_equal(signed_in, workspace, downloads):
    at = open_assistants(signed_in)
    [spec] = store_of(workspace).list_assistants(ADA)
    button = at.download_button(key="export")
    assert button.proto.label == "Export"
    file_name, content = downloads[Path(button.proto.url).stem]
    assert file_name == "comment-responder.json"
    data = json.loads(content)
    assert "id" not in data and "owner" not in data
    assert data["name"] == "Comment responder" and len(data["examples"]) == 3
    back = read_assistant_file(content, owner="someone-else")
    assert replace(back, id=spec.id, owner="ada") == spec


def test_import_a_file_shows_what_it_holds_then_adds_it_as_mine(signed_in, workspace):
    at = open_assistants(signed_in)
    raw = json.dumps({"name": "Ticket triage", "instructions": "Sort tickets.", "provider": "compatible",
                      "tools": ["calculator"], "examples": [{"prompt": "Printer on fire", "response": "urgent"}],
                      "id": "asst_from_elsewhere", "owner": "mallory"}).encode()
    at = upload(at, "triage.json", raw)
    assert not at.exception, at.exception
    assert "**Ticket triage**: 1 few-shot example(s); runs on OpenAI-compatible server (Ollama, vLLM, " \
           "LM Studio, …); tools: calculator." in [m.value for m in at.markdown]
    assert len(store_of(workspace).list_assistants(ADA)) == 1   # nothing saved before Import
    at = click(at, "import")
    assert not at.exception, at.exception
    assert at.success[0].value == "Imported “Ticket triage”."
    imported = next(a for a in store_of(workspace).list_assistants(ADA) if a.name == "Ticket triage")
    assert imported.owner == "ada" and imported.id != "asst_from_elsewhere"
    assert imported.tools == ["calculator"] and imported.examples[0].response == "urgent"
    assert at.selectbox[0].value == imported.id                  # the page now shows it
    assert at.file_uploader[0].value is None                       # and the uploader is empty again
    assert {t.label: t for t in at.text_input}["Name"].value == "Ticket triage"


def test_an_invalid_file_lists_its_problems_and_imports_nothing(signed_in, workspace):
    at = open_assistants(signed_in)
    at = upload(at, "broken.json", json.dumps({"name": "", "tools": ["shell"], "examples": [["q", "a"]]}).encode())
    assert not at.exception, at.exception
    [error] = at.error
    lines = shown(error.value).splitlines()
    assert lines[0] == "broken.json is not a valid assistant file:"
    assert lines[1] == "- name: is empty: give the assistant a name"
    assert lines[2].startswith('- examples #1: must be a pair of texts written {"prompt": "...", "response"')
    assert lines[3].startswith("- tools #1: unknown tool 'shell'; the tools are calculator, current_time")
    assert not [b for b in at.button if b.key == "import"]
    at = upload(at, "photo.json", b"\x89PNG\r\n\x1a\n\x00\x00")
    assert "not a text file" in at.error[0].value
    at = upload(at, "list.json", b'[{"name": "a"}]')
    assert "The file holds a list, not one assistant" in at.error[0].value
    assert [a.name for a in store_of(workspace).list_assistants(ADA)] == ["Comment responder"]


def test_a_file_built_to_flood_the_page_gets_a_short_error(signed_in, workspace):
    at = open_assistants(signed_in)
    at = upload(at, "flood.json", json.dumps({"name": "x", "tools": ["calculatr"] * 380_000}).encode())
    assert not at.exception, at.exception
    [error] = at.error
    assert shown(error.value).splitlines()[1] == "- tools: has too many items (380000; at most 50)"
    at = upload(at, "many.json", json.dumps({"name": "x", "tools": [f"tool{i}" for i in range(50)]}).encode())
    lines = shown(at.error[0].value).splitlines()
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "- ... and 30 more problems"
    assert len(at.error[0].value) < 10_000
    at = upload(at, "digits.json", b'{"name": "x", "seed": ' + b"9" * 5_000 + b"}")
    assert "a number with more than 4,300 digits" in shown(at.error[0].value)
    assert [a.name for a in store_of(workspace).list_assistants(ADA)] == ["Comment responder"]


def test_a_taken_name_asks_keep_both_replace_or_cancel(signed_in, workspace):
    store = store_of(workspace)
    [seeded] = store.list_assistants(ADA)
    new_version = json.loads(DEMO_ASSISTANT_FILE.read_text())
    new_version["instructions"] = "Version two of Sam."
    raw = json.dumps(new_version).encode()

    at = upload(open_assistants(signed_in), "sam.json", raw)
    at = click(at, "import")                           # the name is taken: the dialog opens
    assert not at.exception, at.exception
    assert at.session_state["import_clash"] is True
    assert at.button(key="import_keep_both").label == "Keep both: import as “Comment responder (2)”"
    assert len(store.list_assistants(ADA)) == 1        # nothing saved until answered
    at = click(at, "import_cancel")
    assert not [b for b in at.button if b.key == "import_replace"]   # the dialog closed
    assert store.list_assistants(ADA) == [seeded]

    at = click(at, "import")
    at = click(at, "import_keep_both")
    assert at.success[0].value == "Imported “Comment responder (2)”."
    names = sorted(a.name for a in store.list_assistants(ADA))
    assert names == ["Comment responder", "Comment responder (2)"]
    assert store.get_assistant(seeded.id, ADA).instructions == seeded.instructions

    at = upload(at, "sam.json", raw)
    at = click(at, "import")
    at = click(at, "import_replace")
    assert not at.exception, at.exception
    assert at.success[0].value == "Replaced “Comment responder”."
    assert store.get_assistant(seeded.id, ADA).instructions == "Version two of Sam."   # same id: threads go on
    assert len(store.list_assistants(ADA)) == 2
    assert at.selectbox[0].value == seeded.id
    assert not [b for b in at.button if b.key == "import_replace"]


def test_the_editor_refuses_what_an_assistant_file_could_not_hold(signed_in, workspace):
    at = open_assistants(signed_in)
    at.text_area[0].input("x" * 20_001)
    at.button(key="FormSubmitter:assistant_" + at.selectbox[0].value + "-Save").click()
    at.run()
    assert shown(at.error[0].value) == "Not saved yet:\n- instructions: is too long (20,001 characters; at most 20,000)"
    assert at.text_area[0].value == "x" * 20_001                 # what was typed stays
    assert store_of(workspace).list_assistants(ADA)[0].instructions.startswith("You are Sam")
