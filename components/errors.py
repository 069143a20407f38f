"""One error boundary per page run: a short message with an error id for the user, the
traceback for the server log.

Streamlit's own handler is set to show nothing (`client.showErrorDetails = "none"` in
.streamlit/config.toml); this boundary is what users see instead, so they can quote an id
that an administrator finds in the log.
"""
from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import sys
import traceback
import types
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import streamlit as st
from streamlit.errors import FragmentHandledException

from components import session
from studio.redact import redact
from studio.settings import ConfigError, Settings
from studio.store import StoreError

LOG = logging.getLogger("assistant_studio.errors")

_inside = contextvars.ContextVar("inside_error_boundary", default=False)


def _ensure_log_handler() -> None:
    # `streamlit run` configures only its own loggers; without a handler an error would reach
    # stderr through logging's last-resort handler, without time or logger name.
    if not LOG.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)


def _known_keys() -> list[str]:
    """The configured API key and the one typed in this session, where there are any.

    Not through session.settings(): on a bad setting that shows an error and stops the run,
    and an error report must not fail or stop on a second error.
    """
    keys = []
    try:
        keys.append(st.session_state.get(session.OVERRIDES, {}).get("api_key") or "")
    except Exception:   # no session (a report from outside a page run)
        pass
    try:
        keys.append(Settings.load(secrets=session.secrets()).api_key)
    except Exception:   # an unreadable configuration: the shapes of keys are still removed
        pass
    return keys


def report(exc: BaseException) -> str:
    """Write `exc` with its traceback to the server log, secrets removed; return the error id."""
    error_id = uuid.uuid4().hex[:8]
    _ensure_log_handler()
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    LOG.error("error id %s on a page run\n%s", error_id, redact(details, _known_keys()))
    return error_id


def show_error(error_id: str) -> None:
    st.error(f"Something went wrong on our side, sorry. Reload the page to try again; if it "
             f"happens again, tell your administrator the error id **{error_id}**.", icon="⚠️")


@contextmanager
def error_boundary() -> Iterator[None]:
    """Catch what a page run raises: log it with an id, show the id.

    Streamlit's control flow (st.stop, st.rerun, st.switch_page) raises BaseException
    subclasses, which pass through untouched.
    """
    token = _inside.set(True)
    try:
        yield
    except FragmentHandledException:
        raise   # a fragment has already handled its own error
    except (StoreError, ConfigError) as exc:   # worded for the user (or admin) already
        st.error(str(exc), icon="⚠️")
    except Exception as exc:
        show_error(report(exc))
    finally:
        _inside.reset(token)


def shows_store_errors(callback):
    """Wrap a widget callback so a StoreError is shown as its message.

    Callbacks run before the page script, outside the page's error boundary.
    """
    @functools.wraps(callback)
    def guarded(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except StoreError as exc:
            st.error(str(exc), icon="⚠️")
    return guarded


def inside_error_boundary() -> bool:
    return _inside.get()


def guard_page() -> None:
    """Run the calling page under the boundary when app.py did not.

    With a pages/ folder beside app.py, Streamlit may run a page file directly, without app.py
    (see components.auth.signed_in_page). Then this runs the page file again inside the
    boundary and stops the unguarded run. Under app.py it does nothing.
    """
    if inside_error_boundary():
        return
    page_file = _calling_script()
    if page_file is None:
        return
    # As Streamlit runs a page: a fresh module named __main__ (sys.modules is left alone).
    module = types.ModuleType("__main__")
    module.__dict__["__file__"] = page_file
    with error_boundary():
        exec(compile(Path(page_file).read_text(encoding="utf-8"), page_file, "exec"), module.__dict__)
    st.stop()


def _calling_script() -> str | None:
    # The page script is the innermost frame running as __main__ (Streamlit executes a page in
    # a fresh module named __main__).
    for frame_info in inspect.stack()[1:]:
        if frame_info.frame.f_globals.get("__name__") == "__main__":
            return frame_info.frame.f_globals.get("__file__")
    return None
