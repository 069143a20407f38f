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
from studio.redact import redact
from studio.types import ErrorEvent

log = logging.getLogger(__name__)


def api_key_problem(key: str) -> str:
    """What is wrong with `key` as an API key ("" if nothing): it goes into an HTTP header, so it
    can only hold printable ASCII without spaces. Never quotes the key."""
    if all("!" <= c <= "~" for c in key or ""):
        return ""
    return ("The API key has characters an API key cannot contain: only letters A–Z, digits and "
            "punctuation, with no spaces or control characters. A dash or quote changed when it was "
            "copied, or a letter typed on another keyboard layout, does this; paste the key again "
            "as plain text.")


def safe_url(url: str) -> str:
    """A base URL fit for a message: no user:password part, no query string.

    Never raises: it runs inside error handlers, where a malformed URL (an unclosed `[`, a
    port above 65535) must not become a second error.
    """
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        if ":" in host:   # an IPv6 address keeps its brackets
            host = f"[{host}]"
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", "")) or "the configured server"
    except ValueError:
        return "the configured server"


def check_base_url(url: str) -> str:
    """`url` if it can be a server's base URL, else a ProviderError saying what is wrong with it.

    Caught here, before the SDK sees it: the SDK raises its own parser's errors for some
    (`http://[::1`) and only fails at the first request for others (`http://localhost:99999`).
    """
    text = str(url).strip()
    example = "e.g. http://localhost:11434/v1"
    try:
        parts = urlsplit(text)
        port = parts.port   # raises for a port that is not a number from 0 to 65535
    except ValueError as exc:
        reason = "its port must be a number from 1 to 65535" if "port" in str(exc).lower() else str(exc)
        raise ProviderError(f"The base URL is not valid: {reason} ({example}).") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ProviderError(f"The base URL must start with http:// or https:// ({example}).")
    if not parts.hostname:
        raise ProviderError(f"The base URL has no server name ({example}).")
    if port == 0:
        raise ProviderError(f"The base URL's port must be a number from 1 to 65535 ({example}).")
    if any(c.isspace() for c in text):
        raise ProviderError(f"The base URL must not contain spaces ({example}).")
    if parts.username or parts.password:
        raise ProviderError("Put the key in the API key setting, not in the base URL.")
    return text


def _server_message(exc: openai.APIError, secrets: tuple[str, ...]) -> str:
    """The server's reason, wherever its error body keeps it.

    OpenAI nests it as {"error": {"message"}} (the SDK hands us the inner object); FastAPI
    servers such as `transformers serve` send {"detail": "..."} or a list of field errors;
    others send {"error": "..."} or plain text.
    """
    body = exc.body
    message = ""
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            message = body["message"]
        elif isinstance(body.get("detail"), str):
            message = body["detail"]
        elif isinstance(body.get("detail"), list):
            message = "; ".join(_field_error(d) for d in body["detail"][:3])
        elif isinstance(body.get("error"), str):
            message = body["error"]
    elif isinstance(body, str):
        message = body if "<html" not in body.lower() else ""   # an HTML error page says nothing useful
    if not message:
        message = re.sub(r"^Error code: \d+( - )?", "", exc.message or "")   # the SDK's prefix
    return redact(" ".join(message.split()), secrets)[:300]


def _field_error(detail) -> str:
    """One FastAPI validation error ({"loc": [...], "msg": ...}) as `field: message`."""
    if not isinstance(detail, dict):
        return str(detail)
    loc = [str(p) for p in detail.get("loc") or [] if p != "body"]
    return f"{'.'.join(loc)}: {detail.get('msg', '')}" if loc else str(detail.get("msg", ""))


def _is_conversations_request(exc: openai.APIError) -> bool:
    """A request to create a Conversation (a 404 there means the server has no such API)."""
    request = getattr(exc, "request", None)
    try:
        return request is not None and request.method == "POST" and \
            str(request.url.path).rstrip("/").endswith("/conversations")
    except Exception:   # a request object of another shape: not ours to judge
        return False


def describe_error(exc: BaseException, *, base_url: str, model: str = "",
                   secrets: tuple[str, ...] = (), key_hint: str = "Check OPENAI_API_KEY",
                   midstream: bool = False) -> ErrorEvent:
    """The ErrorEvent for an exception raised while talking to an OpenAI-style server.

    `midstream`: the reply had already started streaming when it failed. `key_hint` says
    where the key is configured (it differs between providers). Never includes a secret.
    """
    url = safe_url(base_url)
    code = str(getattr(exc, "code", "") or "")
    # A key that cannot be put in a header fails before the server sees it: as a UnicodeEncodeError
    # (non-ASCII) or a connection error (NUL, newline). Name the key, not the network.
    bad_key = next((problem for problem in map(api_key_problem, secrets) if problem), "")
    if bad_key and isinstance(exc, (UnicodeError, openai.APIConnectionError)):
        return ErrorEvent(f"{bad_key} {key_hint} in your settings or .streamlit/secrets.toml, or in "
                          "the sidebar if you typed it there.", False, "api_key_characters")
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
        return ErrorEvent(f"Access denied (403): {_server_message(exc, secrets) or 'no reason given.'}", False,
                          code or "permission_denied")
    if isinstance(exc, openai.NotFoundError):
        if _is_conversations_request(exc):
            return ErrorEvent(f"{url} answered 404 Not Found to a Conversations API request: it does not "
                              "offer OpenAI's Conversations API. Check the base URL (OpenAI's ends in /v1); "
                              "for a server that only offers chat completions (Ollama, vLLM, LM Studio, "
                              "`transformers serve`), choose the `compatible` provider.", False,
                              "no_conversations_api")
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
        return ErrorEvent(f"The request was rejected (400): {message or 'the server gave no reason.'}",
                          False, code or "bad_request")
    if isinstance(exc, openai.APIStatusError):
        message = _server_message(exc, secrets) or "no reason given."
        return ErrorEvent(f"The server answered {exc.status_code}: {message}",
                          exc.status_code >= 500 or exc.status_code == 408, code or "http_error")
    if isinstance(exc, openai.APIError):   # e.g. an {"error": ...} payload inside a stream
        return ErrorEvent(f"The server reported an error while answering: {_server_message(exc, secrets)}. "
                          "Retry in a moment.", True, code or "stream_error")
    # Anything else is a bug on our side; log it, but show no internals (they may hold secrets).
    log.error("unexpected error from %s: %s", url, redact(repr(exc), secrets))
    return ErrorEvent(f"Something went wrong while talking to {url}. Retry, and report it if it "
                      "persists.", True, "internal_error")


def provider_error(exc: BaseException, **kwargs) -> ProviderError:
    """The same message as `describe_error`, as an exception (for list_models and other calls)."""
    return ProviderError(describe_error(exc, **kwargs).message)


def stream_failure(message: str, code: str = "", secrets: tuple[str, ...] = ()) -> ErrorEvent:
    """An ErrorEvent for a failure the server reported inside the stream (response.failed / error)."""
    detail = redact(message or "", secrets).strip().rstrip(".")
    text = "The reply failed part-way" + (f": {detail}." if detail else ".")
    text += " Retry to get a complete answer."
    return ErrorEvent(text, True, code or "response_failed")
