"""Saved datasets: versions per owner, reopening byte for byte, owner checks, and the CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.datasets import PrepareOptions, export_files, prepare, read_source
from studio.datasets.storage import DatasetStore
from studio.store import Actor, NotAllowed, Store, StoreError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "samples" / "comments.csv"
OPENAI = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def datasets(tmp_path):
    return DatasetStore(Store(f"sqlite:///{tmp_path / 'studio.db'}").engine)


def sample(**options):
    data = SAMPLE.read_bytes()
    options.setdefault("model", OPENAI)
    return data, prepare(read_source(data, "comments.csv"), PrepareOptions("comment", "reply", **options))


def test_saving_again_under_a_name_adds_a_version_and_reopening_gives_the_same_files(datasets):
    amy = Actor("amy")
    data, first = sample()
    _, second = sample(seed=5, exclude_rows=frozenset({2, 3}))
    v1 = datasets.save_version("Comments", first, amy, source_bytes=data)
    v2 = datasets.save_version("  comments ", second, amy, source_bytes=data)
    assert (v1.version, v2.version, v2.name, v2.dataset_id) == (1, 2, "Comments", v1.dataset_id)
    [listed] = datasets.list_datasets(amy)
    assert (listed.name, listed.versions, listed.latest_version) == ("Comments", 2, 2)

    latest = datasets.find("COMMENTS", amy)
    assert latest.version == 2 and latest.options.seed == 5 and latest.options.exclude_rows == {2, 3}
    assert export_files(latest.prepared) == export_files(second)
    assert latest.prepared.counts == second.counts and latest.prepared.issues == second.issues
    older = datasets.find("Comments", amy, version=1)
    assert export_files(older.prepared) == export_files(first)
    assert older.source_sha256 == first.source_sha256 and datasets.get_source(older, amy) == data
    assert [v.version for v in datasets.list_versions(v1.dataset_id, amy)] == [2, 1]


def test_other_users_cannot_read_or_delete_and_admins_can(datasets):
    data, prepared = sample()
    saved = datasets.save_version("Comments", prepared, Actor("amy"), source_bytes=data)
    bob = Actor("bob")
    assert datasets.list_datasets(bob) == [] and datasets.find("Comments", bob) is None
    with pytest.raises(NotAllowed):
        datasets.get_version(saved.id, bob)
    with pytest.raises(NotAllowed):
        datasets.find(saved.dataset_id, bob)
    with pytest.raises(NotAllowed):
        datasets.delete_dataset(saved.dataset_id, bob)
    with pytest.raises(NotAllowed):
        datasets.list_datasets(bob, everyone=True)
    admin = Actor("root", admin=True)
    assert [d.owner for d in datasets.list_datasets(admin, everyone=True)] == ["amy"]
    assert datasets.get_version(saved.id, admin).prepared.counts == prepared.counts
    # Bob's own dataset of the same name is his, separate from Amy's.
    assert datasets.save_version("Comments", prepared, bob).dataset_id != saved.dataset_id


def test_deleting_versions_and_datasets(datasets):
    amy = Actor("amy")
    data, prepared = sample()
    v1 = datasets.save_version("Comments", prepared, amy, source_bytes=data)
    v2 = datasets.save_version("Comments", prepared, amy, source_bytes=data)
    datasets.delete_version(v1.id, amy)
    assert datasets.get_version(v1.id, amy) is None and datasets.find("Comments", amy).version == 2
    datasets.delete_version(v2.id, amy)   # the last version takes the dataset with it
    assert datasets.list_datasets(amy) == []
    other = datasets.save_version("Other", prepared, amy, source_bytes=data)
    datasets.delete_dataset(other.dataset_id, Actor("root", admin=True))
    assert datasets.list_datasets(amy) == []


@pytest.mark.parametrize("name, message", [("   ", "Give the dataset a name"), ("x" * 101, "at most 100"),
                                           ("bad\x07name", "control characters")])
def test_bad_names_are_refused(datasets, name, message):
    with pytest.raises(StoreError, match=message):
        datasets.save_version(name, sample()[1], Actor("amy"))


def cli(*args, workspace: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STUDIO_"))}
    env.update({"STUDIO_DATA_DIR": str(workspace), "STUDIO_PROVIDER": "local",
                "STUDIO_MODEL_CACHE": os.environ["STUDIO_MODEL_CACHE"]})
    return subprocess.run([sys.executable, "-m", "studio", "dataset", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_prepares_the_sample_with_the_demo_assistant_and_saves_it(tmp_path):
    out = tmp_path / "out"
    result = cli("prepare", str(SAMPLE), "--prompt-col", "comment", "--response-col", "reply",
                 "--system-from-assistant", "Comment responder", "--suffix", " -Sam", "--seed", "4",
                 "--name", "Course comments", "--user", "amy", "-o", str(out), workspace=tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert "Rows: 63  kept 63 (train 50, validation 13)" in result.stdout
    assert "Split: validation fraction 0.2, seed 4" in result.stdout
    assert "rows 2-64: already ends with '-Sam': not added again" in result.stdout
    assert "Saved as 'Course comments' version 1 for amy" in result.stdout
    train = [json.loads(line) for line in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(train) == 50 and all(ex["messages"][-1]["content"].endswith(" -Sam") for ex in train)
    assert train[0]["messages"][0]["content"].startswith("You are Sam")
    assert {p.name for p in out.iterdir()} >= {"train.jsonl", "validation.jsonl", "train.parquet",
                                               "train.sharegpt.json", "validation.sharegpt.json", "dataset.json"}

    listed = cli("list", "--user", "amy", workspace=tmp_path / "ws")
    assert "Course comments  (version 1; 1 saved)" in listed.stdout
    shown = cli("show", "course COMMENTS", "--examples", "1", "--user", "amy", workspace=tmp_path / "ws")
    assert shown.returncode == 0 and "Course comments version 1" in shown.stdout
    assert shown.stdout.rstrip().splitlines()[-1] == (out / "train.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert cli("show", "Course comments", "--user", "bob", workspace=tmp_path / "ws").returncode == 1


def test_cli_reports_rows_and_exits_non_zero_when_openai_would_refuse(tmp_path):
    csv_file = tmp_path / "few.csv"
    csv_file.write_text("question,answer\nHi,Hello -Sam\n,Empty prompt -Sam\nHow?,Like this -Sam\n", encoding="utf-8")
    result = cli("prepare", str(csv_file), "--model", OPENAI, "--val", "0", "-o", str(tmp_path / "out"),
                 "--user", "amy",
                 workspace=tmp_path / "ws")
    assert result.returncode == 1
    assert "row 3: the prompt is empty: left out" in result.stdout
    assert "error: not written: Only 2 training examples: OpenAI refuses fewer than 10" in result.stderr
    assert not (tmp_path / "out").exists()
    # The same file trains locally: written and saved.
    local = cli("prepare", str(csv_file), "--val", "0", "-o", str(tmp_path / "out"), "--user", "amy",
                workspace=tmp_path / "ws")
    assert local.returncode == 0, local.stderr
    assert len((tmp_path / "out" / "train.jsonl").read_text().splitlines()) == 2


def test_cli_bad_files_and_arguments_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    for args, message in [((str(empty),), "error: The file is empty."),
                          ((str(tmp_path / "missing.csv"),), "error: Cannot read"),
                          ((str(SAMPLE), "--prompt-col", "nope"), "error: The file has no column 'nope'"),
                          ((str(SAMPLE), "--exclude", "x-y"), "error: --exclude takes row numbers"),
                          ((str(SAMPLE), "--val", "0.9"), "error: The validation fraction must be between 0 and 0.5")]:
        result = cli("prepare", *args, "-o", str(tmp_path / "o"), workspace=tmp_path / "ws")
        assert result.returncode == 1 and result.stderr.startswith(message), (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_removing_an_account_deletes_its_datasets_and_a_new_owner_of_the_name_starts_empty(tmp_path):
    from studio.accounts import OPERATOR, Accounts
    store = Store(f"sqlite:///{tmp_path / 'studio.db'}")
    people, datasets = Accounts(store.engine), DatasetStore(store.engine)
    people.add_user("ada", "correct-horse", actor=OPERATOR)
    people.add_user("bob", "battery-staple", actor=OPERATOR)
    data, prepared = sample()
    datasets.save_version("Comments", prepared, Actor("bob"), source_bytes=data)
    datasets.save_version("Comments", prepared, Actor("ada"), source_bytes=data)
    people.remove_user("bob", actor=OPERATOR, store=store)
    people.add_user("bob", "another-battery", actor=OPERATOR)
    assert datasets.list_datasets(Actor("bob")) == []
    assert datasets.find("Comments", Actor("bob")) is None
    assert [d.name for d in datasets.list_datasets(Actor("ada"))] == ["Comments"]   # others keep theirs
    assert datasets.get_source(datasets.find("Comments", Actor("ada")), Actor("ada")) == data
