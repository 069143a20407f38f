"""`python -m studio eval`: a held-out evaluation from the shell, saved in the workspace like
the page's (it shows under Playground → Evaluate) and written to a CSV."""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from studio.datasets.storage import DatasetStore
from studio.datasets.types import DatasetError
from studio.evaluation.metrics import Rule
from studio.evaluation.report import long_table, summaries, wide_table
from studio.evaluation.runner import (DEFAULT_CONCURRENCY, JUDGE_RUBRIC, cases_from_dataset, cases_from_file,
                                      run_evaluation, runners_for)
from studio.evaluation.runs import Configuration, EvalRun, EvalStore, Judge, label_configurations
from studio.models import load_catalog
from studio.providers import make_provider, settings_for
from studio.settings import PROVIDERS, Settings
from studio.store import Actor, Store


def eval_parser(commands) -> None:
    run = commands.add_parser("eval", help="evaluate models or assistants on held-out data, write a CSV")
    run.add_argument("dataset", help="a saved dataset's name (its validation split), or a chat JSONL or CSV path")
    run.add_argument("--provider", choices=PROVIDERS, help="where --model runs (default: the configured one)")
    run.add_argument("--model", dest="models", action="append", default=[], metavar="MODEL",
                     help="a model to evaluate (repeat for several)")
    run.add_argument("--assistant", dest="assistants", action="append", default=[], metavar="NAME",
                     help="a saved assistant to evaluate (repeat for several)")
    run.add_argument("--rule", default="", help=r"a regular expression every reply must match, e.g. '-Sam\s*$'")
    run.add_argument("--judge", default="", metavar="MODEL", help="score each reply 1-5 with this model")
    run.add_argument("--rubric", default=JUDGE_RUBRIC, help="the judge's rubric")
    run.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                     help=f"replies at a time for remote models (default {DEFAULT_CONCURRENCY})")
    run.add_argument("--wide", action="store_true", help="one line per row, a column per configuration")
    run.add_argument("-o", "--output", required=True, help="the CSV file to write")
    run.add_argument("--user", help="whose datasets and assistants (default: $STUDIO_USER or the first admin)")


def run_eval(args, settings: Settings, actor: Actor) -> int:
    store = Store(settings.database_url)
    provider = args.provider or settings.provider
    configurations = [Configuration(provider, model) for model in args.models]
    assistants = {a.id: a for a in store.list_assistants(actor)}
    by_name = {a.name.casefold(): a for a in assistants.values()}
    for name in args.assistants:
        spec = by_name.get(name.strip().casefold())
        if spec is None:
            raise ValueError(f"There is no assistant named {name!r}.")
        configurations.append(Configuration(spec.provider or settings.provider, assistant_id=spec.id,
                                            name=spec.name))
    if not 1 <= len(configurations) <= 8:
        raise ValueError("Name one to eight configurations with --model and --assistant.")
    if args.rule:
        Rule.parse(args.rule)      # a bad pattern is refused before anything runs
    if not 1 <= args.concurrency <= 32:
        raise ValueError("--concurrency must be between 1 and 32.")
    try:
        cases, source, problems = _cases(args.dataset, store, actor)
    except DatasetError as exc:
        raise ValueError(str(exc)) from None
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    judge = Judge(provider, args.judge, args.rubric) if args.judge else None
    evals = EvalStore(store.engine)
    run = EvalRun("", "", f"{source} · {datetime.now():%Y-%m-%d %H:%M}", source, cases,
                  label_configurations(configurations), rule=args.rule, judge=judge, concurrency=args.concurrency)

    def provider_for(name: str):
        return make_provider(settings_for(name, settings, settings))
    runners, judge_runner = runners_for(run, provider_for, assistants)
    run = evals.create(run, actor)
    print(f"Evaluating {len(cases)} case(s) x {len(configurations)} configuration(s) (run {run.id})…",
          file=sys.stderr)

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} replies", end="" if done < total else "\n", file=sys.stderr, flush=True)
    knowledge = _knowledge(settings, store)
    try:
        status = run_evaluation(evals, run, runners, actor, knowledge=knowledge, judge=judge_runner,
                                catalog=load_catalog(settings.data_dir), progress=progress)
    except KeyboardInterrupt:
        evals.request_cancel(run.id, actor)
        status = "cancelled"
        print("\ncancelled: the replies so far are saved and written.", file=sys.stderr)
    run, results = evals.get(run.id, actor), evals.results(run.id, actor)
    table = wide_table(run, results) if args.wide else long_table(run, results)
    Path(args.output).write_bytes(table.to_csv(index=False).encode("utf-8-sig"))
    for s in summaries(run, results):
        rule = "" if s.rule_passed is None else f" · rule passed {s.rule_passed}/{s.answered}"
        sim = "" if s.mean_similarity is None else f" · similarity {s.mean_similarity:.3f}"
        judged = "" if s.mean_judge_score is None else f" · judge {s.mean_judge_score:.2f}"
        print(f"{s.configuration}: {s.answered} answered, {s.failed} failed{rule}{sim}{judged}")
    print(f"Wrote {args.output} ({status}).", file=sys.stderr)
    return 0 if status == "finished" and not any(r.failed for r in results) else 1


def _cases(dataset: str, store: Store, actor: Actor):
    path = Path(dataset)
    if path.is_file():
        cases, problems = cases_from_file(path.read_bytes(), path.name)
        return cases, path.name, problems
    version = DatasetStore(store.engine).find(dataset, actor)
    if version is None:
        raise DatasetError(f"{dataset!r} is neither a file nor one of your saved datasets.")
    return cases_from_dataset(version), f"{version.name} v{version.version}", []


def _knowledge(settings: Settings, store: Store):
    from studio.knowledge.storage import KnowledgeStore
    return KnowledgeStore(store.engine, settings.data_dir / "knowledge")
