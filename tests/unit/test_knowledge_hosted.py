"""OpenAI's hosted retrieval, against the fake server: a knowledge base mirrored to a vector store
(uploads, a file batch polled to its end, per-file failures), kept in step with the workspace,
searched by the inspector's endpoint and by `file_search` in a turn whose citations map back
to the app's files."""
from __future__ import annotations

from pathlib import Path

import pytest

from studio.chat import new_thread, run_turn
from studio.knowledge.hosted import Mirror, SyncProblem
from studio.knowledge.hosted_turns import stores_for_turn
from studio.knowledge.storage import KnowledgeStore
from studio.providers.openai_provider import OpenAIProvider
from studio.store import Actor
from studio.knowledge.grounding import NOTHING_FOUND
from studio.types import AssistantSpec, CitationFound, Done, Notice, ToolCallFinished
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
    notes = [e.text for e in events if isinstance(e, Notice)]
    assert any("1 file(s) could not be copied to OpenAI" in n for n in notes)
    assert isinstance(events[-1], Done)                    # answered, saying the documents have nothing
    body = fake.last("/v1/responses").body
    assert "tools" not in body and NOTHING_FOUND in body["instructions"]


def turn(store, kstore, provider, spec, text):
    import studio.knowledge.hosted as hosted
    thread = turn.thread = new_thread("ada", spec, provider)
    hosted.Mirror.poll_s = 0.02
    try:
        return list(run_turn(store, provider, thread, spec, text, ADA, kstore))
    finally:
        hosted.Mirror.poll_s = 1.0


def assistant(store, *bases):
    return store.save_assistant(AssistantSpec(name="A", owner="ada", provider="openai",
                                              knowledge_bases=[b.id for b in bases]), ADA)


def test_a_store_deleted_on_the_dashboard_is_rebuilt_by_the_next_turn(fake, store, kstore, provider, mirror):
    import studio.knowledge.hosted as hosted
    base = kstore.create_base("Docs", ADA)
    pdf, = add(kstore, base.id, "retrieval-augmented-generation.pdf")
    spec = assistant(store, base)
    assert isinstance(turn(store, kstore, provider, spec, "How many dimensions does MiniLM produce?")[-1], Done)
    fake.vector_stores.clear()
    hosted._checked.clear()           # as after CHECK_EVERY_S
    events = turn(store, kstore, provider, spec, "How many dimensions does MiniLM produce?")
    assert isinstance(events[-1], Done), events[-1]
    assert [e.citation.file_id for e in events if isinstance(e, CitationFound)] == [pdf.id]
    assert mirror.vector_store_of(base.id) in fake.vector_stores


def test_at_most_two_bases_are_searched_at_once_and_the_turn_says_so(fake, store, kstore, provider):
    bases = [kstore.create_base(f"Base {n}", ADA) for n in range(3)]
    for base in bases:
        add(kstore, base.id, "train-test-splits.txt")
    events = turn(store, kstore, provider, assistant(store, *bases), "What is data leakage?")
    assert isinstance(events[-1], Done), events[-1]
    tool = next(t for t in fake.last("/v1/responses").body["tools"] if t["type"] == "file_search")
    assert len(tool["vector_store_ids"]) == 2
    assert any("at most 2 knowledge bases" in e.text for e in events if isinstance(e, Notice))
    assert any("at most 2 knowledge bases" in n for n in store.get_thread(turn.thread.id, ADA).messages[-1].notes)


def test_a_deleted_file_is_never_cited_and_a_turn_does_not_wait_for_a_new_one(fake, store, kstore, provider, mirror):
    base = kstore.create_base("Docs", ADA)
    pdf, md = add(kstore, base.id, "retrieval-augmented-generation.pdf", "fine-tuning-basics.md")
    spec = assistant(store, base)
    turn(store, kstore, provider, spec, "hello")
    kstore.delete_file(pdf.id, ADA)
    events = turn(store, kstore, provider, spec, "How many dimensions does MiniLM produce?")
    assert not [e for e in events if isinstance(e, CitationFound) and e.citation.title.endswith(".pdf")]
    assert pdf.id not in mirror.files(base.id)                 # the turn waited for the deletion

    fake.vs_process_s = 30                                     # a new file takes long on OpenAI
    add(kstore, base.id, "train-test-splits.txt")
    import time
    started = time.monotonic()
    events = turn(store, kstore, provider, spec, "How much data do I need to fine-tune?")
    assert time.monotonic() - started < 10 and isinstance(events[-1], Done)
    assert [e.citation.file_id for e in events if isinstance(e, CitationFound)] == [md.id]


def test_passing_errors_resume_later_and_a_retry_replaces_the_failed_copy(fake, kstore, mirror):
    base = kstore.create_base("Docs", ADA)
    good, = add(kstore, base.id, "train-test-splits.txt")
    fake.refuse = lambda r: FakeAPIError(502, "Bad gateway") if r.path == "/v1/files" else None
    with pytest.raises(SyncProblem) as caught:
        mirror.sync(base.id, ADA)
    assert "the next sync goes on" in str(caught.value)
    assert mirror.files(base.id)[good.id].status == "uploading"
    fake.refuse = None
    assert mirror.sync(base.id, ADA)[good.id].status == "ready"          # resumed, no "Sync now" needed

    fake.vs_fail = {"fine-tuning-basics.md": "server_error"}
    bad, = add(kstore, base.id, "fine-tuning-basics.md")
    first = mirror.sync(base.id, ADA)[bad.id]
    assert first.status == "failed" and "sync again to retry" in first.error
    fake.vs_fail = {}
    again = mirror.sync(base.id, ADA, retry_failed=True)[bad.id]
    assert again.status == "ready" and first.remote_id not in fake.files          # the old copy is gone
    assert first.remote_id not in attached(fake, mirror.vector_store_of(base.id))


def test_uploaded_files_deleted_on_openai_are_uploaded_again_without_a_new_store(fake, kstore, mirror):
    base = kstore.create_base("Docs", ADA)
    record, = add(kstore, base.id, "train-test-splits.txt")
    mirror._upload(base, record, "", None)                     # uploaded; the process died before the batch
    fake.files.clear()                                         # and the file was deleted on OpenAI
    assert mirror.sync(base.id, ADA)[record.id].status == "ready"
    assert len(fake.vector_stores) == 1 and len(fake.files) == 1


def test_copies_of_bases_deleted_elsewhere_are_deleted_by_the_next_sync(fake, kstore, mirror):
    gone = kstore.create_base("Old", ADA)
    add(kstore, gone.id, "train-test-splits.txt")
    mirror.sync(gone.id, ADA)
    kstore.delete_base(gone.id, ADA)                           # e.g. `kb delete` in the CLI
    other = kstore.create_base("New", ADA)
    add(kstore, other.id, "fine-tuning-basics.md")
    mirror.sync(other.id, ADA)
    assert len(fake.vector_stores) == 1 and len(fake.files) == 1
    assert mirror.deleted_bases() == []


def test_one_process_syncs_a_base_at_a_time(fake, kstore, mirror, provider):
    base = kstore.create_base("Docs", ADA)
    add(kstore, base.id, "train-test-splits.txt")
    assert mirror._claim(base.id)
    other = Mirror(kstore, provider)                           # another app process, same account
    with pytest.raises(SyncProblem, match="Another app process"):
        other.sync(base.id, ADA)
    mirror._release(base.id)
    assert other.sync(base.id, ADA)


def test_htm_files_go_to_openai_as_html(fake, kstore, mirror):
    base = kstore.create_base("Docs", ADA)
    record, _ = kstore.add_file(base.id, "faq.htm", (SAMPLES / "channel-faq.html").read_bytes(), ADA)
    assert mirror.sync(base.id, ADA)[record.id].status == "ready"
    assert fake.last("/v1/files", "POST").body["file"]["filename"] == "faq.html"


def test_a_lease_is_renewed_by_its_sync_and_released_only_by_it(fake, kstore, mirror, provider):
    import studio.knowledge.hosted as hosted
    from sqlalchemy import select, update
    base = kstore.create_base("Docs", ADA)
    assert mirror._claim(base.id)
    other = Mirror(kstore, provider)
    assert not other._claim(base.id)
    other._release(base.id)                                    # not its lease: nothing happens
    assert not other._claim(base.id)
    with kstore.engine.begin() as db:                          # the holder died: its lease lapses
        db.execute(update(hosted.remote_syncs).values(until=hosted.utcnow() - hosted.timedelta(seconds=1)))
    assert other._claim(base.id)
    before = kstore.engine.connect().execute(select(hosted.remote_syncs.c.until)).scalar()
    other._renew(base.id)
    assert kstore.engine.connect().execute(select(hosted.remote_syncs.c.until)).scalar() > before


def test_one_file_failing_for_now_does_not_hold_up_the_others(fake, kstore, mirror):
    base = kstore.create_base("Docs", ADA)
    stuck, fine = add(kstore, base.id, "fine-tuning-basics.md", "train-test-splits.txt")
    fake.refuse = lambda r: (FakeAPIError(503, "Overloaded") if r.path == "/v1/files"
                             and r.body["file"]["filename"] == "fine-tuning-basics.md" else None)
    with pytest.raises(SyncProblem):
        mirror.sync(base.id, ADA)
    state = mirror.files(base.id)
    assert state[fine.id].status == "ready" and state[stuck.id].status == "uploading"


def test_a_failed_rebuild_leaves_no_store_behind_and_the_old_one_serving(fake, kstore, mirror):
    base = kstore.create_base("Docs", ADA)
    record, = add(kstore, base.id, "train-test-splits.txt")
    mirror.sync(base.id, ADA)
    old = mirror.vector_store_of(base.id)
    kstore.set_chunking(base.id, 240, 60, ADA)
    fake.refuse = lambda r: FakeAPIError(502, "Bad gateway") if r.path.endswith("/file_batches") else None
    with pytest.raises(SyncProblem):
        mirror.sync(base.id, ADA)
    assert list(fake.vector_stores) == [old] and mirror.vector_store_of(base.id) == old
    assert mirror.files(base.id)[record.id].status == "ready"
    fake.refuse = None
    mirror.sync(base.id, ADA)
    assert list(fake.vector_stores) == [mirror.vector_store_of(base.id)] != [old]


def test_a_turn_deletes_copies_of_deleted_files_itself_and_keeps_its_notes(fake, store, kstore, provider, mirror):
    base = kstore.create_base("Docs", ADA)
    pdf, md = add(kstore, base.id, "retrieval-augmented-generation.pdf", "fine-tuning-basics.md")
    mirror.sync(base.id, ADA)
    assert mirror._claim(base.id)                              # a long sync elsewhere holds the base
    kstore.delete_file(pdf.id, ADA)
    events = turn(store, kstore, provider, assistant(store, base), "How many dimensions does MiniLM produce?")
    assert isinstance(events[-1], Done)
    assert mirror.files(base.id)[md.id].status == "ready" and pdf.id not in mirror.files(base.id)
    assert not [e for e in events if isinstance(e, CitationFound)]
    mirror._release(base.id)
