"""Text out of an uploaded file, page by page where the format has pages.

One reader per type, each a well-kept library: pypdf (PDF, page numbers kept), python-docx
(Word), BeautifulSoup (HTML), pandas through the dataset reader (CSV, one text line per row),
and the dataset reader's decoder for plain text and Markdown. Every failure a user can cause is
an `ExtractionError` that says what is wrong with that file; the other files of a batch go on.
"""
from __future__ import annotations

import io
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePath
from typing import Callable

DEFAULT_MAX_MB = 25
# What one file may unpack to: a small PDF or .docx can hold far more text than its size says
# (compressed streams). 10 million characters is about 3,000 dense pages; more would keep the
# indexer (and its memory) busy for long, so such a file is refused with a clear reason.
MAX_CHARACTERS = 10_000_000
MAX_PAGES = 10_000
UNZIPPED_FACTOR = 10
SUPPORTED = {".pdf": "PDF", ".docx": "Word", ".md": "Markdown", ".markdown": "Markdown", ".txt": "text",
             ".html": "HTML", ".htm": "HTML", ".csv": "CSV"}
NAME_LENGTH = 200


class ExtractionError(Exception):
    """A file that cannot be read; the text says why, for the user."""


@dataclass
class Page:
    """The text of one page (`number` from 1; None for formats without pages)."""
    number: int | None
    text: str


def max_file_bytes() -> int:
    """The largest file accepted, from STUDIO_KNOWLEDGE_MAX_MB (default 25 MB)."""
    raw = os.environ.get("STUDIO_KNOWLEDGE_MAX_MB", "").strip()
    try:
        megabytes = float(raw) if raw else DEFAULT_MAX_MB
    except ValueError:
        megabytes = DEFAULT_MAX_MB
    return int(max(megabytes, 0.001) * 1_000_000)


def clean_name(filename: str) -> str:
    """A file name safe to show and store: the last path part, no control or odd format
    characters, NFC, at most NAME_LENGTH characters. Never used as a path on disk."""
    name = PurePath((filename or "").replace("\\", "/")).name
    name = unicodedata.normalize("NFC", name)
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co"))
    name = " ".join(name.split()) or "unnamed"
    if len(name) > NAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: NAME_LENGTH - len(ext) - 2] + "…." + ext) if dot and len(ext) < 10 else name[:NAME_LENGTH]
    return name


def kind_of(filename: str) -> str:
    """The file's type label ("PDF", "Word", ...); ExtractionError for a type not supported."""
    suffix = PurePath(filename.lower()).suffix
    if suffix not in SUPPORTED:
        known = ", ".join(sorted({s for s in SUPPORTED if s not in (".htm", ".markdown")}))
        raise ExtractionError(f"{suffix or 'A file without an extension'} is not a supported type. "
                              f"Upload one of: {known}.")
    return SUPPORTED[suffix]


def check_upload(filename: str, data: bytes) -> str:
    """The file's type label, or ExtractionError for a type not supported, an empty file or
    one over the size limit (checked before anything is kept)."""
    kind = kind_of(filename)
    limit = max_file_bytes()
    if len(data) > limit:
        raise ExtractionError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {limit / 1e6:g} MB "
                              "(STUDIO_KNOWLEDGE_MAX_MB).")
    if not data.strip():
        raise ExtractionError("The file is empty.")
    return kind


def extract(filename: str, data: bytes, progress: Callable[[int, int], None] | None = None) -> list[Page]:
    """The pages of text in `data`. `progress(done, total)` is called per page of a PDF.
    Raises ExtractionError for an empty, oversized, damaged, encrypted or textless file."""
    kind = check_upload(filename, data)
    reader = {"PDF": _pdf, "Word": _docx, "HTML": _html, "CSV": _csv}.get(kind, _text)
    pages = reader(data, progress) if kind == "PDF" else reader(data)
    if sum(len(p.text) for p in pages) > MAX_CHARACTERS:
        raise _too_much_text()
    pages = [Page(p.number, _tidy(p.text)) for p in pages]
    if not any(p.text for p in pages):
        if kind == "PDF":
            raise ExtractionError("This PDF has no text layer (a scanned document?). OCR is not available "
                                  "here: upload a PDF with selectable text, or the text itself.")
        raise ExtractionError("The file holds no text.")
    return [p for p in pages if p.text]


def _too_much_text() -> ExtractionError:
    return ExtractionError(f"The file holds more than {MAX_CHARACTERS:,} characters of text; split it into "
                           "smaller files.")


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    return re.sub(r"\n\s*\n\s*", "\n\n", text).strip()


def _pdf(data: bytes, progress) -> list[Page]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError, PdfStreamError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise ExtractionError("This file is not a PDF, or it is damaged: it does not start like one.")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("This PDF is password-protected. Remove the password and upload it again.")
        total = len(reader.pages)
        if total > MAX_PAGES:
            raise ExtractionError(f"The PDF has {total:,} pages; at most {MAX_PAGES:,} are read. Split it.")
        pages, characters = [], 0
        for number, page in enumerate(reader.pages, start=1):
            pages.append(Page(number, page.extract_text() or ""))
            characters += len(pages[-1].text)
            if characters > MAX_CHARACTERS:
                raise _too_much_text()
            if progress:
                progress(number, total)
        return pages
    except ExtractionError:
        raise
    except FileNotDecryptedError:
        raise ExtractionError("This PDF is password-protected. Remove the password and upload it again.") from None
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AttributeError,
            RecursionError, OSError) as exc:
        raise ExtractionError(f"This PDF is damaged and could not be read ({type(exc).__name__}).") from None
    except Exception as exc:   # pypdf may raise other errors on hostile files (e.g. a cryptography one)
        if "decrypt" in str(exc).lower() or "crypt" in type(exc).__name__.lower():
            raise ExtractionError("This PDF is encrypted in a way that cannot be read here.") from None
        raise ExtractionError(f"This PDF could not be read ({type(exc).__name__}).") from None


def _docx(data: bytes) -> list[Page]:
    import zipfile

    from docx import Document
    try:
        unpacked = sum(item.file_size for item in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        unpacked = 0      # python-docx says what is wrong below
    if unpacked > UNZIPPED_FACTOR * max_file_bytes():
        raise ExtractionError(f"This Word file unpacks to {unpacked / 1e6:,.0f} MB, more than "
                              f"{UNZIPPED_FACTOR} times the upload limit; it cannot be read here.")
    try:
        document = Document(io.BytesIO(data))
    except Exception as exc:    # a bad zip, a missing part, broken XML (lxml's own errors)
        raise ExtractionError(f"This is not a valid Word (.docx) document ({type(exc).__name__}). "
                              "Old .doc files must be saved as .docx first.") from None
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text.strip() for cell in row.cells))
    return [Page(None, "\n".join(parts))]


def _html(data: bytes) -> list[Page]:
    from bs4 import BeautifulSoup
    text = _decoded(data)
    soup = BeautifulSoup(text, "html.parser")
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        hidden.decompose()
    return [Page(None, soup.get_text("\n"))]


def _csv(data: bytes) -> list[Page]:
    from studio.datasets.reading import read_csv
    from studio.datasets.types import DatasetError
    try:
        table = read_csv(data, "knowledge.csv")
    except DatasetError as exc:
        raise ExtractionError(str(exc)) from None
    columns = table.columns
    rows = ["; ".join(f"{c}: {v}" for c, v in zip(columns, row, strict=False) if str(v).strip())
            for row in table.frame.itertuples(index=False)]
    return [Page(None, "\n\n".join(rows))]


def _text(data: bytes) -> list[Page]:
    return [Page(None, _decoded(data))]


def _decoded(data: bytes) -> str:
    from studio.datasets.reading import decode_text
    from studio.datasets.types import DatasetError
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    middle = len(data) // 2
    for sample in (data[:8192], data[middle:middle + 8192], data[-8192:]):   # binary after a text header too
        controls = sum(b < 32 and b not in (9, 10, 12, 13) for b in sample)
        if not utf16 and (b"\x00" in sample or controls > len(sample) * 0.05):
            raise ExtractionError("This file holds binary data, not text: check that it is the file you meant "
                                  "(text must be UTF-8, Windows-1252, or UTF-16 with its byte-order mark).")
    try:
        return decode_text(data)[0]
    except DatasetError as exc:
        raise ExtractionError(str(exc)) from None
