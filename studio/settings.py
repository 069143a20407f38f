"""Settings from environment variables and (optionally) Streamlit secrets.

`studio` never imports streamlit: the app passes `st.secrets` in as a plain mapping.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROVIDERS = ("local", "openai", "compatible")
LOG = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting that cannot be used, worded for the person who set it."""


@dataclass(frozen=True)
class Settings:
    """The app's configuration: provider, model, server, key, workspace and limits."""
    data_dir: Path
    provider: str = "local"
    model: str = ""
    base_url: str = ""                                    # OpenAI (optional) or a compatible server
    allowed_base_urls: tuple[str, ...] = ()               # servers non-admins may pick in the sidebar
    api_key: str = field(default="", repr=False)          # never shown, logged or written
    database_url: str = ""
    context_window: int = 8192                            # for compatible servers (unknown otherwise)
    local_max_tokens: int = 256                           # reply length cap for the embedded model
    model_dir: Path | None = None                         # cached local weights; default <data_dir>/models
    login_sleep: float = 0.0                              # seconds the login library pauses per run
    first_run_local: bool = True                          # a loopback browser may create the first admin

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
            raise ConfigError(f"STUDIO_PROVIDER must be one of {', '.join(PROVIDERS)}, not {provider!r}")
        return cls(
            data_dir=data_dir,
            provider=provider,
            model=get("STUDIO_MODEL"),
            base_url=base_url,
            allowed_base_urls=tuple(get("STUDIO_ALLOWED_BASE_URLS").replace(",", " ").split()),
            api_key=api_key,
            database_url=get("STUDIO_DATABASE_URL") or f"sqlite:///{data_dir / 'studio.db'}",
            context_window=_whole_number(get("STUDIO_CONTEXT_WINDOW"), 8192, "STUDIO_CONTEXT_WINDOW",
                                         least=256, most=MAX_CONTEXT_WINDOW),
            local_max_tokens=_whole_number(get("STUDIO_LOCAL_MAX_TOKENS"), 256, "STUDIO_LOCAL_MAX_TOKENS",
                                           least=1, most=MAX_LOCAL_TOKENS),
            model_dir=Path(get("STUDIO_MODEL_CACHE") or data_dir / "models").expanduser(),
            login_sleep=_seconds(get("STUDIO_LOGIN_SLEEP"), "STUDIO_LOGIN_SLEEP", most=10),
            first_run_local=_yes_or_no(get("STUDIO_FIRST_RUN_LOCAL"), True, "STUDIO_FIRST_RUN_LOCAL"),
        )

    def with_overrides(self, **changes) -> "Settings":
        """A copy with per-session choices (provider, model, a key typed in the sidebar)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def ensure_data_dir(self) -> Path:
        """Create the workspace folder if needed, readable by this account only (it holds the
        database, password hashes and the cookie key)."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except (OSError, ValueError) as exc:
            if isinstance(exc, (FileExistsError, NotADirectoryError)):
                raise ConfigError(f"The workspace folder {self.data_dir} (STUDIO_DATA_DIR) cannot be "
                                  "created: it, or a folder above it, is a file. Point STUDIO_DATA_DIR "
                                  "at a folder (a missing one is created).") from exc
            raise ConfigError(f"The workspace folder {self.data_dir} (STUDIO_DATA_DIR) cannot be "
                              f"created: {getattr(exc, 'strerror', None) or exc}.") from exc
        try:
            if self.data_dir.stat().st_mode & 0o077:
                self.data_dir.chmod(0o700)
        except OSError as exc:   # e.g. a folder owned by another account, shared on purpose
            LOG.warning("could not make %s private: %s", self.data_dir, exc)
        return self.data_dir


# Bounds that keep a typo (a missing digit, or ten extra) from reaching the providers as a
# number they cannot work with.
MAX_CONTEXT_WINDOW = 10_000_000
MAX_LOCAL_TOKENS = 4096      # half the embedded model's context: the prompt needs the rest


def _whole_number(text: str, default: int, name: str, least: int, most: int) -> int:
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, e.g. {default}, not {text!r}.") from None
    if not least <= value <= most:
        raise ConfigError(f"{name} must be between {least} and {most}, not {value}.")
    return value


def _yes_or_no(text: str, default: bool, name: str) -> bool:
    if not text:
        return default
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true or false), not {text!r}.")


def _seconds(text: str, name: str, most: float) -> float:
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, e.g. 0.5, not {text!r}.") from None
    if not 0 <= value <= most:   # also refuses nan and inf
        raise ConfigError(f"{name} must be between 0 and {most:g} seconds, not {text!r}.")
    return value
