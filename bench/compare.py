"""How much do the playground's concurrency and the evaluation runner's pool save?

Starts the fake OpenAI server (tests/fakes) with a per-delta delay, then, in one run:

1. Panes: three remote panes (three models) sent one message through studio.playground,
   against each of those panes run alone, interleaved over several rounds. Prints the median
   wall time of the three together over the median time of the slowest pane alone (goal
   at most 1.3: the panes overlap instead of adding up).
2. Evaluation: 50 cases over two remote configurations through studio.evaluation.runner with
   the concurrency limit given (default 8), against the same run with a limit of 1 (one
   reply at a time). Prints both wall times and the speed-up.

    .venv/bin/python bench/compare.py [--rounds 5] [--delta-ms 20] [--cases 50] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studio.evaluation.runner import run_evaluation, runners_for   # noqa: E402
from studio.evaluation.runs import Case, Configuration, EvalRun, EvalStore, label_configurations   # noqa: E402
from studio.playground import Pane, PaneRun, run_panes   # noqa: E402
from studio.providers.openai_provider import OpenAIProvider   # noqa: E402
from studio.store import Actor, Store   # noqa: E402
from tests.fakes.fake_openai import FakeOpenAI   # noqa: E402

GOAL = 1.3
MODELS = ["gpt-4.1-mini", "gpt-4o", "gpt-5-mini"]
ACTOR = Actor("bench")
MESSAGE = "Thanks for the video, the sourdough tip about the fridge saved my weekend bake!"


def panes_once(provider: OpenAIProvider, models: list[str]) -> float:
    started = time.perf_counter()
    results = run_panes([PaneRun(Pane("openai", m), provider) for m in models], MESSAGE, ACTOR)
    elapsed = time.perf_counter() - started
    if any(r.error for r in results):
        raise SystemExit(f"a pane failed: {[r.error.message for r in results if r.error]}")
    return elapsed


def bench_panes(provider: OpenAIProvider, rounds: int) -> None:
    together, alone = [], {m: [] for m in MODELS}
    panes_once(provider, MODELS)   # warm-up: connections, first requests
    for i in range(rounds):
        order = MODELS if i % 2 == 0 else MODELS[::-1]
        together.append(panes_once(provider, MODELS))
        for model in order:
            alone[model].append(panes_once(provider, [model]))
    slowest = max(statistics.median(v) for v in alone.values())
    ratio = statistics.median(together) / slowest
    print(f"panes: 3 together {statistics.median(together):.3f} s; slowest alone {slowest:.3f} s "
          f"(each alone: {', '.join(f'{m} {statistics.median(v):.3f} s' for m, v in alone.items())})")
    print(f"panes: ratio together / slowest alone = {ratio:.2f} (goal <= {GOAL}) "
          f"{'OK' if ratio <= GOAL else 'MISSED'}")


def bench_evaluation(provider: OpenAIProvider, cases: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        evals = EvalStore(Store(f"sqlite:///{Path(folder) / 'bench.db'}").engine)
        data = [Case([{"role": "user", "content": f"{MESSAGE} (case {i})"}], "Glad it helped! -Sam", i + 1)
                for i in range(cases)]
        configs = label_configurations([Configuration("openai", MODELS[0]), Configuration("openai", MODELS[1])])
        times = {}
        for limit in (1, concurrency):
            run = evals.create(EvalRun("", "", f"limit {limit}", "bench", data, configs, concurrency=limit), ACTOR)
            runners, _ = runners_for(run, lambda name: provider, {})
            started = time.perf_counter()
            status = run_evaluation(evals, run, runners, ACTOR)
            times[limit] = time.perf_counter() - started
            failed = sum(r.failed for r in evals.results(run.id, ACTOR))
            if status != "finished" or failed:
                raise SystemExit(f"the evaluation with limit {limit} ended {status} with {failed} failed replies")
    print(f"evaluation: {cases} cases x 2 configurations: one at a time {times[1]:.2f} s; "
          f"{concurrency} at a time {times[concurrency]:.2f} s; speed-up {times[1] / times[concurrency]:.1f}x "
          f"(concurrency limit {concurrency})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delta-ms", type=float, default=20.0, help="delay before each streamed word")
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with FakeOpenAI(delta_delay=args.delta_ms / 1000) as fake:
        provider = OpenAIProvider("sk-bench", base_url=fake.base_url, default_model=MODELS[0])
        bench_panes(provider, args.rounds)
        bench_evaluation(provider, args.cases, args.concurrency)


if __name__ == "__main__":
    main()
