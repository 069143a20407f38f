"""Fine-tuning data: reading CSV/Excel/JSONL, column mapping, validation, the seeded split,
token and cost estimates, export formats, and saved dataset versions. Never imports Streamlit.

The usual path (the wizard and `python -m studio dataset prepare` both take it):

    source = read_source(data, filename)                 # SourceTable or ChatSource
    guess = guess_columns(source)                        # for tables
    prepared = prepare(source, PrepareOptions(prompt_column=guess.prompt,
                                              response_column=guess.response, suffix=" -Sam"))
    files = export_files(prepared)                       # {"train.jsonl": b"...", ...}
    DatasetStore(store.engine).save_version("comments", prepared, actor, source_bytes=data)
"""
from studio.datasets.export import FORMATS, export_files, openai_jsonl, parquet_bytes, sharegpt_json, write_files
from studio.datasets.prepare import assign_split, build_examples, prepare, system_prompt_from_assistant
from studio.datasets.pricing import auto_epochs, estimate_cost, load_price_table, save_price_override
from studio.datasets.reading import (excel_sheets, guess_columns, max_upload_bytes, read_chat_jsonl, read_csv,
                                     read_excel, read_source)
from studio.datasets.tokens import count_tokens, counter_for
from studio.datasets.types import (ChatSource, ColumnGuess, CostEstimate, Counts, Dataset, DatasetError,
                                   DatasetVersion, Example, PrepareOptions, PreparedDataset, SourceTable,
                                   TokenSummary, ValidationIssue)
from studio.datasets.validation import group_issues, rows_text

__all__ = [
    "FORMATS", "ChatSource", "ColumnGuess", "CostEstimate", "Counts", "Dataset", "DatasetError", "DatasetVersion",
    "Example", "PrepareOptions", "PreparedDataset", "SourceTable", "TokenSummary", "ValidationIssue",
    "assign_split", "auto_epochs", "build_examples", "count_tokens", "counter_for", "estimate_cost",
    "excel_sheets", "export_files", "group_issues", "guess_columns", "load_price_table", "max_upload_bytes",
    "openai_jsonl", "parquet_bytes", "prepare", "read_chat_jsonl", "read_csv", "read_excel", "read_source",
    "rows_text", "save_price_override", "sharegpt_json", "system_prompt_from_assistant", "write_files",
]
