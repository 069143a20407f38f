"""Command line over the same engine and workspace as the app.

    python -m studio chat "MESSAGE" [--provider P] [--model M] [--assistant NAME] [--thread ID] [--user U]
    python -m studio models [--provider P]
    python -m studio users add NAME [--admin] | list | passwd NAME | unlock NAME | remove NAME [--yes]
    python -m studio assistants list | export NAME [-o FILE] | import FILE [--replace] [--user U]
    python -m studio dataset prepare FILE [--prompt-col C --response-col R ...] -o DIR | list | show NAME | delete NAME
    python -m studio finetune openai DATASET --model M [...] | list | status ID | cancel ID   (see cli_finetune.py)
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
from studio.accounts import OPERATOR, Accounts, AccountsUnavailable, UserError
from studio.chat import new_thread, run_turn
from studio.cli_eval import eval_parser, run_eval
from studio.cli_finetune import finetune_parser, run_finetune
from studio.cli_knowledge import kb_parser, knowledge_store, run_kb
from studio.finetune.jobs import LOCAL_BASE
from studio.providers import ProviderError, make_provider, settings_for
from studio.settings import PROVIDERS, Settings
from studio.store import Actor, Store, StoreError
from studio.knowledge.hosted_turns import join_syncs
from studio.types import CitationFound, Done, ErrorEvent, Notice, TextDelta, ToolCallFinished


def main(argv: list[str] | None = None) -> int:
    """The `python -m studio` command line; returns the exit status."""
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
    unlock = users_commands.add_parser("unlock", help="end the lock on a name after too many failed logins")
    unlock.add_argument("name")
    remove = users_commands.add_parser("remove", help="remove a user with their threads and assistants (asks first)")
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    _assistants_parser(commands)
    _dataset_parser(commands)
    finetune_parser(commands)
    kb_parser(commands)
    eval_parser(commands)

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
                "assistants": _assistants, "dataset": _dataset, "finetune": _finetune,
                "kb": _kb, "eval": _eval}[args.command](args, settings)
    except (ProviderError, UserError, AccountsUnavailable, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


# Arguments that are text for the workspace (file paths are left alone: any bytes name a file).
TEXT_ARGUMENTS = {"message": "message", "assistant": "--assistant", "thread": "--thread", "user": "--user",
                  "model": "--model", "name": "name", "rule": "--rule", "judge": "--judge", "models": "--model",
                  "assistants": "--assistant"}


def _check_text_arguments(args) -> None:
    """Refuse arguments that are not UTF-8 text (Python keeps such bytes as lone surrogates, which
    no database or server accepts), before anything is stored or sent."""
    for attribute, shown in TEXT_ARGUMENTS.items():
        value = getattr(args, attribute, None)
        value = " ".join(value) if isinstance(value, list) else value
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
    if args.model and not args.provider and not args.thread and args.model.startswith(f"{LOCAL_BASE}:ft:"):
        chosen = "local"   # a model fine-tuned here runs on the embedded model
    if args.model:
        spec = replace(spec, model=args.model)
    elif args.provider and args.provider != spec.provider:
        spec = replace(spec, model="")   # the assistant's model belongs to its own provider
    provider = make_provider(settings_for(chosen, settings, settings),
                             progress=lambda msg: print(msg, file=sys.stderr))
    thread = thread or new_thread(user, spec, provider)
    status = 0
    knowledge = knowledge_store(settings) if spec.knowledge_bases else None
    for event in run_turn(store, provider, thread, spec, args.message, actor, knowledge):
        if isinstance(event, TextDelta):
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, ToolCallFinished):
            call = event.call
            print(f"\n[{call.name}({json.dumps(call.arguments)}) -> {call.result}]", file=sys.stderr)
        elif isinstance(event, CitationFound):
            cited = event.citation
            how = {"matched": " (matched by wording)", "given": " (given to the model, not cited)"}.get(cited.how, "")
            print(f"\n[{cited.number}] {cited.source}{how}", file=sys.stderr)
        elif isinstance(event, Notice):
            print(f"note: {event.text}", file=sys.stderr)
        elif isinstance(event, ErrorEvent):
            print(f"\nerror: {event.message}", file=sys.stderr)
            status = 1
        elif isinstance(event, Done):
            sys.stdout.write("\n")
    if knowledge is not None and not join_syncs(120):   # a copy to OpenAI this turn started
        print("note: the copy of the knowledge base to OpenAI is still running; the next run goes on "
              "from where it stops.", file=sys.stderr)
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
    """The provider's models, then the user's models fine-tuned in this workspace for it."""
    from studio.finetune.jobs import JobStore
    models = make_provider(settings).list_models()
    user = os.environ.get("STUDIO_USER") or _first_admin(settings) or "cli"
    listed = {m.id for m in models}
    registry = JobStore(Store(settings.database_url).engine)
    tuned = [t for t in registry.list_models(Actor(user), provider=settings.provider) if t.id not in listed]
    if args.json:
        print(json.dumps([{"id": m.id, "shutdown_date": m.shutdown_date and m.shutdown_date.isoformat()}
                          for m in models] + [{"id": t.id, "fine_tuned_from": t.base_model, "job": t.job_id}
                                              for t in tuned], indent=2))
        return 0
    for m in models:
        retires = f"  (shuts down {m.shutdown_date.isoformat()})" if m.shutdown_date else ""
        print(f"{m.id}{retires}")
    for t in tuned:
        print(f"{t.id}  (fine-tuned from {t.base_model}, job {t.job_id})")
    return 0


def _accounts(settings: Settings, store: Store | None = None) -> Accounts:
    try:
        accounts = Accounts((store or Store(settings.database_url)).engine)
    except StoreError as exc:
        raise AccountsUnavailable(str(exc)) from exc
    accounts.import_user_file(settings.data_dir / "users.yaml")   # a workspace from before the database
    return accounts


def _users(args, settings: Settings) -> int:
    # Whoever runs these commands can read and write the workspace anyway: they act as OPERATOR.
    store = Store(settings.database_url)
    accounts = _accounts(settings, store)
    name = args.name.strip().lower() if getattr(args, "name", None) else ""
    if args.action == "list":
        for account in accounts.list_users():
            role = "admin" if account.admin else "user"
            print(f"{account.username}\t{role}\t{account.name}")
        return 0
    if args.action == "unlock":
        was_locked = accounts.unlock(name, actor=OPERATOR)
        print(f"Unlocked {name}: they can try to log in again now." if was_locked
              else f"{name} was not locked; nothing to do.")
        return 0
    if args.action == "remove":
        return _remove_user(accounts, store, name, args.yes)
    if args.action == "passwd" and accounts.get(name) is None:
        raise UserError(f"There is no user '{name}'.")
    password = _read_password(args.name)
    if args.action == "passwd":
        accounts.set_password(name, password, actor=OPERATOR)
        print(f"Changed the password of {name}; their other sessions must log in again.")
        return 0
    account = accounts.add_user(args.name, password, admin=True if args.admin else None, actor=OPERATOR)
    print(f"Added {account.username} ({'admin' if account.admin else 'user'}).")
    return 0


def _remove_user(accounts: Accounts, store: Store, name: str, yes: bool) -> int:
    accounts.check_removable(name)   # no question for a removal that would be refused
    owned = store.count_user_data(name, OPERATOR)
    print(f"Removing {name} also deletes their {owned}, for good.", file=sys.stderr)
    if not yes:
        print("Remove them? Type 'yes' to confirm: ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("Nothing was removed.", file=sys.stderr)
            return 1
    deleted = accounts.remove_user(name, actor=OPERATOR, store=store)
    print(f"Removed {name} and their {deleted}.")
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


def _kb(args, settings: Settings) -> int:
    return run_kb(args, settings, _first_admin(settings))


def _eval(args, settings: Settings) -> int:
    return run_eval(args, settings, Actor(args.user or os.environ.get("STUDIO_USER") or _first_admin(settings)
                                          or "cli"))


def _finetune(args, settings: Settings) -> int:
    return run_finetune(args, settings, Actor(getattr(args, "user", None) or os.environ.get("STUDIO_USER")
                                              or _first_admin(settings) or "cli"))


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


# --- dataset: prepare fine-tuning data, list and show saved datasets ------------------

def _dataset_parser(commands) -> None:
    from studio.datasets.types import DEFAULT_MODEL, DEFAULT_VALIDATION_FRACTION
    dataset = commands.add_parser("dataset", help="prepare fine-tuning data from a CSV, Excel or chat JSONL file")
    actions = dataset.add_subparsers(dest="action", required=True)
    prepare = actions.add_parser("prepare", help="check a file, write train/validation JSONL (and open formats), "
                                 "save it as a dataset")
    prepare.add_argument("file", metavar="FILE", help="a .csv/.tsv, .xlsx or chat .jsonl file")
    prepare.add_argument("--prompt-col", metavar="C", help="the prompt column (default: guessed from the names)")
    prepare.add_argument("--response-col", metavar="R", help="the response column (default: guessed)")
    system = prepare.add_mutually_exclusive_group()
    system.add_argument("--system", metavar="TEXT", help="a system prompt put first in every example")
    system.add_argument("--system-from-assistant", metavar="NAME",
                        help="use this assistant's instructions and few-shot examples, as the chat sends them")
    prepare.add_argument("--suffix", metavar="S", default="", help='appended to every response, e.g. " -Sam"')
    prepare.add_argument("--val", type=float, default=DEFAULT_VALIDATION_FRACTION, metavar="FRACTION",
                         help=f"validation fraction (default {DEFAULT_VALIDATION_FRACTION})")
    prepare.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    prepare.add_argument("--name", help="save under this dataset name (default: the file's name)")
    prepare.add_argument("--model", default=DEFAULT_MODEL,
                         help=f"base model for token counts, limits and price (default {DEFAULT_MODEL})")
    prepare.add_argument("--epochs", type=int, help="epochs for the estimate (default: automatic)")
    prepare.add_argument("--validation-file", metavar="JSONL",
                         help="with a chat JSONL FILE: its validation examples (the split is then as given)")
    prepare.add_argument("--exclude", metavar="ROWS", default="", help="rows to leave out, e.g. 4,7,10-12")
    prepare.add_argument("--sheet", help="Excel: the sheet to read (default: the first)")
    prepare.add_argument("--no-header", action="store_true", help="the table's first row is data, not names")
    prepare.add_argument("--keep-whitespace", action="store_true", help="do not trim spaces around cells")
    prepare.add_argument("-o", "--output", metavar="DIR", required=True, help="folder for the files")
    prepare.add_argument("--no-save", action="store_true", help="write the files only; save nothing in the workspace")
    listing = actions.add_parser("list", help="the user's saved datasets")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = actions.add_parser("show", help="a saved dataset's summary, report and first examples")
    show.add_argument("name", help="the dataset's name or id")
    show.add_argument("--version", type=int, help="a version number (default: the latest)")
    show.add_argument("--examples", type=int, default=3, metavar="N", help="JSONL lines to print (default 3)")
    remove = actions.add_parser("delete", help="delete a saved dataset (or one --version of it)")
    remove.add_argument("name", help="the dataset's name or id")
    remove.add_argument("--version", type=int, help="delete only this version")
    for action in (prepare, listing, show, remove):
        action.add_argument("--user", help="whose datasets (default: $STUDIO_USER or the first admin)")


def _dataset(args, settings: Settings) -> int:
    from studio.datasets import DatasetError
    try:
        if args.action == "prepare":
            return _dataset_prepare(args, settings)
        store = Store(settings.database_url)
        actor = Actor(args.user or os.environ.get("STUDIO_USER") or _first_admin(settings) or "cli")
        if args.action == "list":
            return _dataset_list(store, actor, args.json)
        if args.action == "show":
            return _dataset_show(store, actor, args.name, args.version, args.examples)
        return _dataset_delete(store, actor, args.name, args.version)
    except DatasetError as exc:
        raise ValueError(str(exc)) from None


def _parse_rows(text: str) -> frozenset[int]:
    rows: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            first, _, last = part.partition("-")
            start, end = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"--exclude takes row numbers like 4,7,10-12, not {part!r}.") from None
        if start < 1 or end < start or end - start > 10_000_000:
            raise ValueError(f"--exclude: {part!r} is not a range of rows.")
        rows.update(range(start, end + 1))
    return frozenset(rows)


def _read_dataset_file(path: str) -> bytes:
    from studio.datasets import max_upload_bytes
    limit = max_upload_bytes()
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    return data


def _dataset_prepare(args, settings: Settings) -> int:
    from studio.datasets import (PrepareOptions, guess_columns, prepare, read_chat_jsonl, read_source,
                                 system_prompt_from_assistant, write_files)
    from studio.datasets.export import describe
    from studio.datasets.pricing import load_price_table
    from studio.datasets.report import issue_lines, summary_lines
    from studio.datasets.storage import DatasetStore
    from studio.datasets.types import ChatSource

    data = _read_dataset_file(args.file)
    source = read_source(data, Path(args.file).name, sheet=args.sheet, has_header=not args.no_header)
    validation = None
    if args.validation_file:
        validation = read_chat_jsonl(_read_dataset_file(args.validation_file), Path(args.validation_file).name,
                                     source_file="validation")
    user = args.user or os.environ.get("STUDIO_USER") or _first_admin(settings) or "cli"
    actor = Actor(user)
    store = None
    system, system_from = (args.system or "").strip(), "typed" if args.system else ""
    if args.system_from_assistant:
        store = Store(settings.database_url)
        store.seed_demo_assistant(actor)   # as `chat` does: a new user has the demo assistant
        spec = _assistant_named(store, actor, args.system_from_assistant)
        system, system_from = system_prompt_from_assistant(spec), f"assistant:{spec.name}"
    prompt_col, response_col = args.prompt_col, args.response_col
    print(f"Read {Path(args.file).name} ({source.kind}). " + " ".join(source.notes))
    if not isinstance(source, ChatSource):
        guess = guess_columns(source)
        prompt_col, response_col = prompt_col or guess.prompt, response_col or guess.response
        ignored = [c for c in source.columns if c not in (prompt_col, response_col)]
        print(f"Columns: prompt = {prompt_col}, response = {response_col}"
              + (f" (ignored: {', '.join(ignored)})" if ignored else ""))
    elif args.system or args.system_from_assistant or args.suffix:
        print("A chat JSONL is imported as it is: --system, --system-from-assistant and --suffix do not apply.")
    options = PrepareOptions(prompt_column=prompt_col or "", response_column=response_col or "",
                             system_prompt=system, system_from=system_from, suffix=args.suffix,
                             validation_fraction=args.val, seed=args.seed, model=args.model,
                             exclude_rows=_parse_rows(args.exclude), strip_whitespace=not args.keep_whitespace,
                             epochs=args.epochs)
    if system_from:
        print(f"System prompt: {'from assistant ' + repr(system_from[10:]) if args.system_from_assistant else 'typed'}"
              f" ({len(system):,} characters)")
    prepared = prepare(source, options, validation_source=validation, model_dir=settings.model_dir,
                       data_dir=settings.data_dir)
    for line in summary_lines(prepared):
        print(line)
    problems = issue_lines(prepared)
    print("Problems:" if problems else "Problems: none")
    for line in problems:
        print(f"  {line}")
    provider = load_price_table(settings.data_dir).price_for(args.model).provider
    blocking = prepared.blocking(provider)
    if blocking:
        print(f"error: not written: {blocking[0].message}", file=sys.stderr)
        return 1
    name = " ".join((args.name or Path(args.file).stem).split())
    saved = None
    if not args.no_save:
        store = store or Store(settings.database_url)
        saved = DatasetStore(store.engine).save_version(name, prepared, actor, source_bytes=data)
    written = write_files(prepared, Path(args.output),
                          describe(prepared, saved.name if saved else name, saved.version if saved else None))
    print("Wrote " + ", ".join(str(p) for p in written))
    if saved:
        print(f"Saved as {saved.name!r} version {saved.version} for {actor.name} ({saved.id}).")
    return 0


def _dataset_list(store: Store, actor: Actor, as_json: bool) -> int:
    from studio.datasets.storage import DatasetStore
    found = DatasetStore(store.engine).list_datasets(actor)
    if as_json:
        print(json.dumps([{"id": d.id, "name": d.name, "versions": d.versions, "latest_version": d.latest_version,
                           "updated_at": d.updated_at.isoformat()} for d in found], indent=2, ensure_ascii=False))
        return 0
    if not found:
        print(f"User {actor.name!r} has no saved datasets.", file=sys.stderr)
    for d in found:
        print(f"{d.id}  {d.name}  (version {d.latest_version}; {d.versions} saved)  {d.updated_at:%Y-%m-%d %H:%M}")
    return 0


def _dataset_version(store: Store, actor: Actor, name: str, version: int | None):
    from studio.datasets.storage import DatasetStore
    datasets = DatasetStore(store.engine)
    found = datasets.find(name, actor, version)
    if found is None:
        which = f" version {version}" if version is not None else ""
        raise ValueError(f"No dataset {name!r}{which} for user {actor.name!r} (see `python -m studio dataset list`).")
    return datasets, found


def _dataset_show(store: Store, actor: Actor, name: str, version: int | None, examples: int) -> int:
    from studio.datasets import openai_jsonl
    from studio.datasets.report import issue_lines, summary_lines
    _datasets, found = _dataset_version(store, actor, name, version)
    prepared = found.prepared
    print(f"{found.name} version {found.version} ({found.id}), "
          f"saved {found.created_at:%Y-%m-%d %H:%M} by {found.owner}")
    print(f"Source: {found.source_name} ({found.source_kind}, sha256 {found.source_sha256[:12]}…)")
    options = found.options
    if prepared.source_kind != "jsonl":
        print(f"Columns: prompt = {options.prompt_column}, response = {options.response_column}; "
              f"suffix {options.suffix!r}; system prompt: {options.system_from or 'none'}")
    for line in summary_lines(prepared):
        print(line)
    for line in issue_lines(prepared):
        print(f"  {line}")
    if examples > 0:
        print(f"First {min(examples, len(prepared.train))} training lines:")
        sys.stdout.write(openai_jsonl(prepared.train[:examples]).decode("utf-8"))
    return 0


def _dataset_delete(store: Store, actor: Actor, name: str, version: int | None) -> int:
    datasets, found = _dataset_version(store, actor, name, version)
    if version is None:
        datasets.delete_dataset(found.dataset_id, actor)
        print(f"Deleted the dataset {found.name!r} and all its versions.")
    else:
        datasets.delete_version(found.id, actor)
        print(f"Deleted version {found.version} of {found.name!r}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
