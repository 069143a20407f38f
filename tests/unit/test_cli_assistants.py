"""`python -m studio assistants list | export | import`, run as an instructor and a student would."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from studio.store import Actor, Store
from studio.types import AssistantSpec, FewShotExample

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, workspace: Path, stdin: str | bytes = ""):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STUDIO_"))}
    env.update({"STUDIO_DATA_DIR": str(workspace), "STUDIO_PROVIDER": "local"})
    return subprocess.run([sys.executable, "-m", "studio", "assistants", *args], cwd=ROOT, env=env,
                          input=stdin.encode() if isinstance(stdin, str) else stdin,
                          capture_output=True, timeout=300)


def out(result) -> str:
    return result.stdout.decode()


def err(result) -> str:
    return result.stderr.decode()


def store_in(workspace: Path) -> Store:
    workspace.mkdir(parents=True, exist_ok=True)
    return Store(f"sqlite:///{workspace / 'studio.db'}")


def triage(owner: str) -> AssistantSpec:
    return AssistantSpec(name="Ticket triage", owner=owner, instructions="Sort tickets.\nBe brief.",
                         examples=[FewShotExample("Printer on fire", "urgent")], provider="compatible",
                         model="qwen2.5:7b", tools=["calculator"], example_label_prompt="Ticket",
                         example_label_response="Priority")


@pytest.fixture
def teacher(tmp_path):
    workspace = tmp_path / "teacher"
    store_in(workspace).save_assistant(triage("tina"), Actor("tina"))
    return workspace


def test_an_instructor_exports_one_file_and_a_student_imports_the_same_assistant(teacher, tmp_path):
    class_file = tmp_path / "triage.json"
    exported = cli("export", "ticket TRIAGE", "-o", str(class_file), "--user", "tina", workspace=teacher)
    assert exported.returncode == 0, err(exported)
    assert "Exported 'Ticket triage'" in err(exported) and out(exported) == ""
    assert json.loads(class_file.read_text())["instructions"] == "Sort tickets.\nBe brief."

    student = tmp_path / "student"
    imported = cli("import", str(class_file), "--user", "sam", workspace=student)
    assert imported.returncode == 0, err(imported)
    assert out(imported).startswith("Imported 'Ticket triage' for sam")
    [spec] = store_in(student).list_assistants(Actor("sam"))
    original = triage("tina")
    assert spec.owner == "sam" and spec.id != original.id
    assert replace(spec, id=original.id, owner="tina") == original

    listed = cli("list", "--user", "sam", workspace=student)
    assert f"{spec.id}  Ticket triage  (compatible / qwen2.5:7b)  tools: calculator" in out(listed)
    as_json = json.loads(out(cli("list", "--json", "--user", "sam", workspace=student)))
    assert as_json == [{"id": spec.id, "name": "Ticket triage", "provider": "compatible",
                        "model": "qwen2.5:7b", "tools": ["calculator"]}]


def test_export_to_stdout_pipes_into_import_from_stdin(teacher, tmp_path):
    exported = cli("export", "Ticket triage", "--user", "tina", workspace=teacher)
    assert exported.returncode == 0 and json.loads(out(exported))["name"] == "Ticket triage"
    imported = cli("import", "-", "--user", "sam", workspace=tmp_path / "student", stdin=exported.stdout)
    assert imported.returncode == 0, err(imported)
    assert [a.name for a in store_in(tmp_path / "student").list_assistants(Actor("sam"))] == ["Ticket triage"]


def test_a_name_clash_fails_clearly_unless_replace(teacher, tmp_path):
    changed = tmp_path / "v2.json"
    changed.write_text(json.dumps({"name": "TICKET TRIAGE", "instructions": "Version two."}))
    store = store_in(teacher)
    [before] = store.list_assistants(Actor("tina"))

    clash = cli("import", str(changed), "--user", "tina", workspace=teacher)
    assert clash.returncode == 1
    assert err(clash) == ("error: 'tina' already has an assistant named 'Ticket triage'; nothing was "
                          "imported. Pass --replace to overwrite it, or rename the assistant in the file.\n")
    assert store.list_assistants(Actor("tina")) == [before]

    replaced = cli("import", str(changed), "--replace", "--user", "tina", workspace=teacher)
    assert replaced.returncode == 0, err(replaced)
    assert out(replaced).startswith("Replaced 'TICKET TRIAGE' for tina")
    [after] = store.list_assistants(Actor("tina"))
    assert after.id == before.id and after.instructions == "Version two." and after.tools == []


def test_an_invalid_file_says_what_is_wrong_and_imports_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "", "tools": ["calculater"], "provider": "azure",
                               "examples": [["question", "answer"]]}))
    result = cli("import", str(bad), "--user", "sam", workspace=tmp_path / "ws")
    assert result.returncode == 1 and out(result) == ""
    lines = err(result).splitlines()
    assert lines[0] == "error: This is not a valid assistant file:"
    assert lines[1] == "- name: is empty: give the assistant a name"
    assert lines[2].startswith('- examples #1: must be a pair of texts written {"prompt"')
    assert lines[3].startswith("- provider: unknown provider 'azure'")
    assert lines[4].startswith("- tools #1: unknown tool 'calculater' (did you mean 'calculator'?)")
    assert store_in(tmp_path / "ws").list_assistants(Actor("sam")) == []

    binary = tmp_path / "photo.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    result = cli("import", str(binary), "--user", "sam", workspace=tmp_path / "ws")
    assert result.returncode == 1 and "not a text file" in err(result) and "Traceback" not in err(result)

    listed = cli("import", "-", "--user", "sam", workspace=tmp_path / "ws", stdin='[{"name": "a"}]')
    assert listed.returncode == 1 and "The file holds a list, not one assistant" in err(listed)

    digits = cli("import", "-", "--user", "sam", workspace=tmp_path / "ws",
                 stdin='{"name": "a", "seed": ' + "1" * 5_000 + "}")
    assert digits.returncode == 1 and err(digits) == (
        "error: This is not a valid assistant file:\n"
        "- The file holds a number with more than 4,300 digits; an assistant file has no such numbers.\n")

    flood = cli("import", "-", "--user", "sam", workspace=tmp_path / "ws",
                stdin=json.dumps({"name": "a", "tools": [f"tool{i}" for i in range(50)]}))
    assert flood.returncode == 1 and len(err(flood).splitlines()) == 1 + 20 + 1
    assert err(flood).splitlines()[-1] == "- ... and 30 more problems"

    missing = cli("import", str(tmp_path / "nowhere.json"), workspace=tmp_path / "ws")
    assert missing.returncode == 1
    assert err(missing) == f"error: Cannot read {tmp_path / 'nowhere.json'}: No such file or directory.\n"


def test_export_names_what_it_cannot_find_or_tell_apart(teacher, tmp_path):
    missing = cli("export", "nobody", "--user", "tina", workspace=teacher)
    assert missing.returncode == 1
    assert "No assistant named 'nobody' for user 'tina'" in err(missing)

    store = store_in(teacher)
    twin = store.save_assistant(replace(triage("tina"), id="asst_twin", instructions="Other"), Actor("tina"))
    ambiguous = cli("export", "Ticket triage", "--user", "tina", workspace=teacher)
    assert ambiguous.returncode == 1 and "2 assistants are named 'Ticket triage'" in err(ambiguous)
    assert twin.id in err(ambiguous)
    by_id = cli("export", twin.id, "--user", "tina", workspace=teacher)
    assert by_id.returncode == 0 and json.loads(out(by_id))["instructions"] == "Other"

    other_user = cli("export", twin.id, "--user", "mallory", workspace=teacher)
    assert other_user.returncode == 1 and "No assistant named" in err(other_user)

    unwritable = cli("export", twin.id, "-o", str(tmp_path / "no" / "dir.json"), "--user", "tina",
                     workspace=teacher)
    assert unwritable.returncode == 1 and "Cannot write" in err(unwritable)
