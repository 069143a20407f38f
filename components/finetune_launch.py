"""The fine-tuning page's launch form: a saved dataset version, trained on this machine (LoRA on
the embedded model, in a worker process of its own) or on OpenAI. A refusal from OpenAI that
local training gets round (no fine-tuning for the account, too few examples, no quota) ends in
its code and message, verbatim, and a one-click "Train locally instead"."""
from __future__ import annotations

import os

import streamlit as st

from components import session
from components.errors import shows_store_errors
from components.finetune_jobs import PICKED_JOB
from components.safe_text import inline_code, plain
from studio.datasets.storage import DatasetStore
from studio.datasets.types import DatasetVersion
from studio.finetune.jobs import JobStore
from studio.finetune.local_jobs import create_local_job, start_or_fail
from studio.finetune.trainer import LocalTrainOptions
from studio.providers import ProviderError

REFUSED = "finetune_refused"        # session_state: (version id, FineTuneError) of the last refusal
WHERE = {"local": "This machine (embedded model, LoRA)", "openai": "OpenAI",
         "compatible": "An OpenAI-compatible server"}


def launch_form() -> None:
    """Pick a saved dataset version and where to train it; start the job."""
    datasets = DatasetStore(session.store().engine)
    saved = datasets.list_datasets(session.actor())
    if not saved:
        st.caption("Save a dataset first (the New dataset tab); jobs train saved dataset versions.")
        return
    by_id = {d.id: d for d in saved}
    left, right = st.columns([3, 1])
    picked = left.selectbox("Dataset", list(by_id), format_func=lambda i: plain(by_id[i].name), key="train_dataset")
    versions = {v.version: v for v in datasets.list_versions(picked, session.actor())}
    number = right.selectbox("Version", sorted(versions, reverse=True), key=f"train_version_{picked}")
    version = datasets.get_version(versions[number].id, session.actor())
    if version is None or version.prepared is None:
        st.warning("This dataset version is gone (deleted in another tab?).")
        return
    st.caption(f"{version.counts.train} training and {version.counts.validation} validation examples.")
    where = st.radio("Train on", list(WHERE), format_func=WHERE.get, horizontal=True, key="train_where")
    if where == "local":
        _local_form(version)
    elif where == "openai":
        _openai_form(version)
    else:
        st.info("OpenAI-compatible servers (Ollama, vLLM, LM Studio…) have no fine-tuning API here. "
                "Train on this machine instead: the result chats on the embedded model.")
    _refusal(version)


def _local_form(version: DatasetVersion) -> None:
    defaults = LocalTrainOptions()
    # Enter in a field must not start a job (only the button does): a half-filled form would train.
    with st.form("train_local", enter_to_submit=False):
        cols = st.columns(4)
        epochs = cols[0].number_input("Epochs", 1, 20, defaults.epochs)
        rate = cols[1].number_input("Learning rate", 1e-6, 1e-2, defaults.learning_rate, format="%.0e", step=1e-4)
        rank = cols[2].number_input("LoRA rank", 1, 64, defaults.lora_rank)
        alpha = cols[3].number_input("LoRA alpha", 1, 128, defaults.lora_alpha)
        cols = st.columns(4)
        length = cols[0].number_input("Max length (tokens)", 32, 2048, defaults.max_length, step=32)
        batch = cols[1].number_input("Batch size", 1, 32, defaults.batch_size)
        seed = cols[2].number_input("Seed", 0, 2**31 - 1, 0)
        suffix = cols[3].text_input("Name suffix", max_chars=40, placeholder="sam",
                                    help="Goes into the model's name: smollm2-135m-instruct:ft:<suffix>:<id>")
        if st.form_submit_button("Start training on this machine", type="primary"):
            options = LocalTrainOptions(epochs=int(epochs), learning_rate=float(rate), lora_rank=int(rank),
                                        lora_alpha=int(alpha), max_length=int(length), batch_size=int(batch),
                                        seed=int(seed))
            start_local(version, options, suffix.strip())
    st.caption("Trains in a process of its own: closing this tab or restarting the app does not stop it. "
               "One local training runs at a time; others wait in the queue.")


@shows_store_errors
def start_local(version: DatasetVersion, options: LocalTrainOptions, suffix: str = "") -> None:
    """Record a local job and start its worker; the jobs view then shows it."""
    from studio.finetune.trainer import TrainError
    try:
        options.check()
    except TrainError as exc:
        st.error(plain(str(exc)))
        return
    try:
        job = create_local_job(session.store(), version.id, options, suffix, session.actor())
    except ValueError as exc:   # a suffix that cannot be a model name, too many jobs waiting
        st.error(plain(str(exc)))
        return
    start_or_fail(session.store(), job, session.actor(), session.settings().data_dir, env=_worker_env())
    st.session_state[PICKED_JOB] = job.id
    st.session_state.pop(REFUSED, None)
    st.toast("Training started.")


def _worker_env() -> dict:
    # The worker reads the same workspace as this server (settings may come from secrets.toml).
    s = session.settings()
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}   # it needs no key
    env.update(STUDIO_DATA_DIR=str(s.data_dir), STUDIO_DATABASE_URL=s.database_url,
               STUDIO_MODEL_CACHE=str(s.model_dir))
    return env


def openai_tuning():
    """OpenAI fine-tuning for this session's OpenAI settings; raises ProviderError (e.g. no key)."""
    from studio.finetune.openai_jobs import OpenAIFineTuning
    return OpenAIFineTuning(session.provider_for(None, name="openai"), JobStore(session.store().engine))


def _base_models(tuning) -> list:
    cache = st.session_state.setdefault("finetune_base_models", {})
    key = tuning.provider.base_url
    if key not in cache:
        cache[key] = tuning.base_models()
    return cache[key]


def _openai_form(version: DatasetVersion) -> None:
    from studio.finetune.openai_jobs import FineTuneError, hyperparameters
    try:
        tuning = openai_tuning()
        models = _base_models(tuning)
    except ProviderError as exc:
        st.error(plain(str(exc)))
        return
    # OpenAI's fine-tunes belong to the whole organisation: offer a user only their own as bases.
    own = {m.id for m in JobStore(session.store().engine).list_models(session.actor(), provider="openai")}
    models = [m for m in models if not m.id.startswith("ft:") or m.id in own]
    if not models:
        st.warning("This OpenAI account lists no model it can fine-tune. Train on this machine instead.")
        return
    by_id = {m.id: m for m in models}

    def label(model_id: str) -> str:
        m = by_id[model_id]
        if not m.shutdown_date:
            return model_id
        return f"{model_id} (shuts down {m.shutdown_date:%Y-%m-%d}{', soon' if m.retiring_soon else ''})"

    with st.form("train_openai", enter_to_submit=False):   # a billed job: the button only
        model = st.selectbox("Base model", list(by_id), format_func=label)
        cols = st.columns(3)
        suffix = cols[0].text_input("Suffix", max_chars=64, placeholder="sam")
        seed = cols[1].number_input("Seed", 0, 2_147_483_647, 0)
        auto = cols[2].checkbox("Hyperparameters: automatic", value=True)
        cols = st.columns(3)
        epochs = cols[0].number_input("Epochs", 1, 50, 3)
        batch = cols[1].number_input("Batch size", 1, 256, 1)
        multiplier = cols[2].number_input("Learning rate multiplier", 0.01, 10.0, 1.0)
        if st.form_submit_button("Start on OpenAI", type="primary"):
            if by_id[model].retiring_soon:
                st.warning(f"{inline_code(model)} shuts down within 60 days; its fine-tunes stop working then.")
            hp = hyperparameters() if auto else hyperparameters(int(epochs), int(batch), float(multiplier))
            try:
                job = tuning.launch(version, session.actor(), model, suffix=suffix.strip(), seed=int(seed),
                                    hyperparameters=hp)
            except FineTuneError as exc:
                st.session_state[REFUSED] = (version.id, exc)
                if exc.job_id:
                    st.session_state[PICKED_JOB] = exc.job_id
                return
            st.session_state[PICKED_JOB] = job.id
            st.session_state.pop(REFUSED, None)
            st.toast("Started on OpenAI.")


def _refusal(version: DatasetVersion) -> None:
    refused = st.session_state.get(REFUSED)
    if not refused or refused[0] != version.id:
        return
    exc = refused[1]
    show_refusal(exc, version)


def show_refusal(exc, version: DatasetVersion | None) -> None:
    """OpenAI's refusal as it came, and the way round it where local training is one."""
    code = f"{inline_code(exc.code)} " if exc.code else ""
    st.error(f"{code}{plain(exc.message)}")
    if exc.openai_message and exc.openai_message not in exc.message:
        st.caption(f"OpenAI said: {plain(exc.openai_message)}")
    if exc.suggest_local and version is not None:
        if st.button("Train locally instead", key=f"local_instead_{version.id}", type="primary"):
            start_local(version, LocalTrainOptions())
