"""`python -m studio finetune ...` run as a user would, against the fake OpenAI server."""
from pathlib import Path

import pytest

from studio.datasets import PrepareOptions, prepare, read_source
from studio.datasets.storage import DatasetStore
from studio.finetune.jobs import JobStore
from studio.store import Actor, Store
from tests.unit.test_cli import cli

ROOT = Path(__file__).resolve().parents[2]
BASE = "gpt-4.1-mini-2025-04-14"
CLI_USER = Actor("cli")


@pytest.fixture
def ws(tmp_path, fake):
    """A workspace holding the sample dataset as user `cli`, with OpenAI pointed at the fake."""
    store = Store(f"sqlite:///{tmp_path / 'studio.db'}")
    data = (ROOT / "data" / "samples" / "comments.csv").read_bytes()
    prepared = prepare(read_source(data, "comments.csv"), PrepareOptions("comment", "reply", model=BASE))
    DatasetStore(store.engine).save_version("comments", prepared, CLI_USER, source_bytes=data)
    return {"STUDIO_DATA_DIR": str(tmp_path), "STUDIO_PROVIDER": "local", "STUDIO_USER": "cli",
            "OPENAI_API_KEY": "sk-test-cli-ft", "OPENAI_BASE_URL": fake.base_url}


def test_launch_wait_list_and_status(ws, tmp_path):
    result = cli("finetune", "openai", "comments", "--model", BASE, "--suffix", "sam", "--epochs", "1",
                 "--batch-size", "16", "--wait", "--poll", "0.05", env=ws)
    assert result.returncode == 0, result.stderr
    assert "Step 4/4: training loss=" in result.stdout and "The job has successfully completed" in result.stdout
    model = result.stdout.strip().splitlines()[-1].removeprefix("succeeded: ")
    assert model.startswith(f"ft:{BASE}:org-fake:sam:")
    [job] = JobStore(Store(f"sqlite:///{tmp_path / 'studio.db'}").engine).list(CLI_USER)
    listed = cli("finetune", "list", env=ws)
    assert listed.stdout.split("\t")[:4] == [job.id, "openai", "succeeded", BASE]
    status = cli("finetune", "status", job.id, "--events", "3", env=ws)
    assert status.returncode == 0, status.stderr
    assert f"model: {model}" in status.stdout and "step  epoch  train_loss" in status.stdout
    assert "events (newest first):" in status.stdout and "checkpoints: step 4" in status.stdout
    missing = cli("finetune", "status", "ftj_nope", env=ws)
    assert missing.returncode == 1 and "No fine-tuning job 'ftj_nope'" in missing.stderr


def test_cancel_and_refusals(ws, fake):
    fake.ft_step_s = 5   # the job stays in validating_files
    started = cli("finetune", "openai", "comments", "--model", BASE, env=ws)
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.split()[1]
    cancelled = cli("finetune", "cancel", job_id, env=ws)
    assert cancelled.returncode == 0 and "status: cancelled" in cancelled.stdout
    fake.ft_refuse_create = "training_not_available"
    refused = cli("finetune", "openai", "comments", "--model", BASE, env=ws)
    assert refused.returncode == 1 and "(403 training_not_available): Fine-tuning is no longer" in refused.stderr
    assert "Train locally instead: python -m studio finetune local comments" in refused.stderr
    bad = cli("finetune", "openai", "comments", "--model", BASE, "--epochs", "99", env=ws)
    assert bad.returncode == 1 and "n_epochs must be from 1 to 50" in bad.stderr
    nothing = cli("finetune", "openai", "nope", "--model", BASE, env=ws)
    assert nothing.returncode == 1 and "No dataset 'nope'" in nothing.stderr
