"""Reading what a user uploads: CSV (any common delimiter and encoding), Excel, chat JSONL.

pandas parses every table (never a hand-written CSV parser); this module only decides how to
call it (encoding, delimiter, sheet) and says what it decided, so that a surprising choice is
visible. Rows are numbered the way a spreadsheet shows them: the header is row 1, the first
data row is row 2. JSONL examples are numbered by their line in the file.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import operator
import os
import re
import warnings
from itertools import repeat
from pathlib import Path

from studio.datasets.types import ChatSource, ColumnGuess, DatasetError, Example, SourceTable, ValidationIssue

# Larger uploads are refused before parsing (STUDIO_DATASET_MAX_MB changes it).
UNZIPPED_FACTOR = 4   # an .xlsx may unpack to at most this many times the upload limit
DEFAULT_MAX_MB = 50
DELIMITERS = ",;\t|"
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
SNIFF_CHARS = 64_000

PROMPT_NAMES = ("prompt", "comment", "question", "input", "instruction", "query", "user", "message",
                "text", "request")
RESPONSE_NAMES = ("response", "reply", "answer", "output", "completion", "assistant", "target",
                  "responses", "replies", "answers")


def max_upload_bytes() -> int:
    """The largest file accepted, from STUDIO_DATASET_MAX_MB (default 50 MB)."""
    raw = os.environ.get("STUDIO_DATASET_MAX_MB", "").strip()
    try:
        megabytes = float(raw) if raw else DEFAULT_MAX_MB
    except ValueError:
        megabytes = DEFAULT_MAX_MB
    return int(max(megabytes, 0.001) * 1_000_000)


def file_sha256(data: bytes) -> str:
    """The hex SHA-256 of a file's bytes."""
    return hashlib.sha256(data).hexdigest()


def read_source(data: bytes, filename: str, *, sheet: str | None = None, has_header: bool = True,
                max_bytes: int | None = None) -> SourceTable | ChatSource:
    """Read an uploaded file: a CSV/TSV, an Excel workbook (.xlsx) or a chat-format JSONL.

    The kind comes from the file's content where it can (an .xlsx is a zip; a JSONL line is a
    JSON object) and from its name otherwise. Raises DatasetError with what is wrong and what
    to do: an empty or header-only file, a binary file, an old .xls, a file over the size limit.
    """
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    if len(data) > limit:
        raise DatasetError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {limit / 1e6:g} MB "
                           "(STUDIO_DATASET_MAX_MB). Split it, or ask an administrator to raise the limit.")
    if not data.strip():
        raise DatasetError("The file is empty.")
    suffix = Path(filename or "").suffix.lower()
    if data.startswith(b"PK\x03\x04"):
        return read_excel(data, filename, sheet=sheet, has_header=has_header)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise DatasetError("This is an old-style Excel file (.xls). Save it as .xlsx or as CSV "
                           "(\"CSV UTF-8\") and upload that.")
    if suffix in (".jsonl", ".json", ".ndjson") or _looks_like_jsonl(data):
        return read_chat_jsonl(data, filename)
    if suffix in (".xlsx", ".xlsm"):
        raise DatasetError("This file is named like an Excel workbook but is not one (it is not a "
                           ".xlsx zip). Open it in Excel and save it again, or export a CSV.")
    return read_csv(data, filename, has_header=has_header)


def _looks_like_jsonl(data: bytes) -> bool:
    first = data.lstrip(codecs.BOM_UTF8).lstrip()[:1]
    if first != b"{":
        return False
    line = data.lstrip(codecs.BOM_UTF8).lstrip().split(b"\n", 1)[0]
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return True   # starts like JSON: the JSONL reader reports the broken line


# --- CSV ------------------------------------------------------------------------------

def decode_text(data: bytes) -> tuple[str, list[str], list[int], str]:
    """Text from bytes, the notes on how it was decoded, the (1-based) lines of a mixed-
    encoding file that were not UTF-8, and the encoding ("utf-8", "utf-16", "cp1252" or "mixed").

    UTF-8 (with or without BOM) first; UTF-16 when it starts with a UTF-16 BOM (Excel's
    "Unicode text"); else Windows-1252 (Latin-1 for the few bytes it leaves undefined), which
    never fails. A file that is UTF-8 except for some lines is decoded line by line.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), ["Encoding: UTF-16 (with BOM)."], [], "utf-16"
        except UnicodeDecodeError:
            raise DatasetError("The file starts like UTF-16 text but is not valid UTF-16. "
                               "Save it as \"CSV UTF-8\" and upload it again.") from None
    try:
        text = data.decode("utf-8-sig")
        bom = data.startswith(codecs.BOM_UTF8)
        return text, [f"Encoding: UTF-8{' (with BOM)' if bom else ''}."], [], "utf-8"
    except UnicodeDecodeError:
        pass
    lines = data.split(b"\n")
    decoded, foreign, utf8_non_ascii = [], [], 0
    for number, line in enumerate(lines, start=1):
        try:
            text_line = line.decode("utf-8")
            if not line.isascii():
                utf8_non_ascii += 1
        except UnicodeDecodeError:
            text_line = _decode_western(line)
            foreign.append(number)
        decoded.append(text_line)
    text = "\n".join(decoded)
    if utf8_non_ascii:
        shown = ", ".join(str(n) for n in foreign[:10]) + (" …" if len(foreign) > 10 else "")
        return text, [f"The file mixes encodings: line{'s' if len(foreign) > 1 else ''} {shown} "
                      "are not UTF-8 and were read as Windows-1252; the rest is UTF-8. Check the "
                      "letters on those lines (re-save the file as \"CSV UTF-8\" to be sure)."], foreign, "mixed"
    return text, ["Encoding: not UTF-8, read as Windows-1252 (Western European). If some letters "
                  "look wrong, save the file as \"CSV UTF-8\" and upload it again."], [], "cp1252"


def _decode_western(data: bytes) -> str:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:   # 0x81, 0x8D, 0x8F, 0x90, 0x9D are undefined in cp1252
        return data.decode("latin-1")


def sniff_delimiter(text: str, filename: str = "") -> str:
    """The delimiter of a CSV text: csv.Sniffer on the start of the file, among , ; tab and |.

    A .tsv file is tab-separated. When the sniffer cannot decide, the header line decides
    (the candidate it contains most often), else a comma.
    """
    if Path(filename or "").suffix.lower() == ".tsv":
        return "\t"
    sample = text[:SNIFF_CHARS]
    header = sample.split("\n", 1)[0]
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
        if delimiter in header or not any(d in header for d in DELIMITERS):
            return delimiter
    except csv.Error:
        pass
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


_BAD_LINE = re.compile(r"line (\d+): expected (\d+) fields, saw (\d+)")


def read_csv(data: bytes, filename: str = "data.csv", *, has_header: bool = True,
             delimiter: str | None = None) -> SourceTable:
    """Read a CSV into a table of text cells (pandas' C parser: quoted cells may hold
    delimiters, quotes and line breaks; CRLF or LF; no final newline needed).

    Cells stay text exactly as written ("NA", "null" and "0012" included); line breaks inside
    cells become "\\n". A line with more cells than the header is left out and reported; a
    blank line is skipped with a note. Raises DatasetError for a file that is not a table.
    """
    import pandas as pd

    if b"\x00" in data[:8192] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DatasetError("This file is not a CSV: it holds binary data. Upload a .csv, .tsv, "
                           ".xlsx or chat .jsonl file.")
    text, notes, _foreign, encoding = decode_text(data)
    if not text or text.isspace():
        raise DatasetError("The file is empty.")
    delimiter = delimiter or sniff_delimiter(text, filename)
    notes.append(f"Delimiter: {DELIMITER_NAMES.get(delimiter, repr(delimiter))}.")
    issues: list[ValidationIssue] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # UTF-8 goes to pandas as the bytes it is (faster than re-encoding the text), and cells
            # come back as Python strings (object), which is what the dataset is built from.
            handle = io.BytesIO(data.removeprefix(codecs.BOM_UTF8)) if encoding == "utf-8" else io.StringIO(text)
            frame = pd.read_csv(handle, sep=delimiter, dtype=object, keep_default_na=False,
                                skip_blank_lines=False, on_bad_lines="warn",
                                header=0 if has_header else None, engine="c")
        except pd.errors.EmptyDataError:
            raise DatasetError("The file is empty.") from None
        except (pd.errors.ParserError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DatasetError(f"This file could not be read as a table ({reason}). Is it a CSV?") from None
    skipped = []
    for warning in caught:
        for line, expected, saw in _BAD_LINE.findall(str(warning.message)):
            skipped.append(int(line))
            issues.append(ValidationIssue(
                int(line), "bad_line", f"has {saw} cells where the header has {expected} (a "
                f"{DELIMITER_NAMES.get(delimiter, 'delimiter')} inside a cell that is not in quotes?); "
                "left out: fix the quoting and upload again to keep it", "error"))
    if not has_header:
        frame.columns = [f"Column {i + 1}" for i in range(frame.shape[1])]
    frame = frame.fillna("")
    first = 2 if has_header else 1
    skipped_set = set(skipped)
    rows = [n for n in range(first, first + len(frame) + len(skipped_set)) if n not in skipped_set][:len(frame)]
    frame, rows, blank_issues = _drop_blank_rows(frame, rows)
    issues.extend(blank_issues)
    if frame.empty and not skipped:
        names = ", ".join(str(c) for c in frame.columns)
        raise DatasetError(f"The file has a header ({names}) but no rows." if has_header
                           else "The file has no rows.")
    if frame.shape[1] < 2:
        raise DatasetError(f"Only one column was found (delimiter: {DELIMITER_NAMES.get(delimiter)}). "
                           "A dataset needs a prompt column and a response column; check the file's "
                           "delimiter or quoting.")
    for column in frame.columns if "\r" in text else ():   # CR line breaks inside cells become "\n"
        cells = frame[column]
        if any(map(operator.contains, map(str, cells.tolist()), repeat("\r"))):   # (quicker than .str.contains)
            frame[column] = cells.str.replace("\r\n", "\n", regex=False).str.replace("\r", "\n", regex=False)
    return SourceTable("csv", filename, file_sha256(data), frame, rows, notes, issues)


def _drop_blank_rows(frame, rows: list[int]):
    blank = (frame == "").all(axis=1) if len(frame.columns) else None
    if blank is None or not blank.any():
        return frame, rows, []
    mask = blank.to_numpy()
    issues = [ValidationIssue(r, "blank_row", "is blank: skipped", "info")
              for r, is_blank in zip(rows, mask, strict=True) if is_blank]
    kept_rows = [r for r, is_blank in zip(rows, mask, strict=True) if not is_blank]
    return frame[~blank].reset_index(drop=True), kept_rows, issues


# --- Excel --------------------------------------------------------------------------------

def excel_sheets(data: bytes) -> list[str]:
    """The sheet names of an .xlsx workbook."""
    import pandas as pd
    try:
        with pd.ExcelFile(io.BytesIO(data), engine="openpyxl") as book:
            return [str(s) for s in book.sheet_names]
    except ImportError:
        raise DatasetError("Reading Excel files needs the openpyxl package: run scripts/setup.sh "
                           "(or pip install openpyxl), or save the sheet as CSV.") from None
    except Exception as exc:   # a damaged or encrypted workbook: any error openpyxl raises
        raise DatasetError(f"This Excel file could not be opened ({type(exc).__name__}). Save it "
                           "again from Excel, or export the sheet as CSV.") from None


def _check_unzipped_size(data: bytes) -> None:
    # An .xlsx is a zip: a small upload can hold gigabytes of XML (a "zip bomb"). Its unpacked
    # size is read from the zip's directory before anything is unpacked.
    import zipfile
    limit = UNZIPPED_FACTOR * max_upload_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise DatasetError("This .xlsx file is damaged (not a readable zip). Save it again in Excel, or "
                           "export a CSV.") from None
    if unpacked > limit:
        raise DatasetError(f"This workbook unpacks to {unpacked / 1e6:,.0f} MB; at most {limit / 1e6:,.0f} MB "
                           "are read. Export the sheet you need as CSV.")


def read_excel(data: bytes, filename: str = "data.xlsx", *, sheet: str | None = None,
               has_header: bool = True) -> SourceTable:
    """Read one sheet of an .xlsx workbook (the first unless `sheet` names another) as text cells."""
    import pandas as pd

    _check_unzipped_size(data)
    sheets = excel_sheets(data)
    if not sheets:
        raise DatasetError("The workbook has no sheets.")
    chosen = sheet if sheet is not None else sheets[0]
    if chosen not in sheets:
        raise DatasetError(f"The workbook has no sheet {chosen!r}; its sheets are: {', '.join(sheets)}.")
    try:
        frame = pd.read_excel(io.BytesIO(data), sheet_name=chosen, dtype=str, keep_default_na=False,
                              header=0 if has_header else None, engine="openpyxl")
    except Exception as exc:
        raise DatasetError(f"The sheet {chosen!r} could not be read ({type(exc).__name__}).") from None
    if not has_header:
        frame.columns = [f"Column {i + 1}" for i in range(frame.shape[1])]
    frame = frame.fillna("").astype(str)
    first = 2 if has_header else 1
    rows = list(range(first, first + len(frame)))
    frame, rows, issues = _drop_blank_rows(frame, rows)
    notes = [f"Sheet: {chosen}" + (f" (the workbook also has: {', '.join(s for s in sheets if s != chosen)})"
                                   if len(sheets) > 1 else "") + "."]
    if frame.empty:
        raise DatasetError(f"The sheet {chosen!r} has a header but no rows." if has_header and len(frame.columns)
                           else f"The sheet {chosen!r} is empty.")
    if frame.shape[1] < 2:
        raise DatasetError(f"The sheet {chosen!r} has one column; a dataset needs a prompt column and a "
                           "response column.")
    return SourceTable("excel", filename, file_sha256(data), frame, rows, notes, issues, sheets)


# --- chat JSONL -----------------------------------------------------------------------------

TOP_LEVEL_KEYS = {"messages"}


def read_chat_jsonl(data: bytes, filename: str = "train.jsonl", *, source_file: str = "train") -> ChatSource:
    """Import a chat-format JSONL as it is: one {"messages": [...]} object per line.

    Every line that is not such an object is reported with its line number (not valid JSON,
    not an object, no "messages" list) and left out; the messages themselves are checked by
    validation like any example. Blank lines are skipped with a note.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DatasetError("This JSONL file is UTF-16; chat JSONL must be UTF-8. Save it as UTF-8.")
    examples: list[Example] = []
    issues: list[ValidationIssue] = []
    lines = data.split(b"\n")
    if lines and lines[0].startswith(codecs.BOM_UTF8):
        lines[0] = lines[0][len(codecs.BOM_UTF8):]
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            if number < len(lines):   # the newline that ends the last line is not a blank line
                issues.append(ValidationIssue(number, "blank_line", "is blank: skipped", "info"))
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            issues.append(ValidationIssue(number, "broken_line", "is not UTF-8 text: left out", "error"))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            # json's own words, some of which end in "at" ("Unterminated string starting at")
            where = f"{exc.msg.removesuffix(' at')} at column {exc.colno}"
            issues.append(ValidationIssue(number, "broken_line", f"is not valid JSON ({where}): left out", "error"))
            continue
        except RecursionError:
            issues.append(ValidationIssue(number, "broken_line", "is nested too deeply: left out", "error"))
            continue
        if not isinstance(obj, dict):
            issues.append(ValidationIssue(number, "wrong_shape", f"is {_json_type(obj)}, not an object "
                                          "{\"messages\": [...]}: left out", "error"))
            continue
        messages = obj.get("messages")
        if not isinstance(messages, list):
            what = "has no \"messages\"" if "messages" not in obj else f"has \"messages\" as {_json_type(messages)}"
            issues.append(ValidationIssue(number, "wrong_shape", f"{what}; each line must be {{\"messages\": "
                                          "[{\"role\": ..., \"content\": ...}, ...]}: left out", "error"))
            continue
        extra = sorted(set(obj) - TOP_LEVEL_KEYS)
        if extra:
            issues.append(ValidationIssue(number, "ignored_keys", f"has keys this app does not train on "
                                          f"({', '.join(extra)}): ignored", "warning"))
        examples.append(Example(number, messages, source_file=source_file))
    if not examples:
        if issues and any(i.severity == "error" for i in issues):
            first = next(i for i in issues if i.severity == "error")
            raise DatasetError(f"No example could be read from this JSONL file (line {first.row} {first.message}).")
        raise DatasetError("The file has no examples.")
    return ChatSource(filename, file_sha256(data), examples, issues)


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), "something else")


# --- column mapping ---------------------------------------------------------------------------

def guess_columns(table: SourceTable) -> ColumnGuess:
    """Which columns hold the prompts and the responses, judging by their names (comment,
    question, input... and response, reply, answer, output, completion...), else the first two
    columns that hold text. The other columns are listed as ignored."""
    columns = table.columns
    simple = {c: re.sub(r"[^a-z]", "", c.lower()) for c in columns}

    def by_name(names: tuple[str, ...], taken: str | None) -> str | None:
        for name in names:
            for column in columns:
                if column != taken and simple[column] == name:
                    return column
        for name in names:
            for column in columns:
                if column != taken and name in simple[column]:
                    return column
        return None

    response = by_name(RESPONSE_NAMES, None)
    prompt = by_name(PROMPT_NAMES, response)
    texty = [c for c in columns if c not in (prompt, response) and _mostly_text(table.frame[c])]
    if prompt is None and texty:
        prompt = texty.pop(0)
    if response is None and texty:
        response = texty.pop(0)
    extra = tuple(c for c in columns if c not in (prompt, response))
    return ColumnGuess(prompt, response, extra)


def _mostly_text(cells) -> bool:
    sample = cells.head(50)
    filled = sample[sample.str.strip() != ""]
    if filled.empty:
        return False
    numeric = filled.str.fullmatch(r"\s*[-+]?[\d.,]+\s*").mean()
    return numeric < 0.5
