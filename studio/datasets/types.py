"""The fine-tuning data vocabulary: small dataclasses the wizard, the CLI and the jobs share.

A `SourceTable` (CSV or Excel) or a `ChatSource` (chat JSONL) goes through `prepare()` with
`PrepareOptions` and comes out as a `PreparedDataset`: its `Example`s (each with the source
row it came from, its side of the split and its token count), the `ValidationIssue`s, the
counts and the token/cost estimate. Saved, it becomes a `DatasetVersion` of a `Dataset`.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from itertools import compress, repeat
from operator import attrgetter, eq
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
Split = Literal["train", "validation", "excluded"]

TRAIN: Split = "train"
VALIDATION: Split = "validation"
EXCLUDED: Split = "excluded"

DEFAULT_VALIDATION_FRACTION = 0.2
DEFAULT_MODEL = "smollm2-135m-instruct"   # the embedded model: every dataset can train locally


class DatasetError(ValueError):
    """A file or a choice the dataset cannot be built from, worded for the user (nothing is lost:
    the caller keeps what the user gave)."""


@dataclass(frozen=True)
class ValidationIssue:
    """One problem, on one row (`row` 0: the whole dataset).

    `severity`: "error" keeps the row out of the files (or, with row 0, blocks the dataset),
    "warning" is worth a look (the row stays unless the user excludes it), "info" is a note.
    `code` is stable (tests and the page group by it); `message` is for people.
    """
    row: int
    code: str
    message: str
    severity: Severity = "warning"
    blocks_openai_only: bool = False   # e.g. fewer than 10 examples: fine locally, refused by OpenAI


@dataclass(slots=True)
class Example:
    """One training example in OpenAI chat format, and where it came from.

    `row`: the spreadsheet row (the header is row 1) or the JSONL line it came from.
    `messages`: [{"role": ..., "content": ...}, ...] exactly as written to the files (an
    assistant message may carry "weight": 0 or 1).
    """
    row: int
    messages: list[dict[str, Any]]
    split: Split = TRAIN
    excluded_because: str = ""        # why it is out of the files (user choice or an error)
    tokens: int = 0
    source_file: str = "train"        # "validation" for rows of an imported validation file
    origin: str = ""                  # where a row added later came from (a rated reply); "": the source

    @property
    def prompt(self) -> str:
        """The last user message (what the model answers)."""
        messages = self.messages
        if len(messages) >= 2 and type(messages[-2]) is dict and messages[-2].get("role") == "user" \
                and type(messages[-1]) is dict and messages[-1].get("role") != "user":   # the usual shape, quickly
            content = messages[-2].get("content")
            return content if isinstance(content, str) else ""
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else ""
        return ""

    @property
    def response(self) -> str:
        """The final assistant message (the target)."""
        last = self.messages[-1] if self.messages else None
        if isinstance(last, dict) and last.get("role") == "assistant":
            content = last.get("content")
            return content if isinstance(content, str) else ""
        return ""

    def to_json(self) -> dict:
        """The example as one line of a chat-format JSONL file."""
        return {"messages": self.messages}


def set_each(objects: list, name: str, values) -> None:
    """setattr(object, name, value) for each pair, in a loop that runs in C (a dataset can have
    hundreds of thousands of examples)."""
    deque(map(setattr, objects, repeat(name), values), maxlen=0)


_MESSAGES = Example.messages   # the slot that holds an example's messages
_UNBUILT = object()            # a TableExample's messages before they are first read
_BUILDING = threading.RLock()


class TableExample(Example):
    """An example built from one table row ([system], user: the prompt cell, assistant: the
    response cell). It is an Example in every way, but its messages are made the first time
    they are read: preparing a large table then makes one object per row instead of five, and
    the checks, token counts and files use the texts directly (prepare, export)."""
    __slots__ = ("system_text", "prompt_text", "response_text")

    def __init__(self, row: int, messages=_UNBUILT, *args, **kwargs):   # Example's (dataclasses.replace)
        Example.__init__(self, row, messages, *args, **kwargs)
        self.system_text = self.prompt_text = self.response_text = ""

    @classmethod
    def from_table(cls, rows: list[int], system: str, prompts: list, responses: list) -> list["TableExample"]:
        """One example per table row: its number, the system prompt ("" for none) and its two
        cells. Made field by field in loops that run in C (a table can have 100,000 rows), with
        Example's defaults."""
        if not len(rows) == len(prompts) == len(responses):
            raise ValueError("a table's row numbers and cells do not line up")
        examples = [object.__new__(cls) for _ in rows]
        values = {"row": rows, **{f.name: repeat(f.default) for f in fields(Example) if f.default is not MISSING},
                  **{f.name: (f.default_factory() for _ in rows) for f in fields(Example)
                     if f.default_factory is not MISSING},
                  "system_text": repeat(system), "prompt_text": prompts, "response_text": responses}
        if {f.name for f in fields(Example)} - set(values) - {"messages"}:
            raise TypeError("Example has a field that TableExample.from_table does not fill")
        for name, column in values.items():
            set_each(examples, name, column)
        deque(map(_MESSAGES.__set__, examples, repeat(_UNBUILT)), maxlen=0)
        return examples

    @property
    def built(self) -> bool:
        """Whether the messages were made (then they, not the texts, are the example)."""
        return _MESSAGES.__get__(self) is not _UNBUILT

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = _MESSAGES.__get__(self)
        if messages is _UNBUILT:
            with _BUILDING:   # two threads reading at once get the same list (a change to it is kept)
                messages = _MESSAGES.__get__(self)
                if messages is _UNBUILT:
                    messages = ([{"role": "system", "content": self.system_text}] if self.system_text else []) + [
                        {"role": "user", "content": self.prompt_text},
                        {"role": "assistant", "content": self.response_text}]
                    _MESSAGES.__set__(self, messages)
        return messages

    @messages.setter
    def messages(self, value: list[dict[str, Any]]) -> None:
        with _BUILDING:   # not overwritten by a build under way in another thread
            _MESSAGES.__set__(self, value)

    def __eq__(self, other) -> bool:   # equal to an Example with the same fields, as a plain one would be
        if not isinstance(other, Example):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(Example))

    __hash__ = None   # (mutable, like Example)

    @property
    def prompt(self) -> str:
        if self.built:
            return Example.prompt.fget(self)
        return self.prompt_text if isinstance(self.prompt_text, str) else ""

    @property
    def response(self) -> str:
        if self.built:
            return Example.response.fget(self)
        return self.response_text if isinstance(self.response_text, str) else ""


@dataclass
class SourceTable:
    """A CSV or Excel sheet read into text cells, with what the reader had to decide."""
    kind: Literal["csv", "excel"]
    filename: str
    sha256: str
    frame: Any                          # pandas DataFrame of str cells ("" for empty)
    rows: list[int]                     # spreadsheet row number of each frame row
    notes: list[str] = field(default_factory=list)           # encoding, delimiter, sheet...
    issues: list[ValidationIssue] = field(default_factory=list)  # lines the reader skipped
    sheets: list[str] = field(default_factory=list)          # Excel: every sheet in the file

    @property
    def columns(self) -> list[str]:
        """The column names, as text."""
        return [str(c) for c in self.frame.columns]


@dataclass
class ChatSource:
    """A chat-format JSONL file, imported as it is (one example per good line)."""
    filename: str
    sha256: str
    examples: list[Example]
    issues: list[ValidationIssue] = field(default_factory=list)   # broken lines, wrong shapes
    kind: Literal["jsonl"] = "jsonl"
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ColumnGuess:
    """Which columns look like the prompts and the responses (None: none found)."""
    prompt: str | None
    response: str | None
    extra: tuple[str, ...] = ()         # columns that will be ignored


@dataclass(frozen=True)
class PrepareOptions:
    """Everything that turns a source into examples. Stored with each dataset version.

    `system_prompt`: the text put first in every example ("" for none); `system_from` says
    where it came from ("", "typed", or "assistant:<name>"). `suffix`: appended to every
    response exactly as given (e.g. " -Sam"), unless the response already ends with it.
    `exclude_rows`: rows the user took out. `model`: the base model the token limit, token
    counts and price refer to.
    """
    prompt_column: str = ""
    response_column: str = ""
    system_prompt: str = ""
    system_from: str = ""
    suffix: str = ""
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    seed: int = 0
    model: str = DEFAULT_MODEL
    exclude_rows: frozenset[int] = frozenset()
    strip_whitespace: bool = True       # trim spaces and blank lines around each cell
    epochs: int | None = None           # None: the provider's automatic choice (estimated)

    def to_json(self) -> dict:
        """The options as JSON-ready data (kept with a dataset version and its export)."""
        return {"prompt_column": self.prompt_column, "response_column": self.response_column,
                "system_prompt": self.system_prompt, "system_from": self.system_from,
                "suffix": self.suffix, "validation_fraction": self.validation_fraction,
                "seed": self.seed, "model": self.model, "exclude_rows": sorted(self.exclude_rows),
                "strip_whitespace": self.strip_whitespace, "epochs": self.epochs}

    @classmethod
    def from_json(cls, data: dict) -> "PrepareOptions":
        """The options `to_json` gave; keys it does not know are dropped."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["exclude_rows"] = frozenset(int(r) for r in known.get("exclude_rows", ()))
        return cls(**known)


@dataclass(frozen=True)
class Counts:
    """How many examples the source gave, how many were kept or left out, and the split."""
    rows: int = 0                 # examples the source gave (good lines / data rows)
    kept: int = 0                 # in the files: train + validation
    excluded_by_user: int = 0
    excluded_for_errors: int = 0
    train: int = 0
    validation: int = 0

    @property
    def excluded(self) -> int:
        """Examples left out, by the user or for errors."""
        return self.excluded_by_user + self.excluded_for_errors


@dataclass(frozen=True)
class TokenSummary:
    """Token counts for the kept examples. `exact`: counted with the model's own tokenizer
    (the chat formatting included); otherwise a conservative estimate."""
    train: int
    validation: int
    longest: int
    limit: int                    # the longest example the base model trains on
    tokenizer: str                # e.g. "o200k_base (quicktok)" or "SmolLM2 tokenizer"
    exact: bool


@dataclass(frozen=True)
class CostEstimate:
    """What a training run would cost. Always an estimate: epochs may be chosen by the
    provider, and prices change (`prices_as_of` dates the table it came from)."""
    epochs: int
    epochs_automatic: bool        # estimated from the provider's documented "auto" rule
    billed_tokens: int            # train tokens x epochs
    price_per_million: float | None   # None: no price known for this model
    cost: float | None
    currency: str = "USD"
    prices_as_of: str = ""
    local: bool = False           # trained on this machine: no bill


@dataclass
class PreparedDataset:
    """The result of prepare(): what will be trained, what is wrong, and what it would cost."""
    source_kind: str
    source_name: str
    source_sha256: str
    options: PrepareOptions
    examples: list[Example]
    issues: list[ValidationIssue]
    counts: Counts
    tokens: TokenSummary
    estimate: CostEstimate
    notes: list[str] = field(default_factory=list)
    validation_given: bool = False    # the split came with the files (an imported validation JSONL)

    def split(self, which: Split) -> list[Example]:
        """The examples in one split (train or validation)."""
        examples = self.examples   # (in passes that run in C: a split can have 100,000 examples)
        return list(compress(examples, map(eq, map(attrgetter("split"), examples), repeat(which))))

    @property
    def train(self) -> list[Example]:
        return self.split(TRAIN)

    @property
    def validation(self) -> list[Example]:
        return self.split(VALIDATION)

    def blocking(self, provider: str = "local") -> list[ValidationIssue]:
        """Issues that stop a launch on `provider` ("openai" adds OpenAI's own minimums)."""
        return [i for i in self.issues if i.severity == "error" and i.row == 0
                and (provider == "openai" or not i.blocks_openai_only)]


@dataclass(frozen=True)
class Dataset:
    """A named dataset of one user; its versions are kept until deleted."""
    id: str
    owner: str
    name: str
    created_at: datetime
    updated_at: datetime
    versions: int = 0
    latest_version: int = 0


@dataclass
class DatasetVersion:
    """One saved state of a dataset: the options, seed and source it was built from, its
    counts, and the examples with their split (enough to rebuild every file byte for byte)."""
    id: str
    dataset_id: str
    name: str
    owner: str
    version: int
    created_at: datetime
    source_kind: str
    source_name: str
    source_sha256: str
    options: PrepareOptions
    counts: Counts
    summary: dict                      # tokens and estimate, as shown when it was saved
    prepared: PreparedDataset | None = None   # loaded on request (get_version)
