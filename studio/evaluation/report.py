"""An evaluation's results as tables: one row per case with a column group per configuration
(for the page and "wide" CSV), one line per case and configuration (the "long" CSV), JSONL,
and a summary per configuration."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pandas as pd

from studio.evaluation.runs import EvalRun, Result

LONG_COLUMNS = ["row", "configuration", "prompt", "reference", "reply", "error", "rule_passed", "length_ratio",
                "similarity", "judge_score", "judge_note", "first_token_s", "total_s", "input_tokens",
                "output_tokens", "cost", "attempts"]


@dataclass
class ConfigSummary:
    """One configuration over the whole run."""
    configuration: str
    answered: int
    failed: int
    missing: int
    rule_passed: int | None
    mean_length_ratio: float | None
    mean_similarity: float | None
    mean_judge_score: float | None
    mean_total_s: float | None
    cost: float | None


def _mean(values) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 4) if known else None


def summaries(run: EvalRun, results: list[Result]) -> list[ConfigSummary]:
    """Per configuration: how many cases it answered, failed and has yet to answer, and the
    mean of each metric over the answered ones (rule: how many passed)."""
    out = []
    for k, config in enumerate(run.configurations):
        mine = [r for r in results if r.config_no == k]
        good = [r for r in mine if not r.failed]
        ruled = [r.rule_passed for r in good if r.rule_passed is not None]
        costs = [r.cost for r in good if r.cost is not None]
        out.append(ConfigSummary(
            configuration=config.title(), answered=len(good), failed=len(mine) - len(good),
            missing=len(run.cases) - len(mine), rule_passed=sum(ruled) if ruled else None,
            mean_length_ratio=_mean(r.length_ratio for r in good), mean_similarity=_mean(r.similarity for r in good),
            mean_judge_score=_mean(r.judge_score for r in good), mean_total_s=_mean(r.total_s for r in good),
            cost=round(sum(costs), 6) if costs else None))
    return out


def long_table(run: EvalRun, results: list[Result]) -> pd.DataFrame:
    """One line per case and configuration that has a result."""
    rows = []
    for r in results:
        case = run.cases[r.case_no]
        rows.append({"row": case.row or r.case_no + 1, "configuration": run.configurations[r.config_no].title(),
                     "prompt": case.prompt, "reference": case.reference,
                     **{k: v for k, v in asdict(r).items() if k in LONG_COLUMNS}})
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def wide_table(run: EvalRun, results: list[Result], metrics: bool = True) -> pd.DataFrame:
    """One line per case: prompt, reference, then each configuration's reply (or error) and,
    with `metrics`, its scores."""
    by = {(r.case_no, r.config_no): r for r in results}
    rows = []
    for c, case in enumerate(run.cases):
        row = {"row": case.row or c + 1, "prompt": case.prompt, "reference": case.reference}
        for k, config in enumerate(run.configurations):
            name = config.title()
            r = by.get((c, k))
            row[name] = "" if r is None else (f"⚠ {r.error}" if r.failed else r.reply)
            if metrics:
                row[f"{name} · rule"] = None if r is None else r.rule_passed
                row[f"{name} · similarity"] = None if r is None else r.similarity
                row[f"{name} · length"] = None if r is None else r.length_ratio
                if run.judge is not None:
                    row[f"{name} · judge"] = None if r is None else r.judge_score
        rows.append(row)
    return pd.DataFrame(rows)


def to_csv(run: EvalRun, results: list[Result]) -> bytes:
    """The long table as UTF-8 CSV with a header (opens in Excel: BOM included)."""
    return long_table(run, results).to_csv(index=False).encode("utf-8-sig")


def to_jsonl(run: EvalRun, results: list[Result]) -> bytes:
    """One JSON object per case: its messages, reference and every configuration's result."""
    by = {(r.case_no, r.config_no): r for r in results}
    lines = []
    for c, case in enumerate(run.cases):
        answers = {}
        for k, config in enumerate(run.configurations):
            r = by.get((c, k))
            answers[config.title()] = None if r is None else {
                key: value for key, value in asdict(r).items() if key not in ("case_no", "config_no")}
        lines.append(json.dumps({"row": case.row, "messages": case.messages, "reference": case.reference,
                                 "results": answers}, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")
