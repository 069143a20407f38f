"""Command line over the same engine and workspace as the app.

    python -m studio chat "MESSAGE" [--provider P] [--model M] [--assistant NAME] [--thread ID] [--user U]
    python -m studio models [--provider P]
    python -m studio users add NAME [--admin]
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from dataclasses import replace

from studio.auth import UserError, UserFile
from studio.chat import new_thread, run_turn
from studio.providers import ProviderError, make_provider, settings_for
from studio.settings import PROVIDERS, Settings
from studio.store import Store
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

    args = parser.parse_args(argv)
    try:
        settings = Settings.load()
        if getattr(args, "provider", None):
            settings = settings.with_overrides(provider=args.provider)
        if getattr(args, "model", None):
            settings = settings.with_overrides(model=args.model)
        settings.ensure_data_dir()
        return {"chat": _chat, "models": _models, "users": _users}[args.command](args, settings)
    except (ProviderError, UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _chat(args, settings: Settings) -> int:
    store = Store(settings.database_url)
    user = args.user or os.environ.get("STUDIO_USER") or _first_admin(settings) or "cli"
    store.seed_demo_assistant(user)
    if args.thread:
        # A thread goes on with its own assistant, on the provider it started on.
        thread = store.get_thread(args.thread)
        if thread is None or thread.owner != user:
            raise ProviderError(f"No thread {args.thread!r} for user {user!r}.")
        spec = store.get_assistant(thread.assistant_id)
        if spec is None:
            raise ProviderError("This thread's assistant was deleted; the thread can be read, not continued.")
        if args.provider and args.provider != thread.provider:
            raise ProviderError(f"Thread {thread.id} runs on {thread.provider}; start a new thread "
                                f"to use {args.provider}.")
        chosen = thread.provider
    else:
        spec = _pick_assistant(store, user, args.assistant)
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
    for event in run_turn(store, provider, thread, spec, args.message):
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
    print(f"thread: {thread.id}", file=sys.stderr)
    return status


def _pick_assistant(store: Store, user: str, name: str | None):
    assistants = store.list_assistants(user)
    if name:
        assistants = [a for a in assistants if a.name.lower() == name.lower()]
        if not assistants:
            raise ProviderError(f"No assistant named {name!r} for user {user!r}.")
    if not assistants:
        raise ProviderError(f"User {user!r} has no assistants; create one in the app first.")
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


def _users(args, settings: Settings) -> int:
    users = UserFile(settings.data_dir / "users.yaml")
    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Repeat password: ") != password:
            raise UserError("The two passwords differ.")
    else:   # scripts pipe the password in
        password = sys.stdin.readline().rstrip("\n")
    users.add_user(args.name, password, admin=True if args.admin else None)
    role = "admin" if users.is_admin(args.name.strip().lower()) else "user"
    print(f"Added {args.name.strip().lower()} ({role}).")
    return 0


def _first_admin(settings: Settings) -> str | None:
    users = UserFile(settings.data_dir / "users.yaml")
    if not users.path.exists():
        return None
    return next((u for u in users.usernames() if users.is_admin(u)), None)


if __name__ == "__main__":
    sys.exit(main())
