"""The files a prepared dataset is downloaded or uploaded as.

- OpenAI chat JSONL (`train.jsonl`, `validation.jsonl`): one `{"messages": [...]}` per line,
  written as `json.dumps(example, ensure_ascii=False)` (default separators, keys in the order
  role, content[, weight]) followed by "\\n" -- the last line too -- in UTF-8 without BOM. The
  same bytes every time for the same examples. This is also the "messages" format Hugging
  Face `datasets` loads (`load_dataset("json", data_files=...)`) and TRL's SFTTrainer trains on.
- Parquet (`train.parquet`, `validation.parquet`): one column `messages`, a list of
  {role, content} structs (plus `weight` when some message has one); `load_dataset("parquet", ...)`
  and pandas read it directly.
- ShareGPT JSON (`train.sharegpt.json`, `validation.sharegpt.json`): a JSON array of
  `{"conversations": [{"from": "system"|"human"|"gpt", "value": ...}]}`, the layout LLaMA-Factory
  (formatting "sharegpt") and Unsloth's `standardize_sharegpt` read. It has no weights: a
  weight-0 reply is written like any other.
"""
from __future__ import annotations

import functools
import io
import json
from itertools import chain, repeat
from operator import attrgetter
from pathlib import Path
from typing import Iterable

from studio.datasets.tokens import plain_messages, texts_holding
from studio.datasets.types import TRAIN, VALIDATION, DatasetError, Example, PreparedDataset, TableExample

SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}

FORMATS = {
    "openai": ("OpenAI chat JSONL (also Hugging Face messages JSONL)", "{split}.jsonl", "application/jsonl"),
    "parquet": ("Parquet (Hugging Face datasets, pandas)", "{split}.parquet", "application/vnd.apache.parquet"),
    "sharegpt": ("ShareGPT JSON (LLaMA-Factory, Unsloth)", "{split}.sharegpt.json", "application/json"),
}


def openai_jsonl(examples: Iterable[Example]) -> bytes:
    """OpenAI chat JSONL bytes (see the module's docstring for the exact layout)."""
    examples = examples if isinstance(examples, list) else list(examples)
    data = _uniform_bytes(examples)
    if data is not None:
        return data
    dumps = functools.partial(json.dumps, ensure_ascii=False)
    known: dict[str, str] = {}   # a message text every line repeats (the system prompt) is encoded once
    lines = []
    for example in examples:
        parts = []
        for message in example.messages:
            # The usual {"role", "content"} message, written by hand exactly as json.dumps writes it.
            role = message.get("role") if type(message) is dict and len(message) == 2 else None
            if type(role) is str and role in _HEADS and type(message.get("content")) is str \
                    and next(iter(message)) == "role":
                content = message["content"]
                if role == "system":
                    text = known.get(content)
                    if text is None:
                        text = known[content] = _HEADS[role] + _string(content) + "}"
                else:
                    text = _HEADS[role] + _string(content) + "}"
                parts.append(text)
            else:
                parts.append(dumps(message))
        # Encoded line by line: one emoji would make a joined str four bytes a character.
        lines.append(('{"messages": [' + ", ".join(parts) + "]}\n").encode("utf-8"))
    return b"".join(lines)


def _uniform_bytes(examples: list[Example]) -> bytes | None:
    """The file's bytes, built column by column, when every example has the same roles in the
    same order and every message is exactly {"role", "content": text} (a dataset built from a
    table always is); None otherwise. The same bytes as the general path."""
    columns = _table_columns(examples)
    if columns is not None:
        return _lines_from_columns(columns, len(examples))
    messages = [e.messages for e in examples]
    width = len(messages[0]) if messages else 0
    if not width or set(map(type, messages)) != {list} or set(map(len, messages)) != {width}:
        return None
    flat = list(chain.from_iterable(messages))
    if set(map(type, flat)) != {dict} or set(map(len, flat)) != {2} \
            or list(map(next, map(iter, flat))).count("role") != len(flat):   # role first, then content
        return None
    plain = plain_messages(flat, _HEADS)   # roles we write, text content
    if plain is None:
        return None
    roles, contents = plain
    columns = [(role, contents[i::width]) for i, role in enumerate(roles[:width])]
    if any(roles[i::width].count(role) != len(messages) for i, (role, _texts) in enumerate(columns)):
        return None
    return _lines_from_columns(columns, len(messages))


def _table_columns(examples: list[Example]) -> list[tuple[str, list[str]]] | None:
    """(role, texts) of each message, when the examples are rows of a table whose messages were
    never made (TableExample), with one system prompt and text cells; else None."""
    if not examples or set(map(type, examples)) != {TableExample} or any(map(attrgetter("built"), examples)):
        return None
    systems = list(map(attrgetter("system_text"), examples))
    prompts = list(map(attrgetter("prompt_text"), examples))
    responses = list(map(attrgetter("response_text"), examples))
    if systems.count(systems[0]) != len(systems) or set(map(type, prompts + responses + systems[:1])) != {str}:
        return None
    return ([("system", systems)] if systems[0] else []) + [("user", prompts), ("assistant", responses)]


def _lines_from_columns(columns: list[tuple[str, list[str]]], n: int) -> bytes:
    """n lines {"messages": [{"role": role, "content": text}, ...]}, from each message's role
    and its n texts."""
    parts = [""]   # text every line has, and columns of text (a list each)
    for i, (role, texts) in enumerate(columns):
        parts[-1] += ('{"messages": [' if i == 0 else ", ") + _HEADS[role]
        if texts.count(texts[0]) == n:   # the same text on every line (a system prompt): encoded once
            parts[-1] += _string(texts[0]) + "}"
        else:
            parts[-1] += '"'
            parts += [_inside_quotes(texts), '"}']
    parts[-1] += "]}\n"
    # Each line is the text before its first column, then the rest: the file is that text, then
    # the rests joined by it (one join, however long the shared system prompt).
    head = parts[0].encode()
    rests = [repeat(part, n) if isinstance(part, str) else part for part in parts[1:]]
    if not rests:
        return head * n
    return head + head.join(map(str.encode, map("".join, zip(*rests, strict=True))))


def _inside_quotes(texts: list[str]) -> list[str]:
    """Each text as json.dumps(..., ensure_ascii=False) writes it between the quotes: as it is,
    unless it holds a quote, a backslash or a control character (found in an Arrow array's bytes)."""
    import pyarrow as pa
    escaped = texts_holding(pa.array(texts, type=pa.large_string()), lambda b: (b < 32) | (b == 34) | (b == 92))
    inside = list(texts)
    for i in escaped.tolist():
        inside[i] = _string(texts[i])[1:-1]
    return inside


_string = json.encoder.encode_basestring   # the JSON string json.dumps(..., ensure_ascii=False) writes
_HEADS = {role: '{"role": ' + _string(role) + ', "content": ' for role in ("system", "user", "assistant")}


def sharegpt_json(examples: Iterable[Example]) -> bytes:
    """ShareGPT-style JSON array bytes (indented two spaces, UTF-8, ending with a newline)."""
    records = [{"conversations": [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]}
                                  for m in e.messages]} for e in examples]
    return (json.dumps(records, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def parquet_bytes(examples: Iterable[Example]) -> bytes:
    """A Parquet file with one `messages` column (needs pyarrow, which Streamlit brings)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError("Parquet export needs the pyarrow package (pip install pyarrow).") from None
    examples = list(examples)
    weighted = any("weight" in m for e in examples for m in e.messages)
    fields = [pa.field("role", pa.string()), pa.field("content", pa.string())]
    if weighted:
        fields.append(pa.field("weight", pa.int8()))
    kind = pa.list_(pa.struct(fields))
    rows = [[{"role": m["role"], "content": m["content"], **({"weight": m.get("weight")} if weighted else {})}
             for m in e.messages] for e in examples]
    table = pa.table({"messages": pa.array(rows, type=kind)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


WRITERS = {"openai": openai_jsonl, "parquet": parquet_bytes, "sharegpt": sharegpt_json}


def export_files(prepared: PreparedDataset, formats: Iterable[str] = FORMATS) -> dict[str, bytes]:
    """Every file of the dataset, by file name: each format for train, and for validation when
    there are validation examples."""
    files: dict[str, bytes] = {}
    for split in (TRAIN, VALIDATION):
        examples = prepared.split(split)
        if not examples:
            continue
        for name in formats:
            files[FORMATS[name][1].format(split=split)] = WRITERS[name](examples)
    return files


def write_files(prepared: PreparedDataset, directory: Path, manifest: dict | None = None) -> list[Path]:
    """Write export_files() into `directory` (created if needed), plus `dataset.json`
    describing where the data came from, the options, seed and counts. Returns the paths."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        files = export_files(prepared)
        files["dataset.json"] = (json.dumps(manifest or describe(prepared), ensure_ascii=False, indent=2)
                                 + "\n").encode("utf-8")
        for name, data in files.items():
            path = directory / name
            path.write_bytes(data)
            written.append(path)
        for split in (VALIDATION,):   # an old validation file must not outlive a split without one
            if not prepared.split(split):
                for name in FORMATS.values():
                    (directory / name[1].format(split=split)).unlink(missing_ok=True)
        return written
    except OSError as exc:
        raise DatasetError(f"Could not write the files to {directory}: {exc.strerror or exc}.") from None


def describe(prepared: PreparedDataset, name: str = "", version: int | None = None) -> dict:
    """What the dataset is, as plain JSON (the `dataset.json` beside the files)."""
    c, t, e = prepared.counts, prepared.tokens, prepared.estimate
    return {
        "name": name, "version": version,
        "source": {"kind": prepared.source_kind, "file": prepared.source_name, "sha256": prepared.source_sha256},
        "options": prepared.options.to_json(),
        "split": "given by the files" if prepared.validation_given else
                 "seeded: SHA-256 of seed and normalized prompt (studio.datasets.prepare.assign_split)",
        "counts": {"rows": c.rows, "kept": c.kept, "excluded_by_user": c.excluded_by_user,
                   "excluded_for_errors": c.excluded_for_errors, "train": c.train, "validation": c.validation},
        "tokens": {"train": t.train, "validation": t.validation, "longest": t.longest, "limit": t.limit,
                   "tokenizer": t.tokenizer, "exact": t.exact},
        "estimate": {"epochs": e.epochs, "epochs_automatic": e.epochs_automatic, "billed_tokens": e.billed_tokens,
                     "price_per_million": e.price_per_million, "cost": e.cost, "currency": e.currency,
                     "prices_as_of": e.prices_as_of, "local": e.local},
    }
