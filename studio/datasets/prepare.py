"""From a source (table or chat JSONL) and options to the examples that will be trained.

    source = read_source(data, filename)
    guess = guess_columns(source)                       # tables only
    prepared = prepare(source, PrepareOptions(prompt_column=guess.prompt, ...))
    prepared.issues, prepared.counts, prepared.tokens, prepared.estimate

The steps, in order: build the examples (system prompt, response suffix) -> take out the rows
the user excluded -> structural checks (roles, order, text content, weights, empty prompt or
response) -> token counts -> the model's example limit -> duplicates -> the seeded split ->
train/validation overlap -> the promised signature -> dataset size -> epochs and cost.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import math
import threading
from collections import Counter
from itertools import compress, repeat
from operator import attrgetter, eq, methodcaller, ne
from pathlib import Path

import numpy as np

from studio.datasets import pricing, tokens, validation
from studio.datasets.types import (EXCLUDED, TRAIN, VALIDATION, ChatSource, Counts, DatasetError, Example,
                                   PrepareOptions, PreparedDataset, SourceTable, TableExample, TokenSummary,
                                   ValidationIssue, set_each)

MAX_VALIDATION_FRACTION = 0.5
EXCLUDED_BY_USER = "excluded by you"
READER_ERRORS = ("bad_line", "broken_line", "wrong_shape")
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def system_prompt_from_assistant(spec) -> str:
    """An assistant's system prompt exactly as the chat sends it: its instructions with its
    few-shot examples compiled in (studio.assistants.compile_instructions)."""
    from studio.assistants import compile_instructions
    return compile_instructions(spec)


def check_options(options: PrepareOptions) -> None:
    """DatasetError for options no dataset can be built with."""
    fraction = options.validation_fraction
    if not isinstance(fraction, (int, float)) or math.isnan(fraction) or not 0 <= fraction <= MAX_VALIDATION_FRACTION:
        raise DatasetError(f"The validation fraction must be between 0 and {MAX_VALIDATION_FRACTION} "
                           f"(e.g. 0.2 for a fifth), not {fraction!r}.")
    if isinstance(options.seed, bool) or not isinstance(options.seed, int) or not 0 <= options.seed < 2**63:
        raise DatasetError(f"The seed must be a whole number of 0 or more, not {options.seed!r}.")
    if options.epochs is not None and not (isinstance(options.epochs, int) and 1 <= options.epochs <= 50):
        raise DatasetError(f"Epochs must be a whole number from 1 to 50, not {options.epochs!r}.")


def build_examples(table: SourceTable, options: PrepareOptions) -> tuple[list[Example], list[ValidationIssue]]:
    """One chat example per table row: [system], user (the prompt cell), assistant (the
    response cell + the suffix). Cells are trimmed when `strip_whitespace` is on; the suffix is
    appended as typed, and not a second time to a response that already ends with it."""
    examples, issues, _prompts, _responses = _table_examples(table, options)
    return examples, issues


def _table_examples(table: SourceTable, options: PrepareOptions):
    """build_examples(), plus each example's prompt and response text."""
    columns = table.columns
    for label, column in (("prompt", options.prompt_column), ("response", options.response_column)):
        if not column:
            raise DatasetError(f"Choose the {label} column (the file's columns: {', '.join(columns)}).")
        if column not in columns:
            raise DatasetError(f"The file has no column {column!r}; its columns are: {', '.join(columns)}.")
    if options.prompt_column == options.response_column:
        raise DatasetError("The prompt and the response must come from two different columns.")
    prompts = table.frame[options.prompt_column].tolist()
    responses = table.frame[options.response_column].tolist()
    if options.strip_whitespace:
        prompts = [p.strip() for p in prompts]
        responses = [r.strip() for r in responses]
    system = options.system_prompt.strip()
    suffix = options.suffix
    signature = suffix.strip()
    issues: list[ValidationIssue] = []
    if signature:   # (whole-list passes: a dataset can have hundreds of thousands of rows)
        signed = [r.rstrip().endswith(signature) and bool(r.strip()) for r in responses]
        issues = [ValidationIssue(row, "suffix_present", f"already ends with {signature!r}: not added again", "info")
                  for row in compress(table.rows, signed)]
        responses = [r if done or not r.strip() else r + suffix for r, done in zip(responses, signed, strict=True)]
    examples = TableExample.from_table(table.rows, system, prompts, responses)
    return examples, issues, prompts, responses


_SPLIT, _EXCLUDED_BECAUSE = attrgetter("split"), attrgetter("excluded_because")

_freeze_lock = threading.Lock()
_freezes = 0


@contextlib.contextmanager
def older_objects_frozen():
    """While a dataset is built, the garbage collector skips the objects that existed before
    (gc.freeze). Its full passes otherwise walk the whole server's heap again, several times
    while hundreds of thousands of new examples pile up, to free nothing.
    The collector stays on: garbage made meanwhile, here or in other sessions, is collected as
    usual; garbage that already existed waits until the last preparation running ends
    (gc.unfreeze). The app itself freezes nothing else."""
    global _freezes
    with _freeze_lock:
        if _freezes == 0:
            gc.freeze()
        _freezes += 1
    try:
        yield
    finally:
        with _freeze_lock:
            _freezes -= 1
            if _freezes == 0:
                gc.unfreeze()


def prepare(source: SourceTable | ChatSource, options: PrepareOptions, *,
            validation_source: ChatSource | None = None, model_dir: Path | None = None,
            data_dir: Path | None = None, price_table: pricing.PriceTable | None = None) -> PreparedDataset:
    """Build, check, split and count a dataset (see the module's docstring for the steps).

    `validation_source`: a chat JSONL of validation examples that comes with an imported
    training JSONL; the split is then taken as given (its lines are numbered after the
    training file's). `model_dir`: where the embedded model's tokenizer is cached;
    `data_dir`: the workspace, for its price overrides. Raises DatasetError for options or
    columns that cannot work; everything else is in the returned report.
    """
    check_options(options)
    with older_objects_frozen():
        return _prepare(source, options, validation_source, model_dir, data_dir, price_table)


def _prepare(source, options, validation_source, model_dir, data_dir, price_table) -> PreparedDataset:
    notes = list(source.notes)
    issues: list[ValidationIssue] = list(source.issues)
    if isinstance(source, ChatSource):
        examples = [Example(e.row, e.messages, source_file="train", origin=e.origin) for e in source.examples]
        structural = True
        if validation_source is not None:
            offset = max([e.row for e in source.examples] + [i.row for i in source.issues]) if source.examples else 0
            for e in validation_source.examples:
                examples.append(Example(e.row + offset, e.messages, source_file="validation"))
            issues.extend(ValidationIssue(i.row + offset, i.code, i.message, i.severity)
                          for i in validation_source.issues)
            notes.append(f"Validation file {validation_source.filename}: its line 1 is row {offset + 1} here.")
    else:
        if validation_source is not None:
            raise DatasetError("A separate validation file goes with an imported JSONL, not with a table.")
        examples, built_issues, prompts, responses = _table_examples(source, options)
        if set(map(type, prompts + responses)) - {str}:   # a table built by hand: text only, as Example.prompt
            prompts, responses = [e.prompt for e in examples], [e.response for e in examples]
        issues.extend(built_issues)
        structural = False   # built here: only empty cells can be wrong

    if options.exclude_rows:
        for example in examples:
            if example.row in options.exclude_rows:
                example.split, example.excluded_because = EXCLUDED, EXCLUDED_BY_USER

    # Structure and emptiness.
    if structural:
        prompts = [e.prompt for e in examples]
        responses = [e.response for e in examples]
        problems = [validation.message_errors(e.messages) for e in examples]
    else:
        problems = [None if p.strip() and r.strip() else _empty_cells(p, r)
                    for p, r in zip(prompts, responses, strict=True)]
    for example, found in zip(compress(examples, problems), filter(None, problems), strict=True):
        issues.extend(ValidationIssue(example.row, code, f"{reason}: left out", "error") for code, reason in found)
        if example.split != EXCLUDED:
            example.split, example.excluded_because = EXCLUDED, found[0][1]
        else:
            example.excluded_because = EXCLUDED_BY_USER + "; " + found[0][1]

    # Tokens (every example that can be counted, so re-including a row shows its size at once).
    counter = tokens.counter_for(options.model, model_dir)
    table = price_table or pricing.load_price_table(data_dir)
    limit = table.price_for(options.model).max_example_tokens
    can_count = list(map({"", EXCLUDED_BY_USER}.__contains__, map(_EXCLUDED_BECAUSE, examples)))
    countable = list(compress(examples, can_count))
    if structural:
        sizes = counter.count_examples([e.messages for e in countable])
    else:   # built here: [system], user, assistant, with the texts at hand
        sizes = counter.count_chats(options.system_prompt.strip(), list(compress(prompts, can_count)),
                                    list(compress(responses, can_count)))
    set_each(countable, "tokens", sizes)
    too_long = [n > limit for n in sizes] if max(sizes, default=0) > limit else []
    for example in compress(countable, too_long):
        if example.split == EXCLUDED:
            continue
        n = example.tokens
        example.split, example.excluded_because = EXCLUDED, f"{n:,} tokens, over the limit of {limit:,}"
        issues.append(ValidationIssue(example.row, "too_long", f"has {n:,} tokens; {options.model} trains "
                                      f"on examples of at most {limit:,}: left out", "error"))

    keep = list(map(ne, map(_SPLIT, examples), repeat(EXCLUDED)))
    kept = list(compress(examples, keep))
    prompts = validation.normalize_all(list(compress(prompts, keep)))
    issues.extend(validation.duplicate_issues(kept, prompts))
    if isinstance(source, ChatSource) and validation_source is not None:
        for example in kept:
            example.split = VALIDATION if example.source_file == "validation" else TRAIN
        issues.extend(validation.leak_issues(kept, prompts))
    else:   # the seeded split keeps each prompt on one side: no overlap to look for
        assign_split(kept, options.validation_fraction, options.seed, prompts)
    systems = None if structural else [options.system_prompt.strip()] * len(kept)
    issues.extend(validation.signature_issues(kept, list(compress(responses, keep)), systems))
    sides = list(map(_SPLIT, kept))
    n_train = sides.count(TRAIN)
    n_validation = len(kept) - n_train
    fraction = options.validation_fraction if validation_source is None else 1.0
    issues.extend(validation.size_issues(n_train, n_validation, fraction))

    reader_lost = sum(1 for i in issues if i.code in READER_ERRORS)
    by_user = sum(map(methodcaller("startswith", EXCLUDED_BY_USER), map(_EXCLUDED_BECAUSE, examples)))
    counts = Counts(rows=len(examples) + reader_lost, kept=len(kept), excluded_by_user=by_user,
                    excluded_for_errors=len(examples) - len(kept) - by_user + reader_lost,
                    train=n_train, validation=n_validation)
    sizes = list(map(attrgetter("tokens"), kept))
    train_tokens = list(compress(sizes, map(eq, sides, repeat(TRAIN))))
    summary = TokenSummary(train=sum(train_tokens), validation=sum(sizes) - sum(train_tokens),
                           longest=max(sizes, default=0), limit=limit, tokenizer=counter.name, exact=counter.exact)
    estimate = pricing.estimate_cost(train_tokens, options.model, table, options.epochs)
    issues.sort(key=lambda i: (i.row, SEVERITY_ORDER[i.severity]))
    return PreparedDataset(source.kind, source.filename, source.sha256, options, examples, issues, counts,
                           summary, estimate, notes, validation_given=validation_source is not None)


def _empty_cells(prompt: str, response: str) -> list[tuple[str, str]]:
    return [(code, f"the {what} is " + ("only whitespace" if text else "empty"))
            for code, what, text in (("empty_prompt", "prompt", prompt), ("empty_response", "response", response))
            if not text.strip()]


def split_score(seed: int, normalized_prompt: str) -> int:
    """Where a prompt falls in the seeded order: the first 8 bytes of
    SHA-256("<seed>\\x1f<normalized prompt>"), big-endian (see assign_split)."""
    digest = hashlib.sha256(f"{seed}\x1f{normalized_prompt}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def assign_split(examples: list[Example], fraction: float, seed: int, prompts: list[str] | None = None) -> None:
    """Put round(fraction x n) of `examples` in validation, the rest in train (in place).
    `prompts`: each example's normalized prompt, when already at hand.

    The algorithm (so anyone can reproduce it): group the examples by their normalized prompt
    (a repeated prompt never sits on both sides); give each group the score
    SHA-256("<seed>\\x1f<normalized prompt>") (its first 8 bytes, big-endian); walk the groups
    from the lowest score (ties: the lowest row) and move each whole group to validation while
    it still fits, until round(fraction x n) examples are there (at least 1 when the fraction is
    above 0 and there are 2 examples or more; never all of them). The same rows, options and
    seed always give the same split, on any machine and Python version; a row's side depends
    on its own prompt and the seed, so adding rows moves few others.
    """
    n = len(examples)
    wanted = min(max(1, math.floor(fraction * n + 0.5)), n - 1) if fraction > 0 and n >= 2 else 0
    prompts = validation.normalize_all([e.prompt for e in examples]) if prompts is None else prompts
    first_row = dict(zip(reversed(prompts), [e.row for e in reversed(examples)], strict=True))
    sizes = Counter(prompts) if len(first_row) < n else dict.fromkeys(first_row, 1)
    # Each prompt's split_score (its digest's first 8 bytes, big-endian), sorted with numpy.
    prefix, sha256 = f"{seed}\x1f", hashlib.sha256
    scores = np.frombuffer(b"".join([sha256((prefix + p).encode()).digest() for p in first_row]), dtype=">u8")[::4]
    groups = list(first_row)
    ordered = np.argsort(scores, kind="stable")
    if not (scores[ordered[1:]] == scores[ordered[:-1]]).any():
        ordered = ordered.tolist()
    else:   # equal scores (never seen in practice): the lowest row first
        ordered = sorted(range(len(groups)), key=lambda i: (int(scores[i]), first_row[groups[i]]))
    chosen, taken = set(), 0
    for prompt in map(groups.__getitem__, ordered) if wanted else ():
        if taken + sizes[prompt] <= wanted:
            chosen.add(prompt)
            taken += sizes[prompt]
            if taken == wanted:
                break
    set_each(examples, "split", map((TRAIN, VALIDATION).__getitem__, map(chosen.__contains__, prompts)))
