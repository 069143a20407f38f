"""The playground's evaluation view: held-out cases (a saved dataset's validation split or an
uploaded file) through the panes' configurations, run in the background with progress and
cancel, then saved runs: a summary per configuration, every reply, exports."""
from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from components import session
from components.errors import shows_store_errors
from components.knowledge import knowledge_store
from components.safe_text import plain, safe_markdown
from studio.datasets.storage import DatasetStore
from studio.datasets.types import DatasetError
from studio.evaluation.metrics import Rule, RuleError
from studio.evaluation.report import summaries, to_csv, to_jsonl, wide_table
from studio.evaluation.runner import (DEFAULT_CONCURRENCY, JUDGE_RUBRIC, cases_from_dataset, cases_from_file,
                                      is_running_here, runners_for, start_in_background)
from studio.evaluation.runs import (RUNNING, Configuration, EvalRun, EvalStore, Judge, label_configurations)
from studio.models import load_catalog
from studio.providers import ProviderError
from studio.store import StoreError

OPEN = "evaluation_open"        # session_state: the run shown
UPLOADS = "evaluation_uploads"  # bumps the uploader's key to empty it after a start


def eval_store() -> EvalStore:
    return _eval_store(session.settings().database_url)


@st.cache_resource(show_spinner=False)
def _eval_store(database_url: str) -> EvalStore:
    return EvalStore(session.store().engine)


def _assistants() -> dict:
    return {a.id: a for a in session.store().list_assistants(session.actor(), everyone=session.is_admin())}


def _provider(name: str):
    return session.provider_for(None, name=name)


@shows_store_errors
def new_evaluation(configurations: list[Configuration]) -> None:
    """The form that starts a run over the panes' configurations."""
    if len(configurations) < 1:
        st.info("Set up at least one pane in Compare: each pane is one configuration of the evaluation.")
        return
    st.caption("Configurations (the panes in Compare): " + "; ".join(plain(c.title()) for c in
                                                                      label_configurations(configurations)))
    source = st.radio("Cases", ["A saved dataset's validation split", "Upload a JSONL or CSV file"],
                      horizontal=True, key="eval_source")
    cases, problems, source_name = None, [], ""
    if source.startswith("A saved"):
        datasets = DatasetStore(session.store().engine).list_datasets(session.actor())
        if not datasets:
            st.info("You have no saved datasets: save one on the Fine-tuning page, or upload a file.")
            return
        by_id = {d.id: d for d in datasets}
        picked = st.selectbox("Dataset", list(by_id), key="eval_dataset",
                              format_func=lambda d: f"{by_id[d].name} (v{by_id[d].latest_version})")
        version = DatasetStore(session.store().engine).find(by_id[picked].name, session.actor())
        try:
            cases = cases_from_dataset(version)
            source_name = f"{version.name} v{version.version}, validation split"
        except DatasetError as exc:
            st.warning(str(exc))
    else:
        upload = st.file_uploader("Evaluation file", type=["jsonl", "csv", "xlsx", "tsv", "txt"],
                                  key=f"eval_upload_{st.session_state.get(UPLOADS, 0)}",
                                  help="Chat JSONL (each line ends with the reference reply), or a table "
                                       "with a prompt and a reference column.")
        if upload is not None:
            try:
                cases, problems = cases_from_file(upload.getvalue(), upload.name)
                source_name = upload.name
            except DatasetError as exc:
                st.error(str(exc))
    if cases:
        st.caption(f"{len(cases)} case(s) from {plain(source_name)}.")
    if problems:
        with st.expander(f"{len(problems)} line(s) left out"):
            st.text("\n".join(problems[:200]))
    with st.form("new_evaluation", enter_to_submit=False):   # it may call a paid model: the button only
        name = st.text_input("Name", value=f"{source_name or 'Evaluation'} · {datetime.now():%Y-%m-%d %H:%M}",
                             max_chars=200)
        rule = st.text_input("Rule every reply must pass (a regular expression, optional)",
                             placeholder=r"e.g. -Sam\s*$ for “ends with -Sam”")
        use_judge = st.toggle("Score with a judge model", help="Another model scores each reply 1-5 against "
                                                               "the reference, with your rubric.")
        cols = st.columns(2)
        judge_provider = cols[0].selectbox("Judge provider", ["openai", "compatible", "local"])
        judge_model = cols[1].text_input("Judge model", value="gpt-4.1-mini")
        rubric = st.text_area("Rubric", value=JUDGE_RUBRIC, height=90)
        concurrency = st.number_input("Replies at a time (remote configurations)", 1, 16, DEFAULT_CONCURRENCY)
        start = st.form_submit_button("Start evaluation", type="primary", disabled=not cases)
    if not start or not cases:
        return
    if rule.strip():
        try:
            Rule.parse(rule)
        except RuleError as exc:
            st.error(str(exc))
            return
    judge = Judge(judge_provider, judge_model.strip(), rubric) if use_judge else None
    run = EvalRun("", "", name.strip() or "Evaluation", source_name, cases, label_configurations(configurations),
                  rule=rule.strip(), judge=judge, concurrency=int(concurrency))
    try:
        runners, judge_runner = runners_for(run, _provider, _assistants())
    except (ProviderError, ValueError) as exc:
        st.error(safe_markdown(str(exc)))
        return
    run = eval_store().create(run, session.actor())
    start_in_background(eval_store(), run, runners, session.actor(), knowledge=knowledge_store(),
                        judge=judge_runner, catalog=load_catalog(session.settings().data_dir))
    st.session_state[OPEN] = run.id
    st.session_state[UPLOADS] = st.session_state.get(UPLOADS, 0) + 1
    st.rerun()


@shows_store_errors
def saved_runs() -> None:
    """Pick a saved run and show it."""
    runs = eval_store().list(session.actor())
    if not runs:
        st.caption("No evaluation runs yet.")
        return
    by_id = {r.id: r for r in runs}
    if st.session_state.get(OPEN) not in by_id:
        st.session_state[OPEN] = runs[0].id
    chosen = st.selectbox("Run", list(by_id), key=OPEN,
                          format_func=lambda r: f"{by_id[r].name} · {by_id[r].status} · "
                                                f"{by_id[r].created_at:%Y-%m-%d %H:%M}")
    run_view(chosen)


def run_view(run_id: str) -> None:
    """One run: live progress while it runs, then its results."""
    run, results = _read(run_id)
    if run is None:
        return
    if _live(run):
        _live_run(run_id)
    else:
        _draw_run(run, results)


@st.fragment(run_every=2)
def _live_run(run_id: str) -> None:
    """Redrawn every 2 s while the run runs; the whole page once it ends."""
    run, results = _read(run_id)
    if run is None:
        return
    if not _live(run):
        st.rerun()
    _draw_run(run, results)


def _live(run: EvalRun) -> bool:
    return run.status == RUNNING and not run.interrupted()


def _read(run_id: str):
    try:
        run = eval_store().get(run_id, session.actor())
        return run, (eval_store().results(run_id, session.actor()) if run else [])
    except StoreError as exc:
        st.error(str(exc))
        return None, []


def _draw_run(run: EvalRun, results: list) -> None:
    evals = eval_store()
    done = sum(not r.failed for r in results)
    mine = run.owner == session.current_user()
    if _live(run):
        st.progress(done / max(1, run.total), text=f"{done} of {run.total} replies"
                    + (" · cancelling after the replies in flight…" if run.cancel_requested else ""))
        if not run.cancel_requested and st.button("Cancel", key=f"cancel_{run.id}"):
            evals.request_cancel(run.id, session.actor())
            st.rerun(scope="fragment")
    else:
        failed = sum(r.failed for r in results)
        missing = run.total - len(results)
        state = "interrupted (the app was stopped)" if run.interrupted() else run.status
        st.caption(f"{state} · {done} of {run.total} replies · {failed} failed · {missing} not run")
        if (failed or missing) and mine and st.button(f"Run the {failed + missing} failed or missing replies",
                                                      key=f"resume_{run.id}"):
            _resume(run)
    if results:
        summary = pd.DataFrame([vars(s) for s in summaries(run, results)])
        st.dataframe(summary, hide_index=True, width="stretch")
        scores = st.toggle("Scores per row", key=f"scores_{run.id}")
        st.dataframe(wide_table(run, results, metrics=scores), hide_index=True, width="stretch")
        cols = st.columns(3)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in run.name)[:60] or "evaluation"
        cols[0].download_button("⬇ CSV", to_csv(run, results), f"{safe}.csv", "text/csv", key=f"csv_{run.id}")
        cols[1].download_button("⬇ JSONL", to_jsonl(run, results), f"{safe}.jsonl", "application/jsonl",
                                key=f"jsonl_{run.id}")
    st.caption(f"Source: {plain(run.source)} · rule: {plain(run.rule or 'none')}"
               + (f" · judge: {plain(run.judge.model)} on {run.judge.provider}" if run.judge else ""))
    if mine and not _live(run) and st.button("Delete this run", key=f"delete_{run.id}"):
        evals.delete(run.id, session.actor())
        st.session_state.pop(OPEN, None)
        st.rerun()


def _resume(run: EvalRun) -> None:
    if is_running_here(run.id):
        st.info("This run is still finishing its last replies here; try again in a moment.")
        return
    try:
        runners, judge = runners_for(run, _provider, _assistants())
    except (ProviderError, ValueError) as exc:
        st.error(safe_markdown(str(exc)))
        return
    eval_store().set_status(run.id, RUNNING, session.actor())
    start_in_background(eval_store(), run, runners, session.actor(), knowledge=knowledge_store(), judge=judge,
                        catalog=load_catalog(session.settings().data_dir))
    st.rerun()
