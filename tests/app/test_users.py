"""Each user has their own threads and assistants; an admin can see everyone's."""
from studio.auth import UserFile
from studio.store import Store
from studio.types import Message, Thread
from tests.app.conftest import login, new_app


def seed_thread(workspace, owner, text):
    store = Store(f"sqlite:///{workspace / 'studio.db'}")
    store.seed_demo_assistant(owner)
    spec = store.list_assistants(owner)[0]
    thread = store.create_thread(Thread(owner=owner, assistant_id=spec.id, provider="local"))
    store.add_message(thread, Message("user", text))


def test_users_see_their_own_threads_and_admins_can_see_all(workspace):
    users = UserFile(workspace / "users.yaml")
    users.add_user("ada", "correct-horse")        # first user: admin
    users.add_user("bob", "battery-staple")
    seed_thread(workspace, "ada", "Ada's question")
    seed_thread(workspace, "bob", "Bob's question")

    bob = login(new_app().run(), "bob", "battery-staple")
    labels = [b.label for b in bob.sidebar.button]
    assert "Bob's question" in labels and "Ada's question" not in labels
    assert not [t for t in bob.sidebar.toggle if t.label == "All users' threads"]
    assert [o for o in bob.sidebar.selectbox(key="assistant_id").options] == ["Comment responder"]

    ada = login(new_app().run(), "ada", "correct-horse")
    assert "Bob's question" not in [b.label for b in ada.sidebar.button]
    ada.sidebar.toggle(key="all_threads").set_value(True).run()
    assert "Bob's question · bob" in [b.label for b in ada.sidebar.button]
