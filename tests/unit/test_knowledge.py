"""The knowledge engine: extraction (and every bad file), chunking, the hybrid index and its
fusion, storage with owner checks, the indexer, and a chat turn that cites what it used."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from studio.chat import run_turn
from studio.knowledge.chunking import chunk_pages
from studio.knowledge.extract import ExtractionError, Page, clean_name, extract
from studio.knowledge.grounding import NOTHING_FOUND, citations
from studio.knowledge.index import RRF_K, SearchIndex
from studio.knowledge.indexer import index_file
from studio.knowledge.search import search
from studio.knowledge.storage import KnowledgeStore
from studio.knowledge.types import Passage
from studio.store import Actor, NotAllowed, StoreError
from studio.types import AssistantSpec, CitationFound, Done, TextDelta
from tests.unit.test_engine import FakeProvider

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "knowledge"
ADA, BOB = Actor("ada"), Actor("bob")


def pdf_bytes(pages: list[str], password: str | None = None) -> bytes:
    """A PDF with one text line per page (fpdf2), optionally encrypted (pypdf)."""
    from fpdf import FPDF
    pdf = FPDF()
    for text in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        if text:
            pdf.multi_cell(0, 8, text)
    data = bytes(pdf.output())
    if password is None:
        return data
    from pypdf import PdfReader, PdfWriter
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- extraction -------------------------------------------------------------------

def test_a_pdf_keeps_its_page_numbers_and_reports_progress_per_page():
    seen = []
    pages = extract("a.pdf", pdf_bytes(["First page words.", "", "Third page words."]),
                    progress=lambda done, total: seen.append((done, total)))
    assert [(p.number, p.text) for p in pages] == [(1, "First page words."), (3, "Third page words.")]
    assert seen == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("name, data, reason", [
    ("locked.pdf", pdf_bytes(["secret"], password="hunter2"), "password-protected"),
    ("broken.pdf", b"%PDF-1.7\n" + b"\x8f garbage " * 200, "damaged"),
    ("fake.pdf", b"just some text, not a pdf at all", "not a PDF"),
    ("scan.pdf", pdf_bytes(["", ""]), "no text layer"),
    ("empty.txt", b"", "empty"),
    ("blank.md", b"  \n\n\t ", "empty"),
    ("photo.txt", bytes(range(256)) * 40, "binary data"),
    ("old.doc", b"\xd0\xcf\x11\xe0 word 97", "not a supported type"),
    ("notes", b"text without an extension", "without an extension"),
    ("bad.docx", b"PK\x03\x04 not really a zip", "not a valid Word"),
])
def test_each_bad_file_says_what_is_wrong(name, data, reason):
    with pytest.raises(ExtractionError, match=reason):
        extract(name, data)


def test_a_file_over_the_limit_is_refused_with_the_limit(monkeypatch):
    monkeypatch.setenv("STUDIO_KNOWLEDGE_MAX_MB", "0.01")
    with pytest.raises(ExtractionError, match=r"limit is 0.01 MB \(STUDIO_KNOWLEDGE_MAX_MB\)"):
        extract("big.txt", b"word " * 5000)


def test_word_html_csv_and_latin1_text_are_read():
    from docx import Document
    document = Document()
    document.add_paragraph("A paragraph in Word.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "cell one", "cell two"
    buffer = io.BytesIO()
    document.save(buffer)
    assert "A paragraph in Word." in extract("a.docx", buffer.getvalue())[0].text
    assert "cell one | cell two" in extract("a.docx", buffer.getvalue())[0].text
    html = extract("faq.html", (SAMPLES / "channel-faq.html").read_bytes())[0].text
    assert "every Tuesday at 17:00" in html and "console.log" not in html and "font-family" not in html
    rows = extract("t.csv", b"question,answer\n\"Why, though?\",Because\n")[0].text
    assert rows == "question: Why, though?; answer: Because"
    assert extract("caf\u00e9.txt", "Caf\u00e9 cr\u00e8me".encode("cp1252"))[0].text == "Caf\u00e9 cr\u00e8me"


def test_file_names_with_paths_and_odd_unicode_are_made_safe_to_show():
    assert clean_name("../../etc/passwd.txt") == "passwd.txt"
    assert clean_name("C:\\Users\\x\\notes.md") == "notes.md"
    assert clean_name("a\u202eevil\u0000.txt") == "aevil.txt"        # no bidi override, no NUL
    assert clean_name("") == "unnamed"
    assert len(clean_name("x" * 500 + ".pdf")) <= 200 and clean_name("x" * 500 + ".pdf").endswith(".pdf")


# --- chunking --------------------------------------------------------------------

def test_chunks_overlap_stay_on_their_page_and_never_split_a_word():
    text = " ".join(f"word{i} tokenization" for i in range(300))
    chunks = chunk_pages([Page(1, text), Page(2, "short page")], size=64, overlap=16)
    assert chunks[-1].page == 2 and chunks[-1].text == "short page"
    first_page = [c for c in chunks if c.page == 1]
    assert len(first_page) > 5
    for a, b in zip(first_page, first_page[1:], strict=False):
        assert 0 < a.end_token - b.start_token <= 16 + 4       # overlap, give or take a word's pieces
        assert a.end_token - a.start_token <= 64
    for c in first_page:
        assert c.text.split()[0].startswith("word") or c.text.split()[0] == "tokenization"
        assert c.text in text                                   # cut from the page as written


def test_bad_chunk_settings_are_refused():
    with pytest.raises(ValueError, match="between 32 and 256"):
        chunk_pages([Page(None, "x")], size=1000, overlap=0)
    with pytest.raises(ValueError, match="half the chunk size"):
        chunk_pages([Page(None, "x")], size=100, overlap=80)


# --- the index and fusion ------------------------------------------------------------

def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_fusion_adds_reciprocal_ranks_from_both_lists():
    texts = ["alpha apples", "beta bananas", "gamma cherries zebra"]
    vectors = np.stack([unit([1, 0, 0]), unit([0.9, 0.1, 0]), unit([0, 0, 1])])
    index = SearchIndex(texts, vectors)
    query = unit([1, 0.05, 0])
    hybrid = index.search("zebra", query, k=3)
    # by vector: 0, 1, 2; by keyword: only 2 ("zebra")
    fused = {h.row: h.fused for h in hybrid}
    assert fused[0] == pytest.approx(1 / (RRF_K + 1))
    assert fused[2] == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))
    assert hybrid[0].row == 2 and hybrid[0].keyword > 0
    assert [h.row for h in index.search("zebra", query, k=3, mode="vector")] == [0, 1, 2]
    assert [h.row for h in index.search("zebra", query, k=3, mode="keyword")] == [2]
    assert index.search("no such words", query, k=3, mode="keyword") == []


# --- storage, the indexer and search --------------------------------------------------------

@pytest.fixture
def kstore(store, tmp_path) -> KnowledgeStore:
    return KnowledgeStore(store.engine, tmp_path / "knowledge")


def add_and_index(kstore, base_id, path: Path, actor=ADA):
    record, known = kstore.add_file(base_id, path.name, path.read_bytes(), actor)
    assert kstore.claim(record.id)
    assert index_file(kstore, record.id) == "ready"
    return kstore.get_file(record.id)


def test_indexed_samples_answer_the_labelled_questions(kstore):
    base = kstore.create_base("Samples", ADA)
    for name in ("fine-tuning-basics.md", "retrieval-augmented-generation.pdf", "channel-faq.html",
                 "train-test-splits.txt"):
        add_and_index(kstore, base.id, SAMPLES / name)
    questions = [json.loads(line) for line in (SAMPLES / "questions.jsonl").read_text().splitlines()]
    hits = 0
    for q in questions:
        top = search(kstore, [base.id], q["question"], k=3)
        hits += any(p.file_name == q["file"] and " ".join(q["passage"].split()) in " ".join(p.text.split())
                    for p in top)
    assert hits / len(questions) >= 0.9
    rag = search(kstore, [base.id], "How many dimensions does all-MiniLM-L6-v2 produce?", k=1)[0]
    assert rag.page == 4 and rag.where == "retrieval-augmented-generation.pdf, page 4"
    assert not any(p.relevant for p in search(kstore, [base.id], "How do I bake sourdough bread?", k=3))


def test_the_same_content_is_added_once_and_files_live_under_their_hash(kstore):
    base = kstore.create_base("B", ADA)
    first, known = kstore.add_file(base.id, "../a.md", b"# Title\n\nSome text.", ADA)
    again, known_again = kstore.add_file(base.id, "b.md", b"# Title\n\nSome text.", ADA)
    assert not known and known_again and again.id == first.id and first.name == "a.md"
    assert kstore.path_of(base.id, first.sha256).read_bytes() == b"# Title\n\nSome text."
    assert len(kstore.list_files(base.id, ADA)) == 1


def test_another_user_can_neither_read_nor_change_a_base(kstore):
    base = kstore.create_base("Mine", ADA)
    with pytest.raises(NotAllowed):
        kstore.list_files(base.id, BOB)
    with pytest.raises(NotAllowed):
        kstore.add_file(base.id, "x.md", b"text", BOB)
    with pytest.raises(NotAllowed):
        kstore.delete_base(base.id, BOB)
    assert kstore.list_bases(BOB) == [] and kstore.list_bases(Actor("root", admin=True), everyone=True) != []
    with pytest.raises(StoreError, match="already have"):
        kstore.create_base(" mine ", ADA)


def test_a_bad_file_fails_alone_with_its_reason_and_leaves_no_chunks(kstore):
    base = kstore.create_base("B", ADA)
    good = add_and_index(kstore, base.id, SAMPLES / "train-test-splits.txt")
    bad, _ = kstore.add_file(base.id, "scan.pdf", pdf_bytes(["", ""]), ADA)
    kstore.claim(bad.id)
    assert index_file(kstore, bad.id) == "failed"
    bad = kstore.get_file(bad.id)
    assert bad.status == "failed" and "OCR is not available" in bad.error and bad.chunks == 0
    rows, vectors = kstore.chunks(base.id)
    assert {r["file_id"] for r in rows} == {good.id} and len(vectors) == good.chunks


def test_a_file_left_half_indexed_by_a_dead_process_is_indexed_again(kstore, monkeypatch):
    import studio.knowledge.storage as storage
    base = kstore.create_base("B", ADA)
    record, _ = kstore.add_file(base.id, "faq.html", (SAMPLES / "channel-faq.html").read_bytes(), ADA)
    assert kstore.claim(record.id)
    kstore.set_progress(record.id, "embedding", 1, 2)           # ...and the process was killed here
    assert kstore.waiting_files() == [] and not kstore.claim(record.id)   # still looks alive
    assert kstore.chunks(base.id)[0] == []                       # nothing half-indexed is searchable
    from datetime import timedelta
    monkeypatch.setattr(storage, "STALE_AFTER", timedelta(seconds=0))
    time.sleep(0.01)
    assert kstore.waiting_files() == [record.id] and kstore.claim(record.id)
    assert index_file(kstore, record.id) == "ready"


def test_a_file_deleted_while_indexing_stops_without_writing(kstore):
    base = kstore.create_base("B", ADA)
    record, _ = kstore.add_file(base.id, "splits.txt", (SAMPLES / "train-test-splits.txt").read_bytes(), ADA)
    kstore.claim(record.id)

    def delete_midway(stage, done, total):
        if stage == "chunking":
            kstore.delete_file(record.id, ADA)
    assert index_file(kstore, record.id, delete_midway) == "gone"
    assert kstore.chunks(base.id)[0] == [] and kstore.get_file(record.id) is None


def test_the_background_indexer_picks_up_queued_files(kstore):
    from studio.knowledge.indexer import indexer_for
    base = kstore.create_base("B", ADA)
    record, _ = kstore.add_file(base.id, "faq.html", (SAMPLES / "channel-faq.html").read_bytes(), ADA)
    indexer_for(kstore).wake()
    deadline = time.monotonic() + 60
    while kstore.get_file(record.id).status != "ready" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kstore.get_file(record.id).status == "ready"


# --- grounding: a chat turn with knowledge ----------------------------------------------------

def passage(n: int, text: str) -> Passage:
    return Passage(f"ch{n}", "kb", f"f{n}", f"doc{n}.pdf", n, text, 0.6, 1.0, 0.03)


def test_only_cited_sources_are_kept_in_the_order_the_reply_cites_them():
    passages = [passage(1, "alpha"), passage(2, "beta"), passage(3, "gamma")]
    found = citations("Gamma first [3], then alpha [1, 3]; [9] is not a source.", passages)
    assert [(c.number, c.title, c.page, c.how) for c in found] == [(3, "doc3.pdf", 3, "cited"),
                                                                   (1, "doc1.pdf", 1, "cited")]
    echo = citations("Data leakage happens when information from the validation set reaches training.",
                     [passage(1, "Data leakage happens when information from the validation or test set "
                                 "reaches training."), passage(2, "Unrelated words about bread baking.")])
    assert [(c.number, c.how) for c in echo] == [(1, "matched")]
    assert citations("No idea.", passages) == []


def test_a_turn_gets_the_passages_and_its_reply_cites_the_right_file_and_page(store, kstore):
    base = kstore.create_base("Samples", ADA)
    add_and_index(kstore, base.id, SAMPLES / "retrieval-augmented-generation.pdf")
    add_and_index(kstore, base.id, SAMPLES / "channel-faq.html")
    spec = store.save_assistant(AssistantSpec(name="A", owner="ada", instructions="Be brief.",
                                              knowledge_bases=[base.id]), ADA)
    from studio.chat import new_thread
    provider = FakeProvider([TextDelta("It makes 384 numbers per chunk [1]."), Done()])
    seen = []
    provider.stream_reply = lambda thread, given: (seen.append(given), (yield from provider.events))[1]
    thread = new_thread("ada", spec, provider)
    events = list(run_turn(store, provider, thread, spec, "How many dimensions does MiniLM produce?", ADA, kstore))
    prompt = seen[0].instructions
    assert prompt.startswith("Be brief.") and "[1] (retrieval-augmented-generation.pdf, page 4)" in prompt
    cited = [e.citation for e in events if isinstance(e, CitationFound)]
    assert [(c.title, c.page, c.number) for c in cited] == [("retrieval-augmented-generation.pdf", 4, 1)]
    assert "384 numbers" in cited[0].quote
    stored = store.get_thread(thread.id, ADA).messages[-1]
    assert stored.citations == cited                             # kept with the reply

    # A reply that neither cites nor echoes a passage still shows what the model was given.
    provider.events = [TextDelta("Quite a few, I think."), Done()]
    events = list(run_turn(store, provider, thread, spec, "How many dimensions does MiniLM produce?", ADA, kstore))
    given = [e.citation for e in events if isinstance(e, CitationFound)]
    assert given and {c.how for c in given} == {"given"} and [c.number for c in given] == list(
        range(1, len(given) + 1))
    assert ("retrieval-augmented-generation.pdf", 4) in [(c.title, c.page) for c in given]
    assert store.get_thread(thread.id, ADA).messages[-1].citations == given

    provider.events = [TextDelta("I do not know."), Done()]
    events = list(run_turn(store, provider, thread, spec, "How do I bake sourdough bread at home?", ADA, kstore))
    assert NOTHING_FOUND in seen[-1].instructions and "[1]" not in seen[-1].instructions
    assert not [e for e in events if isinstance(e, CitationFound)]


def test_a_deleted_or_foreign_knowledge_base_is_skipped_not_fatal(store, kstore):
    theirs = kstore.create_base("Bob's", BOB)
    spec = AssistantSpec(name="A", owner="ada", knowledge_bases=[theirs.id, "kb_gone"])
    from studio.chat import new_thread
    provider = FakeProvider([TextDelta("Hi."), Done()])
    thread = new_thread("ada", spec, provider)
    events = list(run_turn(store, provider, thread, spec, "hello there, what do the documents say?", ADA, kstore))
    assert isinstance(events[-1], Done)


def test_removing_a_user_removes_their_knowledge_and_the_next_tidy_their_files(store, kstore):
    from studio.accounts import OPERATOR, Accounts
    people = Accounts(store.engine)
    people.add_user("root", "root-password-1", actor=OPERATOR, admin=True)
    people.add_user("bob", "bob-password-12", actor=OPERATOR)
    mine = kstore.create_base("Mine", ADA)
    kept, _ = kstore.add_file(mine.id, "a.md", b"# kept", ADA)
    theirs = kstore.create_base("Bob's", BOB)
    gone, _ = kstore.add_file(theirs.id, "b.md", b"# bob's", BOB)
    people.remove_user("bob", actor=OPERATOR, store=store)
    assert kstore.list_bases(BOB) == [] and kstore.get_file(gone.id) is None
    assert kstore.remove_orphan_files() == 1
    assert not kstore.path_of(theirs.id, gone.sha256).exists()
    assert kstore.path_of(mine.id, kept.sha256).exists()


def test_review_fixes_new_settings_requeue_working_files_and_old_chunks_serve_meanwhile(kstore):
    base = kstore.create_base("B", ADA)
    ready = add_and_index(kstore, base.id, SAMPLES / "train-test-splits.txt")
    working, _ = kstore.add_file(base.id, "faq.html", (SAMPLES / "channel-faq.html").read_bytes(), ADA)
    kstore.claim(working.id)
    kstore.set_progress(working.id, "embedding", 1, 2)
    assert kstore.set_chunking(base.id, 64, 16, ADA) == 2         # the working one too
    assert not kstore.set_progress(working.id, "embedding", 2, 2)  # ...whose run now stops
    assert {r["file_id"] for r in kstore.chunks(base.id)[0]} == {ready.id}   # old chunks still served
    assert kstore.claim(ready.id) and index_file(kstore, ready.id) == "ready"
    assert kstore.get_file(ready.id).chunks > ready.chunks


def test_review_fixes_several_bases_merge_by_similarity_and_irrelevant_ones_are_left_out(kstore):
    docs = kstore.create_base("Docs", ADA)
    add_and_index(kstore, docs.id, SAMPLES / "fine-tuning-basics.md")
    cooking = kstore.create_base("Cooking", ADA)
    bread, _ = kstore.add_file(cooking.id, "bread.md", b"# Bread\n\nKnead the dough for ten minutes, then let it "
                                                      b"rise for an hour before baking at 220 degrees.", ADA)
    kstore.claim(bread.id)
    index_file(kstore, bread.id)
    found = search(kstore, [cooking.id, docs.id], "How many examples do I need to fine-tune?", k=3,
                   relevant_only=True)
    assert found and all(p.file_name == "fine-tuning-basics.md" for p in found)


def test_review_fixes_a_copied_assistant_never_opens_another_users_base(store, kstore):
    private = kstore.create_base("HR", ADA)
    add_and_index(kstore, private.id, SAMPLES / "channel-faq.html")
    original = store.save_assistant(AssistantSpec(name="HR bot", owner="ada", knowledge_bases=[private.id]), ADA)
    root = Actor("root", admin=True)
    copy = store.duplicate_assistant(original.id, root)
    assert copy.knowledge_bases == []
    from dataclasses import replace as copy_of

    from studio.knowledge.grounding import ground
    from studio.types import Message, Thread
    forged = copy_of(copy, knowledge_bases=[private.id])          # an id typed into the spec by hand
    thread = Thread(owner="root", assistant_id=copy.id, provider="fake",
                    messages=[Message(role="user", content="When do new videos come out?")])
    grounding = ground(kstore, forged, thread, root)
    assert grounding.passages == [] and grounding.missing == [private.id]


def test_review_fixes_a_small_docx_that_unpacks_to_gigabytes_is_refused(monkeypatch):
    import zipfile
    monkeypatch.setenv("STUDIO_KNOWLEDGE_MAX_MB", "1")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"<w:t>" + b"a" * 20_000_000 + b"</w:t>")
    with pytest.raises(ExtractionError, match="unpacks to 20 MB"):
        extract("bomb.docx", buffer.getvalue())
    text = b"plain words " * 2000
    with pytest.raises(ExtractionError, match="binary data"):
        extract("mixed.txt", text + bytes(range(256)) * 100 + text)


def test_equal_scores_rank_the_earlier_chunk_first_even_at_the_candidate_cut():
    """120 identical chunks: every mode returns the first ones, not whichever the selection met."""
    texts = ["Data leakage happens when test rows reach training."] * 120
    vectors = np.tile(np.eye(4, dtype=np.float32)[0], (120, 1))
    index = SearchIndex(texts, vectors)
    for mode in ("hybrid", "vector", "keyword"):
        assert [h.row for h in index.search("data leakage", vectors[0], k=5, mode=mode)] == [0, 1, 2, 3, 4]
    from studio.knowledge.index import _top
    rng = np.random.default_rng(3)
    for _ in range(200):
        scores = np.round(rng.normal(size=int(rng.integers(1, 300))), 0).astype(np.float32)
        n = min(50, len(scores))
        assert list(_top(scores, n)) == sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:n]
