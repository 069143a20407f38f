"""OpenAI's hosted retrieval, against the fake server: a knowledge base mirrored to a vector store
(uploads, a file batch polled to its end, per-file failures), kept in step with the workspace,
searched by the inspector's endpoint and by `file_search` in a turn whose citations map back
to the app's files."""
from __future__ import annotations

from pathlib import Path

import pytest

from studio.chat import new_thread, run_turn
from studio.knowledge.hosted import Mirror, SyncProblem, stores_for_turn
from studio.knowledge.storage import KnowledgeStore
from studio.providers.openai_provider import OpenAIProvider
from studio.store import Actor
from studio.types import AssistantSpec, CitationFound, Done, ErrorEvent, ToolCallFinished
from tests.fakes.fake_openai import FakeAPIError

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "knowledge"
ADA = Actor("ada")


@pytest.fixture
def kstore(store, tmp_path) -> KnowledgeStore:
    return KnowledgeStore(store.engine, tmp_path / "knowledge")


@pytest.fixture
def provider(fake) -> OpenAIProvider:
    return OpenAIProvider("sk-test-hosted", base_url=fake.base_url, default_model="gpt-4.1-mini")


@pytest.fixture
def mirror(kstore, provider) -> Mirror:
    m = Mirror(kstore, provider)
    m.poll_s = 0.02
    return m


def add(kstore, base_id, *names):
    return [kstore.add_file(base_id, n, (SAMPLES / n).read_bytes(), ADA)[0] for n in names]


def attached(fake, store_id):
    return fake.vector_stores[store_id].files


def test_a_sync_uploads_the_files_in_one_batch_and_records_each_outcome(fake, kstore, mirror):
    base = kstore.create_base("Channel", ADA)
    md, pdf = add(kstore, base.id, "fine-tuning-basics.md", "retrieval-augmented-generation.pdf")
    table, _ = kstore.add_file(base.id, "prices.csv", b"plan,price\nbasic,10\npro,20\n", ADA)
    html, = add(kstore, base.id, "channel-faq.html")
    fake.vs_fail = {"channel-faq.html": "unsupported_file"}
    stages = []
    state = mirror.sync(base.id, ADA, progress=lambda *a: stages.append(a))
    assert {state[f.id].status for f in (md, pdf, table)} == {"ready"}
    assert state[html.id].status == "failed" and "OpenAI cannot search this type of file" in state[html.id].error
    assert fake.count("/file_batches", "POST") == 1                     # one batch for all four
    batch = fake.last("/file_batches", "POST").body
    assert batch["chunking_strategy"] == {"type": "static", "static": {"max_chunk_size_tokens": 200,
                                                                      "chunk_overlap_tokens": 40}}
    assert ("processing", 4, 4) in stages and stages[0] == ("uploading", 0, 4)
    uploads = {r.body["file"]["filename"]: r.body for r in fake.requests_to("/v1/files", "POST")}
    assert uploads["prices.csv.txt"]["file"]["data"].startswith(b"plan: basic")   # CSV goes as text rows
    assert uploads["retrieval-augmented-generation.pdf"]["file"]["data"][:5] == b"%PDF-"
    assert {u["purpose"] for u in uploads.values()} == {"assistants"}
    # Nothing changed: a second sync sends nothing.
    before = len(fake.requests)
    assert not mirror.needs_sync(base, kstore.list_files(base.id, ADA))
    mirror.sync(base.id, ADA)
    assert fake.count("/v1/files", "POST") == 4 and fake.count("/file_batches", "POST") == 1
    assert len(fake.requests) - before <= 3


def test_a_failed_upload_is_reported_on_its_file_and_retried_on_demand(fake, kstore, mirror):
    base = kstore.create_base("Docs", ADA)
    good, bad = add(kstore, base.id, "train-test-splits.txt", "fine-tuning-basics.md")

    def refuse(request):
        if request.path == "/v1/files" and request.body["file"]["filename"] == "fine-tuning-basics.md":
            return FakeAPIError(413, "File too large for this organisation's storage limit.")
        return None
    fake.refuse = refuse
    state = mirror.sync(base.id, ADA)
    assert state[good.id].status == "ready"
    assert state[bad.id].status == "failed" and state[bad.id].error.startswith("Upload failed:")
    fake.refuse = None
    assert mirror.sync(base.id, ADA)[bad.id].status == "failed"       # an automatic sync leaves it
    assert mirror.sync(base.id, ADA, retry_failed=True)[bad.id].status == "ready"


def test_a_wrong_key_stops_the_sync_with_a_clear_message(fake, kstore):
    base = kstore.create_base("Docs", ADA)
    add(kstore, base.id, "train-test-splits.txt")
    wrong = Mirror(kstore, OpenAIProvider("sk-bad", base_url=fake.base_url))
    with pytest.raises(SyncProblem) as caught:
        wrong.sync(base.id, ADA)
    assert "could not be copied to OpenAI" in str(caught.value) and "key" in str(caught.value).lower()
    assert "sk-bad" not in str(caught.value)


def test_deleted_files_chunk_settings_and_a_store_deleted_on_the_dashboard_are_followed(fake, kstore, mirror):
    base = kstore.create_base("Docs", ADA)
    keep, drop = add(kstore, base.id, "train-test-splits.txt", "fine-tuning-basics.md")
    mirror.sync(base.id, ADA)
    store_id = mirror.vector_store_of(base.id)
    dropped = mirror.files(base.id)[drop.id].remote_id
    kstore.delete_file(drop.id, ADA)
    assert mirror.needs_sync(base, kstore.list_files(base.id, ADA))
    mirror.sync(base.id, ADA)
    assert dropped not in attached(fake, store_id) and dropped not in fake.files     # gone there too
    assert set(mirror.files(base.id)) == {keep.id}

    kstore.set_chunking(base.id, 240, 100, ADA)
    base = kstore.get_base(base.id, ADA)
    mirror.sync(base.id, ADA)
    new_id = mirror.vector_store_of(base.id)
    assert new_id != store_id and store_id not in fake.vector_stores
    assert attached(fake, new_id)[mirror.files(base.id)[keep.id].remote_id].chunk_size == 240
    assert fake.count("/v1/files", "POST") == 2          # re-attached, not uploaded again

    fake.vector_stores.clear()                           # deleted in OpenAI's dashboard
    assert mirror.sync(base.id, ADA)[keep.id].status == "ready"
    assert mirror.vector_store_of(base.id) in fake.vector_stores


def test_the_inspector_search_names_the_files_here(fake, kstore, mirror):
    base = kstore.create_base("Docs", ADA)
    pdf, = add(kstore, base.id, "retrieval-augmented-generation.pdf")
    assert mirror.search(base.id, "anything") == []      # not on OpenAI yet
    mirror.sync(base.id, ADA)
    hits = mirror.search(base.id, "How many dimensions does MiniLM produce per chunk?", k=3)
    assert hits and hits[0].file_id == pdf.id and hits[0].file_name == "retrieval-augmented-generation.pdf"
    assert 0 < hits[0].score <= 1 and "384" in hits[0].text
    assert fake.last("/search").body == {"query": "How many dimensions does MiniLM produce per chunk?",
                                         "max_num_results": 3}


def test_a_turn_on_openai_uses_file_search_and_cites_the_file_here(fake, store, kstore, provider):
    base = kstore.create_base("Docs", ADA)
    pdf, faq = add(kstore, base.id, "retrieval-augmented-generation.pdf", "channel-faq.html")
    spec = store.save_assistant(AssistantSpec(name="A", owner="ada", instructions="Be brief.", provider="openai",
                                              knowledge_bases=[base.id]), ADA)
    thread = new_thread("ada", spec, provider)
    import studio.knowledge.hosted as hosted
    hosted.Mirror.poll_s = 0.02
    try:
        events = list(run_turn(store, provider, thread, spec, "How many dimensions does MiniLM produce?", ADA,
                               kstore))
    finally:
        hosted.Mirror.poll_s = 1.0
    assert isinstance(events[-1], Done), events[-1]
    body = fake.last("/v1/responses").body
    search_tool = next(t for t in body["tools"] if t["type"] == "file_search")
    assert search_tool["vector_store_ids"] == [Mirror(kstore, provider).vector_store_of(base.id)]
    assert "file_search_call.results" in body["include"]
    assert "Be brief." in body["instructions"] and "do not cover it" in body["instructions"]
    searched = [e.call for e in events if isinstance(e, ToolCallFinished)]
    assert searched[0].kind == "file_search" and "retrieval-augmented-generation.pdf" in searched[0].result
    cited = [e.citation for e in events if isinstance(e, CitationFound)]
    assert [(c.file_id, c.title, c.number, c.how) for c in cited] == [
        (pdf.id, "retrieval-augmented-generation.pdf", 1, "file_search")]
    assert "384" in cited[0].quote and 0 < cited[0].score <= 1
    assert store.get_thread(thread.id, ADA).messages[-1].citations == cited

    events = list(run_turn(store, provider, thread, spec, "Quelle est la recette du pain au levain?", ADA, kstore))
    assert not [e for e in events if isinstance(e, CitationFound)]
    assert "do not cover" in store.get_thread(thread.id, ADA).messages[-1].content


def test_a_turn_never_searches_another_users_base_and_says_when_nothing_is_on_openai(fake, store, kstore,
                                                                                      provider, mirror):
    theirs = kstore.create_base("Bob's", Actor("bob"))
    kstore.add_file(theirs.id, "b.txt", b"Bob's secret plan is to launch on Friday.", Actor("bob"))
    assert stores_for_turn(mirror, [theirs.id], "ada", ADA).vector_stores == []
    assert fake.count("/v1/files", "POST") == 0

    mine = kstore.create_base("Mine", ADA)
    kstore.add_file(mine.id, "a.csv", b"x,y\n1,2\n", ADA)
    fake.vs_fail = {"a.csv.txt": "invalid_file"}
    spec = store.save_assistant(AssistantSpec(name="A", owner="ada", provider="openai",
                                              knowledge_bases=[mine.id]), ADA)
    thread = new_thread("ada", spec, provider)
    import studio.knowledge.hosted as hosted
    hosted.Mirror.poll_s = 0.02
    try:
        events = list(run_turn(store, provider, thread, spec, "What is y?", ADA, kstore))
    finally:
        hosted.Mirror.poll_s = 1.0
    assert isinstance(events[-1], ErrorEvent) and "not on OpenAI" in events[-1].message
    assert "could not be copied" in events[-1].message and fake.count("/v1/responses") == 0
