"""The assistants page: create, edit, duplicate, delete; and the provider settings panel."""

from studio.store import Store



def open_assistants(at):
    at.switch_page("pages/assistants.py")
    return at.run()


def store_of(workspace):
    return Store(f"sqlite:///{workspace / 'studio.db'}")


def test_edit_instructions_examples_and_tools_and_see_the_compiled_prompt(signed_in, workspace):
    at = open_assistants(signed_in)
    assert not at.exception, at.exception
    assert at.title[0].value == "Assistants"
    fields = {t.label: t for t in at.text_input}
    fields["Name"].input("Support bot")
    at.text_area[0].input("You answer support tickets.")
    at.multiselect[0].select("calculator")
    at.button(key="FormSubmitter:assistant_" + at.selectbox[0].value + "-Save").click()
    at.run()
    assert not at.exception, at.exception
    assert at.success[0].value == "Saved “Support bot”."
    [saved] = store_of(workspace).list_assistants("ada")
    assert saved.name == "Support bot" and saved.instructions == "You answer support tickets."
    assert saved.tools == ["calculator"] and len(saved.examples) == 3
    compiled = at.expander[0].code[0].value
    assert compiled.startswith("You answer support tickets.") and "Viewer comment:" in compiled


def test_a_nameless_assistant_is_not_saved_and_the_edits_stay(signed_in, workspace):
    at = open_assistants(signed_in)
    {t.label: t for t in at.text_input}["Name"].input("")
    at.text_area[0].input("Draft instructions I typed")
    at.button(key="FormSubmitter:assistant_" + at.selectbox[0].value + "-Save").click()
    at.run()
    assert "Give the assistant a name" in at.error[0].value
    assert at.text_area[0].value == "Draft instructions I typed"
    assert store_of(workspace).list_assistants("ada")[0].name == "Comment responder"


def test_new_duplicate_and_delete(signed_in, workspace):
    at = open_assistants(signed_in)
    next(b for b in at.button if b.label == "➕ New assistant").click()
    at.run()
    assert sorted(a.name for a in store_of(workspace).list_assistants("ada")) == [
        "Comment responder", "New assistant"]
    next(b for b in at.button if b.label == "Duplicate").click()
    at.run()
    names = sorted(a.name for a in store_of(workspace).list_assistants("ada"))
    assert names == ["Comment responder", "New assistant", "New assistant (copy)"]
    assert at.selectbox[0].format_func(at.selectbox[0].value) == "New assistant (copy)"
    next(b for b in at.button if b.label == "Yes, delete").click()
    at.run()
    assert sorted(a.name for a in store_of(workspace).list_assistants("ada")) == [
        "Comment responder", "New assistant"]


def test_the_chat_page_uses_the_picked_assistant(signed_in, workspace):
    store = store_of(workspace)
    store.duplicate_assistant(store.list_assistants("ada")[0].id, owner="ada")
    at = signed_in.run()
    copy = next(a for a in store.list_assistants("ada") if "copy" in a.name)
    at.sidebar.selectbox(key="assistant_id").set_value(copy.id).run()
    assert at.title[0].value == "Comment responder (copy)"


def test_switching_to_a_compatible_server_in_the_sidebar_keeps_the_key_out_of_the_workspace(
        signed_in, workspace, fake_server):
    fake_server.reset()
    at = signed_in
    at.sidebar.radio[0].set_value("compatible")
    fields = {t.label: t for t in at.sidebar.text_input}
    fields["Base URL"].input(fake_server.base_url)
    fields["API key (this session only)"].input("sk-typed-in-sidebar-42")
    fields["Default model"].input("gpt-4.1-mini")
    next(b for b in at.sidebar.button if b.label == "Apply").click()
    at.run()
    assert not at.exception, at.exception
    assert any("OpenAI-compatible server" in c.value for c in at.caption), ([c.value for c in at.caption], [e.value for e in at.error], at.sidebar.radio[0].value)
    at.chat_input[0].set_value("hello compatible").run()
    assert at.chat_message[1].markdown[-1].value == "You said: hello compatible"
    assert fake_server.last("/v1/chat/completions").headers["authorization"] == "Bearer sk-typed-in-sidebar-42"
    for path in workspace.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert b"sk-typed-in-sidebar-42" not in path.read_bytes(), path
