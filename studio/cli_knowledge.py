"""`python -m studio kb ...`: knowledge bases from the shell.

    kb create NAME [--chunk-size N --overlap N]
    kb add NAME FILE...        (indexes here, with progress on stderr; each file says how it went)
    kb list [--json]
    kb search NAME "query" [-k 5] [--mode hybrid|vector|keyword]
    kb attach NAME ASSISTANT [--detach]   (chat --assistant ASSISTANT then answers from it)
    kb delete NAME --yes
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from studio.knowledge.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE
from studio.knowledge.extract import ExtractionError
from studio.knowledge.indexer import index_file
from studio.knowledge.search import search
from studio.knowledge.storage import KnowledgeStore
from studio.settings import Settings
from studio.store import Actor, Store, StoreError


def knowledge_store(settings: Settings) -> KnowledgeStore:
    return KnowledgeStore(Store(settings.database_url).engine, settings.data_dir / "knowledge")


def kb_parser(commands) -> None:
    kb = commands.add_parser("kb", help="knowledge bases: create, add files, list, search")
    actions = kb.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new knowledge base")
    create.add_argument("name")
    create.add_argument("--chunk-size", type=int, default=DEFAULT_SIZE, help=f"tokens (default {DEFAULT_SIZE})")
    create.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help=f"tokens (default {DEFAULT_OVERLAP})")
    add = actions.add_parser("add", help="add and index files (PDF, DOCX, Markdown, text, HTML, CSV)")
    add.add_argument("name")
    add.add_argument("files", nargs="+", metavar="FILE")
    listing = actions.add_parser("list", help="the user's knowledge bases and their files")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    find = actions.add_parser("search", help="the best passages for a query, with their scores")
    find.add_argument("name")
    find.add_argument("query")
    find.add_argument("-k", type=int, default=5, help="how many passages (default 5)")
    find.add_argument("--mode", choices=("hybrid", "vector", "keyword"), default="hybrid")
    attach = actions.add_parser("attach", help="give an assistant this knowledge (its chat turns search it)")
    attach.add_argument("name")
    attach.add_argument("assistant", help="the assistant's name or id")
    attach.add_argument("--detach", action="store_true", help="take the knowledge base off the assistant")
    remove = actions.add_parser("delete", help="delete a knowledge base and its files")
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    for action in (create, add, listing, find, attach, remove):
        action.add_argument("--user", help="whose knowledge bases (default: $STUDIO_USER or the first admin)")


def run_kb(args, settings: Settings, default_user: str | None) -> int:
    actor = Actor(args.user or os.environ.get("STUDIO_USER") or default_user or "cli")
    store = knowledge_store(settings)
    if args.action == "create":
        base = store.create_base(args.name, actor, args.chunk_size, args.overlap)
        print(f"created {base.name} ({base.id})")
        return 0
    if args.action == "list":
        return _list(store, actor, args.json)
    base = store.find_base(args.name, actor)
    if base is None:
        raise StoreError(f'No knowledge base "{args.name}" for user {actor.name!r} (see: kb list).')
    if args.action == "add":
        return _add(store, base.id, args.files, actor)
    if args.action == "search":
        for n, p in enumerate(search(store, [base.id], args.query, k=args.k, mode=args.mode), 1):
            print(f"{n}. {p.where}  vector {p.vector:.3f}  keyword {p.keyword:.2f}  fused {p.fused:.4f}"
                  f"{'' if p.relevant else '  (not relevant)'}")
            print("   " + " ".join(p.text.split())[:300])
        return 0
    if args.action == "attach":
        return _attach(settings, base, args.assistant, actor, args.detach)
    if not args.yes:
        answer = input(f'Delete "{base.name}" and its files? [y/N] ')
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    store.delete_base(base.id, actor)
    print(f"deleted {base.name}")
    return 0


def _add(store: KnowledgeStore, base_id: str, files: list[str], actor: Actor) -> int:
    failures = 0
    for name in files:
        path = Path(name)
        try:
            record, known = store.add_file(base_id, path.name, path.read_bytes(), actor)
        except OSError as exc:
            print(f"{name}: cannot be read ({exc.strerror or exc})", file=sys.stderr)
            failures += 1
            continue
        except ExtractionError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failures += 1
            continue
        if known and record.status == "failed":
            store.retry(record.id, actor)            # added again: try again (e.g. after a fix or a crash)
        elif known and record.status == "ready":
            print(f"{name}: already in this knowledge base as {record.name}")
            continue
        if not store.claim(record.id):             # queued or stale files are taken; live ones are not
            print(f"{name}: being indexed by the app right now; see kb list")
            continue

        def progress(stage: str, done: int, total: int, shown=path.name) -> None:
            print(f"\r{shown}: {stage} {done}/{total}   ", end="", file=sys.stderr, flush=True)

        status = index_file(store, record.id, progress)
        print("", file=sys.stderr)
        record = store.get_file(record.id)
        if status == "ready":
            print(f"{name}: ready, {record.chunks} chunks")
        else:
            print(f"{name}: {status}{': ' + record.error if record and record.error else ''}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


def _attach(settings: Settings, base, assistant: str, actor: Actor, detach: bool) -> int:
    from dataclasses import replace
    store = Store(settings.database_url)
    spec = next((a for a in store.list_assistants(actor) if assistant in (a.id, a.name)), None)
    if spec is None:
        raise StoreError(f"No assistant {assistant!r} for user {actor.name!r} (see: assistants list).")
    bases = [b for b in spec.knowledge_bases if b != base.id] + ([] if detach else [base.id])
    store.save_assistant(replace(spec, knowledge_bases=bases), actor)
    print(f"{spec.name}: {'no longer uses' if detach else 'answers from'} {base.name}")
    return 0


def _list(store: KnowledgeStore, actor: Actor, as_json: bool) -> int:
    out = []
    for base in store.list_bases(actor):
        files = store.list_files(base.id, actor)
        out.append({"name": base.name, "id": base.id, "chunk_size": base.chunk_size,
                    "overlap": base.chunk_overlap,
                    "files": [{"name": f.name, "status": f.status, "chunks": f.chunks, "pages": f.pages,
                               "error": f.error} for f in files]})
    if as_json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    if not out:
        print("no knowledge bases (create one: kb create NAME)")
    for base in out:
        print(f"{base['name']}  ({len(base['files'])} files, chunks of {base['chunk_size']} tokens, "
              f"overlap {base['overlap']})")
        for f in base["files"]:
            print(f"  {f['name']}: {f['status']}" + (f", {f['chunks']} chunks" if f["status"] == "ready" else "")
                  + (f" ({f['error']})" if f["error"] else ""))
    return 0
