"""Shared test set-up: every test, app and browser run shares one cache of the embedded model
weights (dequantizing the bundled GGUF takes ~20 s; a cached load takes well under a second)."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("STUDIO_MODEL_CACHE", str(ROOT / ".cache" / "models"))
os.environ.setdefault("STUDIO_LOCAL_MAX_TOKENS", "24")   # short replies keep tests quick
