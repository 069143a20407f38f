"""`python -m studio eval` run as a user would, against the fake OpenAI server."""
from pathlib import Path

import pandas as pd
import pytest

from studio.datasets import PrepareOptions, prepare, read_source
from studio.datasets.storage import DatasetStore
from studio.evaluation.runs import EvalStore
from studio.store import Actor, Store
from tests.unit.test_cli import cli

ROOT = Path(__file__).resolve().parents[2]
CLI_USER = Actor("cli")


@pytest.fixture
def ws(tmp_path, fake):
    store = Store(f"sqlite:///{tmp_path / 'studio.db'}")
    data = (ROOT / "data" / "samples" / "comments.csv").read_bytes()
    prepared = prepare(read_source(data, "comments.csv"), PrepareOptions("comment", "reply"))
    DatasetStore(store.engine).save_version("comments", prepared, CLI_USER, source_bytes=data)
    return {"STUDIO_DATA_DIR": str(tmp_path), "STUDIO_PROVIDER": "local", "STUDIO_USER": "cli",
            "OPENAI_API_KEY": "sk-test-cli-eval", "OPENAI_BASE_URL": fake.base_url}


def test_eval_of_a_saved_split_over_two_models_writes_a_csv_and_saves_the_run(ws, tmp_path, fake):
    out = tmp_path / "results.csv"
    result = cli("eval", "comments", "--provider", "openai", "--model", "gpt-4.1-mini", "--model", "gpt-4o",
                 "--rule", "You said", "-o", str(out), env=ws)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out, encoding="utf-8-sig")
    n = len(prepare(read_source((ROOT / "data" / "samples" / "comments.csv").read_bytes(), "comments.csv"),
                    PrepareOptions("comment", "reply")).validation)
    assert len(frame) == 2 * n and set(frame["configuration"].str.split(" · ").str[1]) == {
        "gpt-4.1-mini (openai)", "gpt-4o (openai)"}
    assert frame["rule_passed"].all() and frame["similarity"].notna().all()
    assert f"{2 * n}/{2 * n} replies" in result.stderr
    assert "rule passed" in result.stdout
    models = sorted({r.body["model"] for r in fake.requests_to("/v1/responses")})
    assert models == ["gpt-4.1-mini", "gpt-4o"]
    store = Store(f"sqlite:///{tmp_path / 'studio.db'}")
    assert [r.status for r in EvalStore(store.engine).list(CLI_USER)] == ["finished"]


def test_eval_of_a_file_wide_output_and_bad_input(ws, tmp_path):
    data = tmp_path / "eval.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
                    "not json\n", encoding="utf-8")
    out = tmp_path / "wide.csv"
    result = cli("eval", str(data), "--provider", "openai", "--model", "gpt-4.1-mini", "--wide", "-o", str(out),
                 env=ws)
    assert result.returncode == 0, result.stderr
    assert "Line 2 is not valid JSON" in result.stderr
    frame = pd.read_csv(out, encoding="utf-8-sig")
    assert list(frame.columns[:3]) == ["row", "prompt", "reference"] and frame.iloc[0, 3] == "You said: hi"

    bad = cli("eval", "comments", "--model", "gpt-4.1-mini", "--rule", "(unclosed", "-o", str(out), env=ws)
    assert bad.returncode == 1 and "not a valid regular expression" in bad.stderr
    missing = cli("eval", "no-such-dataset", "--model", "x", "-o", str(out), env=ws)
    assert missing.returncode == 1 and "neither a file nor one of your saved datasets" in missing.stderr
    none = cli("eval", "comments", "-o", str(out), env=ws)
    assert none.returncode == 1 and "--model and --assistant" in none.stderr
