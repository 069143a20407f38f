"""Settings from environment variables and (optionally) Streamlit secrets.

`studio` never imports streamlit: the app passes `st.secrets` in as a plain mapping.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROVIDERS = ("local", "openai", "compatible")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    provider: str = "local"
    model: str = ""
    base_url: str = ""                                    # OpenAI (optional) or a compatible server
    api_key: str = field(default="", repr=False)          # never shown, logged or written
    database_url: str = ""
    context_window: int = 8192                            # for compatible servers (unknown otherwise)
    local_max_tokens: int = 256                           # reply length cap for the embedded model
    model_dir: Path | None = None                         # cached local weights; default <data_dir>/models

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, secrets: Mapping | None = None) -> "Settings":
        """Read settings; environment variables win over secrets.toml entries."""
        env = os.environ if env is None else env
        secrets = secrets or {}

        def get(name: str, default: str = "") -> str:
            value = env.get(name)
            if value is None:
                value = secrets.get(name, default)
            return str(value).strip()

        data_dir = Path(get("STUDIO_DATA_DIR") or PROJECT_DIR / "data" / "workspace").expanduser()
        api_key = get("OPENAI_API_KEY")
        base_url = get("OPENAI_BASE_URL")
        provider = get("STUDIO_PROVIDER").lower() or ("openai" if api_key else "local")
        if provider not in PROVIDERS:
            raise ValueError(f"STUDIO_PROVIDER must be one of {', '.join(PROVIDERS)}, not {provider!r}")
        return cls(
            data_dir=data_dir,
            provider=provider,
            model=get("STUDIO_MODEL"),
            base_url=base_url,
            api_key=api_key,
            database_url=get("STUDIO_DATABASE_URL") or f"sqlite:///{data_dir / 'studio.db'}",
            context_window=_positive_int(get("STUDIO_CONTEXT_WINDOW"), 8192, "STUDIO_CONTEXT_WINDOW"),
            local_max_tokens=_positive_int(get("STUDIO_LOCAL_MAX_TOKENS"), 256, "STUDIO_LOCAL_MAX_TOKENS"),
            model_dir=Path(get("STUDIO_MODEL_CACHE") or data_dir / "models").expanduser(),
        )

    def with_overrides(self, **changes) -> "Settings":
        """A copy with per-session choices (provider, model, a key typed in the sidebar)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir


def _positive_int(text: str, default: int, name: str) -> int:
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{name} must be a whole number above 0, not {text!r}")
    return value
