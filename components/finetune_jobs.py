"""The fine-tuning page's job list and one job's live view: status, loss chart, events,
checkpoints, the finished model; cancel.

Everything comes from the store (studio.finetune.jobs), never from session state, so a reload,
another tab or a restarted server shows the same. A job still running is redrawn every few
seconds by a fragment, without rerunning the page.
"""
from __future__ import annotations

import time

import altair as alt
import pandas as pd
import streamlit as st

from components import session
from components.auth import signed_in_page
from components.errors import shows_store_errors
from components.safe_text import inline_code, plain
from studio.finetune.jobs import FAILED, SUCCEEDED, FineTuneJob, JobStore
from studio.finetune.local_jobs import cancel_local_job, notice_dead_worker, resume_local_job
from studio.providers import ProviderError

REFRESH_S = 2.0
OPENAI_POLL_S = 10.0     # a running OpenAI job is asked about this often while its page is open
COMPARE_PROMPTS = 3      # validation prompts answered by the base and the tuned model at the end
EVENTS_SHOWN = 50
PICKED_JOB = "picked_job"      # session_state: the job shown (the launch form sets it)
NOT_CANCELLED = "finetune_not_cancelled"   # session_state: (job id, why) when OpenAI refused a cancel
STATUS_ICON = {SUCCEEDED: "✅", FAILED: "⛔", "cancelled": "⏹️", "running": "🏃", "queued": "⏳",
               "validating_files": "🔎", "preparing": "📦"}


def job_store() -> JobStore:
    return JobStore(session.store().engine)


def job_label(job: FineTuneJob) -> str:
    when = job.created_at.strftime("%Y-%m-%d %H:%M") if job.created_at else ""
    return f"{STATUS_ICON.get(job.status, '•')} {job.provider} · {job.base_model} · {job.status} · {when}"


def tuned_models() -> dict[str, str]:
    """The user's finished fine-tuned models, id -> how a model picker describes it."""
    where = {"local": "fine-tuned here, runs on the embedded model", "openai": "fine-tuned on OpenAI"}
    return {m.id: f"{m.id} ({where.get(m.provider, m.provider)})" for m in job_store().list_models(session.actor())}


def jobs_view() -> None:
    """The user's jobs, newest first, and the chosen one's live view."""
    jobs = job_store().list(session.actor())
    if not jobs:
        st.caption("No training jobs yet.")
        return
    by_id = {job.id: job for job in jobs}
    if st.session_state.get(PICKED_JOB) not in by_id:
        st.session_state.pop(PICKED_JOB, None)
    picked = st.selectbox("Job", list(by_id), format_func=lambda i: job_label(by_id[i]), key=PICKED_JOB)
    running = not by_id[picked].finished
    # A fragment that reruns itself while the job can still change; a finished job is drawn once.
    st.fragment(run_every=REFRESH_S if running else None)(job_detail)(picked, running)


def job_detail(job_id: str, drawn_running: bool = False) -> None:
    """The job's live view. `drawn_running`: the page around it shows the job as not finished."""
    signed_in_page()   # a fragment's own reruns skip the page's gate: a signed-out tab must not act
    store = job_store()
    job = store.get(job_id, session.actor())
    if job is None:
        st.warning("This job is gone (deleted in another tab?).")
        return
    job = _refreshed(job)
    if drawn_running and job.finished:
        st.rerun()   # the whole page: the job list's label says how it ended, and the timer stops
    st.markdown(f"**{STATUS_ICON.get(job.status, '•')} {plain(job.status)}** · {job.provider} · base "
                f"{inline_code(job.base_model)}" + (f" · suffix {inline_code(job.suffix)}" if job.suffix else ""))
    if job.error_code or job.error_message:   # the provider's own words, as they came
        st.error(f"{inline_code(job.error_code or 'error')} {plain(job.error_message)}")
        _after_failure(job)
    if job.result_model:
        st.success(f"Finished model: {inline_code(job.result_model)}. Pick it in an assistant's model, or "
                   f"{inline_code('python -m studio chat --model ' + job.result_model)}.")
    metrics = store.list_metrics(job_id, session.actor())
    if metrics:
        _progress(job, metrics)
    if not job.finished:
        refused = st.session_state.get(NOT_CANCELLED)   # kept until the next try (this part redraws itself)
        if refused and refused[0] == job.id:
            st.error(f"OpenAI did not cancel the job: {plain(refused[1])}")
        if job.cancel_requested:
            st.caption("Cancel requested…")
        else:   # a callback: it runs before the redraw, which then shows the request
            st.button("Cancel job", key=f"cancel_{job.id}", on_click=_cancel, args=(store, job))
    elif job.provider == "local" and job.status in (FAILED, "cancelled"):
        if st.button("Resume from the last checkpoint" if job.checkpoints else "Start again", key=f"resume_{job.id}"):
            _resume(job)
            st.rerun()   # the whole page: the job is running again and redraws itself
    if job.checkpoints:
        with st.expander(f"Checkpoints ({len(job.checkpoints)})"):
            st.dataframe(pd.DataFrame(job.checkpoints), hide_index=True, width="stretch")
    events = store.list_events(job_id, session.actor(), limit=EVENTS_SHOWN)
    if events:
        st.caption("Events, newest first")
        st.dataframe(pd.DataFrame([{"time": e.time.strftime("%H:%M:%S"), "level": e.level, "message": e.message}
                                   for e in events]), hide_index=True, width="stretch")
    if job.status == SUCCEEDED and job.provider == "local":
        _compare(job)


def _refreshed(job: FineTuneJob) -> FineTuneJob:
    """The job as it stands now: a dead local worker is noticed; a running OpenAI job is asked
    about (every OPENAI_POLL_S while its page is open)."""
    if job.provider == "local":
        return notice_dead_worker(session.store(), job)
    if job.provider != "openai" or job.finished or not job.provider_job_id or job.owner != session.current_user():
        return job
    polled = st.session_state.setdefault("finetune_polled", {})
    if time.monotonic() - polled.get(job.id, 0.0) < OPENAI_POLL_S:
        return job
    polled[job.id] = time.monotonic()
    try:
        from components.finetune_launch import openai_tuning
        return openai_tuning().sync(job, session.actor())
    except ProviderError as exc:   # shown, and asked again at the next poll
        st.warning(f"Could not ask OpenAI about this job just now: {plain(str(exc))}")
        return job


def _after_failure(job: FineTuneJob) -> None:
    """A failed OpenAI job that local training gets round offers it, with the same dataset."""
    if job.provider != "openai":
        return
    from studio.finetune.openai_jobs import job_failure
    failure = job_failure(job)
    if failure is not None and failure.suggest_local:
        if st.button("Train locally instead", key=f"instead_{job.id}", type="primary"):
            _train_locally(job)
            st.rerun()   # the whole page: the new job is listed and shown


def _progress(job: FineTuneJob, metrics) -> None:
    last = metrics[-1]
    facts = [f"step {last.step}"]
    if last.epoch is not None:
        facts.append(f"epoch {last.epoch:.2f}")
    if last.tokens_per_s:
        facts.append(f"{last.tokens_per_s:,.0f} tokens/s")
    if last.eta_s and not job.finished:
        facts.append(f"about {last.eta_s / 60:.0f} min left" if last.eta_s >= 90 else f"about {last.eta_s:.0f} s left")
    if job.trained_tokens:
        facts.append(f"{job.trained_tokens:,} tokens trained")
    st.caption(" · ".join(facts))
    loss_chart(metrics)


def loss_chart(metrics) -> None:
    """Train loss as a line; validation loss (measured once an epoch, so at a few steps only) as
    points joined by a line. (st.line_chart draws nothing for a value with gaps on both sides.)"""
    frame = pd.DataFrame([{"step": m.step, "train loss": m.train_loss, "validation loss": m.valid_loss}
                          for m in metrics])
    points = frame.melt("step", var_name="series", value_name="loss").dropna()
    base = alt.Chart(points).encode(
        x=alt.X("step:Q", title="step"), y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["step:Q", "series:N", alt.Tooltip("loss:Q", format=".3f")])
    marks = base.mark_point(filled=True, size=60).transform_filter(alt.datum.series == "validation loss")
    st.altair_chart((base.mark_line() + marks).properties(height=260), width="stretch")


@shows_store_errors
def _cancel(store: JobStore, job: FineTuneJob) -> None:
    st.session_state.pop(NOT_CANCELLED, None)
    if job.provider == "openai":   # also one that never reached OpenAI (no provider job id yet)
        try:
            from components.finetune_launch import openai_tuning
            openai_tuning().cancel(job, session.actor())
        except ProviderError as exc:   # shown by the redraw (a callback draws nothing itself)
            st.session_state[NOT_CANCELLED] = (job.id, str(exc))
            return
    else:   # a live worker stops at its next step; a job with none ends cancelled now
        cancel_local_job(session.store(), job, session.actor())


@shows_store_errors
def _resume(job: FineTuneJob) -> None:
    from components.finetune_launch import _worker_env
    try:
        resume_local_job(session.store(), job, session.actor(), session.settings().data_dir, env=_worker_env())
    except ValueError as exc:   # e.g. resumed in another tab already
        st.warning(plain(str(exc)))
        return
    st.toast("Training resumed.")


@shows_store_errors
def _train_locally(job: FineTuneJob) -> None:
    from components.finetune_launch import start_local
    from studio.datasets.storage import DatasetStore
    from studio.finetune.trainer import LocalTrainOptions
    version = DatasetStore(session.store().engine).get_version(job.dataset_version_id, session.actor())
    if version is None:
        st.error("The job's dataset version was deleted; prepare it again on the New dataset tab.")
        return
    start_local(version, LocalTrainOptions(), job.suffix)


def _compare(job: FineTuneJob) -> None:
    """A few validation prompts answered by the base model and by the tuned one, side by side
    (greedy, so the difference is the training's)."""
    results = st.session_state.setdefault("finetune_compare", {})
    if job.id not in results:
        if not st.button(f"Compare with the base model on {COMPARE_PROMPTS} validation prompts",
                         key=f"compare_{job.id}"):
            return
        with st.spinner("Both models are answering…"):
            results[job.id] = compare_answers(job)
    rows = results[job.id]
    if isinstance(rows, str):
        st.warning(rows)
        return
    for prompt, base, tuned in rows:
        st.markdown(f"**Prompt:** {plain(prompt)}")
        left, right = st.columns(2)
        left.caption("Base model")
        left.text(base)
        right.caption(f"Tuned: {job.result_model}")
        right.text(tuned)


def compare_answers(job: FineTuneJob) -> list[tuple[str, str, str]] | str:
    """(prompt, base answer, tuned answer) for the first validation prompts, or why not."""
    from studio.datasets.storage import DatasetStore
    from studio.finetune.local_jobs import answer_side_by_side
    version = DatasetStore(session.store().engine).get_version(job.dataset_version_id, session.actor())
    if version is None or version.prepared is None:
        return "The job's dataset version was deleted; nothing to compare on."
    examples = (version.prepared.validation or version.prepared.train)[:COMPARE_PROMPTS]
    adapter = next((m.adapter_path for m in job_store().list_models(session.actor(), provider="local")
                    if m.id == job.result_model), None)
    if adapter is None:
        return "The tuned model's adapter is not in the workspace any more."
    return answer_side_by_side(session.settings().model_dir, adapter, examples)
