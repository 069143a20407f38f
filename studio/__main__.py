"""Command line over the same engine and workspace as the app.

    python -m studio chat "MESSAGE" [--provider P] [--model M] [--assistant NAME] [--thread ID] [--user U]
    python -m studio models [--provider P]
    python -m studio users add NAME [--admin] | list | passwd NAME | remove NAME
    python -m studio assistants list | export NAME [-o FILE] | import FILE [--replace] [--user U]
"""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from studio.assistants import (MAX_FILE_BYTES, AssistantClash, assistant_file_bytes, import_assistant,
                               read_assistant_file, same_name)
from studio.accounts import Accounts, AccountsUnavailable, UserError
from studio.chat import new_thread, run_turn
from studio.providers import ProviderError, make_provider, settings_for
from studio.settings import PROVIDERS, Settings
from studio.store import Actor, Store, StoreError
from studio.types import Done, ErrorEvent, TextDelta, ToolCallFinished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio", description="Assistant Studio from the shell.")
    commands = parser.add_subparsers(dest="command", required=True)

    chat = commands.add_parser("chat", help="send a message and stream the reply to stdout")
    chat.add_argument("message")
    chat.add_argument("--provider", choices=PROVIDERS)
    chat.add_argument("--model")
    chat.add_argument("--assistant", help="assistant name (default: the first one)")
    chat.add_argument("--thread", help="continue this thread id (printed to stderr after each reply)")
    chat.add_argument("--user", help="whose assistants and threads (default: $STUDIO_USER or the first admin)")

    models = commands.add_parser("models", help="list the models a provider offers")
    models.add_argument("--provider", choices=PROVIDERS)
    models.add_argument("--json", action="store_true", help="machine-readable output")

    users = commands.add_parser("users", help="manage login accounts")
    users_commands = users.add_subparsers(dest="action", required=True)
    add = users_commands.add_parser("add", help="add a user (prompts for the password)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="give the admin role (the first user always has it)")
    users_commands.add_parser("list", help="list the users and their roles")
    passwd = users_commands.add_parser("passwd", help="set a user's password (prompts for it)")
    passwd.add_argument("name")
    remove = users_commands.add_parser("remove", help="remove a user (their threads stay in the store)")
    remove.add_argument("name")

    _assistants_parser(commands)

    args = parser.parse_args(argv)
    _log_briefly()
    try:
        _check_text_arguments(args)
        settings = Settings.load()
        if getattr(args, "provider", None):
            settings = settings.with_overrides(provider=args.provider)
        if getattr(args, "model", None):
            settings = settings.with_overrides(model=args.model)
        settings.ensure_data_dir()
        return {"chat": _chat, "models": _models, "users": _users,
                "assistants": _assistants}[args.command](args, settings)
    except (ProviderError, UserError, AccountsUnavailable, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


# Arguments that are text for the workspace (file paths are left alone: any bytes name a file).
TEXT_ARGUMENTS = {"message": "message", "assistant": "--assistant", "thread": "--thread", "user": "--user",
                  "model": "--model", "name": "name"}


def _check_text_arguments(args) -> None:
    """Refuse arguments that are not UTF-8 text (Python keeps such bytes as lone surrogates, which
    no database or server accepts), before anything is stored or sent."""
    for attribute, shown in TEXT_ARGUMENTS.items():
        value = getattr(args, attribute, None)
        if isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value):
            raise ValueError(f"The {shown} argument is not valid UTF-8 text (is the terminal set to UTF-8?). "
                             "Nothing was sent or changed.")


class _OneLine(logging.Formatter):
    # The engine logs why something failed with a traceback, for a server's log; in a terminal
    # one line with the reason is what helps, and the error after it says what to do.
    def format(self, record: logging.LogRecord) -> str:
        text = f"{'details' if record.levelno >= logging.ERROR else 'warning'}: {record.getMessage()}"
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            text += f" ({reason[0]})" if reason else f" ({type(exc).__name__})"
        return text


def _log_briefly() -> None:
    root = logging.getLogger()
    if root.handlers:   # configured by whoever runs main() (e.g. a test runner): leave it alone
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def _chat(args, settings: Settings) -> int:
    store = Store(settings.database_url)
    user = args.user or os.environ.get("STUDIO_USER") or _first_admin(settings) or "cli"
    actor = Actor(user)
    store.seed_demo_assistant(actor)
    if args.thread:
        # A thread goes on with its own assistant, on the provider it started on.
        thread = store.get_thread(args.thread, actor)
        if thread is None:
            raise ProviderError(f"No thread {args.thread!r} for user {user!r}.")
        spec = store.get_assistant(thread.assistant_id, actor)
        if spec is None:
            raise ProviderError("This thread's assistant was deleted; the thread can be read, not continued.")
        if args.provider and args.provider != thread.provider:
            raise ProviderError(f"Thread {thread.id} runs on {thread.provider}; start a new thread "
                                f"to use {args.provider}.")
        chosen = thread.provider
    else:
        spec = _pick_assistant(store, actor, args.assistant)
        chosen = args.provider or spec.provider or settings.provider
        thread = None
    if args.model:
        spec = replace(spec, model=args.model)
    elif args.provider and args.provider != spec.provider:
        spec = replace(spec, model="")   # the assistant's model belongs to its own provider
    provider = make_provider(settings_for(chosen, settings, settings),
                             progress=lambda msg: print(msg, file=sys.stderr))
    thread = thread or new_thread(user, spec, provider)
    status = 0
    for event in run_turn(store, provider, thread, spec, args.message, actor):
        if isinstance(event, TextDelta):
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, ToolCallFinished):
            call = event.call
            print(f"\n[{call.name}({json.dumps(call.arguments)}) -> {call.result}]", file=sys.stderr)
        elif isinstance(event, ErrorEvent):
            print(f"\nerror: {event.message}", file=sys.stderr)
            status = 1
        elif isinstance(event, Done):
            sys.stdout.write("\n")
    if _stored(store, thread):   # a refused first message (empty, say) leaves no thread to continue
        print(f"thread: {thread.id}", file=sys.stderr)
    return status


def _stored(store: Store, thread) -> bool:
    try:
        return store.has_thread(thread.id)
    except StoreError:
        return False


def _pick_assistant(store: Store, actor: Actor, name: str | None):
    assistants = store.list_assistants(actor)
    if name:
        assistants = [a for a in assistants if a.name.lower() == name.lower()]
        if not assistants:
            raise ProviderError(f"No assistant named {name!r} for user {actor.name!r}.")
    if not assistants:
        raise ProviderError(f"User {actor.name!r} has no assistants; create one in the app first.")
    return assistants[0]


def _models(args, settings: Settings) -> int:
    models = make_provider(settings).list_models()
    if args.json:
        print(json.dumps([{"id": m.id, "shutdown_date": m.shutdown_date and m.shutdown_date.isoformat()}
                          for m in models], indent=2))
        return 0
    for m in models:
        retires = f"  (shuts down {m.shutdown_date.isoformat()})" if m.shutdown_date else ""
        print(f"{m.id}{retires}")
    return 0


def _accounts(settings: Settings) -> Accounts:
    try:
        accounts = Accounts(Store(settings.database_url).engine)
    except StoreError as exc:
        raise AccountsUnavailable(str(exc)) from exc
    accounts.import_user_file(settings.data_dir / "users.yaml")   # a workspace from before the database
    return accounts


def _users(args, settings: Settings) -> int:
    accounts = _accounts(settings)
    if args.action == "list":
        for account in accounts.list_users():
            role = "admin" if account.admin else "user"
            print(f"{account.username}\t{role}\t{account.name}")
        return 0
    if args.action == "remove":
        accounts.remove_user(args.name)
        print(f"Removed {args.name.strip().lower()}.")
        return 0
    if args.action == "passwd" and accounts.get(args.name) is None:
        raise UserError(f"There is no user '{args.name.strip().lower()}'.")
    password = _read_password(args.name)
    if args.action == "passwd":
        accounts.set_password(args.name, password)
        print(f"Changed the password of {args.name.strip().lower()}; their other sessions must log in again.")
        return 0
    account = accounts.add_user(args.name, password, admin=True if args.admin else None)
    print(f"Added {account.username} ({'admin' if account.admin else 'user'}).")
    return 0


def _read_password(name: str) -> str:
    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Repeat password: ") != password:
            raise UserError("The two passwords differ.")
        return password
    return sys.stdin.readline().rstrip("\r\n")   # scripts pipe the password in


def _first_admin(settings: Settings) -> str | None:
    return next((a.username for a in _accounts(settings).list_users() if a.admin), None)


# --- assistants: list, export and import assistant files ------------------------

def _assistants_parser(commands) -> None:
    assistants = commands.add_parser("assistants", help="list assistants; export or import one as a JSON file")
    actions = assistants.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the user's assistants")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    export = actions.add_parser("export", help="write one assistant as a JSON file (stdout by default)")
    export.add_argument("name", help="the assistant's name or id")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    load = actions.add_parser("import", help="add the assistant in a JSON file (- reads stdin)")
    load.add_argument("file", metavar="FILE")
    load.add_argument("--replace", action="store_true",
                      help="overwrite the user's assistant of the same name instead of failing")
    for action in (listing, export, load):
        action.add_argument("--user", help="whose assistants (default: $STUDIO_USER or the first admin)")


def _assistants(args, settings: Settings) -> int:
    # Read and check the file before touching the workspace: a bad file changes nothing.
    imported = read_assistant_file(_read_limited(args.file), owner="") if args.action == "import" else None
    actor = Actor(args.user or os.environ.get("STUDIO_USER") or _first_admin(settings) or "cli")
    try:
        store = Store(settings.database_url)
        if args.action == "list":
            return _list_assistants(store, actor, as_json=args.json)
        if args.action == "export":
            return _export_assistant(store, actor, args.name, args.output)
        return _import_assistant(store, actor, imported, replace_existing=args.replace)
    except StoreError as exc:
        raise ValueError(str(exc)) from None


def _list_assistants(store: Store, actor: Actor, as_json: bool) -> int:
    specs = store.list_assistants(actor)
    if as_json:
        print(json.dumps([{"id": s.id, "name": s.name, "provider": s.provider, "model": s.model,
                           "tools": s.tools} for s in specs], indent=2, ensure_ascii=False))
        return 0
    if not specs:
        print(f"User {actor.name!r} has no assistants.", file=sys.stderr)
    for s in specs:
        runs_on = " / ".join(x for x in (s.provider, s.model) if x) or "session default"
        tools = f"  tools: {', '.join(s.tools)}" if s.tools else ""
        print(f"{s.id}  {s.name}  ({runs_on}){tools}")
    return 0


def _export_assistant(store: Store, actor: Actor, name_or_id: str, output: str | None) -> int:
    spec = _assistant_named(store, actor, name_or_id)
    data = assistant_file_bytes(spec)
    if not output:
        sys.stdout.write(data.decode("utf-8"))
        return 0
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise ValueError(f"Cannot write {output}: {exc.strerror or exc}.") from None
    print(f"Exported {spec.name!r} to {output}.", file=sys.stderr)
    return 0


def _import_assistant(store: Store, actor: Actor, spec, replace_existing: bool) -> int:
    before = {a.id for a in store.list_assistants(actor)}
    try:
        saved = import_assistant(store, spec, actor, on_clash="replace" if replace_existing else "fail")
    except AssistantClash as clash:
        raise ValueError(f"{actor.name!r} already has an assistant named {clash.existing.name!r}; nothing "
                         "was imported. Pass --replace to overwrite it, or rename the assistant in the "
                         "file.") from None
    print(f"{'Replaced' if saved.id in before else 'Imported'} {saved.name!r} for {actor.name} ({saved.id}).")
    return 0


def _assistant_named(store: Store, actor: Actor, name_or_id: str):
    specs = store.list_assistants(actor)
    by_id = [s for s in specs if s.id == name_or_id]
    named = by_id or [s for s in specs if same_name(s.name, name_or_id)]
    if not named:
        raise ValueError(f"No assistant named {name_or_id!r} for user {actor.name!r} "
                         "(see `python -m studio assistants list`).")
    if len(named) > 1:
        raise ValueError(f"{len(named)} assistants are named {name_or_id!r}; give one of their ids instead: "
                         + ", ".join(s.id for s in named))
    return named[0]


def _read_limited(file: str) -> bytes:
    # Read one byte past the limit, so a huge file is refused without reading all of it.
    try:
        if file == "-":
            return sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        with open(file, "rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"Cannot read {file}: {exc.strerror or exc}.") from None


if __name__ == "__main__":
    sys.exit(main())
