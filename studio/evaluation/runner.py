"""Running an evaluation: every held-out case through every configuration, each reply scored
and saved as it comes (studio.evaluation.runs), so progress survives a reload and a restart.

Remote configurations answer up to `concurrency` cases at a time; configurations on the
embedded model share one worker (one model on one CPU). A reply that fails for a passing
reason (rate limit, timeout, a server error) is tried again after a pause; one that still
fails is saved as failed, and running the same run again redoes only the failed and missing
replies. Cancel stops after the replies in flight.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable

from studio.chat import answer
from studio.datasets.reading import guess_columns, read_source
from studio.datasets.types import ChatSource, DatasetError, DatasetVersion
from studio.evaluation.metrics import Rule, RuleError, length_ratio, similarities
from studio.evaluation.runs import CANCELLED, FINISHED, RUNNING, Case, EvalRun, EvalStore, Result
from studio.knowledge.embedding import EmbeddingUnavailable
from studio.knowledge.storage import KnowledgeStore
from studio.models import Catalog
from studio.providers.base import Provider
from studio.store import Actor, StoreError
from studio.types import AssistantSpec, Done, ErrorEvent, Message, Sampling, TextDelta, Thread

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
RETRY_PAUSE_S = 2.0          # then 4 s: on top of the SDK's own retries
HEARTBEAT_S = 5.0
DEFAULT_CONCURRENCY = 4
MAX_CASES = 1000
JUDGE_FAILED = "The judge failed"     # in a judge_note: the row is answered and judged again on a re-run
JUDGE_RUBRIC = ("Score how well the reply answers the prompt compared with the reference reply: "
                "5 = as good as the reference (same facts, tone and sign-off), 3 = acceptable with "
                "flaws, 1 = wrong, off-topic or empty.")


@dataclass
class Runner:
    """A configuration (or the judge) ready to run: its provider and assistant."""
    provider: Provider
    spec: AssistantSpec
    sampling: Sampling
    bare: bool = True          # a bare model: a case's own system prompt is used when it has none


def runners_for(run: EvalRun, provider_for: Callable[[str], Provider],
                assistants: dict[str, AssistantSpec]) -> tuple[list[Runner], Runner | None]:
    """What runs the run's configurations and its judge. `provider_for(name)` builds a provider
    (raises ProviderError, e.g. no key); `assistants`: the user's, by id. Raises ValueError
    naming a configuration whose assistant is gone."""
    runners = []
    for config in run.configurations:
        if config.assistant_id:
            spec = assistants.get(config.assistant_id)
            if spec is None:
                raise ValueError(f"The assistant of configuration {config.title()} no longer exists.")
            if config.model:
                spec = replace(spec, model=config.model)
            runners.append(Runner(provider_for(spec.provider or config.provider), spec, config.sampling, bare=False))
        else:
            spec = AssistantSpec(name=config.title(), instructions=config.system_prompt, provider=config.provider,
                                 model=config.model, owner=run.owner)
            runners.append(Runner(provider_for(config.provider), spec, config.sampling))
    judge = None
    if run.judge is not None:
        spec = AssistantSpec(name="Judge", instructions=run.judge.rubric, provider=run.judge.provider,
                             model=run.judge.model, owner=run.owner)
        judge = Runner(provider_for(run.judge.provider), spec, Sampling())
    return runners, judge


# --- the cases -----------------------------------------------------------------------------

def cases_from_dataset(version: DatasetVersion) -> list[Case]:
    """A saved dataset version's validation split (excluded rows left out)."""
    prepared = version.prepared
    if prepared is None:
        raise DatasetError("This dataset version could not be read.")
    cases = [_case(e.messages, e.row) for e in prepared.validation]
    if not cases:
        raise DatasetError(f"'{version.name}' v{version.version} has an empty validation split: save it again "
                           "with a validation fraction above 0, or upload an evaluation file.")
    return cases


def cases_from_file(data: bytes, filename: str) -> tuple[list[Case], list[str]]:
    """The cases in an uploaded chat JSONL (each line's last assistant message is the reference)
    or CSV/Excel (prompt and reference columns guessed like the dataset wizard's), and one
    line per row that was left out and why. Raises DatasetError when no case can be read."""
    source = read_source(data, filename)
    problems: list[str] = []
    cases: list[Case] = []
    if isinstance(source, ChatSource):
        problems += [f"Line {i.row} {i.message}" for i in source.issues if i.severity == "error"]
        for example in source.examples:
            if why := _not_a_case(example.messages):
                problems.append(f"Line {example.row} {why}: left out")
                continue
            cases.append(_case(example.messages, example.row))
    else:
        guess = guess_columns(source)
        if guess.prompt is None or guess.response is None:
            raise DatasetError("Could not tell which columns hold the prompts and the reference replies: "
                               "name them e.g. 'prompt' and 'response'.")
        for row, prompt, reference in zip(source.rows, source.frame[guess.prompt], source.frame[guess.response],
                                          strict=True):
            if not str(prompt).strip() or not str(reference).strip():
                problems.append(f"Row {row} has an empty prompt or reference: left out")
                continue
            cases.append(Case([{"role": "user", "content": str(prompt)}], str(reference), row))
    if not cases:
        raise DatasetError("No usable case in this file" + (f": {problems[0]}." if problems else "."))
    if len(cases) > MAX_CASES:
        raise DatasetError(f"The file has {len(cases):,} cases; an evaluation takes at most {MAX_CASES:,}.")
    return cases, problems


def _not_a_case(messages) -> str:
    """Why a line's messages cannot be a case ("" if they can): each a {"role", "content"} of
    text, ending with a user message and then the assistant's non-empty reference reply."""
    if not isinstance(messages, list) or len(messages) < 2:
        return "needs a user message and then the assistant's reference reply"
    for message in messages:
        if not (isinstance(message, dict) and message.get("role") in ("system", "user", "assistant")
                and isinstance(message.get("content"), str)):
            return "has a message that is not {\"role\": system/user/assistant, \"content\": text}"
    if messages[-1]["role"] != "assistant" or messages[-2]["role"] != "user":
        return "does not end with a user message and then the assistant's reference reply"
    if not messages[-1]["content"].strip():
        return "has an empty reference reply"
    if not messages[-2]["content"].strip():
        return "has an empty last user message"
    return ""


def _case(messages: list[dict], row: int) -> Case:
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return Case(clean[:-1], clean[-1]["content"], row)


# --- running -------------------------------------------------------------------------------

def thread_for(case: Case, runner: Runner, owner: str) -> tuple[Thread, AssistantSpec]:
    """The conversation a case asks a configuration to continue, and the assistant to use."""
    spec = runner.spec
    system = next((m["content"] for m in case.messages if m["role"] == "system"), "")
    if runner.bare and not spec.instructions.strip() and system:
        spec = replace(spec, instructions=system)
    messages = [Message(role=m["role"], content=m["content"]) for m in case.messages
                if m["role"] in ("user", "assistant")]
    return Thread(owner=owner, assistant_id=spec.id, provider=runner.provider.name, messages=messages), spec


def run_evaluation(evals: EvalStore, run: EvalRun, runners: list[Runner], actor: Actor, *,
                   knowledge: KnowledgeStore | None = None, judge: Runner | None = None,
                   catalog: Catalog | None = None, progress: Callable[[int, int], None] | None = None) -> str:
    """Answer every case the run has no good reply for yet, with every configuration; save each
    result as it comes. Returns the run's final status (finished or cancelled).
    `progress(done, total)` is called after each result."""
    rule = Rule.parse(run.rule) if run.rule.strip() else None
    done = {(r.case_no, r.config_no) for r in evals.results(run.id, actor)
            if not r.failed and not (run.judge is not None and JUDGE_FAILED in r.judge_note)}
    todo = [(c, k) for c in range(len(run.cases)) for k in range(len(runners)) if (c, k) not in done]
    evals.set_status(run.id, RUNNING, actor, clear_cancel=False)
    counter = [len(done)]
    lock = threading.Lock()
    stop = threading.Event()

    def one(case_no: int, config_no: int) -> None:
        if stop.is_set() or evals.cancel_requested(run.id, actor):
            stop.set()
            return
        result = _answer_case(run.cases[case_no], case_no, config_no, runners[config_no], actor, knowledge, stop)
        if result is None:   # cancelled while retrying
            return
        _score(result, run.cases[case_no], rule, judge, actor, catalog, runners[config_no])
        evals.save_result(run.id, result, actor)
        with lock:
            counter[0] += 1
            if progress:
                progress(counter[0], run.total)

    def safely(case_no: int, config_no: int) -> None:
        try:
            one(case_no, config_no)
        except StoreError as exc:   # e.g. the run was deleted meanwhile: stop
            log.warning("evaluation %s stopped: %s", run.id, exc)
            stop.set()
        except Exception:
            log.exception("evaluation %s: case %d failed unexpectedly", run.id, case_no)

    local = [(c, k) for c, k in todo if runners[k].provider.name == "local"]
    remote = [(c, k) for c, k in todo if runners[k].provider.name != "local"]
    pool = ThreadPoolExecutor(max_workers=max(1, run.concurrency), thread_name_prefix="eval")
    try:
        with _Heartbeat(evals, run.id, actor):
            futures = [pool.submit(safely, c, k) for c, k in remote]
            for c, k in local:   # one model on one CPU: one at a time, here
                safely(c, k)
            for future in futures:
                future.result()
    except BaseException:    # e.g. Ctrl+C in the CLI: stop now, not after every queued case
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(StoreError):
            evals.set_status(run.id, CANCELLED, actor)
        raise
    pool.shutdown()
    cancelled = stop.is_set() or evals.cancel_requested(run.id, actor)
    status = CANCELLED if cancelled else FINISHED
    try:
        evals.set_status(run.id, status, actor)
    except StoreError:
        pass    # deleted meanwhile
    return status


def _answer_case(case: Case, case_no: int, config_no: int, runner: Runner, actor: Actor,
                 knowledge: KnowledgeStore | None, stop: threading.Event) -> Result | None:
    result = Result(case_no, config_no)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        result.attempts = attempt
        thread, spec = thread_for(case, runner, actor.name)
        reply = Message(role="assistant", content="")
        started = time.perf_counter()
        error = None
        for event in answer(runner.provider, thread, spec, actor, knowledge, reply, runner.sampling):
            if isinstance(event, TextDelta) and result.first_token_s is None:
                result.first_token_s = round(time.perf_counter() - started, 3)
            elif isinstance(event, Done):
                result.input_tokens, result.output_tokens = event.usage.input_tokens, event.usage.output_tokens
                thread.provider_ref = event.provider_ref or thread.provider_ref
            elif isinstance(event, ErrorEvent):
                error = event
        result.total_s = round(time.perf_counter() - started, 3)
        _forget_conversation(runner.provider, thread)
        if error is None:
            result.reply, result.error, result.error_code = reply.content, "", ""
            return result
        result.error, result.error_code, result.first_token_s = error.message, error.code or "error", None
        if not error.retryable or attempt == MAX_ATTEMPTS:
            return result
        if stop.wait(RETRY_PAUSE_S * attempt):
            return None
    return result


def _forget_conversation(provider: Provider, thread: Thread) -> None:
    """An evaluation keeps its replies here: delete the provider's copy of the conversation
    (an OpenAI Conversation per case would pile up on the account)."""
    if thread.provider_ref:
        try:
            provider.delete_thread(thread)
        except Exception as exc:   # best effort: the reply is what matters
            log.info("evaluation: a conversation could not be deleted (%s)", exc)


def _score(result: Result, case: Case, rule: Rule | None, judge: Runner | None, actor: Actor,
           catalog: Catalog | None, runner: Runner) -> None:
    if result.failed:
        return
    if rule is not None:
        try:
            result.rule_passed = rule.passes(result.reply)
        except RuleError as exc:
            result.judge_note = str(exc)
    result.length_ratio = length_ratio(result.reply, case.reference)
    try:
        result.similarity = similarities([result.reply], [case.reference])[0]
    except EmbeddingUnavailable as exc:
        log.info("evaluation: no similarity (%s)", exc)
    price = catalog.price(runner.spec.model or runner.provider.default_model()) if catalog else None
    if price is not None and result.input_tokens is not None:
        result.cost = (result.input_tokens * price.input_per_million
                       + (result.output_tokens or 0) * price.output_per_million) / 1e6
    if judge is not None:
        result.judge_score, note = judge_reply(judge, case, result.reply, actor)
        result.judge_note = "; ".join(n for n in (result.judge_note, note) if n)


def judge_reply(judge: Runner, case: Case, reply: str, actor: Actor) -> tuple[float | None, str]:
    """The judge's score (1-5) of `reply` against the case's reference, and its reason; None
    and what went wrong when it gives no score."""
    question = (f"Prompt:\n{case.prompt}\n\nReference reply:\n{case.reference}\n\nReply to grade:\n{reply}")
    thread = Thread(owner=actor.name, assistant_id=judge.spec.id, provider=judge.provider.name,
                    messages=[Message(role="user", content=question)])
    spec = replace(judge.spec, instructions=(
        f"You grade replies. Rubric: {judge.spec.instructions.strip() or JUDGE_RUBRIC}\n"
        'Answer with JSON only: {"score": <1 to 5>, "reason": "<one sentence>"}'))
    for attempt in range(1, MAX_ATTEMPTS + 1):
        out = Message(role="assistant", content="")
        error = None
        thread.provider_ref = None
        for event in answer(judge.provider, thread, spec, actor, None, out, judge.sampling):
            if isinstance(event, ErrorEvent):
                error = event
            elif isinstance(event, Done):
                thread.provider_ref = event.provider_ref
        _forget_conversation(judge.provider, thread)
        if error is None:
            return parse_judgement(out.content)
        if not error.retryable or attempt == MAX_ATTEMPTS:
            break
        time.sleep(RETRY_PAUSE_S * attempt)
    return None, f"{JUDGE_FAILED}: {error.message}"


def parse_judgement(text: str) -> tuple[float | None, str]:
    """(score, reason) from a judge's answer: JSON {"score", "reason"}, or "score: N" in text."""
    found = re.search(r"\{.*\}", text, re.S)
    if found:
        try:
            data = json.loads(found.group(0))
            score = float(data.get("score"))
            if 1 <= score <= 5:
                return score, str(data.get("reason", ""))[:300]
        except (ValueError, TypeError, AttributeError):
            pass
    match = re.search(r"score\W{0,3}([1-5](?:\.\d+)?)\b", text, re.I)
    if match:
        return float(match.group(1)), ""
    shown = " ".join(text.split())[:120]
    return None, f"The judge gave no score (it answered: {shown!r})." if shown else "The judge gave no answer."


class _Heartbeat:
    """Says the run is alive while replies are slow (a stale run reads as interrupted)."""

    def __init__(self, evals: EvalStore, run_id: str, actor: Actor):
        self.evals, self.run_id, self.actor = evals, run_id, actor
        self.stop = threading.Event()

    def __enter__(self):
        threading.Thread(target=self._beat, daemon=True, name=f"eval-heartbeat-{self.run_id}").start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                self.evals.heartbeat(self.run_id, self.actor)
            except StoreError as exc:    # busy now, or the run was deleted: try again next beat
                log.info("evaluation %s: heartbeat not recorded (%s)", self.run_id, exc)


# --- in the background (the page) ------------------------------------------------------------

_running: dict[str, threading.Thread] = {}
_running_lock = threading.Lock()


def start_in_background(evals: EvalStore, run: EvalRun, runners: list[Runner], actor: Actor, **options) -> bool:
    """run_evaluation in a thread of this process; False if this process already runs it."""
    with _running_lock:
        worker = _running.get(run.id)
        if worker is not None and worker.is_alive():
            return False

        def work() -> None:
            try:
                run_evaluation(evals, run, runners, actor, **options)
            except (StoreError, RuleError) as exc:
                log.warning("evaluation %s stopped: %s", run.id, exc)
            except Exception:
                log.exception("evaluation %s failed", run.id)

        worker = threading.Thread(target=work, daemon=True, name=f"eval-{run.id}")
        _running[run.id] = worker
        worker.start()
        return True


def is_running_here(run_id: str) -> bool:
    with _running_lock:
        worker = _running.get(run_id)
        return worker is not None and worker.is_alive()
