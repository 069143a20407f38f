"""The playground's compare view: two to four panes, each a model (or a saved assistant) with
its own settings, sent one message; replies stream side by side with their figures.

The panes' settings are widgets (session_state keys "pane{i}_..."); their conversations and
each reply's figures are kept in session_state (PANES, STATS) for this browser session.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from datetime import date

import streamlit as st

from components import session
from components.feedback import ReplyContext, feedback_bar
from components.knowledge import knowledge_store
from components.model_loading import ensure_local_model
from components.provider_panel import cached_models
from components.safe_text import inline_code, plain, safe_markdown
from components.transcript import STREAM_EVERY_S
from studio.assistants import compile_instructions
from studio.evaluation.runs import Configuration
from studio.finetune.jobs import JobStore
from studio.models import ModelChoice, choices_from, load_catalog
from studio.playground import Pane, PaneResult, PaneRun, PaneStats, Waiting, stream_panes
from studio.providers import LABELS, Provider, ProviderError
from studio.providers.local import GENERATION
from studio.settings import PROVIDERS
from studio.store import Actor, StoreError
from studio.types import AssistantSpec, Sampling, TextDelta

log = logging.getLogger(__name__)
PANES = "playground_panes"     # session_state: pane index -> Pane (its conversation)
STATS = "playground_stats"     # session_state: reply message id -> PaneStats
COUNT = "playground_count"     # session_state: how many panes
ERRORS = "playground_errors"   # session_state: pane index -> why its last reply failed
PRESET_MISSING = "playground_preset_missing"   # what the tutorial preset could not find
CURSOR = " ▌"
TYPED = "typed"                # the model picker's "type a model id" entry
SETTINGS = re.compile(r"pane\d+_")   # the panes' widget keys, kept while other pages are open


def available_providers() -> tuple[dict[str, Provider], dict[str, str]]:
    """The providers this session can use now, and for the others why not (e.g. no key)."""
    ready, missing = {}, {}
    for name in PROVIDERS:
        try:
            ready[name] = session.provider_for(None, name=name)
        except ProviderError as exc:
            missing[name] = str(exc)
    return ready, missing


@st.cache_data(ttl=30, show_spinner=False)
def _tuned_models(database_url: str, user: str) -> list[tuple[str, str, str]]:
    """(provider, model id, description) of the user's fine-tuned models and OpenAI checkpoints."""
    jobs = JobStore(session.store().engine)
    actor = Actor(user)
    out = [(m.provider, m.id, f"fine-tuned from {m.base_model} (job {m.job_id[-8:]})")
           for m in jobs.list_models(actor)]
    for job in jobs.list(actor):
        for checkpoint in job.checkpoints or []:
            if job.provider == "openai" and checkpoint.get("model"):
                out.append(("openai", checkpoint["model"], f"checkpoint at step {checkpoint.get('step')}"))
    return out


def model_choices(providers: dict[str, Provider]) -> tuple[list[ModelChoice], list[str]]:
    """Every model the ready providers offer (with the user's fine-tuned ones), and notes on
    providers whose model list could not be read."""
    catalog = load_catalog(session.settings().data_dir)
    try:
        tuned = _tuned_models(session.settings().database_url, session.current_user())
    except StoreError:
        tuned = []
    choices, notes = [], []
    for name, provider in providers.items():
        try:
            listed = cached_models(provider)
        except ProviderError as exc:
            listed = []
            notes.append(f"{LABELS[name]}: the model list could not be read ({exc}); type a model id instead.")
        extra = [(model, description) for p, model, description in tuned if p == name]
        choices += choices_from(name, listed, extra, catalog)
    return choices, notes


def _choice_label(choice: ModelChoice, today: date) -> str:
    status = choice.status(today)
    flag = ""
    if status == "shut down":
        flag = " ⛔ shut down"
    elif status == "retiring":
        flag = f" ⏳ shuts down {choice.shutdown_date:%Y-%m-%d}"
    elif choice.shutdown_date is not None:
        flag = f" · shuts down {choice.shutdown_date:%Y-%m-%d}"
    tuned = " 🎯" if ":ft:" in choice.id or choice.id.startswith("ft:") else ""
    return f"{choice.id}{tuned} · {choice.provider}{flag}"


def pane_settings(i: int, providers: dict[str, Provider], choices: list[ModelChoice],
                  assistants: dict[str, AssistantSpec]) -> Configuration | None:
    """One pane's settings; its configuration, or None when it cannot run (nothing to pick)."""
    today = date.today()
    key = f"pane{i}_kind"   # a default only while the preset has not set one (Streamlit warns otherwise)
    kind = st.segmented_control("Runs", ["Model", "Assistant"], key=key, label_visibility="collapsed",
                                default=None if key in st.session_state else "Model")
    if kind == "Assistant":
        if not assistants:
            st.info("You have no assistants yet: create one on the Assistants page.")
            return None
        _forget_gone_choice(f"pane{i}_assistant", assistants, "assistant")
        picked = st.selectbox("Assistant", list(assistants), key=f"pane{i}_assistant",
                              format_func=lambda a: assistants[a].name)
        spec = assistants[picked]
        provider = spec.provider or session.settings().provider
        if provider not in providers:
            st.warning(f"This assistant runs on {LABELS.get(provider, provider)}, which is not set up.")
            return None
        model = spec.model or providers[provider].default_model()
        st.caption(f"{plain(spec.name)} · {provider} · model {inline_code(model)}")
        config = Configuration(provider, assistant_id=spec.id, name=spec.name)
    else:
        by_key = {f"{c.provider}\n{c.id}": c for c in choices}
        _forget_gone_choice(f"pane{i}_model", {**by_key, TYPED: None}, "model")
        key = st.selectbox("Model", [*by_key, TYPED], key=f"pane{i}_model",
                           format_func=lambda k: _choice_label(by_key[k], today) if k != TYPED
                           else "✏️ Type a model id…")
        if key == TYPED:
            cols = st.columns([1, 2])
            where = cols[0].selectbox("Provider", list(providers), key=f"pane{i}_typed_provider")
            typed = cols[1].text_input("Model id", key=f"pane{i}_typed_model", max_chars=300).strip()
            if not typed:
                st.caption("Type the model's id, as the provider names it.")
                return None
            choice = ModelChoice(where, typed, shutdown_date=load_catalog().shutdown(typed))
        else:
            choice = by_key[key]
        if warning := choice.warning(today):
            (st.error if choice.status(today) == "shut down" else st.warning)(warning)
        system = st.text_area("System prompt", key=f"pane{i}_system", height=80,
                              placeholder="none (a dataset's own prompt in evaluations)")
        config = Configuration(choice.provider, choice.id, system_prompt=system)
    config.sampling = _sampling(i, providers[config.provider])
    return config


def _forget_gone_choice(key: str, options: dict, what: str) -> None:
    """A pane's stored pick that is no longer offered (deleted, or the provider's list changed):
    say so, instead of letting the selectbox silently run its first option."""
    chosen = st.session_state.get(key)
    if chosen is not None and chosen not in options:
        del st.session_state[key]
        shown = chosen.split("\n")[-1] if what == "model" else "The assistant this pane had"
        st.warning(f"{plain(shown)} is no longer offered here (deleted, or the provider's list changed): "
                   f"this pane now shows the first {what}; check it before you send.")


def _sampling(i: int, provider: Provider) -> Sampling:
    # The provider's own defaults: the embedded model samples at GENERATION's settings.
    base_t, base_p = (GENERATION["temperature"], GENERATION["top_p"]) if provider.name == "local" else (1.0, 1.0)
    with st.popover("Parameters", icon=":material/tune:"):
        temperature = st.slider("Temperature", 0.0, 2.0, value=base_t, step=0.05, key=f"pane{i}_temperature")
        top_p = st.slider("top_p", 0.0, 1.0, value=base_p, step=0.05, key=f"pane{i}_top_p")
        max_tokens = st.number_input("Max tokens (0: the provider's default)", 0, 32_000, value=0, step=50,
                                     key=f"pane{i}_max_tokens")
        if provider.name == "local":
            st.caption(f"The embedded model writes at most {session.settings().local_max_tokens} tokens a reply.")
        seed_help = None if provider.capabilities.seed else f"{provider.label} takes no seed (its API has none)."
        seed = st.number_input("Seed (0: none)", 0, 2**31 - 1, value=0, key=f"pane{i}_seed",
                               disabled=not provider.capabilities.seed, help=seed_help)
        if seed_help:
            st.caption(seed_help)
        if provider.name == "openai":
            st.caption("Reasoning models (gpt-5 family) refuse temperature and top_p: leave them at 1.")
    default = temperature == base_t and top_p == base_p
    return Sampling(temperature=None if default else temperature, top_p=None if default else top_p,
                    max_tokens=max_tokens or None, seed=seed or None if provider.capabilities.seed else None)


def pane_for(i: int, config: Configuration, assistants: dict[str, AssistantSpec]) -> Pane:
    """Pane i with `config`, keeping its conversation while its provider and model stay."""
    panes = st.session_state.setdefault(PANES, {})
    assistant = assistants.get(config.assistant_id) if config.assistant_id else None
    old = panes.get(i)
    keep = old is not None and old.provider == config.provider and old.model == config.model and (
        (old.assistant.id if old.assistant else "") == config.assistant_id)
    if old is not None and not keep:
        _drop_thread(old.thread)
    pane = Pane(config.provider, config.model, config.system_prompt, config.sampling, assistant,
                old.thread if keep else None, old.turn if old else 0)
    panes[i] = pane
    return pane


def _drop_thread(thread) -> None:
    """Delete a pane conversation's copy on its provider (an OpenAI Conversation), best effort."""
    if thread is None or not thread.provider_ref:
        return
    try:
        session.provider_for(None, name=thread.provider).delete_thread(thread)
    except Exception as exc:   # the conversation stays on the account; nothing here depends on it
        log.info("playground: a conversation could not be deleted (%s)", exc)


def keep_settings() -> None:
    """Keep the panes' settings while another page is open (Streamlit drops the state of
    widgets a run does not draw). Call at the top of every page."""
    for key in list(st.session_state):
        if key == COUNT or (isinstance(key, str) and SETTINGS.match(key)):
            st.session_state[key] = st.session_state[key]


def show_pane(i: int, pane: Pane) -> None:
    """A pane's conversation, each reply with its figures and feedback, and why its last reply
    failed. Feedback on a pane's reply lives with the pane (this session) until added to a dataset."""
    stats = st.session_state.get(STATS, {})
    messages = pane.thread.messages if pane.thread else []
    context = ReplyContext([], compile_instructions(pane.spec(session.current_user())),
                           f"playground pane {i + 1} ({pane.label})", lambda message, changes: None)
    for n, message in enumerate(messages):
        with st.chat_message(message.role):
            st.markdown(safe_markdown(message.content))
            if message.role == "assistant" and message.id in stats:
                st.caption(stats_line(stats[message.id]))
            if message.role == "assistant" and message.content.strip():
                feedback_bar(message, replace(context, history=messages[:n]))
    if error := st.session_state.get(ERRORS, {}).get(i):
        st.error(safe_markdown(error) + " Send the message again to retry.")


def stats_line(stats: PaneStats) -> str:
    """Time to first token, total time, tokens and cost of one reply."""
    parts = []
    if stats.waited_s > 0.5:
        parts.append(f"waited {stats.waited_s:.1f} s")
    if stats.first_token_s is not None:
        parts.append(f"first token {stats.first_token_s:.2f} s")
    if stats.total_s is not None:
        parts.append(f"total {stats.total_s:.2f} s")
    parts.append(f"{stats.usage.input_tokens} in / {stats.usage.output_tokens} out tokens")
    if stats.cost is None:
        parts.append("cost unknown")
    else:   # the embedded model (price 0) costs nothing
        parts.append("no cost" if stats.cost == 0 else f"≈ ${stats.cost:.5f} (estimate)")
    return " · ".join(parts)


def send(panes: list[Pane], providers: dict[str, Provider], text: str, areas: list) -> None:
    """Send `text` to every pane and draw the replies as they stream, side by side."""
    if any(p.provider == "local" for p in panes) and not ensure_local_model(session.settings().model_dir):
        return
    runs = [PaneRun(p, providers[p.provider]) for p in panes]
    errors = st.session_state[ERRORS] = {}
    slots, texts, drawn = [], [""] * len(panes), [float("-inf")] * len(panes)
    for area in areas:
        with area:
            with st.chat_message("user"):
                st.markdown(safe_markdown(text))
            with st.chat_message("assistant"):
                slots.append((st.empty(), st.empty()))
    catalog = load_catalog(session.settings().data_dir)
    stats = st.session_state.setdefault(STATS, {})
    for index, item in stream_panes(runs, text, session.actor(), knowledge_store(), catalog):
        body, note = slots[index]
        if isinstance(item, TextDelta):
            texts[index] += item.text
            if time.monotonic() - drawn[index] >= STREAM_EVERY_S:   # see STREAM_EVERY_S
                body.markdown(safe_markdown(texts[index]) + CURSOR)
                drawn[index] = time.monotonic()
        elif isinstance(item, Waiting):
            if texts[index]:   # what a pace held back is shown before the pane waits
                body.markdown(safe_markdown(texts[index]) + CURSOR)
            note.caption(f"⏳ {plain(item.text)}")
        elif isinstance(item, PaneResult):
            if item.reply is not None:
                stats[item.reply.id] = item.stats
                body.markdown(safe_markdown(item.reply.content))
                note.caption(stats_line(item.stats))
            elif item.error is not None:
                if texts[index]:
                    body.markdown(safe_markdown(texts[index]))
                errors[index] = item.error.message
                note.error(safe_markdown(item.error.message))
    st.rerun()   # draw the panes again from their conversations, with each reply's feedback


def tutorial_preset(assistants: dict[str, AssistantSpec], choices: list[ModelChoice]) -> None:
    """(A button's callback.) Set three panes to the tutorial's comparison: the few-shot
    assistant, the knowledge assistant and the newest fine-tuned model; what is missing is
    left in PRESET_MISSING for the page to say."""
    mine = [a for a in assistants.values() if a.owner == session.current_user()] or list(assistants.values())
    prompted = next((a for a in mine if a.examples and not a.knowledge_bases), None)
    knowing = next((a for a in mine if a.knowledge_bases), None)
    offered = {(c.provider, c.id): c for c in choices}
    try:     # the user's own fine-tuned models, newest first (not checkpoints)
        tuned = next((offered[(p, m)] for p, m, what in _tuned_models(session.settings().database_url,
                                                                    session.current_user())
                      if not what.startswith("checkpoint") and (p, m) in offered), None)
    except StoreError:
        tuned = None
    missing = []
    st.session_state[COUNT] = 3
    for i, assistant in enumerate((prompted, knowing)):
        if assistant is None:
            missing.append(["an assistant with few-shot examples", "an assistant with a knowledge base"][i])
            continue
        st.session_state[f"pane{i}_kind"] = "Assistant"
        st.session_state[f"pane{i}_assistant"] = assistant.id
    if tuned is None:
        missing.append("a fine-tuned model (train one on the Fine-tuning page)")
    else:
        st.session_state["pane2_kind"] = "Model"
        st.session_state["pane2_model"] = f"{tuned.provider}\n{tuned.id}"
    st.session_state[PRESET_MISSING] = missing


def clear_conversations() -> None:
    """(A button's callback.) Empty every pane; their conversations on the providers go too."""
    for pane in st.session_state.get(PANES, {}).values():
        _drop_thread(pane.thread)
    for key in (PANES, STATS, ERRORS):
        st.session_state.pop(key, None)


def pane_count() -> int:
    return st.session_state.setdefault(COUNT, 2)

