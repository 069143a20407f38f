"""The validation report and summary as plain text lines (the CLI prints them; tests read them)."""
from __future__ import annotations

from studio.datasets.types import PreparedDataset
from studio.datasets.validation import group_issues, rows_text

SEVERITY_LABEL = {"error": "error  ", "warning": "warning", "info": "note   "}


def money(value: float | None, currency: str) -> str:
    """An amount as the report shows it, e.g. "$1.25"; "unknown" for None."""
    if value is None:
        return "unknown"
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{symbol}{value:,.2f}" if value >= 0.01 or value == 0 else f"{symbol}{value:.4f}"


def summary_lines(prepared: PreparedDataset) -> list[str]:
    """Counts, split, tokens and the estimate, one fact a line."""
    c, t, e, o = prepared.counts, prepared.tokens, prepared.estimate, prepared.options
    lines = [f"Rows: {c.rows}  kept {c.kept} (train {c.train}, validation {c.validation})  "
             f"excluded {c.excluded} (by you {c.excluded_by_user}, for errors {c.excluded_for_errors})"]
    if prepared.validation_given:
        lines.append("Split: as given by the training and validation files")
    else:
        lines.append(f"Split: validation fraction {o.validation_fraction:g}, seed {o.seed}")
    kind = "" if t.exact else " (an estimate)"
    lines.append(f"Tokens{kind}, {t.tokenizer}: train {t.train:,}, validation {t.validation:,}; "
                 f"longest example {t.longest:,} of at most {t.limit:,} for {o.model}")
    epochs = f"{e.epochs} epoch{'s' if e.epochs != 1 else ''}"
    if e.epochs_automatic:
        epochs += " (the local trainer's default)" if e.local else " (automatic, estimated)"
    if e.local:
        lines.append(f"Training: {epochs} x {t.train:,} tokens = {e.billed_tokens:,} tokens, on this machine (no bill)")
    elif e.cost is None:
        lines.append(f"Estimate: {epochs} -> {e.billed_tokens:,} billed tokens; no price is known for {o.model} "
                     "(add one in the price table)")
    else:
        lines.append(f"Estimate: {epochs} -> {e.billed_tokens:,} billed tokens ~ {money(e.cost, e.currency)} at "
                     f"{money(e.price_per_million, e.currency)} per million (prices as of {e.prices_as_of}; "
                     "an estimate, not a quote)")
    return lines


def issue_lines(prepared: PreparedDataset) -> list[str]:
    """One line per problem (the same problem on several rows shares a line listing the rows)."""
    lines = []
    for issue, rows in group_issues(prepared.issues):
        where = rows_text(rows)
        lines.append(f"{SEVERITY_LABEL[issue.severity]}  {where + ': ' if where else ''}{issue.message}")
    return lines
