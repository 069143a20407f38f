"""Write data/samples/knowledge/retrieval-augmented-generation.pdf from its text below.

The sample PDF is made here (fpdf2, a development dependency) so its every word is the
project's own; each "## " section starts a new page, so answers sit on known pages.
Run: .venv/bin/python scripts/make_sample_pdf.py
"""
from __future__ import annotations

import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "samples" / "knowledge" / "retrieval-augmented-generation.pdf"

TEXT = """\
# Retrieval-augmented generation, step by step
Companion notes to the RAG video series on Sam's data science channel.

## Why retrieval
A language model only knows what was in its training data, and it cannot tell you where a fact came
from. Retrieval-augmented generation (RAG) fixes both: before the model answers, a search finds the
passages of your own documents that match the question, and those passages are put into the prompt.
The model answers from them and can cite them, so a reader can check every claim.

## Chunking documents
Documents are cut into chunks before they are indexed. Chunks of about 200 tokens with an overlap of
40 tokens work well for articles: small enough that a chunk is about one idea, large enough to hold a
complete answer. The overlap keeps a sentence that falls on a boundary whole in at least one chunk.
Keep the page number with every chunk of a PDF so a citation can point to the page.

## Embeddings and keyword search
An embedding model turns each chunk into a vector; chunks with similar meaning get vectors that point
in similar directions, measured by cosine similarity. The small all-MiniLM-L6-v2 model produces 384
numbers per chunk and runs comfortably on a laptop CPU. Vector search is strong on paraphrases but weak
on rare exact words such as product codes or names. BM25, the classic keyword ranking, is the
opposite. Hybrid search runs both and merges the two rankings with reciprocal rank fusion, which adds
1/(60 + rank) from each list and needs no tuning of the scores.

## Citations and evaluation
Give every retrieved passage a number in the prompt and ask the model to cite the numbers it used.
Show only the sources the answer actually cites, each linked to its file and page. If nothing relevant
was found, the assistant should say that the documents do not cover the question instead of inventing
a source. Measure retrieval on its own with recall at 3: the share of test questions whose answering
passage is among the top three results.
"""


def main() -> int:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_creation_date(__import__("datetime").datetime(2026, 1, 1))   # the same bytes on every run
    pdf.set_title("Retrieval-augmented generation, step by step")
    pdf.add_page()
    for block in TEXT.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("## "):
                pdf.add_page()
                pdf.set_font("Helvetica", "B", 15)
                pdf.multi_cell(0, 9, line[3:], new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
            elif line.startswith("# "):
                pdf.set_font("Helvetica", "B", 18)
                pdf.multi_cell(0, 10, line[2:], new_x="LMARGIN", new_y="NEXT")
            else:
                break
        body = " ".join(line for line in block.splitlines() if not line.startswith("#"))
        if body:
            pdf.set_font("Helvetica", "", 11)
            pdf.multi_cell(0, 6, body, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    pdf.output(str(OUT))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {pdf.page_no()} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
