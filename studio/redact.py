"""Secrets out of text bound for a log or a page: one `redact` for the whole app.

It removes the API keys it is told about (those passed in, and every key a provider of this
process was made with, see `remember_secret`), and text shaped like a credential: `sk-...`
and other vendors' key prefixes, a bearer token, `api_key=...` or `"password": "..."`, the
user:password part of a URL, and long random-looking tokens (32+ characters of hex or base64).
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable

HIDDEN = "***"
MIN_SECRET_CHARS = 4       # a key passed in; anything shorter is no key
MIN_REMEMBERED_CHARS = 8   # a remembered key is removed from every text: a short one would blank words
MAX_REMEMBERED = 1_000     # keys typed in sessions; the oldest are forgotten first

# Vendors' key prefixes: OpenAI sk- (sk-proj-, sk-ant- ...; a 401 echoes it masked, "sk-ab***yz"),
# pk-/rk-, sess-, xAI xai-, Stripe sk_live_, Groq gsk_, Hugging Face hf_, GitHub ghp_/github_pat_.
_PREFIXED = re.compile(r"\b(?:sk|pk|rk|sess|xai)-[A-Za-z0-9_\-*]{2,}"
                       r"|\b(?:sk_live|sk_test|rk_live|gsk|hf|ghp|gho|ghs|github_pat)_[A-Za-z0-9_]{8,}")
# key-..., token_..., api_key-...: only with a digit in 12+ characters, so names such as
# `key_hint` or `token_count_estimate` in a traceback stay readable.
_NAMED = re.compile(r"\b(?:key|token|secret|api[-_]?key)[-_](?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{12,}", re.I)
# api_key=..., "password": "...", token: ... (a query string, a JSON body, a config dump)
_ASSIGNED = re.compile(r"\b((?:api[-_]?key|access[-_]?token|auth[-_]?token|token|secret|password|passwd)"
                       r"[\"']?\s*[=:]\s*)(\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|[^\s\"'&,;)}\]]{6,})", re.I)
_BEARER = re.compile(r"(bearer\s+)[^\s'\"]+", re.I)
# scheme://user:password@host -> scheme://***@host (also a lone token before the @)
_URL_CREDENTIALS = re.compile(r"([a-z][a-z0-9+.\-]*://)[^/\s@'\"]+@", re.I)
# A run of 32+ key characters standing alone. "/" is left out so that file paths in a
# traceback are not caught; a base64 key with a "/" is still cut into 32+ runs most of the time.
_TOKEN = re.compile(r"(?<![A-Za-z0-9_\-+=])[A-Za-z0-9_\-+=]{32,}(?![A-Za-z0-9_\-+=])")
# The app's and OpenAI's own ids (req_..., resp_..., thread_...) name things, they open nothing.
_ID_PREFIX = re.compile(r"^(?:req|resp|msg|conv|thread|asst|file|vs|run|call|fc|item|ftjob|ftckpt|"
                        r"chatcmpl|cmpl|batch|ws|rs|ctc|ci|cntr)[_-]", re.I)

_remembered: dict[str, None] = {}   # insertion-ordered: the oldest is forgotten first
_lock = threading.Lock()


def remember_secret(secret: str | None) -> None:
    """Have every later `redact` call remove `secret` (an API key this process uses)."""
    if not secret or len(secret) < MIN_REMEMBERED_CHARS:
        return
    with _lock:
        _remembered.pop(secret, None)
        _remembered[secret] = None
        while len(_remembered) > MAX_REMEMBERED:
            _remembered.pop(next(iter(_remembered)))


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with secrets replaced by '***': the given `secrets`, the remembered ones, and
    anything shaped like a key, a bearer token, URL credentials or a long random token."""
    text = str(text)
    with _lock:
        known = [*_remembered]
    # Longest first: a key that contains another is removed whole.
    for secret in sorted({s for s in (*secrets, *known) if s and len(s) >= MIN_SECRET_CHARS},
                         key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + HIDDEN + "@", text)
    text = _BEARER.sub(lambda m: m.group(1) + HIDDEN, text)
    text = _ASSIGNED.sub(lambda m: m.group(1) + _quoted_like(m.group(2), HIDDEN), text)
    text = _PREFIXED.sub(HIDDEN, text)
    text = _NAMED.sub(HIDDEN, text)
    return _TOKEN.sub(lambda m: HIDDEN if _looks_random(m.group()) else m.group(), text)


def _quoted_like(value: str, replacement: str) -> str:
    return value[0] + replacement + value[0] if value[0] in "\"'" else replacement


def _looks_random(token: str) -> bool:
    """A token that reads like a key, not like a long name (a snake_case function, a path part)."""
    if _ID_PREFIX.match(token):
        return False
    digits = sum(c.isdigit() for c in token)
    if re.fullmatch(r"[0-9a-fA-F\-]+", token):   # hex: keys, hashes, signatures
        return digits >= 8
    mixed_case = any(c.isupper() for c in token) and any(c.islower() for c in token)
    if mixed_case and digits >= 2:                # base64 and base62 keys
        return True
    # Lowercase letters and digits with no word breaks: a long blob, not a name.
    longest = max(len(part) for part in re.split(r"[_\-]", token))
    return longest >= 24 and digits >= 4
