"""The fine-tuning page's job list and one job's live view: status, loss chart, events,
checkpoints, the finished model; cancel.

Everything comes from the store (studio.finetune.jobs), never from session state, so a reload,
another tab or a restarted server shows the same. A job still running is redrawn every few
seconds by a fragment, without rerunning the page.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from components import session
from components.errors import shows_store_errors
from components.safe_text import inline_code, plain
from studio.finetune.jobs import FAILED, SUCCEEDED, FineTuneJob, JobStore

REFRESH_S = 2.0
EVENTS_SHOWN = 50
STATUS_ICON = {SUCCEEDED: "✅", FAILED: "⛔", "cancelled": "⏹️", "running": "🏃", "queued": "⏳",
               "validating_files": "🔎", "preparing": "📦"}


def job_store() -> JobStore:
    return JobStore(session.store().engine)


def job_label(job: FineTuneJob) -> str:
    when = job.created_at.strftime("%Y-%m-%d %H:%M") if job.created_at else ""
    return f"{STATUS_ICON.get(job.status, '•')} {job.provider} · {job.base_model} · {job.status} · {when}"


def jobs_view(cancel=None) -> None:
    """The user's jobs, newest first, and the chosen one's live view.

    `cancel(job)`: what Cancel does for a provider (e.g. asks OpenAI); the store's cancel flag
    is set either way (a local trainer reads it)."""
    jobs = job_store().list(session.actor())
    if not jobs:
        st.caption("No training jobs yet.")
        return
    by_id = {job.id: job for job in jobs}
    picked = st.selectbox("Job", list(by_id), format_func=lambda i: job_label(by_id[i]), key="picked_job")
    running = not by_id[picked].finished
    # A fragment that reruns itself while the job can still change; a finished job is drawn once.
    st.fragment(run_every=REFRESH_S if running else None)(job_detail)(picked, cancel)


def job_detail(job_id: str, cancel=None) -> None:
    store = job_store()
    job = store.get(job_id, session.actor())
    if job is None:
        st.warning("This job is gone (deleted in another tab?).")
        return
    st.markdown(f"**{STATUS_ICON.get(job.status, '•')} {plain(job.status)}** · {job.provider} · base "
                f"{inline_code(job.base_model)}" + (f" · suffix {inline_code(job.suffix)}" if job.suffix else ""))
    if job.error_code or job.error_message:   # the provider's own words, as they came
        st.error(f"{inline_code(job.error_code or 'error')} {plain(job.error_message)}")
    if job.result_model:
        st.success(f"Finished model: {inline_code(job.result_model)}. Pick it in an assistant's model, or "
                   f"`python -m studio chat --model {job.result_model}`.")
    metrics = store.list_metrics(job_id, session.actor())
    if metrics:
        _progress(job, metrics)
    if not job.finished:
        if job.cancel_requested:
            st.caption("Cancel requested…")
        else:   # a callback: it runs before the redraw, which then shows the request
            st.button("Cancel job", key=f"cancel_{job.id}", on_click=_cancel, args=(store, job, cancel))
    if job.checkpoints:
        with st.expander(f"Checkpoints ({len(job.checkpoints)})"):
            st.dataframe(pd.DataFrame(job.checkpoints), hide_index=True, width="stretch")
    events = store.list_events(job_id, session.actor(), limit=EVENTS_SHOWN)
    if events:
        st.caption("Events, newest first")
        st.dataframe(pd.DataFrame([{"time": e.time.strftime("%H:%M:%S"), "level": e.level, "message": e.message}
                                   for e in events]), hide_index=True, width="stretch")


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
    frame = pd.DataFrame([{"step": m.step, "train loss": m.train_loss, "validation loss": m.valid_loss}
                          for m in metrics]).set_index("step")
    st.line_chart(frame.dropna(axis=1, how="all"), height=260)


@shows_store_errors
def _cancel(store: JobStore, job: FineTuneJob, cancel) -> None:
    store.request_cancel(job.id, session.actor())
    if cancel is not None:
        error = cancel(job)
        if error:
            st.error(plain(error))
            return
    st.toast("Cancel requested.")
