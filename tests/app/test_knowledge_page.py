"""The knowledge page: create a base, upload several files (good and bad), watch them index,
search them in the retrieval inspector, change the chunk settings, delete."""
import time
from pathlib import Path

from components.knowledge import knowledge_store
from studio.knowledge.storage import KnowledgeStore
from studio.store import Actor, Store

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "knowledge"


def shown(element) -> str:
    """An element's text as the reader sees it (Markdown escapes removed)."""
    return element.value.replace("\\", "")


def open_page(at):
    at.switch_page("pages/knowledge.py")
    return at.run()


def create(at, name: str):
    next(t for t in at.text_input if t.label == "Name").input(name)
    next(b for b in at.button if b.label == "Create").click()
    return at.run()


def kstore(workspace) -> KnowledgeStore:
    return KnowledgeStore(Store(f"sqlite:///{workspace / 'studio.db'}").engine, workspace / "knowledge")


def wait_until_indexed(workspace, base_id: str, timeout: float = 120) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = kstore(workspace).list_files(base_id, Actor("ada"))
        if files and not any(f.working for f in files):
            return files
        time.sleep(0.3)
    raise AssertionError(f"still indexing: {files}")


def test_uploads_index_in_the_background_and_bad_files_say_why(signed_in, workspace):
    at = open_page(signed_in)
    assert any("No knowledge base yet" in i.value for i in at.info)
    at = create(at, "Channel articles")
    assert not at.exception
    assert at.selectbox(key="knowledge_base").value is not None
    uploader = next(u for u in at.get("file_uploader"))
    uploader.set_value([
        ("fine-tuning-basics.md", (SAMPLES / "fine-tuning-basics.md").read_bytes(), "text/markdown"),
        ("retrieval-augmented-generation.pdf", (SAMPLES / "retrieval-augmented-generation.pdf").read_bytes(),
         "application/pdf"),
        ("notes.txt", b"\x00\x01\x02binary\x00" * 50, "text/plain"),
        ("empty.md", b"", "text/markdown"),
    ])
    at = at.run()
    next(b for b in at.button if b.label == "Add 4 files").click()
    at = at.run()
    assert not at.exception
    assert any("empty.md: The file is empty." in shown(e) for e in at.error)
    assert sum("added, indexing" in shown(s) for s in at.success) == 3
    base_id = at.selectbox(key="knowledge_base").value
    files = {f.name: f for f in wait_until_indexed(workspace, base_id)}
    assert files["fine-tuning-basics.md"].status == "ready" and files["fine-tuning-basics.md"].chunks >= 2
    assert files["retrieval-augmented-generation.pdf"].pages == 5
    assert files["notes.txt"].status == "failed" and "binary data" in files["notes.txt"].error
    at = at.run()
    page_text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "binary data" in page_text and "ready" in " ".join(m.value for m in at.markdown)
    # Once indexing is over, the refused file's reason is still on screen (it has no row); the
    # "added" notes are not (the rows say how each file went).
    assert any("empty.md: The file is empty." in shown(e) for e in at.error)
    assert not any("added, indexing" in shown(s) for s in at.success)

    # The same file again is recognised by its content.
    uploader = next(u for u in at.get("file_uploader"))
    uploader.set_value([("copy.md", (SAMPLES / "fine-tuning-basics.md").read_bytes(), "text/markdown")])
    at = at.run()
    next(b for b in at.button if b.label == "Add 1 file").click()
    at = at.run()
    assert any("copy.md: already in this knowledge base" in shown(i) for i in at.info)


def test_the_inspector_ranks_passages_with_their_scores_file_and_page(signed_in, workspace):
    at = create(open_page(signed_in), "RAG")
    base_id = at.selectbox(key="knowledge_base").value
    store = kstore(workspace)
    data = (SAMPLES / "retrieval-augmented-generation.pdf").read_bytes()
    store.add_file(base_id, "retrieval-augmented-generation.pdf", data, Actor("ada"))
    wait_until_indexed(workspace, base_id)
    at = at.run()
    next(t for t in at.text_input if t.label == "Query").input("How many dimensions does MiniLM produce?")
    next(b for b in at.button if b.label == "Search").click()
    at = at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.columns[:6]) == ["rank", "file", "page", "vector", "keyword", "fused"]
    top = table.iloc[0]
    assert top["file"] == "retrieval-augmented-generation.pdf" and top["page"] == 4
    assert "384 numbers" in top["passage"] and top["relevant"]

    next(t for t in at.text_input if t.label == "Query").input("Who won the football world cup in 2014?")
    next(b for b in at.button if b.label == "Search").click()
    at = at.run()
    assert any("None of these passages looks relevant" in w.value for w in at.warning)


def test_new_chunk_settings_index_every_file_again(signed_in, workspace):
    at = create(open_page(signed_in), "Splits")
    base_id = at.selectbox(key="knowledge_base").value
    store = kstore(workspace)
    store.add_file(base_id, "train-test-splits.txt", (SAMPLES / "train-test-splits.txt").read_bytes(), Actor("ada"))
    before = wait_until_indexed(workspace, base_id)[0].chunks
    next(n for n in at.number_input if n.label == "Chunk size (tokens)").set_value(64)
    next(n for n in at.number_input if n.label == "Overlap (tokens)").set_value(16)
    next(b for b in at.button if b.label == "Save").click()
    at = at.run()
    assert not at.exception
    assert any("1 files are being indexed again" in s.value for s in at.success)
    after = wait_until_indexed(workspace, base_id)[0]
    assert after.status == "ready" and after.chunks > before


def test_another_users_base_is_not_listed_and_delete_removes_files(signed_in, workspace):
    store = kstore(workspace)
    theirs = store.create_base("Bob's notes", Actor("bob"))
    at = create(open_page(signed_in), "Mine")
    options = at.selectbox(key="knowledge_base").options
    assert "Bob's notes" not in options
    mine = at.selectbox(key="knowledge_base").value
    store.add_file(mine, "faq.html", (SAMPLES / "channel-faq.html").read_bytes(), Actor("ada"))
    wait_until_indexed(workspace, mine)
    assert any((workspace / "knowledge" / mine).iterdir())
    next(c for c in at.checkbox if c.label.startswith("Delete this knowledge base")).check()
    at = at.run()
    next(b for b in at.button if b.label == "Delete knowledge base").click()
    at = at.run()
    assert not at.exception
    assert store.list_bases(Actor("ada")) == []
    assert not (workspace / "knowledge" / mine).exists()
    assert store.get_base(theirs.id, Actor("bob")) is not None
    assert knowledge_store is not None


def test_the_assistant_editor_attaches_a_base_and_the_chat_shows_the_cited_passage(
        workspace, fake_server, monkeypatch):
    """On a compatible server (the fake, which says what [[say ...]] tells it): the turn's request
    carries the numbered passages, and the reply's [1] becomes a source with its file and page."""
    from studio.accounts import OPERATOR
    from tests.app.conftest import accounts, login, new_app
    fake_server.reset()
    monkeypatch.setenv("STUDIO_PROVIDER", "compatible")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.base_url)
    accounts(workspace).add_user("ada", "correct-horse", actor=OPERATOR)
    at = login(new_app().run(), "ada", "correct-horse")
    store = kstore(workspace)
    base = store.create_base("RAG notes", Actor("ada"))
    record, _ = store.add_file(base.id, "retrieval-augmented-generation.pdf",
                               (SAMPLES / "retrieval-augmented-generation.pdf").read_bytes(), Actor("ada"))
    wait_until_indexed(workspace, base.id)     # the app's indexer, started with the app

    at.switch_page("pages/assistants.py")
    at = at.run()
    picker = next(m for m in at.multiselect if m.label == "Knowledge bases")
    assert picker.options == ["RAG notes"]
    picker.select(base.id)
    next(b for b in at.button if b.label == "Save").click()
    at = at.run()
    assert not at.exception

    at.switch_page("pages/chat.py")
    at = at.run()
    at.chat_input[0].set_value("[[say It gives 384 numbers per chunk [1].]] How many dimensions does MiniLM make?")
    at = at.run()
    assert not at.exception, at.exception
    sent = " ".join(fake_server.last("/v1/chat/completions").body["messages"][0]["content"].split())
    assert "[1] (retrieval-augmented-generation.pdf, page 4)" in sent and "384 numbers per chunk" in sent
    sources = [e for e in at.expander if e.label.replace("\\", "").startswith("[1]")]
    assert [e.label.replace("\\", "") for e in sources] == ["[1] retrieval-augmented-generation.pdf, page 4"]
    assert "384 numbers per chunk" in " ".join(sources[0].text[0].value.split())
    assert "page 4" in sources[0].caption[0].value and "fused score" in sources[0].caption[0].value


def test_a_2000_page_pdf_shows_its_progress_and_the_page_stays_usable(signed_in, workspace):
    from fpdf import FPDF
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for n in range(2000):
        pdf.add_page()
        pdf.cell(0, 8, f"Page {n + 1} of the long manual: chapter {n // 50}, notes on splits and seeds.")
    at = create(open_page(signed_in), "Manuals")
    base_id = at.selectbox(key="knowledge_base").value
    store = kstore(workspace)
    record, _ = store.add_file(base_id, "manual.pdf", bytes(pdf.output()), Actor("ada"))
    from studio.knowledge.indexer import indexer_for
    indexer_for(store).wake()                       # the app's indexer (one per workspace)
    deadline = time.monotonic() + 60

    def reading() -> bool:      # 50 pages read; or (a fast machine) already past reading
        now = store.get_file(record.id)
        return (now.status == "extracting" and now.done >= 50) or now.status in ("chunking", "embedding")
    while not reading() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    at = at.run()                                   # the page draws while the file is being worked on
    assert time.monotonic() - started < 5 and not at.exception
    bars = [str(p.proto.text) for p in at.get("progress")]
    assert any(stage in text for text in bars for stage in ("extracting", "chunking", "embedding")), bars
    if any("extracting" in text for text in bars):
        done, total = next(t for t in bars if "extracting" in t).split()[-1].split("/")
        assert total == "2000" and 0 < int(done) <= 2000
    store.delete_file(record.id, Actor("ada"))      # the indexer stops at its next progress note
    time.sleep(1)
    assert store.get_file(record.id) is None and store.chunks(base_id)[0] == []
    assert not (workspace / "knowledge" / base_id / record.sha256).exists()


def test_on_openai_the_base_is_copied_to_a_vector_store_searched_there_and_cited(on_openai, workspace,
                                                                               fake_server):
    """The OpenAI tab copies the base by itself (one file failing there says why), the inspector
    can search the vector store, and a chat turn's file_search citation names the file here."""
    from studio.knowledge.hosted import Mirror
    from studio.providers.openai_provider import OpenAIProvider
    store = kstore(workspace)
    base = store.create_base("RAG notes", Actor("ada"))
    for name in ("retrieval-augmented-generation.pdf", "channel-faq.html"):
        store.add_file(base.id, name, (SAMPLES / name).read_bytes(), Actor("ada"))
    fake_server.vs_fail = {"channel-faq.html": "unsupported_file"}
    at = open_page(on_openai)
    assert not at.exception
    assert [t.label for t in at.tabs] == ["Documents", "Retrieval inspector", "Settings", "OpenAI copy"]
    mirror = Mirror(store, OpenAIProvider("sk-test-app-0123456789", base_url=fake_server.base_url))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and {r.status for r in mirror.files(base.id).values()} != {"ready", "failed"}:
        time.sleep(0.2)
    time.sleep(0.3)
    at = at.run()
    tab = at.tabs[3]
    text = " ".join(m.value for m in tab.markdown) + " ".join(c.value for c in tab.caption)
    assert "1 of 2 files ready on OpenAI" in text and "OpenAI cannot search this type of file" in text
    assert fake_server.count("/file_batches", "POST") == 1

    next(r for r in at.radio if r.label == "Index").set_value("OpenAI vector store")
    next(t for t in at.text_input if t.label == "Query").input("How many dimensions does MiniLM produce?")
    next(b for b in at.button if b.label == "Search").click()
    at = at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.columns) == ["rank", "file", "score", "passage"]
    assert table.iloc[0]["file"] == "retrieval-augmented-generation.pdf" and "384" in table.iloc[0]["passage"]

    at.switch_page("pages/assistants.py")
    at = at.run()
    next(m for m in at.multiselect if m.label == "Knowledge bases").select(base.id)
    next(b for b in at.button if b.label == "Save").click()
    at = at.run()
    at.switch_page("pages/chat.py")
    at = at.run()
    at.chat_input[0].set_value("How many dimensions does MiniLM produce?")
    at = at.run()
    assert not at.exception, at.exception
    tool = next(t for t in fake_server.last("/v1/responses").body["tools"] if t["type"] == "file_search")
    assert tool["vector_store_ids"] == [mirror.vector_store_of(base.id)]
    sources = [e for e in at.expander if e.label.replace("\\", "").startswith("[1]")]
    assert [e.label.replace("\\", "") for e in sources] == ["[1] retrieval-augmented-generation.pdf"]
    assert "OpenAI file search score" in sources[0].caption[0].value
    assert "384" in sources[0].text[0].value
    assert any("Searched your documents" in e.label for e in at.expander)
