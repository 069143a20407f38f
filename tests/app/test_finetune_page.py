"""The fine-tuning page's dataset wizard: upload, map, check, preview, save, download."""
import json
from pathlib import Path

import pytest

from studio.datasets.storage import DatasetStore
from studio.store import Actor, Store

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "comments.csv"


def open_page(at):
    at.switch_page("pages/finetune.py")
    return at.run()


def upload(at, name: str, content: bytes, mime: str = "text/csv"):
    at.file_uploader(key="wizard_file").upload(name, content, mime)
    return at.run()


def test_the_sample_csv_becomes_a_checked_split_dataset_that_can_be_saved(signed_in, workspace, downloads):
    earlier = save_sample(workspace, name="an earlier one")
    at = upload(open_page(signed_in), "comments.csv", SAMPLE.read_bytes())
    assert at.selectbox(key="train_dataset").value == earlier.dataset_id
    assert not at.exception and not at.error
    assert at.selectbox(key="wizard_prompt").value == "comment"
    assert at.selectbox(key="wizard_response").value == "reply"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Kept"] == "63" and metrics["Train"] == "50" and metrics["Validation"] == "13"
    assert at.dataframe[0] is not None                       # the report or the preview
    line = at.get("code")[0].value                          # the exact JSONL line of the first row
    assert line.startswith('{"messages": [{"role": "user"')
    # a suffix shows in the preview line exactly as it will be written
    at.text_input(key="wizard_suffix").input(" -Sam").run()
    assert not at.exception
    at.text_input(key="wizard_name").input("comments")
    at.button[[b.label for b in at.button].index("Save dataset")].click().run()
    assert any("Saved **comments**, version 1" in s.value for s in at.success)
    saved = [d for d in DatasetStore(Store(f"sqlite:///{workspace / 'studio.db'}").engine).list_datasets(Actor("ada"))
             if d.id != earlier.dataset_id]
    assert [d.name for d in saved] == ["comments"]
    # Saved again unchanged (Enter in the name, then the button): no second, identical version.
    at.button[[b.label for b in at.button].index("Save dataset")].click().run()
    assert any("Already saved as **comments**, version 1" in i.value for i in at.info)
    datasets = DatasetStore(Store(f"sqlite:///{workspace / 'studio.db'}").engine)
    assert [v.version for v in datasets.list_versions(saved[0].id, Actor("ada"))] == [1]
    assert at.selectbox(key="train_dataset").value == saved[0].id   # the jobs tab offers it at once
    # The Saved datasets tab shows the version with its validation report, as saved.
    [saved_version] = datasets.list_versions(saved[0].id, Actor("ada"))
    issues = datasets.get_version(saved_version.id, Actor("ada")).prepared.issues
    report = next(e for e in at.expander if e.label.startswith("Validation report ("))
    assert report.label == f"Validation report ({len(issues)} line{'s' if len(issues) != 1 else ''})"
    labels = [b.proto.label for b in at.get("download_button")]
    assert "train.jsonl" in labels and "validation.jsonl" in labels and len(labels) >= 4


def test_a_file_that_is_not_a_table_says_so_and_keeps_the_page(signed_in):
    at = upload(open_page(signed_in), "photo.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20, "image/png")
    assert not at.exception
    assert at.error and at.error[0].value
    assert at.file_uploader(key="wizard_file") is not None


def test_a_header_only_csv_and_an_empty_file_get_clear_messages(signed_in):
    at = upload(open_page(signed_in), "empty.csv", b"   \n")
    assert any("empty" in e.value for e in at.error)
    at = upload(at, "header.csv", b"comment,response\n")
    assert not at.exception and at.error


def test_a_broken_jsonl_reports_the_line_and_flagged_rows_can_be_left_out(signed_in):
    good = '{"messages": [{"role": "user", "content": "q%d"}, {"role": "assistant", "content": "a%d"}]}'
    lines = [good % (n, n) for n in range(12)]
    lines.insert(3, '{"messages": [ this is not json')
    lines.append(good % (1, 1))                               # a duplicate of line 2
    at = upload(open_page(signed_in), "train.jsonl", "\n".join(lines).encode(), "application/jsonl")
    assert not at.exception
    assert not [c for c in at.checkbox if c.key == "wizard_header"]   # a JSONL has no header row to choose
    report = at.dataframe[0].value
    assert any("4" in str(rows) for rows in report["rows"])   # the broken line, by its number
    flagged = at.multiselect(key="wizard_exclude")
    kept_before = int(next(m.value for m in at.metric if m.label == "Kept"))
    flagged.select(flagged.options[0]).run()
    assert int(next(m.value for m in at.metric if m.label == "Kept")) == kept_before - 1


def test_a_second_file_with_other_columns_gets_its_own_mapping(signed_in):
    at = upload(open_page(signed_in), "comments.csv", SAMPLE.read_bytes())
    rows = "\n".join(f"question {n},answer {n},extra" for n in range(12))
    at = upload(at, "faq.csv", f"question,answer,notes\n{rows}\n".encode())
    assert not at.exception and not at.error
    assert (at.selectbox(key="wizard_prompt").value, at.selectbox(key="wizard_response").value) == \
        ("question", "answer")
    assert any("Ignored columns: notes" in c.value for c in at.caption)


def test_a_file_over_the_size_limit_is_refused_with_the_limit_named(signed_in, monkeypatch):
    monkeypatch.setenv("STUDIO_DATASET_MAX_MB", "0.001")
    at = upload(open_page(signed_in), "comments.csv", SAMPLE.read_bytes())
    assert not at.exception
    assert any("the limit is" in e.value and "STUDIO_DATASET_MAX_MB" in e.value.replace("\\", "") for e in at.error)
    # the uploader tells the browser the same limit (not Streamlit's default 200 MB)
    assert at.get("file_uploader")[0].proto.max_upload_size_mb == 1


def test_a_job_in_the_store_shows_its_status_loss_chart_and_events_and_can_be_cancelled(signed_in, workspace):
    from datetime import datetime, timezone

    from studio.finetune.jobs import FineTuneJob, JobEvent, JobStore, StepMetric
    from studio.types import new_id
    jobs = JobStore(Store(f"sqlite:///{workspace / 'studio.db'}").engine)
    job = jobs.create(FineTuneJob(id=new_id("ftjob"), owner="ada", provider="local",
                                  base_model="smollm2-135m-instruct", dataset_version_id="dsv_x", suffix="sam",
                                  status="running"), Actor("ada"))
    jobs.add_metrics(job.id, [StepMetric(step=s, epoch=s / 10, train_loss=2.0 - s / 10, tokens_per_s=900.0,
                                         eta_s=120.0, valid_loss=2.5 if s in (2, 4) else None)
                              for s in range(1, 6)], Actor("ada"))
    jobs.heartbeat(job.id, Actor("ada"))                       # its worker is alive
    now = datetime.now(timezone.utc)
    jobs.add_events(job.id, [JobEvent(now, "info", "Training started", id="e1"),
                             JobEvent(now, "info", "Epoch 1 done", id="e2")], Actor("ada"))
    at = open_page(signed_in)
    assert not at.exception
    assert any("running" in m.value and "smollm2-135m-instruct" in m.value for m in at.markdown)
    assert any("step 5" in c.value and "900 tokens/s" in c.value for c in at.caption)
    # The validation loss, measured at two steps only, is drawn as points on the chart.
    chart = at.get("vega_lite_chart")[0].proto
    spec = json.loads(chart.spec)
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["line", "point"]
    rows = [row for data in chart.datasets for row in _rows(data)]
    assert sorted((r["step"], r["loss"]) for r in rows if r["series"] == "validation loss") == [(2, 2.5), (4, 2.5)]
    events = at.dataframe[-1].value
    assert list(events["message"]) == ["Epoch 1 done", "Training started"]   # newest first
    next(b for b in at.button if b.label == "Cancel job").click().run()
    assert jobs.cancel_requested(job.id, Actor("ada"))
    assert any("Cancel requested" in c.value for c in at.caption)   # the worker stops at its next step


def test_cancelling_a_local_job_whose_worker_is_gone_ends_it_at_once(signed_in, workspace):
    from studio.finetune.jobs import FineTuneJob, JobStore
    from studio.types import new_id
    jobs = JobStore(Store(f"sqlite:///{workspace / 'studio.db'}").engine)
    job = jobs.create(FineTuneJob(id=new_id("ftjob"), owner="ada", provider="local",
                                  base_model="smollm2-135m-instruct", dataset_version_id="dsv_x",
                                  status="queued"), Actor("ada"))
    at = open_page(signed_in)
    next(b for b in at.button if b.label == "Cancel job").click().run()
    assert jobs.get(job.id, Actor("ada")).status == "cancelled"
    assert any(b.label == "Start again" for b in at.button)


def save_sample(workspace, owner="ada", name="comments"):
    import os

    from studio.datasets import PrepareOptions, prepare, read_source
    source = read_source(SAMPLE.read_bytes(), "comments.csv")
    prepared = prepare(source, PrepareOptions("comment", "reply"), model_dir=Path(os.environ["STUDIO_MODEL_CACHE"]))
    return DatasetStore(Store(f"sqlite:///{workspace / 'studio.db'}").engine).save_version(name, prepared,
                                                                                          Actor(owner))


def jobs_of(workspace):
    from studio.finetune.jobs import JobStore
    return JobStore(Store(f"sqlite:///{workspace / 'studio.db'}").engine).list(Actor("ada"))


@pytest.fixture
def workers(monkeypatch):
    """Worker starts, recorded instead of run (the worker itself is tested in tests/unit)."""
    import studio.finetune.local_jobs as local_jobs
    started = []
    monkeypatch.setattr(local_jobs, "start_worker", lambda job_id, data_dir, env=None: started.append(job_id) or 4242)
    return started


def test_a_local_training_starts_from_a_saved_dataset_and_is_shown_queued(signed_in, workspace, workers):
    save_sample(workspace)
    at = open_page(signed_in)
    assert at.radio(key="train_where").value == "local"
    next(b for b in at.button if b.label == "Start training on this machine").click().run()
    assert not at.exception
    [job] = jobs_of(workspace)
    assert workers == [job.id] and job.provider == "local" and job.status == "queued"
    assert job.hyperparameters["epochs"] == 3 and job.hyperparameters["learning_rate"] == 2e-3
    assert at.selectbox(key="picked_job").value == job.id
    assert any("queued" in m.value for m in at.markdown)


def test_openai_refusing_fine_tuning_shows_its_code_and_offers_local_training(on_openai, workspace, fake_server,
                                                                              workers):
    save_sample(workspace)
    fake_server.ft_refuse_create = "training_not_available"
    try:
        at = open_page(on_openai)
        at.radio(key="train_where").set_value("openai").run()
        assert not at.exception and not at.error
        next(b for b in at.button if b.label == "Start on OpenAI").click().run()
    finally:
        fake_server.ft_refuse_create = None
    assert any("training_not_available" in e.value for e in at.error)
    [refused] = jobs_of(workspace)
    assert refused.provider == "openai" and refused.status == "failed"
    next(b for b in at.button if b.label == "Train locally instead").click().run()
    local = next(j for j in jobs_of(workspace) if j.provider == "local")
    assert workers == [local.id] and local.dataset_version_id == refused.dataset_version_id


def test_an_openai_job_runs_to_a_finished_model_while_the_page_is_open(on_openai, workspace, fake_server):
    import time
    save_sample(workspace)
    at = open_page(on_openai)
    at.radio(key="train_where").set_value("openai").run()
    next(b for b in at.button if b.label == "Start on OpenAI").click().run()
    assert not at.exception and not at.error
    [job] = jobs_of(workspace)
    assert job.provider == "openai" and job.provider_job_id
    import components.finetune_jobs as view
    view.OPENAI_POLL_S = 0.0
    try:
        for _ in range(40):                        # the fake's job ticks every 20 ms
            time.sleep(0.2)
            at.run()
            if jobs_of(workspace)[0].finished:
                break
    finally:
        view.OPENAI_POLL_S = 10.0
    done = jobs_of(workspace)[0]
    assert done.status == "succeeded" and done.result_model.startswith("ft:")
    at.run()
    assert any(done.result_model in s.value for s in at.success)


def test_a_compatible_server_says_it_has_no_fine_tuning(signed_in, workspace):
    save_sample(workspace)
    at = open_page(signed_in)
    at.radio(key="train_where").set_value("compatible").run()
    assert any("no fine-tuning" in i.value for i in at.info)


def test_a_finished_local_model_is_offered_in_the_assistant_editor_and_runs_locally(signed_in, workspace):
    from studio.finetune.jobs import FineTuneJob, JobStore, local_model_id
    from studio.types import new_id
    jobs = JobStore(Store(f"sqlite:///{workspace / 'studio.db'}").engine)
    job = jobs.create(FineTuneJob(id=new_id("ftjob"), owner="ada", provider="local",
                                  base_model="smollm2-135m-instruct", dataset_version_id="dsv_x", suffix="sam",
                                  status="running"), Actor("ada"))
    job = jobs.update(job.id, Actor("ada"), status="succeeded", result_model=local_model_id(job))
    jobs.register_model(job, adapter_path=str(workspace / "adapter"))
    signed_in.switch_page("pages/assistants.py")
    at = signed_in.run()
    picker = next(s for s in at.selectbox if s.label == "Or one of your fine-tuned models")
    assert any(job.result_model in option and "fine-tuned here" in option for option in picker.options)
    picker.set_value(job.result_model)
    at.button(key="FormSubmitter:assistant_" + at.selectbox[0].value + "-Save").click().run()
    assert not at.exception and not at.error
    [spec] = Store(f"sqlite:///{workspace / 'studio.db'}").list_assistants(Actor("ada"))
    assert (spec.model, spec.provider) == (job.result_model, "local")


def test_an_admin_sets_a_workspace_price_and_the_estimate_uses_it(signed_in, workspace):
    from studio.datasets.pricing import load_price_table
    at = upload(open_page(signed_in), "comments.csv", SAMPLE.read_bytes())
    at.selectbox(key="wizard_model").set_value("gpt-4.1-mini-2025-04-14").run()
    assert any("$5.00 per million" in c.value for c in at.caption)
    form_inputs = [t for t in at.text_input if t.placeholder == "gpt-4.1-mini-2025-04-14"]
    form_inputs[0].input("gpt-4.1-mini-2025-04-14")
    next(n for n in at.number_input if n.label == "USD per million training tokens").set_value(7.5)
    next(b for b in at.button if b.label == "Set price").click().run()
    assert not at.exception
    assert load_price_table(workspace).price_for("gpt-4.1-mini-2025-04-14").training_per_million == 7.5
    assert any("$7.50 per million" in c.value for c in at.caption)


def _rows(named_dataset) -> list[dict]:
    """The rows of a dataset in a chart's proto (Arrow IPC bytes)."""
    import pyarrow as pa
    return pa.ipc.open_stream(named_dataset.data.data).read_all().to_pylist()
