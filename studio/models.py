"""What is known about the models a user can pick: reply prices and shutdown dates.

The table (data/model_catalog.json) is dated and copied by hand, so every cost it gives is
an estimate; a workspace may override entries in <workspace>/model_catalog.json. A shutdown
date that the provider reports (/v1/models) wins over the table.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from studio.types import ModelInfo, Usage

log = logging.getLogger(__name__)
SHIPPED = Path(__file__).resolve().parents[1] / "data" / "model_catalog.json"
OVERRIDE_FILE = "model_catalog.json"
RETIRING_SOON_DAYS = 60
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$|-\d{4}$")   # gpt-4o-mini-2024-07-18, gpt-4-0613


@dataclass(frozen=True)
class Price:
    """A model's reply price, per million tokens."""
    input_per_million: float
    output_per_million: float

    def cost(self, usage: Usage) -> float:
        return (usage.input_tokens * self.input_per_million + usage.output_tokens * self.output_per_million) / 1e6


@dataclass(frozen=True)
class Catalog:
    """The dated price and shutdown table."""
    as_of: str
    currency: str
    prices: dict[str, Price] = field(default_factory=dict)
    shutdowns: dict[str, date] = field(default_factory=dict)

    def price(self, model: str) -> Price | None:
        """The price of `model`: its own entry, its dated snapshot's family ("gpt-4o-mini-2024-07-18"
        -> "gpt-4o-mini"), a fine-tune's ("ft:gpt-4o-mini-2024-07-18:org::id" -> "ft:gpt-4o-mini"),
        a model tuned here at its base's price; None when unknown."""
        name = model.strip()
        tuned = name.startswith("ft:")
        base = name.split(":")[1] if tuned else name.split(":")[0]
        family = _SNAPSHOT.sub("", base)
        for key in ((f"ft:{base}", f"ft:{family}") if tuned else (base, family)):
            if key in self.prices:
                return self.prices[key]
        return None

    def shutdown(self, model: str) -> date | None:
        """The known shutdown date of `model` or of the model it is a dated snapshot of (a
        fine-tune's: its base's). Families are listed one by one: gpt-4o's date is not gpt-4o-mini's."""
        name = model.strip()
        base = name.split(":")[1] if name.startswith("ft:") else name.split(":")[0]
        for key in (base, _SNAPSHOT.sub("", base)):
            if key in self.shutdowns:
                return self.shutdowns[key]
        return None


def load_catalog(data_dir: Path | None = None) -> Catalog:
    """The shipped table with the workspace's overrides. A broken override file is logged and
    skipped (the shipped table still prices)."""
    raw = json.loads(SHIPPED.read_text(encoding="utf-8"))
    if data_dir is not None and (Path(data_dir) / OVERRIDE_FILE).exists():
        try:
            own = json.loads((Path(data_dir) / OVERRIDE_FILE).read_text(encoding="utf-8"))
            raw["prices"].update(own.get("prices", {}))
            raw["shutdowns"].update(own.get("shutdowns", {}))
            raw["as_of"] = own.get("as_of", raw["as_of"])
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("the workspace's model catalog could not be read (%s); using the shipped one", exc)
    prices = {}
    for name, entry in raw["prices"].items():
        try:
            prices[name] = Price(float(entry["input_per_million"]), float(entry["output_per_million"]))
        except (KeyError, TypeError, ValueError):
            log.warning("model catalog: the price of %s is not valid; skipped", name)
    shutdowns = {}
    for name, when in raw["shutdowns"].items():
        try:
            shutdowns[name] = date.fromisoformat(str(when))
        except ValueError:
            log.warning("model catalog: the shutdown date of %s is not valid; skipped", name)
    return Catalog(str(raw.get("as_of", "")), str(raw.get("currency", "USD")), prices, shutdowns)


@dataclass(frozen=True)
class ModelChoice:
    """A model the playground offers: where it runs, what it is, and when it stops serving."""
    provider: str
    id: str
    description: str = ""
    shutdown_date: date | None = None

    def status(self, today: date) -> str:
        """"shut down", "retiring" (within RETIRING_SOON_DAYS) or "" (fine, or unknown)."""
        if self.shutdown_date is None:
            return ""
        if self.shutdown_date <= today:
            return "shut down"
        return "retiring" if (self.shutdown_date - today).days <= RETIRING_SOON_DAYS else ""

    def warning(self, today: date) -> str:
        """A sentence for the user about this model's shutdown, or ""."""
        status = self.status(today)
        if status == "shut down":
            return (f"{self.id} shut down on {self.shutdown_date:%Y-%m-%d}: its provider no longer serves it, "
                    "so requests will fail. Pick another model.")
        if status == "retiring":
            days = (self.shutdown_date - today).days
            return (f"{self.id} shuts down on {self.shutdown_date:%Y-%m-%d} (in {days} days): plan to move to "
                    "another model.")
        return ""


def choices_from(provider: str, listed: list[ModelInfo], extra: list[tuple[str, str]], catalog: Catalog
                 ) -> list[ModelChoice]:
    """One provider's models: those it lists, then `extra` (id, description) it does not list
    (fine-tuned models and checkpoints made here), each with its shutdown date."""
    seen: dict[str, ModelChoice] = {}
    for info in listed:
        seen[info.id] = ModelChoice(provider, info.id, info.description,
                                    info.shutdown_date or catalog.shutdown(info.id))
    for model_id, description in extra:
        if model_id and model_id not in seen:
            seen[model_id] = ModelChoice(provider, model_id, description, catalog.shutdown(model_id))
    return list(seen.values())
