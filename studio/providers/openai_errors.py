"""Turning openai SDK exceptions into messages a user can act on (shared by the OpenAI-wire providers).

Server messages are only passed through for errors whose text helps (a 400's reason), and
then with anything that looks like a key removed: a 401's text echoes the key it rejected.
"""
from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

import openai

from studio.providers.base import ProviderError
from studio.types import ErrorEvent

log = logging.getLogger(__name__)

_KEYLIKE = re.compile(r"\b(?:sk|pk|rk|sess)-[A-Za-z0-9_\-*]{2,}")
_BEARER = re.compile(r"(bearer\s+)\S+", re.I)


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """`text` with the given secrets and anything shaped like an API key replaced by '***'."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _BEARER.sub(r"\1***", text)
    return _KEYLIKE.sub("***", text)


def safe_url(url: str) -> str:
    """A base URL fit for a message: no user:password part, no query string."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "the configured server"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", "")) or "the configured server"


def _server_message(exc: openai.APIError, secrets: tuple[str, ...]) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") if isinstance(body.get("message"), str) else exc.message
    message = re.sub(r"^Error code: \d+( - )?", "", message or "")   # the SDK's prefix
    return redact(message.strip(), secrets)[:300]


def describe_error(exc: BaseException, *, base_url: str, model: str = "",
                   secrets: tuple[str, ...] = (), key_hint: str = "Check OPENAI_API_KEY",
                   midstream: bool = False) -> ErrorEvent:
    """The ErrorEvent for an exception raised while talking to an OpenAI-style server.

    `midstream`: the reply had already started streaming when it failed. `key_hint` says
    where the key is configured (it differs between providers). Never includes a secret.
    """
    url = safe_url(base_url)
    code = str(getattr(exc, "code", "") or "")
    if isinstance(exc, openai.APITimeoutError):
        return ErrorEvent(f"{url} did not answer in time. Retry in a moment, or raise the timeout.",
                          True, "timeout")
    if isinstance(exc, openai.APIConnectionError):
        if midstream:
            return ErrorEvent(f"The connection to {url} was lost while the reply was streaming. "
                              "Retry to get a complete answer.", True, "stream_interrupted")
        return ErrorEvent(f"Could not reach {url}. Check the network connection and the base URL "
                          "(OPENAI_BASE_URL), then retry.", True, "connection_error")
    if isinstance(exc, openai.AuthenticationError):
        return ErrorEvent(f"The API key was rejected (401). {key_hint} in your settings or "
                          ".streamlit/secrets.toml.", False, code or "invalid_api_key")
    if isinstance(exc, openai.PermissionDeniedError):
        return ErrorEvent(f"Access denied (403): {_server_message(exc, secrets)}", False,
                          code or "permission_denied")
    if isinstance(exc, openai.NotFoundError):
        if code == "model_not_found" or (model and model in (exc.message or "")):
            return ErrorEvent(f"Model '{model}' does not exist or you have no access to it. "
                              "Choose another model in settings.", False, "model_not_found")
        detail = _server_message(exc, secrets)
        return ErrorEvent(f"{url} answered 404 Not Found" + (f" ({detail})" if detail else "")
                          + ". Check the base URL (it usually ends in /v1) and the model name.", False,
                          code or "not_found")
    if isinstance(exc, openai.RateLimitError):
        if code == "insufficient_quota":
            return ErrorEvent("The account has run out of credit (429 insufficient_quota). Check the "
                              "billing settings of the API account.", False, code)
        return ErrorEvent("The server is rate limiting requests (429). Wait a moment, then retry.",
                          True, code or "rate_limit_exceeded")
    if isinstance(exc, openai.InternalServerError):
        return ErrorEvent(f"The server had an internal error ({exc.status_code}). This is usually "
                          "temporary: retry in a moment.", True, code or "server_error")
    if isinstance(exc, openai.BadRequestError):
        message = _server_message(exc, secrets)
        if code == "context_length_exceeded" or "context length" in message.lower():
            return ErrorEvent("The conversation is too long for this model. Shorten your message or "
                              "start a new thread.", False, "context_length_exceeded")
        return ErrorEvent(f"The request was rejected (400): {message}", False, code or "bad_request")
    if isinstance(exc, openai.APIStatusError):
        return ErrorEvent(f"The server answered {exc.status_code}: {_server_message(exc, secrets)}",
                          exc.status_code >= 500 or exc.status_code == 408, code or "http_error")
    if isinstance(exc, openai.APIError):   # e.g. an {"error": ...} payload inside a stream
        return ErrorEvent(f"The server reported an error while answering: {_server_message(exc, secrets)}. "
                          "Retry in a moment.", True, code or "stream_error")
    # Anything else is a bug on our side; log it, but show no internals (they may hold secrets).
    log.error("unexpected error from %s: %s", url, redact(repr(exc), secrets))
    return ErrorEvent(f"Something went wrong while talking to {url} ({type(exc).__name__}). Retry, "
                      "and report it if it persists.", True, "internal_error")


def provider_error(exc: BaseException, **kwargs) -> ProviderError:
    """The same message as `describe_error`, as an exception (for list_models and other calls)."""
    return ProviderError(describe_error(exc, **kwargs).message)


def stream_failure(message: str, code: str = "", secrets: tuple[str, ...] = ()) -> ErrorEvent:
    """An ErrorEvent for a failure the server reported inside the stream (response.failed / error)."""
    detail = redact(message or "", secrets).strip().rstrip(".")
    text = "The reply failed part-way" + (f": {detail}." if detail else ".")
    text += " Retry to get a complete answer."
    return ErrorEvent(text, True, code or "response_failed")
