"""The sidebar settings panel: which provider this session talks to."""
from __future__ import annotations

import streamlit as st

from components import context
from studio.providers import LABELS, ProviderError
from studio.settings import PROVIDERS


def provider_panel() -> None:
    """Provider, model, base URL and a session-only API key. Nothing typed here is stored."""
    base = context.base_settings()
    overrides = st.session_state.setdefault(context.OVERRIDES, {})
    current = context.settings()
    with st.sidebar.expander(f"Provider: {current.provider}", expanded=False):
        with st.form("provider_settings", border=False):
            provider = st.radio("Provider", PROVIDERS, index=PROVIDERS.index(current.provider),
                                format_func=LABELS.get)
            base_url = st.text_input("Base URL", value=current.base_url,
                                     placeholder="http://localhost:11434/v1",
                                     help="A compatible server's /v1 URL; for OpenAI leave empty.")
            api_key = st.text_input(
                "API key (this session only)", type="password", value="",
                placeholder="set" if current.api_key else "not set",
                help="Kept in this browser session only: never saved, logged or shown again.")
            model = st.text_input("Default model", value=current.model,
                                  placeholder="provider default")
            applied = st.form_submit_button("Apply")
        if applied:
            overrides.update(provider=provider, base_url=base_url.strip(), model=model.strip())
            if api_key.strip():
                overrides["api_key"] = api_key.strip()
            st.session_state.pop("models_cache", None)
            st.rerun()
        if overrides and st.button("Reset to configured defaults", key="provider_reset"):
            st.session_state[context.OVERRIDES] = {}
            st.rerun()
        st.caption(f"Configured default: {base.provider}" + (" · key set" if current.api_key else ""))
        _show_models()


def _show_models() -> None:
    if not st.toggle("Show available models", key="show_models"):
        return
    try:
        models = cached_models()
    except ProviderError as exc:
        st.error(str(exc))
        return
    rows = [{"model": m.id, "retires": m.shutdown_date.isoformat() if m.shutdown_date else ""} for m in models]
    st.dataframe(rows, hide_index=True, use_container_width=True)


def cached_models():
    """The model list of the session's provider, fetched once per session and provider."""
    current = context.settings()
    key = (current.provider, current.base_url)
    cache = st.session_state.setdefault("models_cache", {})
    if key not in cache:
        cache[key] = context.provider_for(None).list_models()
    return cache[key]
