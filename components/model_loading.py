"""Showing progress while the embedded model loads (once per process)."""
from __future__ import annotations

import time

import streamlit as st

from studio.local_model import ModelLoadError, TorchRuntime, get_runtime, is_loaded, needs_first_build


def ensure_local_model(model_dir) -> bool:
    """Load the embedded model with a progress box the first time; later calls return at once.

    Never raises for a failed load: the box turns red and says what to do, and False comes
    back. Call it after the user's message is saved (studio.chat.add_user_message), so a
    failed load loses nothing; the turn itself then reports the same failure with a Retry.
    """
    if is_loaded(model_dir):
        return True
    first = needs_first_build(model_dir)
    started = time.perf_counter()
    label = "Preparing the embedded model (first run)…" if first else "Loading the embedded model…"
    with st.status(label, expanded=first) as status:
        try:
            runtime = get_runtime(model_dir, progress=status.write)
        except ModelLoadError as exc:
            status.write(str(exc))
            status.update(label="The embedded model could not be loaded", state="error", expanded=True)
            return False
        slow = isinstance(runtime, TorchRuntime)   # the fallback: leave its note open
        status.update(label=f"Embedded model ready ({time.perf_counter() - started:.1f} s"
                            f"{', slower built-in runtime' if slow else ''})", state="complete", expanded=slow)
    return True
