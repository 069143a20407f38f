"""Showing progress while the embedded model loads (once per process)."""
from __future__ import annotations

import streamlit as st

from studio.local_model import ModelLoadError, get_local_model, is_cached, is_loaded


def ensure_local_model(model_dir) -> bool:
    """Load the embedded model with a progress box the first time; later calls return at once.

    Never raises for a failed load: the box turns red and says what to do, and False comes
    back. Call it after the user's message is saved (studio.chat.add_user_message), so a
    failed load loses nothing; the turn itself then reports the same failure with a Retry.
    """
    if is_loaded(model_dir):
        return True
    first = not is_cached(model_dir)
    label = "Preparing the embedded model (first run)…" if first else "Loading the embedded model…"
    with st.status(label, expanded=first) as status:
        try:
            loaded = get_local_model(model_dir, progress=status.write)
        except ModelLoadError as exc:
            status.write(str(exc))
            status.update(label="The embedded model could not be loaded", state="error", expanded=True)
            return False
        status.update(label=f"Embedded model ready ({loaded.load_seconds:.1f} s)", state="complete",
                      expanded=False)
    return True
