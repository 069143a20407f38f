"""Epochs, billed tokens and cost: always an estimate, from a small dated price table.

The table ships as data/finetune_prices.json (dated; edit it when prices change) and a
workspace may override any entry in <workspace>/finetune_prices.json (same layout), which is
what the settings screen writes. A model without a price gets no cost (never a made-up one).
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from studio.datasets.types import CostEstimate, DatasetError

LOG = logging.getLogger(__name__)

SHIPPED_TABLE = Path(__file__).resolve().parents[2] / "data" / "finetune_prices.json"
OVERRIDE_FILE = "finetune_prices.json"

# OpenAI's "auto" epochs, as its fine-tuning data-preparation guide (the cookbook's
# Chat_finetuning_data_prep) describes it: aim at 3 epochs, but at least 100 and at most
# 25,000 example-passes in all, and between 1 and 25 epochs.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25
LOCAL_DEFAULT_EPOCHS = 3          # the local trainer's default

DEFAULT_OPENAI_LIMIT = 65_536     # training example context of the gpt-4o / gpt-4.1 families
DEFAULT_LOCAL_LIMIT = 2_048


@dataclass(frozen=True)
class ModelPrice:
    """One model's fine-tuning price and longest training example."""
    model: str
    provider: str                          # "openai" or "local"
    training_per_million: float | None     # None: unknown
    max_example_tokens: int
    overridden: bool = False               # from the workspace's file


@dataclass(frozen=True)
class PriceTable:
    """The dated fine-tuning price table, the workspace's own entries included."""
    as_of: str
    currency: str
    note: str
    models: dict

    def price_for(self, model: str) -> ModelPrice:
        """The entry for `model`: exact, else its dated snapshot ("gpt-4o-mini" ->
        "gpt-4o-mini-2024-07-18"), else the base of a fine-tune ("ft:<base>:..."), else a
        priceless entry with the family's example limit."""
        name = model.strip()
        if name.startswith("ft:"):
            name = name.split(":")[1]
        base = name.split(":", 1)[0]
        for key in (name, base):
            if key in self.models:
                return self.models[key]
        snapshots = sorted(k for k in self.models if k.startswith(base + "-20"))
        if snapshots:
            return self.models[snapshots[-1]]
        from studio.local_model import MODEL_ID
        local = base == MODEL_ID
        return ModelPrice(model, "local" if local else "openai", 0.0 if local else None,
                          DEFAULT_LOCAL_LIMIT if local else DEFAULT_OPENAI_LIMIT)


def _entries(raw: dict, overridden: bool) -> dict:
    out = {}
    for model, entry in (raw.get("models") or {}).items():
        if not isinstance(entry, dict):
            continue
        price = entry.get("training_per_million")
        limit = entry.get("max_example_tokens")
        out[model] = ModelPrice(
            model, str(entry.get("provider") or "openai"),
            float(price) if isinstance(price, (int, float)) and price >= 0 else None,
            int(limit) if isinstance(limit, int) and limit > 0 else DEFAULT_OPENAI_LIMIT,
            overridden)
    return out


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:   # a hand edit gone wrong: the shipped prices still apply
        LOG.warning("ignoring the price table %s: %s", path, exc)
        return {}


def load_price_table(data_dir: Path | None = None) -> PriceTable:
    """The shipped table with the workspace's overrides (if `data_dir` has any) on top."""
    shipped = _read(SHIPPED_TABLE)
    models = _entries(shipped, overridden=False)
    as_of = str(shipped.get("as_of", ""))
    if data_dir is not None:
        override = _read(Path(data_dir) / OVERRIDE_FILE)
        models.update(_entries(override, overridden=True))
        if override.get("as_of"):
            as_of = str(override["as_of"])
    return PriceTable(as_of, str(shipped.get("currency", "USD")), str(shipped.get("note", "")), models)


def save_price_override(data_dir: Path, model: str, training_per_million: float | None,
                        max_example_tokens: int | None = None, provider: str = "openai",
                        as_of: str | None = None) -> PriceTable:
    """Set (or with a None price, remove) the workspace's own entry for `model`; returns the
    table as it now reads. `as_of` dates the workspace's prices (default: today)."""
    from datetime import date
    if training_per_million is not None and (not math.isfinite(training_per_million) or training_per_million < 0):
        raise DatasetError("A price is a number of dollars per million tokens, 0 or more.")
    if max_example_tokens is not None and max_example_tokens < 1:
        raise DatasetError("The longest example must be at least 1 token.")
    path = Path(data_dir) / OVERRIDE_FILE
    current = _read(path)
    models = dict(current.get("models") or {})
    if training_per_million is None:
        models.pop(model, None)
    else:
        entry = {"provider": provider, "training_per_million": float(training_per_million)}
        limit = max_example_tokens or load_price_table(None).price_for(model).max_example_tokens
        entry["max_example_tokens"] = int(limit)
        models[model] = entry
    data = {"as_of": as_of or date.today().isoformat(), "models": models}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False,
                                     suffix=".partial") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    os.replace(handle.name, path)
    return load_price_table(data_dir)


def auto_epochs(n_train: int) -> int:
    """The number of epochs OpenAI's "auto" setting picks for `n_train` examples (estimated)."""
    if n_train <= 0:
        return TARGET_EPOCHS
    if n_train * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_train)
    if n_train * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_train)
    return TARGET_EPOCHS


def estimate_cost(train_tokens: list[int], model: str, table: PriceTable,
                  epochs: int | None = None) -> CostEstimate:
    """Billed tokens (each training example's tokens, capped at the model's example limit,
    times the epochs) and their price. `epochs` None: the provider's automatic choice."""
    entry = table.price_for(model)
    local = entry.provider == "local"
    automatic = epochs is None
    if automatic:
        epochs = LOCAL_DEFAULT_EPOCHS if local else auto_epochs(len(train_tokens))
    billed = sum(min(n, entry.max_example_tokens) for n in train_tokens) * epochs
    price = 0.0 if local else entry.training_per_million
    cost = None if price is None else round(billed / 1_000_000 * price, 4)
    return CostEstimate(epochs, automatic, billed, price, cost, table.currency, table.as_of, local)
