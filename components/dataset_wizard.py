"""The fine-tuning page's first step: a file of comment/response pairs becomes checked, split,
counted training data, saved as a dataset version and downloadable in several formats.

Everything is computed by studio.datasets; this module only draws it. The uploaded file stays in
the uploader (and its bytes in session state), so a rerun or a bad choice loses nothing.
"""
from __future__ import annotations

import json
import math

import pandas as pd
import streamlit as st

from components import session
from components.errors import shows_store_errors
from components.safe_text import plain
from studio.datasets import (DatasetError, PrepareOptions, PreparedDataset, export_files, guess_columns, prepare,
                             read_source, system_prompt_from_assistant)
from studio.datasets.reading import file_sha256, max_upload_bytes
from studio.datasets.pricing import load_price_table, save_price_override
from studio.datasets.report import summary_lines
from studio.datasets.feedback import original_source
from studio.datasets.storage import DatasetStore, check_name
from studio.datasets.types import ChatSource, DEFAULT_MODEL, DEFAULT_VALIDATION_FRACTION
from studio.datasets.validation import group_issues, rows_text

PREPARED = "wizard_prepared"     # session_state: (inputs key, PreparedDataset) of the last prepare
SOURCE = "wizard_source"         # session_state: (file key, what read_source made of it)
FILES = "wizard_files"           # session_state: (PreparedDataset, its export files)
SAVED = "wizard_saved"           # session_state: (PreparedDataset, name key, DatasetVersion) of the last save
PREVIEW_ROWS = 20
SEVERITY_ICON = {"error": "⛔", "warning": "⚠️", "info": "ℹ️"}
SYSTEM_CHOICES = ("None", "Type one", "From an assistant")
MIME = {".jsonl": "application/jsonl", ".json": "application/json", ".parquet": "application/octet-stream"}


def dataset_store() -> DatasetStore:
    return DatasetStore(session.store().engine)


def dataset_wizard() -> None:
    """Upload -> map columns and options -> report, preview, estimate -> save and download."""
    upload = st.file_uploader("A CSV, an Excel sheet (.xlsx) or a chat-format JSONL",
                              type=["csv", "tsv", "txt", "xlsx", "jsonl", "json"], key="wizard_file",
                              help="One prompt/response pair per row (e.g. a viewer comment and the reply).",
                              max_upload_size=math.ceil(max_upload_bytes() / 1e6))   # the limit it says
    if upload is None:
        st.caption("No file yet? data/samples/comments.csv holds 63 comment/reply pairs to try.")
        return
    data = upload.getvalue()
    is_chat = upload.name.lower().endswith((".jsonl", ".json"))   # a JSONL has no header row
    has_header = is_chat or st.checkbox("The first row holds the column names", value=True, key="wizard_header")
    source = _read(data, upload.name, has_header)
    if source is None:
        return
    st.caption(f"Read **{plain(upload.name)}** ({source.kind}). " + plain(" ".join(source.notes)))
    options = _options(source)
    if options is None:
        return
    prepared = _prepared(source, options)
    if prepared is None:
        return
    _summary(prepared)
    _report(prepared)
    _preview(prepared)
    _save_and_download(prepared, data, upload.name)


def _read(data: bytes, filename: str, has_header: bool):
    sheet = st.session_state.get("wizard_sheet")
    # Read once per file and choice, not on every rerun of the page (any click reruns it).
    key = (file_sha256(data), filename, has_header, sheet)
    cached = st.session_state.get(SOURCE)
    if cached and cached[0] == key:
        return cached[1]
    try:
        source = read_source(data, filename, sheet=sheet, has_header=has_header)
        st.session_state[SOURCE] = (key, source)
        return source
    except DatasetError as exc:   # its text may quote the file: shown as plain text
        st.error(plain(str(exc)))
        return None


def _options(source) -> PrepareOptions | None:
    """The choices that turn the file into examples, drawn as a form-like block."""
    prices = load_price_table(session.settings().data_dir)
    if getattr(source, "sheets", None) and len(source.sheets) > 1:
        st.selectbox("Sheet", source.sheets, key="wizard_sheet")
    prompt_col = response_col = ""
    system, system_from, suffix = "", "", ""
    if isinstance(source, ChatSource):
        st.info("A chat JSONL is imported as it is: its messages are the examples (no column mapping, "
                "system prompt or suffix).")
    else:
        guess = guess_columns(source)
        columns = source.columns
        left, right = st.columns(2)
        prompt_col = left.selectbox("Prompt column (what the model reads)", columns, key="wizard_prompt",
                                    index=columns.index(guess.prompt) if guess.prompt in columns else 0)
        response_col = right.selectbox("Response column (what it learns to answer)", columns, key="wizard_response",
                                       index=columns.index(guess.response) if guess.response in columns
                                       else min(1, len(columns) - 1))
        ignored = [c for c in columns if c not in (prompt_col, response_col)]
        if ignored:
            st.caption("Ignored columns: " + ", ".join(plain(c) for c in ignored))
        system, system_from = _system_prompt()
        suffix = st.text_input("Append to every response (optional)", key="wizard_suffix",
                               placeholder=" -Sam",
                               help="Added exactly as typed (spaces included), unless a response already "
                                    "ends with it. The preview below shows the result.")
    left, middle, right = st.columns(3)
    fraction = left.number_input("Validation fraction", min_value=0.0, max_value=0.5, step=0.05,
                                 value=DEFAULT_VALIDATION_FRACTION, key="wizard_val")
    seed = middle.number_input("Split seed", min_value=0, value=0, step=1, key="wizard_seed",
                               help="The same file, options and seed always give the same split.")
    models = sorted(prices.models) if DEFAULT_MODEL in prices.models else [DEFAULT_MODEL, *sorted(prices.models)]
    model = right.selectbox("Base model (token limit, counts and price)", models, key="wizard_model",
                            index=models.index(DEFAULT_MODEL))
    epochs_auto = st.checkbox("Epochs: automatic", value=True, key="wizard_epochs_auto")
    epochs = None if epochs_auto else int(st.number_input("Epochs", 1, 50, 3, key="wizard_epochs"))
    exclude = st.session_state.get("wizard_exclude", [])
    return PrepareOptions(prompt_column=prompt_col, response_column=response_col, system_prompt=system,
                          system_from=system_from, suffix=suffix, validation_fraction=float(fraction),
                          seed=int(seed), model=model, exclude_rows=frozenset(exclude), epochs=epochs)


def _system_prompt() -> tuple[str, str]:
    choice = st.radio("System prompt", SYSTEM_CHOICES, horizontal=True, key="wizard_system_choice")
    if choice == "Type one":
        text = st.text_area("System prompt", key="wizard_system", height=100)
        return text.strip(), "typed" if text.strip() else ""
    if choice == "From an assistant":
        assistants = session.store().list_assistants(session.actor())
        if not assistants:
            st.warning("You have no assistants; create one on the Assistants page or type a prompt.")
            return "", ""
        names = {a.id: a for a in assistants}
        picked = names[st.selectbox("Assistant", list(names), format_func=lambda i: plain(names[i].name),
                                    key="wizard_system_assistant")]
        text = system_prompt_from_assistant(picked)
        st.caption(f"Its instructions with its few-shot examples compiled in, as the chat sends them "
                   f"({len(text):,} characters).")
        return text, f"assistant:{picked.name}"
    return "", ""


def _prepared(source, options: PrepareOptions) -> PreparedDataset | None:
    # Reruns that change nothing here (a click on a download, a sidebar toggle) reuse the result.
    key = (source.sha256, source.kind, tuple(getattr(source, "columns", ())), tuple(source.notes),
           json.dumps(options.to_json(), sort_keys=True))
    cached = st.session_state.get(PREPARED)
    if cached and cached[0] == key:
        return cached[1]
    settings = session.settings()
    try:
        with st.spinner("Checking the examples and counting tokens…"):
            prepared = prepare(source, options, model_dir=settings.model_dir, data_dir=settings.data_dir)
    except DatasetError as exc:   # its text may quote the file: shown as plain text
        st.error(plain(str(exc)))
        return None
    st.session_state[PREPARED] = (key, prepared)
    return prepared


def _summary(prepared: PreparedDataset) -> None:
    c, t = prepared.counts, prepared.tokens
    cols = st.columns(5)
    cols[0].metric("Kept", c.kept)
    cols[1].metric("Excluded", c.excluded, help=f"by you {c.excluded_by_user}, for errors {c.excluded_for_errors}")
    cols[2].metric("Train", c.train)
    cols[3].metric("Validation", c.validation)
    cols[4].metric("Train tokens", f"{t.train:,}", help=f"validation {t.validation:,}; counted with {t.tokenizer}")
    for line in summary_lines(prepared)[1:]:   # the last one: the estimate, labelled as one
        st.caption(plain(line))


def _report(prepared: PreparedDataset) -> None:
    st.subheader("Validation report")
    issues_table(prepared.issues)
    # Rows with an error are out already; a warning leaves the row in unless the user takes it out.
    flagged = sorted({i.row for i in prepared.issues if i.row > 0 and i.severity == "warning"})
    if flagged or st.session_state.get("wizard_exclude"):
        options = sorted(set(flagged) | set(st.session_state.get("wizard_exclude", [])))
        st.multiselect("Leave these rows out", options, key="wizard_exclude",
                       help="Flagged rows stay in unless you take them out here (errors are always left out).")
    for issue in prepared.blocking("openai"):
        st.warning(("OpenAI would refuse this dataset: " if issue.blocks_openai_only else "") + issue.message)


def issues_table(issues) -> None:
    """The validation report: one line per problem, with its rows."""
    grouped = group_issues(issues)
    if not grouped:
        st.success("No problems found.")
        return
    rows = [{"": SEVERITY_ICON[issue.severity], "rows": rows_text(rows) or "all", "problem": issue.message}
            for issue, rows in grouped]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _preview(prepared: PreparedDataset) -> None:
    st.subheader("Preview")
    kept = [e for e in prepared.examples if not e.excluded_because]
    table = pd.DataFrame([{"row": e.row, "split": e.split, "prompt": e.prompt, "response": e.response,
                           "tokens": e.tokens} for e in kept[:PREVIEW_ROWS]])
    st.dataframe(table, hide_index=True, width="stretch")
    if len(kept) > PREVIEW_ROWS:
        st.caption(f"The first {PREVIEW_ROWS} of {len(kept)} kept examples.")
    rows = [e.row for e in prepared.examples]
    if rows:
        row = st.selectbox("The exact JSONL line of row", rows, key="wizard_line_row")
        example = next(e for e in prepared.examples if e.row == row)
        if example.excluded_because:
            st.caption(f"Row {row} is left out: {plain(example.excluded_because)}")
        st.code(json.dumps(example.to_json(), ensure_ascii=False), language="json", wrap_lines=True)


def _save_and_download(prepared: PreparedDataset, data: bytes, filename: str) -> None:
    st.subheader("Save and download")
    blocking = prepared.blocking("local")
    if blocking:
        st.error("Nothing can be saved or trained yet: " + blocking[0].message)
        return
    default = filename.rsplit(".", 1)[0]
    with st.form("wizard_save", border=False):
        name = st.text_input("Dataset name", value=default, key="wizard_name", max_chars=100)
        if st.form_submit_button("Save dataset", type="primary"):
            _save(name, prepared, data)
    built = st.session_state.get(FILES)   # built once per prepared dataset, not on every rerun
    if not built or built[0] is not prepared:
        built = (prepared, export_files(prepared))
        st.session_state[FILES] = built
    files = built[1]
    cols = st.columns(min(4, len(files)) or 1)
    for n, (file_name, content) in enumerate(files.items()):
        suffix = "." + file_name.rsplit(".", 1)[-1]
        cols[n % len(cols)].download_button(file_name, content, file_name=file_name, key=f"wizard_dl_{file_name}",
                                            mime=MIME.get(suffix, "application/octet-stream"))
    st.caption("train.jsonl / validation.jsonl: OpenAI's chat format. The others load directly in open "
               "trainers (see the README's Fine-tuning data section).")


@shows_store_errors
def _save(name: str, prepared: PreparedDataset, data: bytes) -> None:
    try:
        name = check_name(name)
        # The same dataset saved again under the same name (Enter, then the button): no copy.
        last = st.session_state.get(SAVED)
        if (last and last[0] is prepared and last[1] == name.casefold()
                and dataset_store().get_version(last[2].id, session.actor()) is not None):
            st.info(f"Already saved as **{plain(last[2].name)}**, version {last[2].version}: "
                    "nothing has changed since.")
            return
        version = dataset_store().save_version(name, prepared, session.actor(), source_bytes=data)
    except DatasetError as exc:
        st.error(plain(str(exc)))
        return
    st.session_state[SAVED] = (prepared, name.casefold(), version)
    # The other tabs open on what was just saved (their pickers are drawn later in this run).
    st.session_state.update({"saved_dataset": version.dataset_id, "train_dataset": version.dataset_id,
                             f"saved_version_{version.dataset_id}": version.version,
                             f"train_version_{version.dataset_id}": version.version})
    st.success(f"Saved **{plain(version.name)}**, version {version.version} "
               f"({version.counts.train} train, {version.counts.validation} validation examples).")


def price_table() -> None:
    """The dated fine-tuning price table the estimates use; admins can change this workspace's
    prices (kept in <workspace>/finetune_prices.json)."""
    data_dir = session.settings().data_dir
    table = load_price_table(data_dir)
    with st.expander(f"Fine-tuning prices (as of {table.as_of}; estimates only)"):
        st.caption(plain(table.note))
        rows = [{"model": m.model, "provider": m.provider, "USD per million training tokens": m.training_per_million,
                 "longest example (tokens)": m.max_example_tokens, "this workspace's": m.overridden}
                for m in sorted(table.models.values(), key=lambda m: m.model)]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        if not session.is_admin():
            st.caption("An administrator can change these prices for this workspace.")
            return
        with st.form("price_override", border=False):
            cols = st.columns([3, 2, 1])
            model = cols[0].text_input("Model", placeholder="gpt-4.1-mini-2025-04-14")
            price = cols[1].number_input("USD per million training tokens", min_value=0.0, value=None,
                                         placeholder="empty: remove this workspace's price")
            if cols[2].form_submit_button("Set price") and model.strip():
                try:
                    save_price_override(data_dir, model.strip(), price)
                except DatasetError as exc:
                    st.error(plain(str(exc)))
                else:
                    st.session_state.pop(PREPARED, None)   # estimates on screen use the new price
                    st.rerun()


def saved_datasets() -> None:
    """The user's saved datasets: their versions, report and files; delete."""
    store = dataset_store()
    datasets = store.list_datasets(session.actor())
    if not datasets:
        st.caption("No saved datasets yet.")
        return
    st.dataframe(pd.DataFrame([{"name": d.name, "versions": d.versions, "latest": d.latest_version,
                                "updated": d.updated_at.strftime("%Y-%m-%d %H:%M")} for d in datasets]),
                 hide_index=True, width="stretch")
    by_id = {d.id: d for d in datasets}
    picked = st.selectbox("Open", list(by_id), format_func=lambda i: plain(by_id[i].name), key="saved_dataset")
    versions = store.list_versions(picked, session.actor())
    numbers = {v.version: v for v in versions}
    number = st.selectbox("Version", sorted(numbers, reverse=True), key=f"saved_version_{picked}")
    chosen = store.get_version(numbers[number].id, session.actor())
    if chosen is None or chosen.prepared is None:
        st.warning("This version is gone (deleted in another tab?).")
        return
    o = chosen.options
    st.caption(f"From {plain(chosen.source_name)} (sha256 {chosen.source_sha256[:12]}…), saved "
               f"{chosen.created_at:%Y-%m-%d %H:%M}; validation fraction {o.validation_fraction:g}, seed {o.seed}"
               + (f", suffix {plain(json.dumps(o.suffix))}" if o.suffix else "")
               + (f", system prompt {plain(o.system_from)}" if o.system_from else ""))
    for line in summary_lines(chosen.prepared):
        st.caption(plain(line))
    with st.expander(f"Validation report ({len(chosen.prepared.issues)} "
                     f"line{'s' if len(chosen.prepared.issues) != 1 else ''})"):
        issues_table(chosen.prepared.issues)
    added = sum(1 for e in chosen.prepared.examples if e.origin)
    source = original_source(chosen.source_name)
    with st.expander(f"Rows and where they came from ({len(chosen.prepared.examples)}"
                     + (f", {added} added from rated replies" if added else "") + ")"):
        st.dataframe(pd.DataFrame([{"row": e.row, "split": e.split, "from": e.origin or f"{source}, row {e.row}",
                                    "prompt": e.prompt[:200], "response": e.response[:200],
                                    "left out because": e.excluded_because} for e in chosen.prepared.examples]),
                     hide_index=True, width="stretch")
    files = export_files(chosen.prepared)
    cols = st.columns(min(4, len(files)) or 1)
    for n, (file_name, content) in enumerate(files.items()):
        cols[n % len(cols)].download_button(file_name, content, file_name=file_name,
                                            key=f"saved_dl_{chosen.id}_{file_name}")
    with st.popover("Delete…"):
        st.write(f"Delete version {chosen.version} of “{plain(chosen.name)}” for good?")
        if st.button("Yes, delete this version", key=f"delete_version_{chosen.id}", type="primary"):
            _delete_version(store, chosen.id)


@shows_store_errors
def _delete_version(store: DatasetStore, version_id: str) -> None:
    store.delete_version(version_id, session.actor())
    st.rerun()
