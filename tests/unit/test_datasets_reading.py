"""Reading what people upload: messy CSVs, Excel sheets and chat JSONL, each case written here."""
import io
import json

import pandas as pd
import pytest

from studio.datasets import DatasetError, guess_columns, read_chat_jsonl, read_source
from studio.datasets.types import ChatSource, SourceTable

PAIRS = [("Great video, thanks!", "Glad it helped! -Sam"),
         ('Loved the part on "splits", really', "Thanks, splits matter.\nMore soon! -Sam"),
         ("Merci 🎉 très clair", "Avec plaisir 😊 -Sam")]


def csv_bytes(delimiter=",", newline="\n", encoding="utf-8", final_newline=True, header=("comment", "reply")):
    """A CSV with quoting as spreadsheets write it (csv module here only to make the test file)."""
    out = io.StringIO()
    import csv
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(PAIRS)
    text = out.getvalue()
    if not final_newline:
        text = text[: -len(newline)]
    return text.encode(encoding)


def cells(table: SourceTable):
    return list(zip(table.frame.iloc[:, 0], table.frame.iloc[:, 1], strict=True))


@pytest.mark.parametrize("variant", [
    dict(),
    dict(newline="\r\n"),
    dict(final_newline=False),
    dict(newline="\r\n", final_newline=False),
    dict(encoding="utf-8-sig"),
    dict(delimiter=";"),
    dict(delimiter="\t"),
    dict(delimiter="|", newline="\r\n"),
])
def test_common_csv_dialects_read_to_the_same_cells(variant):
    table = read_source(csv_bytes(**variant), "comments.csv")
    assert isinstance(table, SourceTable) and table.columns == ["comment", "reply"]
    assert cells(table) == PAIRS   # quotes, commas, a line break inside a cell, emoji: all intact
    assert table.rows == [2, 3, 4]


def test_the_notes_say_which_encoding_and_delimiter_were_used():
    table = read_source(csv_bytes(delimiter=";", encoding="utf-8-sig"), "c.csv")
    assert table.notes == ["Encoding: UTF-8 (with BOM).", "Delimiter: semicolon."]


def test_windows_1252_is_read_with_a_note():
    data = "comment,reply\nCafé “great”,Merci – Sam\n".encode("cp1252")
    table = read_source(data, "c.csv")
    assert cells(table) == [("Café “great”", "Merci – Sam")]
    assert "Windows-1252" in table.notes[0]


def test_utf16_from_excel_unicode_text_is_read():
    data = "comment\treply\nGreat 🎉\tThanks -Sam\n".encode("utf-16")
    assert cells(read_source(data, "export.txt")) == [("Great 🎉", "Thanks -Sam")]


def test_mixed_encodings_name_the_lines_that_are_not_utf8():
    data = "comment,reply\nnaïve question,fine\n".encode() + "café,thanks\n".encode("cp1252")
    table = read_source(data, "c.csv")
    assert cells(table) == [("naïve question", "fine"), ("café", "thanks")]
    assert "mixes encodings" in table.notes[0] and "line 3" in table.notes[0]


def test_cells_stay_text_exactly():
    data = b"comment,reply\nNA,null\n0012,1e3\n"
    assert cells(read_source(data, "c.csv")) == [("NA", "null"), ("0012", "1e3")]


def test_windows_line_breaks_inside_a_cell_become_newlines():
    data = b'comment,reply\r\n"line one\r\nline two",ok\r\n'
    assert cells(read_source(data, "c.csv")) == [("line one\nline two", "ok")]


def test_a_line_with_too_many_cells_is_reported_by_row_and_the_rest_kept():
    data = b'comment,reply\na,b\n"multi\nline",c\nx,y,z\nlast,one\n'
    table = read_source(data, "c.csv")
    assert cells(table) == [("a", "b"), ("multi\nline", "c"), ("last", "one")]
    assert table.rows == [2, 3, 5]     # spreadsheet rows: the multi-line cell is one row
    [issue] = table.issues
    assert (issue.row, issue.code, issue.severity) == (4, "bad_line", "error")
    assert "3 cells where the header has 2" in issue.message


def test_blank_rows_are_skipped_with_a_note_and_numbering_kept():
    table = read_source(b"comment,reply\na,b\n\nc,d\n\n", "c.csv")
    assert cells(table) == [("a", "b"), ("c", "d")] and table.rows == [2, 4]
    assert [(i.row, i.code, i.severity) for i in table.issues] == [(3, "blank_row", "info"), (5, "blank_row", "info")]


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty."),
    (b"   \n\n", "The file is empty."),
    (b"comment,reply\n", "The file has a header (comment, reply) but no rows."),
    (b"comment,reply\r\n\r\n", "The file has a header (comment, reply) but no rows."),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "This file is not a CSV: it holds binary data."),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old-style Excel file (.xls)"),
    (b"just one column\nvalue\n", "Only one column was found"),
])
def test_files_that_are_not_datasets_get_a_clear_message(data, message):
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        read_source(data, "upload.csv")


def test_a_file_over_the_limit_is_refused_before_parsing(monkeypatch):
    monkeypatch.setenv("STUDIO_DATASET_MAX_MB", "0.001")
    with pytest.raises(DatasetError, match=r"limit is 0\.001 MB"):
        read_source(b"comment,reply\n" + b"a,b\n" * 1000, "big.csv")


def test_excel_sheets_are_read_as_text(tmp_path):
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as book:
        pd.DataFrame({"Question": ["How?", "Why 🎉?"], "Answer": ["Like this -Sam", "Because -Sam"],
                      "Views": [10, 20]}).to_excel(book, sheet_name="pairs", index=False)
        pd.DataFrame({"x": [1]}).to_excel(book, sheet_name="notes", index=False)
    data = buffer.getvalue()
    table = read_source(data, "comments.xlsx")
    assert table.kind == "excel" and table.sheets == ["pairs", "notes"]
    assert cells(table) == [("How?", "Like this -Sam"), ("Why 🎉?", "Because -Sam")]
    assert table.rows == [2, 3] and "also has: notes" in table.notes[0]
    guess = guess_columns(table)
    assert (guess.prompt, guess.response, guess.extra) == ("Question", "Answer", ("Views",))
    with pytest.raises(DatasetError, match="no sheet 'missing'; its sheets are: pairs, notes"):
        read_source(data, "comments.xlsx", sheet="missing")


def test_a_renamed_file_that_is_not_a_workbook_is_explained():
    with pytest.raises(DatasetError, match="not a .xlsx zip"):
        read_source(b"comment,reply\na,b\n", "oops.xlsx")


@pytest.mark.parametrize("header, prompt, response, extra", [
    (("comment", "response"), "comment", "response", ()),
    (("id", "Viewer Comment", "Host reply", "date"), "Viewer Comment", "Host reply", ("id", "date")),
    (("input", "output"), "input", "output", ()),
    (("question", "answer", "completion"), "question", "answer", ("completion",)),
    (("a", "b"), "a", "b", ()),
])
def test_prompt_and_response_columns_are_guessed_from_names(header, prompt, response, extra):
    row = ",".join(["text"] * len(header))
    table = read_source((",".join(header) + "\n" + row + "\n").encode(), "x.csv")
    guess = guess_columns(table)
    assert (guess.prompt, guess.response, guess.extra) == (prompt, response, extra)


def test_numeric_columns_are_not_guessed_as_text():
    table = read_source(b"id,score,body,remark\n1,5,hello there,thanks\n2,7,more,ok\n", "x.csv")
    guess = guess_columns(table)
    assert (guess.prompt, guess.response) == ("body", "remark") and guess.extra == ("id", "score")


def line(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello -Sam"}]}


def test_chat_jsonl_is_imported_as_is_and_broken_lines_are_reported_by_number():
    text = "\n".join([line(GOOD), '{"messages": [{"role": "user', "[1, 2]", line({"prompt": "x"}),
                      line({"messages": "hi"}), "", line({**GOOD, "tools": []})]) + "\n"
    source = read_source(text.encode(), "train.jsonl")
    assert isinstance(source, ChatSource)
    assert [e.row for e in source.examples] == [1, 7]
    assert source.examples[0].messages == GOOD["messages"]
    found = [(i.row, i.code, i.severity) for i in source.issues]
    assert found == [(2, "broken_line", "error"), (3, "wrong_shape", "error"), (4, "wrong_shape", "error"),
                     (5, "wrong_shape", "error"), (6, "blank_line", "info"), (7, "ignored_keys", "warning")]
    assert "not valid JSON (Unterminated string starting at column 24)" in source.issues[0].message
    assert 'has no "messages"' in source.issues[2].message
    assert 'has "messages" as a string' in source.issues[3].message


def test_jsonl_is_recognised_by_content_and_bom_is_allowed():
    source = read_source(b"\xef\xbb\xbf" + line(GOOD).encode(), "export.txt")
    assert isinstance(source, ChatSource) and len(source.examples) == 1


def test_a_jsonl_with_no_good_line_says_why():
    with pytest.raises(DatasetError, match=r"No example could be read.*line 1 is not valid JSON"):
        read_chat_jsonl(b"{oops\n{also bad\n", "train.jsonl")
