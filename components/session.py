"""What a page knows about this browser session: its settings, the workspace store and
accounts, the signed-in user (and the actor the store checks), and the provider a turn runs on.

The store and accounts are shared by every session of the process (cached per database URL).
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import streamlit as st

from studio.accounts import Accounts
from studio.providers import Provider, make_provider, settings_for
from studio.settings import Settings
from studio.store import Actor, Store
from studio.types import AssistantSpec

OVERRIDES = "provider_overrides"   # session_state key: choices made in the sidebar, this session only


def secrets() -> dict:
    """.streamlit/secrets.toml as a dict (empty when there is none)."""
    # With no secrets file, any access to st.secrets raises; treat that as "no secrets".
    try:
        return dict(st.secrets)
    except Exception:
        return {}


def base_settings() -> Settings:
    try:
        return Settings.load(secrets=secrets())
    except ValueError as exc:   # e.g. STUDIO_PROVIDER=foo: say so instead of a traceback
        st.error(f"The configuration is not valid: {exc}")
        st.stop()


def settings() -> Settings:
    """Settings for this session: environment/secrets, then what the user chose in the sidebar."""
    return base_settings().with_overrides(**st.session_state.get(OVERRIDES, {}))


@st.cache_resource(show_spinner=False)
def _store(database_url: str) -> Store:
    return Store(database_url)


def store() -> Store:
    s = settings()
    s.ensure_data_dir()
    return _store(s.database_url)


@st.cache_resource(show_spinner=False)
def _accounts(database_url: str, data_dir: str) -> Accounts:
    accounts = Accounts(_store(database_url).engine)
    accounts.import_user_file(Path(data_dir) / "users.yaml")   # a workspace from before the database
    return accounts


def accounts() -> Accounts:
    """The login accounts, in the workspace database (shared by every app replica)."""
    s = settings()
    s.ensure_data_dir()
    return _accounts(s.database_url, str(s.data_dir))


def current_user() -> str:
    return st.session_state.get("username") or ""


def is_admin() -> bool:
    return "admin" in (st.session_state.get("roles") or [])


def actor() -> Actor:
    """The signed-in user, as the store checks them: every store call names who asks."""
    return Actor(current_user(), admin=is_admin())


def provider_for(spec: AssistantSpec | None, progress=None, name: str | None = None) -> Provider:
    """The provider a turn runs on: the thread's or assistant's own, else the session's choice."""
    session = settings()
    chosen = name or (spec.provider if spec and spec.provider else session.provider)
    run_with = settings_for(chosen, session, base_settings())
    if progress is not None:   # a callback drawing on this run's page: never shared with other runs
        return make_provider(run_with, progress=progress)
    return _provider(run_with, _settings_key(run_with))


def _settings_key(s: Settings) -> tuple[str, ...]:
    # Every setting, the key included: a key, base URL or model changed in the sidebar gets its own
    # provider. Streamlit keeps only a digest of this, in memory.
    return tuple(f"{f.name}={getattr(s, f.name)}" for f in fields(s))


@st.cache_resource(show_spinner=False, max_entries=64)
def _provider(_settings: Settings, key: tuple[str, ...]) -> Provider:
    """One provider (and its HTTP client) per distinct settings, shared by every run and session.

    Providers keep no per-thread or per-turn state, so sharing them is safe; building one per run
    cost a new SDK client (and SSL context) every time. Errors (e.g. no key) are not cached.
    """
    return make_provider(_settings)
