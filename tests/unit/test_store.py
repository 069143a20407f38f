"""The store: owners, concurrent writers, private files and database errors a user can cause."""
import sqlite3
import stat
import threading

import pytest
from sqlalchemy import text

import studio.store as store_module
from studio.assistants import NAME_LENGTH
from studio.store import Actor, NotAllowed, Store, StoreError
from studio.types import AssistantSpec, Message, Thread, ToolCall

ADA, BOB, ROOT = Actor("ada"), Actor("bob"), Actor("root", admin=True)


def ada_thread(store, *texts) -> Thread:
    thread = Thread(owner="ada", assistant_id="asst_x", provider="local")
    thread.messages = [Message("user", t) for t in texts]
    return store.save_thread(thread, ADA)


def in_parallel(count: int, work) -> list[BaseException]:
    """Run work(i) in `count` threads started together; return what they raised."""
    errors, start = [], threading.Barrier(count)

    def run(i):
        start.wait()
        try:
            work(i)
        except BaseException as exc:   # collected: the test asserts there are none
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return errors


# --- concurrent writers ---------------------------------------------------------------

def test_concurrent_writers_never_share_a_place_in_a_thread(store, db_path):
    thread = ada_thread(store, "first")
    cli = Store(f"sqlite:///{db_path}")   # a second process (the CLI) writing the same file

    def send(i):
        for n in range(15):
            (store if i % 2 else cli).add_message(thread, Message("user", f"{i}-{n}"), ADA)

    assert in_parallel(8, send) == []
    saved = store.get_thread(thread.id, ADA).messages
    assert len(saved) == 1 + 8 * 15 and len({m.id for m in saved}) == len(saved)
    with store.engine.connect() as db:
        seqs = db.execute(text("SELECT seq FROM messages WHERE thread_id = :t ORDER BY seq"),
                          {"t": thread.id}).scalars().all()
    assert seqs == list(range(len(saved)))
    for i in range(8):   # each writer's messages kept their order
        mine = [m.content for m in saved if m.content.startswith(f"{i}-")]
        assert mine == [f"{i}-{n}" for n in range(15)]


def test_two_first_sign_ins_at_once_seed_the_demo_once(db_path):
    Store(f"sqlite:///{db_path}")   # the schema exists, as it does once the app has started
    sessions = [Store(f"sqlite:///{db_path}") for _ in range(2)]
    for user in ("ada", "bob", "cy", "dee", "eve"):
        assert in_parallel(2, lambda i, user=user: sessions[i].seed_demo_assistant(Actor(user))) == []
        assert [a.name for a in sessions[0].list_assistants(Actor(user))] == ["Comment responder"]


# --- owners ---------------------------------------------------------------------------

def test_only_the_owner_may_change_a_thread_and_admins_may_only_read_it(store):
    thread = ada_thread(store, "my secret plan")
    for actor in (BOB, ROOT):
        with pytest.raises(NotAllowed):
            store.add_message(thread, Message("user", "injected"), actor)
        with pytest.raises(NotAllowed):
            store.rename_thread(thread.id, "mine now", actor)
        with pytest.raises(NotAllowed):
            store.delete_thread(thread.id, actor)
        with pytest.raises(NotAllowed):
            store.set_provider_ref(thread, "conv_evil", actor)
        with pytest.raises(NotAllowed):
            store.save_thread(thread, actor)
    with pytest.raises(NotAllowed, match="belongs to another user"):
        store.get_thread(thread.id, BOB)
    with pytest.raises(NotAllowed):
        store.list_threads(BOB, everyone=True)
    assert store.list_threads(BOB) == []
    stored = store.get_thread(thread.id, ROOT)   # admins read everyone's
    assert [m.content for m in stored.messages] == ["my secret plan"] and stored.provider_ref is None
    assert stored.title == "my secret plan"
    assert [t.id for t in store.list_threads(ROOT, everyone=True)] == [thread.id]


def test_nobody_starts_a_thread_in_someone_elses_name(store):
    with pytest.raises(NotAllowed):
        store.save_thread(Thread(owner="ada", assistant_id="a", provider="local"), ROOT)
    assert store.list_threads(ROOT, everyone=True) == []


def test_the_owner_renames_and_deletes(store):
    thread = ada_thread(store, "hello")
    assert store.rename_thread(thread.id, "  A much better\ntitle  ", ADA) == "A much better title"
    assert store.get_thread(thread.id, ADA).title == "A much better title"
    store.delete_thread(thread.id, ADA)
    assert store.get_thread(thread.id, ADA) is None
    with pytest.raises(StoreError, match="no longer exists"):
        store.add_message(thread, Message("user", "still there?"), ADA)


def test_assistants_are_their_owners_and_admins_may_manage_all(store):
    mine = store.save_assistant(AssistantSpec(name="Mine", owner="ada"), ADA)
    with pytest.raises(NotAllowed):
        store.get_assistant(mine.id, BOB)
    with pytest.raises(NotAllowed):
        store.duplicate_assistant(mine.id, BOB)
    with pytest.raises(NotAllowed):
        store.delete_assistant(mine.id, BOB)
    with pytest.raises(NotAllowed):   # nor by handing in a copy that claims to be bob's
        store.save_assistant(AssistantSpec(id=mine.id, name="Taken", owner="bob"), BOB)
    with pytest.raises(NotAllowed):
        store.save_assistant(AssistantSpec(name="For ada", owner="ada"), BOB)
    with pytest.raises(NotAllowed):
        store.list_assistants(BOB, everyone=True)
    assert store.get_assistant(mine.id, ADA).name == "Mine"
    assert [a.name for a in store.list_assistants(ROOT, everyone=True)] == ["Mine"]
    copy = store.duplicate_assistant(mine.id, ROOT)
    assert copy.owner == "root" and copy.name == "Mine (copy)"
    mine.instructions = "Edited by an admin."
    store.save_assistant(mine, ROOT)
    assert store.get_assistant(mine.id, ADA).instructions == "Edited by an admin."


# --- text a user can send -------------------------------------------------------------

def test_nul_characters_are_dropped_everywhere_text_is_saved(store):
    thread = ada_thread(store, "he\x00llo")
    call = ToolCall(name="calc", arguments={"ex\x00pr": "1+\x001"}, result="2\x00")
    store.add_message(thread, Message("assistant", "two\x00", tool_calls=[call]), ADA)
    stored = store.get_thread(thread.id, ADA)
    assert [m.content for m in stored.messages] == ["hello", "two"]
    assert stored.messages[1].tool_calls[0].arguments == {"expr": "1+1"}
    assert stored.title == "hello" and thread.messages[0].content == "hello"
    spec = store.save_assistant(AssistantSpec(name="Na\x00me", instructions="Be\x00 kind", owner="ada"), ADA)
    assert (spec.name, spec.instructions) == ("Name", "Be kind")
    assert store.get_assistant(spec.id, ADA).name == "Name"


def test_a_name_longer_than_its_column_is_refused_with_the_limit(store):
    with pytest.raises(StoreError, match=f"at most {NAME_LENGTH} characters; this one has {NAME_LENGTH + 1}"):
        store.save_assistant(AssistantSpec(name="x" * (NAME_LENGTH + 1), owner="ada"), ADA)
    assert store.list_assistants(ADA) == []
    longest = store.save_assistant(AssistantSpec(name="y" * NAME_LENGTH, owner="ada"), ADA)
    assert len(store.duplicate_assistant(longest.id, ADA).name) == NAME_LENGTH
    with pytest.raises(StoreError, match="name"):
        store.save_assistant(AssistantSpec(name="   ", owner="ada"), ADA)
    with pytest.raises(StoreError, match="at most 128"):
        store.save_thread(Thread(owner="u" * 129, assistant_id="a", provider="local"), Actor("u" * 129))


# --- database failures ----------------------------------------------------------------

def test_a_locked_workspace_is_a_clear_message_and_nothing_typed_is_lost(db_path, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    store = Store(f"sqlite:///{db_path}")
    thread = ada_thread(store, "first")
    other = sqlite3.connect(db_path, isolation_level=None)   # e.g. a long write by another process
    other.execute("BEGIN IMMEDIATE")
    try:
        typed = Message("user", "a long message I typed")
        with pytest.raises(StoreError, match="The workspace is busy .* try again in a moment"):
            store.add_message(thread, typed, ADA)
        assert thread.messages[-1] is typed   # still in the session, to retry
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.save_thread(thread, ADA)   # the retry stores what was missed, once
    store.save_thread(thread, ADA)
    assert [m.content for m in store.get_thread(thread.id, ADA).messages] == ["first", "a long message I typed"]


def test_a_failing_database_is_a_clear_message_not_a_traceback(store, db_path, caplog):
    thread = ada_thread(store, "first")
    with store.engine.begin() as db:   # something went wrong with the workspace
        db.execute(text("DROP TABLE messages"))
    with pytest.raises(StoreError, match="Could not save the message: the workspace database") as caught:
        store.add_message(thread, Message("user", "my private words"), ADA)
    assert "Traceback" not in str(caught.value) and "my private words" not in caplog.text


def test_a_database_url_that_cannot_be_opened_is_a_clear_error_without_the_password():
    with pytest.raises(StoreError, match="STUDIO_DATABASE_URL") as caught:
        Store("nosuchdb://admin:hunter2@db.example/studio")
    assert "hunter2" not in str(caught.value)
    assert "('nosuchdb')" in str(caught.value)


@pytest.mark.parametrize("url, says", [
    ("postgresql+asyncpg://admin:hunter2@db.example/studio", ["driver", "'asyncpg' is missing", "pip install"]),
    ("mysql://admin:hunter2@db.example/studio", ["driver", "'MySQLdb'", 'pip install "mysqlclient"']),
    ("postgresql://admin:hunter2@db.example:fivefour/studio", ["not a URL SQLAlchemy understands", "e.g."]),
    ("db.example/studio.db", ["not a URL SQLAlchemy understands", "sqlite:///"]),
])
def test_a_database_url_message_says_what_to_do_in_words(url, says):
    with pytest.raises(StoreError) as caught:
        Store(url)
    message = str(caught.value)
    assert all(words in message for words in says), message
    assert "hunter2" not in message and "Error" not in message


def test_the_demo_assistant_is_not_seeded_for_a_user_name_over_the_limit(store):
    too_long = Actor("u" * 129)
    with pytest.raises(StoreError, match="at most 128"):
        store.seed_demo_assistant(too_long)
    with store.engine.connect() as db:
        assert db.execute(text("SELECT count(*) FROM flags")).scalar() == 0
        assert db.execute(text("SELECT count(*) FROM assistants")).scalar() == 0


# --- files and older workspaces -------------------------------------------------------

def test_database_files_are_readable_by_their_owner_only(store, db_path):
    ada_thread(store, "hello")
    files = [db_path, db_path.with_name("studio.db-wal"), db_path.with_name("studio.db-shm")]
    assert all(f.exists() for f in files)
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}


def test_an_older_world_readable_database_is_made_private(tmp_path):
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    Store(f"sqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


OLD_SCHEMA = """
CREATE TABLE threads (id VARCHAR(64) PRIMARY KEY, owner VARCHAR(128) NOT NULL,
    assistant_id VARCHAR(64) NOT NULL, provider VARCHAR(32) NOT NULL, provider_ref VARCHAR(128),
    title VARCHAR(200) NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL);
CREATE TABLE messages (id VARCHAR(64) PRIMARY KEY, thread_id VARCHAR(64) REFERENCES threads (id)
    ON DELETE CASCADE, seq INTEGER NOT NULL, role VARCHAR(16) NOT NULL, content TEXT NOT NULL,
    extra JSON NOT NULL, created_at DATETIME NOT NULL);
INSERT INTO threads VALUES ('t1', 'ada', 'a', 'local', NULL, 'Old', '2026-01-01 10:00:00', '2026-01-01 10:00:00');
INSERT INTO messages VALUES ('m1', 't1', 0, 'user', 'one', '{}', '2026-01-01 10:00:00');
INSERT INTO messages VALUES ('m2', 't1', 1, 'assistant', 'two', '{}', '2026-01-01 10:00:01');
INSERT INTO messages VALUES ('m3', 't1', 1, 'user', 'three', '{}', '2026-01-01 10:00:02');
"""


def test_an_older_workspace_gets_the_unique_place_and_keeps_its_order(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:   # made before the (thread, seq) index, with a clash in it
        db.executescript(OLD_SCHEMA)
    store = Store(f"sqlite:///{path}")
    thread = store.get_thread("t1", ADA)
    assert [m.content for m in thread.messages] == ["one", "two", "three"]
    store.add_message(thread, Message("assistant", "four"), ADA)
    assert [m.content for m in store.get_thread("t1", ADA).messages] == ["one", "two", "three", "four"]
    with store.engine.begin() as db, pytest.raises(Exception, match="UNIQUE"):
        db.execute(text("INSERT INTO messages VALUES ('m9', 't1', 0, 'user', 'x', '{}', '2026-01-01')"))


# --- a chat turn when the store fails ---------------------------------------------------

class EchoProvider:
    name = "local"

    def __init__(self):
        self.seen = []

    def stream_reply(self, thread, spec):
        from studio.types import Done, TextDelta
        self.seen.append([m.content for m in thread.messages])
        yield TextDelta("echo")
        yield Done()


def test_a_turn_on_a_busy_workspace_keeps_the_message_and_retry_sends_it(db_path, monkeypatch):
    from studio.chat import needs_retry, run_turn
    from studio.types import ErrorEvent
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    store = Store(f"sqlite:///{db_path}")
    spec, provider = AssistantSpec(name="A", owner="ada"), EchoProvider()
    thread = Thread(owner="ada", assistant_id=spec.id, provider="local")
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        [event] = list(run_turn(store, provider, thread, spec, "words I typed", ADA))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert isinstance(event, ErrorEvent) and event.retryable and "busy" in event.message
    assert provider.seen == [] and needs_retry(thread) and thread.messages[-1].content == "words I typed"
    list(run_turn(store, provider, thread, spec, None, ADA))   # Retry
    stored = store.get_thread(thread.id, ADA)
    assert [(m.role, m.content) for m in stored.messages] == [("user", "words I typed"), ("assistant", "echo")]


def test_an_admin_cannot_continue_someone_elses_thread(store):
    from studio.chat import run_turn
    from studio.types import ErrorEvent
    thread = ada_thread(store, "hi")
    provider = EchoProvider()
    [event] = list(run_turn(store, provider, thread, AssistantSpec(name="A"), "from root", ROOT))
    assert isinstance(event, ErrorEvent) and not event.retryable and "belongs to another user" in event.message
    assert provider.seen == [] and [m.content for m in thread.messages] == ["hi"]
    assert [m.content for m in store.get_thread(thread.id, ADA).messages] == ["hi"]
