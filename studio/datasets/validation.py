"""The validation rules: each finds problems and names the row and the reason.

Nothing here drops a row silently. A row-level *error* keeps that row out of the files (the
report says which and why); a *warning* leaves it in unless the user excludes it; a
dataset-level error (row 0) blocks a launch (some, like OpenAI's 10-example minimum, only on
that provider).
"""
from __future__ import annotations

import operator
import re
import unicodedata
from collections import Counter, defaultdict
from itertools import compress
from typing import Iterable

from studio.datasets.types import TRAIN, VALIDATION, Example, ValidationIssue

ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = {"role", "content", "weight", "name"}
OPENAI_MIN_EXAMPLES = 10          # fewer: OpenAI refuses the job (invalid_n_examples)
RECOMMENDED_MIN_EXAMPLES = 50     # OpenAI's guide: improvements show from 50-100 examples

_PUNCTUATION = re.compile(r"[^\w\s]")
_ASCII_PUNCTUATION = re.compile(r"[^\w\s]", re.ASCII)
_SURROGATE = re.compile("[\ud800-\udfff]")
DASHES = {"-": "hyphen-minus", "\u2013": "en dash", "\u2014": "em dash", "\u2010": "hyphen",
          "\u2011": "non-breaking hyphen", "\u2212": "minus sign", "~": "tilde"}
_DASH_CLASS = "[" + re.escape("".join(DASHES)) + "]"
# A signature promised in quotes: '–ShawGPT', "-Sam", “—Sam”.
_OPEN_QUOTE, _CLOSE_QUOTE = "[\"'\u201c\u2018`]", "[\"'\u201d\u2019`]"
_PROMISED = re.compile(_OPEN_QUOTE + r"\s*(" + _DASH_CLASS + r"\s?[^\s\"'\u201d\u2019`][^\"'\u201d\u2019`\n]{0,38}?)\s*"
                       + _CLOSE_QUOTE)


def normalize(text: str) -> str:
    """Text as people compare it: Unicode-normalized, case-folded, punctuation and extra
    spacing removed ("Great video!!" and "great  video" are the same)."""
    if text.isascii():   # already NFKC; lower() is casefold() for ASCII
        return " ".join(_ASCII_PUNCTUATION.sub(" ", text.lower()).split())
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCTUATION.sub(" ", text).split())


# normalize() on ASCII text, as a table for str.translate: what [^\w\s] matches and all other
# whitespace become a space, except NUL, which normalize_all() puts between texts.
_ASCII_TABLE = str.maketrans({chr(c): " " for c in range(1, 128)
                              if _ASCII_PUNCTUATION.match(chr(c)) or chr(c).isspace()})


def normalize_all(texts: list[str]) -> list[str]:
    """[normalize(t) for t in texts], with the ASCII texts done in a few passes over their join
    (a dataset normalizes hundreds of thousands of texts), and a text that repeats done once."""
    distinct = list(dict.fromkeys(texts))
    if len(distinct) < len(texts):
        done = dict(zip(distinct, normalize_all(distinct), strict=True))
        return [done[t] for t in texts]
    plain = [t.isascii() and "\x00" not in t for t in texts]
    joined = "\x00".join(compress(texts, plain)).lower().translate(_ASCII_TABLE)
    done = iter(_single_spaced(joined).split("\x00"))
    return [next(done) if p else normalize(t) for p, t in zip(plain, texts, strict=True)]


def _single_spaced(joined: str) -> str:
    """ASCII texts joined by NUL, each with runs of spaces made one and no space at either end
    (in numpy: a few passes over the bytes, however many texts)."""
    import numpy as np
    data = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    space = data == 32
    keep = ~space
    keep[1:] |= ~space[:-1]   # a space stays when what comes before it is not a space
    data = data[keep]
    space = data == 32
    edge = np.ones(len(data) + 2, dtype=bool)   # a text's ends: NUL, or the start or end of the join
    edge[1:-1] = data == 0
    return data[~(space & (edge[:-2] | edge[2:]))].tobytes().decode("ascii")


class _Normalized(dict):
    """normalize() of each text looked up, computed on first use."""
    def __missing__(self, text: str) -> str:
        self[text] = value = normalize(text)
        return value


def message_errors(messages: list) -> list[tuple[str, str]]:
    """(code, reason) for each way `messages` is not a trainable chat example."""
    problems: list[tuple[str, str]] = []
    if not messages:
        return [("wrong_roles", "has no messages")]
    roles = []
    for i, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            problems.append(("wrong_shape", f"message {i} is not an object {{\"role\": ..., \"content\": ...}}"))
            roles.append(None)
            continue
        role = message.get("role")
        roles.append(role)
        if role not in ROLES:
            problems.append(("wrong_roles", f"message {i} has role {role!r}; use system, user or assistant"))
        content = message.get("content")
        if "content" not in message:
            problems.append(("not_text", f"message {i} ({role}) has no content"))
        elif not isinstance(content, str):
            kind = "a list of parts" if isinstance(content, list) else type(content).__name__
            problems.append(("not_text", f"message {i} ({role}) has {kind} as content, not text"))
        elif _SURROGATE.search(content):
            problems.append(("not_text", f"message {i} ({role}) holds an unpaired surrogate (\\ud800-\\udfff), "
                             "which is not a character"))
        elif role in ("user", "assistant") and not content.strip():
            code = "empty_prompt" if role == "user" else "empty_response"
            what = "prompt" if role == "user" else "response"
            problems.append((code, f"the {what} is {'empty' if not content else 'only whitespace'}"))
        if "weight" in message:
            weight = message["weight"]
            if role != "assistant":
                problems.append(("bad_weight", f"message {i} ({role}) has a weight; only assistant messages may"))
            elif isinstance(weight, bool) or weight not in (0, 1):
                problems.append(("bad_weight", f"message {i} has weight {weight!r}; a weight is 0 or 1"))
        unknown = sorted(set(message) - MESSAGE_KEYS)
        if unknown:
            problems.append(("wrong_shape", f"message {i} has fields this app does not train on "
                             f"({', '.join(map(str, unknown))})"))
    order = [r for r in roles if r in ROLES]
    if "system" in order[1:]:
        problems.append(("wrong_roles", "a system message must come first (and only once)"))
    turns = [r for r in order if r != "system"]
    if turns and turns[0] != "user":
        problems.append(("wrong_roles", "the conversation must start with a user message"))
    if any(a == b for a, b in zip(turns[:-1], turns[1:], strict=True)):
        problems.append(("wrong_roles", "user and assistant messages must alternate"))
    if not turns or turns[-1] != "assistant":
        problems.append(("wrong_roles", "the last message must be the assistant's reply"))
    return problems


def duplicate_issues(examples: list[Example], prompts: list[str]) -> list[ValidationIssue]:
    """Warnings for examples that repeat an earlier one exactly, or apart from case, spacing
    and punctuation (same prompt and same response). `prompts`: each example's normalized
    prompt; only examples that share one can repeat each other, so only those are compared."""
    repeated = {p for p, n in Counter(prompts).items() if n > 1}
    exact: dict[tuple, int] = {}
    loose: dict[tuple, int] = {}
    normalized = _Normalized()   # each text once: a repeated prompt can be long
    issues = []
    for example in [e for e, p in zip(examples, prompts, strict=True) if p in repeated]:
        key = tuple([(m.get("role"), m.get("content")) for m in example.messages
                     if isinstance(m, dict) and isinstance(m.get("content"), str)])
        if key in exact:
            issues.append(ValidationIssue(example.row, "duplicate", f"repeats row {exact[key]} exactly"))
            continue
        exact[key] = example.row
        norm = tuple([(role, normalized[content]) for role, content in key if role != "system"])
        if norm in loose:
            issues.append(ValidationIssue(example.row, "near_duplicate", f"repeats row {loose[norm]} apart "
                                          "from case, spacing or punctuation"))
            continue
        loose[norm] = example.row
    return issues


def leak_issues(examples: list[Example], prompts: list[str]) -> list[ValidationIssue]:
    """Warnings for validation examples whose prompt is also a training prompt (the
    validation loss would then measure memory, not learning). `prompts`: normalized."""
    sides = [e.split for e in examples]
    train = [(p, e.row) for e, p, side in zip(examples, prompts, sides, strict=True) if side == TRAIN]
    first_row = dict(reversed(train))   # a prompt's first training row
    return [ValidationIssue(e.row, "train_validation_overlap", f"its prompt is also in the training set "
                            f"(row {first_row[p]})")
            for e, p, side in zip(examples, prompts, sides, strict=True) if side == VALIDATION and p in first_row]


def promised_signature(system_prompt: str) -> str | None:
    """The sign-off a system prompt promises in quotes (e.g. '–ShawGPT' or "-Sam"), if any."""
    found = _PROMISED.findall(system_prompt or "")
    return found[-1].strip() if found else None


def _dash_name(text: str) -> str:
    return " and ".join(f"{DASHES[c]} U+{ord(c):04X}" for c in dict.fromkeys(text) if c in DASHES) or "no dash"


def signature_issues(examples: list[Example], responses: list[str],
                     systems: list[str] | None = None) -> list[ValidationIssue]:
    """Warnings for responses whose sign-off disagrees with the one the system prompt promises:
    another dash ("-Sam" against a promised "–Sam"), other spacing, or none at all.
    `responses`: each example's response; `systems`: each example's system prompt ("" for
    none), when at hand."""
    if systems is None:
        firsts = [e.messages[0] if e.messages else None for e in examples]
        systems = [m.get("content") if isinstance(m, dict) and m.get("role") == "system" else "" for m in firsts]
        systems = [s if isinstance(s, str) else "" for s in systems]
    promises = {}   # system prompt -> (its promise, a pattern for the name at the end), or None
    for system in dict.fromkeys(systems):
        promise = promised_signature(system) if system else None
        name = promise.lstrip("".join(DASHES)).strip() if promise else ""
        promises[system] = promise and (promise, re.compile("(" + _DASH_CLASS + r"?\s*)" + re.escape(name) + r"\s*$"))
    wanted = {system: promise[0] if promise else "" for system, promise in promises.items()}
    signed = map(str.endswith, map(str.rstrip, responses), map(wanted.__getitem__, systems))   # ("" always)
    issues = []
    for i in compress(range(len(examples)), map(operator.not_, signed)):
        example, reply, (promise, pattern) = examples[i], responses[i].rstrip(), promises[systems[i]]
        match = pattern.search(reply)
        if match:
            written = reply[match.start():]
            issues.append(ValidationIssue(
                example.row, "signature_mismatch",
                f"ends with {written!r} ({_dash_name(written)}) but the system prompt promises "
                f"{promise!r} ({_dash_name(promise)})"))
        else:
            issues.append(ValidationIssue(example.row, "signature_missing", f"does not end with the sign-off "
                                          f"{promise!r} that the system prompt promises"))
    return issues


def size_issues(n_train: int, n_validation: int, validation_fraction: float) -> list[ValidationIssue]:
    """Dataset-level checks on how many examples there are."""
    issues = []
    if n_train == 0:
        issues.append(ValidationIssue(0, "no_examples", "There is no example to train on.", "error"))
    elif n_train < OPENAI_MIN_EXAMPLES:
        issues.append(ValidationIssue(
            0, "too_few_examples", f"Only {n_train} training example{'s' if n_train != 1 else ''}: OpenAI "
            f"refuses fewer than {OPENAI_MIN_EXAMPLES} (invalid_n_examples). A local run can still train.",
            "error", blocks_openai_only=True))
    if 0 < n_train < RECOMMENDED_MIN_EXAMPLES:
        issues.append(ValidationIssue(
            0, "few_examples", f"{n_train} training examples: OpenAI advises at least "
            f"{RECOMMENDED_MIN_EXAMPLES} (improvements usually show from 50-100).", "warning"))
    if validation_fraction > 0 and n_validation == 0 and n_train > 0:
        issues.append(ValidationIssue(0, "no_validation", "No example is left for validation, so no "
                                      "validation loss will be measured.", "info"))
    return issues


def group_issues(issues: Iterable[ValidationIssue]) -> list[tuple[ValidationIssue, list[int]]]:
    """Issues with the same code and message together, with their rows (for a short report)."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    first: dict[tuple, ValidationIssue] = {}
    for issue in issues:
        key = (issue.severity, issue.code, issue.message)
        first.setdefault(key, issue)
        groups[key].append(issue.row)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(((first[k], rows) for k, rows in groups.items()),
                  key=lambda item: (order[item[0].severity], min(item[1]) if item[1] else 0))


def rows_text(rows: list[int]) -> str:
    """"rows 2-5, 9" for [2, 3, 4, 5, 9]."""
    rows = sorted(set(rows))
    if rows == [0]:
        return ""
    parts, start = [], None
    for i, row in enumerate(rows):
        if start is None:
            start = row
        if i + 1 == len(rows) or rows[i + 1] != row + 1:
            parts.append(str(start) if start == row else f"{start}-{row}")
            start = None
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(parts)
