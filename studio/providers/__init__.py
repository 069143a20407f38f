"""Choosing a provider from settings."""
from __future__ import annotations

from studio.providers.base import Capabilities, Provider, ProviderError
from studio.settings import Settings

LABELS = {
    "local": "Embedded model (no key, offline)",
    "openai": "OpenAI",
    "compatible": "OpenAI-compatible server (Ollama, vLLM, LM Studio, …)",
}


def provider_class(name: str) -> type[Provider]:
    """The class behind a provider name (imported lazily: the local one pulls in torch)."""
    if name == "local":
        from studio.providers.local import LocalProvider
        return LocalProvider
    if name == "openai":
        from studio.providers.openai_provider import OpenAIProvider
        return OpenAIProvider
    if name == "compatible":
        from studio.providers.compatible import CompatibleProvider
        return CompatibleProvider
    raise ProviderError(f"Unknown provider {name!r}.")


def settings_for(chosen: str, session: Settings, configured: Settings) -> Settings:
    """Settings to run provider `chosen` with.

    The session's own choices (sidebar) apply to the session's provider only; any other
    provider (pinned by an assistant or a thread) runs as configured in env/secrets.
    """
    if chosen == session.provider:
        return session
    if chosen == configured.provider:
        return configured
    return configured.with_overrides(provider=chosen, model="")


def make_provider(settings: Settings, progress=None) -> Provider:
    """The provider named in `settings`. Raises ProviderError if its configuration is missing."""
    if settings.provider == "local":
        from studio.finetune.local_jobs import adapter_finder
        from studio.providers.local import LocalProvider
        return LocalProvider(settings.model_dir, max_new_tokens=settings.local_max_tokens, progress=progress,
                             find_adapter=adapter_finder(settings.database_url))
    if settings.provider == "openai":
        if not settings.api_key:
            raise ProviderError("OpenAI needs an API key: set OPENAI_API_KEY, add it to "
                                ".streamlit/secrets.toml, or type it in the sidebar for this session.")
        from studio.providers.openai_provider import OpenAIProvider
        return OpenAIProvider(api_key=settings.api_key, base_url=settings.base_url or None,
                              **({"default_model": settings.model} if settings.model else {}))
    if settings.provider == "compatible":
        if not settings.base_url:
            raise ProviderError("A compatible server needs a base URL, e.g. http://localhost:11434/v1 "
                                "for Ollama: set OPENAI_BASE_URL or type it in the sidebar.")
        from studio.providers.compatible import CompatibleProvider
        return CompatibleProvider(base_url=settings.base_url, api_key=settings.api_key,
                                  default_model=settings.model, context_window=settings.context_window)
    raise ProviderError(f"Unknown provider {settings.provider!r}.")


__all__ = ["Capabilities", "Provider", "ProviderError", "make_provider", "provider_class", "settings_for",
           "LABELS"]
