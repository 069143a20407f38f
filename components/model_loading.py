"""Showing progress while the embedded model loads (once per process)."""
from __future__ import annotations

import streamlit as st

from studio.local_model import get_local_model, is_cached, is_loaded


def ensure_local_model(model_dir) -> None:
    """Load the embedded model with a progress box the first time; later calls return at once."""
    if is_loaded(model_dir):
        return
    first = not is_cached(model_dir)
    label = "Preparing the embedded model (first run)…" if first else "Loading the embedded model…"
    with st.status(label, expanded=first) as status:
        loaded = get_local_model(model_dir, progress=status.write)
        status.update(label=f"Embedded model ready ({loaded.load_seconds:.1f} s)", state="complete",
                      expanded=False)
