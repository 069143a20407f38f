"""Held-out evaluation against the fake OpenAI server: cases from a saved dataset's validation
split or a file, every configuration's replies scored and saved one by one, a rate limit that
outlasts the retries marks rows failed and a second run redoes only those, cancel, a judge,
and the CSV/JSONL exports."""
from __future__ import annotations

import io
import time
import json
from pathlib import Path

import pandas as pd
import pytest

from studio.datasets import PrepareOptions, prepare, read_source
from studio.datasets.storage import DatasetStore
from studio.datasets.types import DatasetError
from studio.evaluation import runner as runner_module
from studio.evaluation.report import summaries, to_csv, to_jsonl, wide_table
from studio.evaluation.runner import (cases_from_dataset, cases_from_file, parse_judgement, run_evaluation,
                                      runners_for)
from studio.evaluation.runs import (CANCELLED, FINISHED, Case, Configuration, EvalRun, EvalStore, Judge,
                                    label_configurations)
from studio.models import load_catalog
from studio.providers.openai_provider import OpenAIProvider
from studio.store import Actor
from tests.fakes.fake_openai.errors import rate_limited

ROOT = Path(__file__).resolve().parents[2]
ADA = Actor("ada")


@pytest.fixture
def evals(store) -> EvalStore:
    return EvalStore(store.engine)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(runner_module, "RETRY_PAUSE_S", 0.01)


def provider_for(fake):
    made = OpenAIProvider("sk-test-eval", base_url=fake.base_url, default_model="gpt-5-mini")
    return lambda name: made


def new_run(evals, cases, configurations, rule="", judge=None, concurrency=4) -> EvalRun:
    return evals.create(EvalRun("", "", "test run", "cases", cases, label_configurations(configurations), rule=rule,
                                judge=judge, concurrency=concurrency), ADA)


CASES = [Case([{"role": "system", "content": "Reply as Sam."}, {"role": "user", "content": f"question {i}"}],
              f"You said: question {i} -Sam", row=i + 2) for i in range(6)]
TWO = [Configuration("openai", "gpt-4.1-mini"), Configuration("openai", "gpt-4o", system_prompt="Be brief.")]


def test_a_run_answers_every_case_with_every_configuration_and_scores_it(fake, evals):
    run = new_run(evals, CASES, TWO, rule=r"-Sam\s*$")
    runners, judge = runners_for(run, provider_for(fake), {})
    seen = []
    status = run_evaluation(evals, run, runners, ADA, catalog=load_catalog(),
                            progress=lambda done, total: seen.append((done, total)))
    assert status == FINISHED and seen[-1] == (12, 12)
    results = evals.results(run.id, ADA)
    assert len(results) == 12 and not any(r.failed for r in results)
    first = results[0]
    assert first.reply == "You said: question 0" and first.rule_passed is False
    assert first.length_ratio == pytest.approx(4 / 5)
    assert first.similarity > 0.8 and first.cost > 0
    # a bare model with no system prompt of its own keeps the case's; one with its own uses that
    bodies = fake.requests_to("/v1/responses")
    by_model = {b.body["model"]: b.body.get("instructions") for b in bodies}
    assert by_model == {"gpt-4.1-mini": "Reply as Sam.", "gpt-4o": "Be brief."}
    # the conversations an evaluation makes on OpenAI are deleted again
    assert fake.conversations == {}
    summary = summaries(evals.get(run.id, ADA), results)
    assert [s.answered for s in summary] == [6, 6] and summary[0].rule_passed == 0   # none ends with -Sam
    assert summary[0].configuration.startswith("A · gpt-4.1-mini")


def test_a_rate_limit_that_outlasts_the_retries_marks_rows_and_a_second_run_redoes_only_them(fake, evals):
    limited = {"on": True}
    fake.refuse = lambda req: (rate_limited("gpt-4o", 1) if limited["on"] and req.path == "/v1/responses"
                               and "question 3" in json.dumps(req.body) else None)
    run = new_run(evals, CASES, TWO[:1])
    runners, _ = runners_for(run, provider_for(fake), {})
    run_evaluation(evals, run, runners, ADA)
    results = evals.results(run.id, ADA)
    failed = [r for r in results if r.failed]
    assert [r.case_no for r in failed] == [3]
    assert failed[0].attempts == runner_module.MAX_ATTEMPTS and "rate limiting" in failed[0].error
    limited["on"] = False
    before = fake.count("/v1/responses")
    assert run_evaluation(evals, run, runners, ADA) == FINISHED
    assert fake.count("/v1/responses") == before + 1          # only the failed row again
    assert not any(r.failed for r in evals.results(run.id, ADA))


def test_cancel_stops_the_run_and_keeps_what_was_answered(fake, evals):
    run = new_run(evals, CASES, TWO[:1], concurrency=1)
    runners, _ = runners_for(run, provider_for(fake), {})

    def progress(done, total):
        if done == 2:
            evals.request_cancel(run.id, ADA)
    assert run_evaluation(evals, run, runners, ADA, progress=progress) == CANCELLED
    assert len(evals.results(run.id, ADA)) == 2
    assert evals.get(run.id, ADA).status == CANCELLED


def test_a_retired_model_fails_its_rows_without_retrying_and_the_other_configuration_finishes(fake, evals):
    run = new_run(evals, CASES[:2], [Configuration("openai", "gpt-3.5-turbo"), TWO[0]])
    runners, _ = runners_for(run, provider_for(fake), {})
    run_evaluation(evals, run, runners, ADA)
    results = evals.results(run.id, ADA)
    retired = [r for r in results if r.config_no == 0]
    assert all(r.failed and r.attempts == 1 and r.error_code == "model_not_found" for r in retired)
    assert all(not r.failed for r in results if r.config_no == 1)


def test_judge_scores_or_says_it_gave_none(fake, evals):
    cases = [Case([{"role": "user", "content": "[[say Score: 4]]"}], "Score: 4"),
             Case([{"role": "user", "content": "plain"}], "You said: plain")]
    run = new_run(evals, cases, TWO[:1], judge=Judge("openai", "gpt-4.1-mini", "Be strict."))
    runners, judge = runners_for(run, provider_for(fake), {})
    run_evaluation(evals, run, runners, ADA, judge=judge)
    results = evals.results(run.id, ADA)
    assert results[0].judge_score == 4
    assert results[1].judge_score is None and "no score" in results[1].judge_note
    judged = [r.body for r in fake.requests_to("/v1/responses")
              if "You grade replies" in r.body.get("instructions", "")]
    assert len(judged) == 2 and "Be strict." in judged[0]["instructions"]


def test_parse_judgement():
    assert parse_judgement('{"score": 5, "reason": "same"}') == (5.0, "same")
    assert parse_judgement("Sure! ```json\n{\"score\": 2}\n```")[0] == 2.0
    assert parse_judgement("Score: 3/5")[0] == 3.0
    assert parse_judgement('{"score": 9}')[0] is None
    assert parse_judgement("")[0] is None


def test_exports_have_a_header_and_every_row(fake, evals):
    run = new_run(evals, CASES[:3], TWO, rule="Sam")
    runners, _ = runners_for(run, provider_for(fake), {})
    run_evaluation(evals, run, runners, ADA)
    run, results = evals.get(run.id, ADA), evals.results(run.id, ADA)
    frame = pd.read_csv(io.BytesIO(to_csv(run, results)), encoding="utf-8-sig")
    assert len(frame) == 6 and list(frame.columns[:5]) == ["row", "configuration", "prompt", "reference", "reply"]
    lines = to_jsonl(run, results).decode().splitlines()
    assert len(lines) == 3 and set(json.loads(lines[0])["results"]) == {c.title() for c in run.configurations}
    wide = wide_table(run, results)
    assert len(wide) == 3 and run.configurations[1].title() in wide.columns


def test_cases_from_a_dataset_split_and_from_files(store):
    data = (ROOT / "data" / "samples" / "comments.csv").read_bytes()
    prepared = prepare(read_source(data, "comments.csv"), PrepareOptions("comment", "reply"))
    version = DatasetStore(store.engine).save_version("comments", prepared, ADA, source_bytes=data)
    version = DatasetStore(store.engine).get_version(version.id, ADA)
    cases = cases_from_dataset(version)
    assert len(cases) == len(prepared.validation) > 0
    assert cases[0].reference == prepared.validation[0].response and cases[0].messages[-1]["role"] == "user"

    empty = prepare(read_source(data, "comments.csv"), PrepareOptions("comment", "reply", validation_fraction=0.0))
    empty_version = DatasetStore(store.engine).save_version("no split", empty, ADA, source_bytes=data)
    with pytest.raises(DatasetError, match="empty validation split"):
        cases_from_dataset(DatasetStore(store.engine).get_version(empty_version.id, ADA))

    jsonl = (b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
             b'{"messages": [{"role": "user", "content": "no reply"}]}\n'
             b'not json\n')
    cases, problems = cases_from_file(jsonl, "eval.jsonl")
    assert [(c.prompt, c.reference) for c in cases] == [("hi", "hello")]
    assert any(p.startswith("Line 2") for p in problems) and any(p.startswith("Line 3") for p in problems)
    cases, problems = cases_from_file(b"prompt,response\nhi,hello\n,empty\n", "eval.csv")
    assert [(c.prompt, c.reference, c.row) for c in cases] == [("hi", "hello", 2)] and problems
    with pytest.raises(DatasetError):
        cases_from_file(b"not json at all\n{broken", "eval.jsonl")


def test_an_interrupt_stops_the_pool_and_marks_the_run_cancelled(fake, evals):
    fake.delta_delay = 0.02
    run = new_run(evals, CASES * 3, TWO[:1], concurrency=1)
    runners, _ = runners_for(run, provider_for(fake), {})

    def progress(done, total):
        if done == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(evals, run, runners, ADA, progress=progress)
    assert evals.get(run.id, ADA).status == CANCELLED
    time.sleep(0.5)
    assert len(evals.results(run.id, ADA)) <= 3      # not every queued case


def test_a_judge_that_fails_is_retried_then_judged_again_on_a_re_run(fake, evals):
    down = {"on": True}
    fake.refuse = lambda req: (rate_limited("x", 1) if down["on"] and "You grade replies" in
                               json.dumps(req.body) else None)
    run = new_run(evals, CASES[:1], TWO[:1], judge=Judge("openai", "gpt-4.1-mini", ""))
    runners, judge = runners_for(run, provider_for(fake), {})
    run_evaluation(evals, run, runners, ADA, judge=judge)
    first = evals.results(run.id, ADA)[0]
    assert first.judge_score is None and "The judge failed" in first.judge_note
    down["on"] = False
    run_evaluation(evals, run, runners, ADA, judge=judge)
    assert evals.results(run.id, ADA)[0].judge_score is None     # answered again; the fake's judge gives no score
    assert "no score" in evals.results(run.id, ADA)[0].judge_note


def test_jsonl_lines_that_cannot_be_cases_are_reported():
    lines = [
        {"messages": [{"content": "sys"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"},
                      {"role": "assistant", "content": "b"}]},
        {"messages": [{"role": 3, "content": "hi"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "fine"}]},
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    cases, problems = cases_from_file(data, "eval.jsonl")
    assert [c.prompt for c in cases] == ["ok"]
    assert [p.split(" ")[1] for p in problems] == ["1", "2", "3", "4"]
