"""The sidebar settings panel (which provider this session talks to) and the notes under a chat."""
from __future__ import annotations

import streamlit as st

from components import session
from components.safe_text import inline_code, safe_markdown
from studio.local_model import runtime_note
from studio.providers import LABELS, ProviderError, provider_class
from studio.providers.openai_errors import api_key_problem, safe_url
from studio.settings import PROVIDERS

PANEL_KEYS = ("panel_provider", "panel_base_url", "panel_server", "panel_api_key", "panel_model")
PANEL_OPEN = "provider_panel_open"   # session_state key: whether the panel is expanded
KEY_PROBLEM = "panel_key_problem"   # set by Apply, shown once on the run that follows


def _same_url(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def may_use_base_url(url: str) -> bool:
    """Only admins may point the server at any address; others pick the configured server or one
    on the allow-list (STUDIO_ALLOWED_BASE_URLS), so a user cannot make the app call, say, a
    machine on the internal network."""
    configured = session.base_settings()
    return (session.is_admin() or _same_url(url, configured.base_url)
            or any(_same_url(url, allowed) for allowed in configured.allowed_base_urls))


def _drop_base_url_not_allowed(overrides: dict) -> None:
    # Checked on every run, not only on Apply: an admin role removed mid-session ends here too.
    if overrides.get("base_url") and not may_use_base_url(overrides["base_url"]):
        overrides.pop("base_url")
        if overrides.get("api_key") == "":   # the marker that kept the configured key from it
            overrides.pop("api_key")
        st.session_state.pop("models_cache", None)
        st.sidebar.warning("The server you chose earlier is not allowed for your account; "
                           "the configured one is used.")


def _base_url_field(configured, overrides: dict) -> None:
    if session.is_admin():
        # Never pre-filled with the configured URL: it may carry credentials.
        st.text_input("Base URL", value=overrides.get("base_url", ""), key="panel_base_url",
                      placeholder=safe_url(configured.base_url) if configured.base_url
                      else "http://localhost:11434/v1",
                      help="A compatible server's /v1 URL. Leave empty for the configured one "
                           "(or OpenAI's own).")
    elif configured.allowed_base_urls:
        choices = ["", *configured.allowed_base_urls]
        chosen = next((c for c in choices if c and _same_url(c, overrides.get("base_url", ""))), "")
        st.selectbox("Server", choices, index=choices.index(chosen), key="panel_server",
                     format_func=lambda url: safe_url(url) if url else "The configured server",
                     help="The servers your administrator allows.")
    else:
        st.caption("Only an administrator can point the app at another server.")


def provider_panel() -> None:
    """Provider, model, base URL and a session-only API key. Nothing typed here is stored."""
    configured = session.base_settings()
    overrides = st.session_state.setdefault(session.OVERRIDES, {})
    _drop_base_url_not_allowed(overrides)
    current = session.settings()
    if problem := st.session_state.pop(KEY_PROBLEM, None):
        # Outside the (collapsed) expander, so it is seen; the turn will say the same.
        st.sidebar.warning(problem)
    # Lazy: the panel's widgets are drawn only while it is open (every page run is lighter).
    panel = st.sidebar.expander(f"Provider: {current.provider}", key=PANEL_OPEN, on_change="rerun")
    if not panel.open:
        return
    with panel:
        with st.form("provider_settings", border=False):
            st.radio("Provider", PROVIDERS, index=PROVIDERS.index(current.provider),
                     format_func=LABELS.get, key="panel_provider")
            _base_url_field(configured, overrides)
            st.text_input("API key (this session only)", type="password", value="", key="panel_api_key",
                          placeholder="set" if current.api_key else "not set",
                          help="Kept in this browser session only: never saved, logged or shown again.")
            st.text_input("Default model", value=current.model, placeholder="provider default",
                          key="panel_model")
            st.form_submit_button("Apply", on_click=_apply)
        if overrides:
            st.button("Reset to configured defaults", key="provider_reset", on_click=_reset)
        st.caption(f"Configured default: {configured.provider}" + (" · key set" if current.api_key else ""))
        for limitation in provider_class(current.provider).limitations():
            st.caption(f"ⓘ {limitation}")
        note = runtime_note(current.model_dir) if current.provider == "local" else None
        if note:
            st.caption(f"ⓘ {note}")
        _show_models()


def _apply() -> None:
    # A callback: it runs before the script, so the whole page already uses the new choice.
    state = st.session_state
    configured = session.base_settings()
    overrides = state.setdefault(session.OVERRIDES, {})
    overrides.update(provider=state["panel_provider"], model=state["panel_model"].strip())
    base_url = state.get("panel_base_url" if session.is_admin() else "panel_server", "").strip()
    typed_key = state["panel_api_key"].strip()
    if not may_use_base_url(base_url):   # only the widgets' own choices reach here; checked anyway
        base_url = ""
    if base_url:
        overrides["base_url"] = base_url
    else:
        overrides.pop("base_url", None)
    if typed_key:
        # Kept even when it cannot work (the user chose it, and the configured key must not be
        # sent instead without a word), but said at once rather than at the first message.
        overrides["api_key"] = typed_key
        if problem := api_key_problem(typed_key):
            state[KEY_PROBLEM] = problem
    elif base_url and base_url != configured.base_url and not overrides.get("api_key"):
        # The configured key belongs to the configured server: never send it to a URL typed here.
        overrides["api_key"] = ""
    elif not (base_url and base_url != configured.base_url) and overrides.get("api_key") == "":
        overrides.pop("api_key")
    state["panel_api_key"] = ""          # do not keep the typed key in a widget
    state.pop("models_cache", None)


def _reset() -> None:
    st.session_state[session.OVERRIDES] = {}
    st.session_state.pop("models_cache", None)
    for key in PANEL_KEYS:               # so the widgets show the configured values again
        st.session_state.pop(key, None)


def _show_models() -> None:
    if not st.toggle("Show available models", key="show_models"):
        return
    try:
        models = cached_models()
    except ProviderError as exc:
        st.error(safe_markdown(str(exc)))
        return
    rows = [{"model": m.id, "retires": m.shutdown_date.isoformat() if m.shutdown_date else ""} for m in models]
    st.dataframe(rows, hide_index=True, width="stretch")


def cached_models(provider=None):
    """A provider's model list (default: the session's), fetched once per session.

    A failure is remembered too, so an unreachable server does not slow every rerun.
    """
    provider = provider or session.provider_for(None)
    key = (provider.name, getattr(provider, "base_url", ""))
    cache = st.session_state.setdefault("models_cache", {})
    if key not in cache:
        try:
            cache[key] = provider.list_models()
        except ProviderError as exc:
            cache[key] = exc
    if isinstance(cache[key], ProviderError):
        raise cache[key]
    return cache[key]


def retirement_notice(provider, model: str) -> None:
    """Warn when the chosen model has a shutdown date (OpenAI publishes them in /v1/models)."""
    if provider.name != "openai":
        return
    try:
        info = next((m for m in cached_models(provider) if m.id == model), None)
    except ProviderError:
        return   # the turn itself will say what is wrong
    if info and info.shutdown_date:
        st.warning(f"{inline_code(model)} is scheduled to shut down on {info.shutdown_date:%Y-%m-%d}; "
                   "pick a newer model in the assistant's settings before then.", icon="⏳")


def provider_notes(provider, spec, thread) -> None:
    """Under the chat title: where the assistant runs, and plainly what that provider cannot do."""
    model = spec.model or provider.default_model()
    st.caption(f"Runs on **{provider.label}** · model {inline_code(model)}")
    chosen = spec.provider or session.settings().provider
    if thread is not None and thread.messages and thread.provider != chosen:
        st.caption(f"This thread was started on {thread.provider} and stays there; "
                   f"start a ➕ New thread to use {chosen}.")
    retirement_notice(provider, model)
    missing = [t for t in spec.tools if t != "code_interpreter"]
    if missing and not provider.capabilities.function_tools:
        st.info(provider.limitations()[0] + f" (This assistant asks for: {', '.join(missing)}.)")
    elif "code_interpreter" in spec.tools and not provider.capabilities.code_interpreter:
        st.info(f"{provider.label} has no code interpreter; only OpenAI runs code.")
