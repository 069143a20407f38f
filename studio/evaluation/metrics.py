"""Per-reply metrics of an evaluation: a rule the user writes, length against the reference,
and embedding similarity to the reference (the packaged MiniLM, offline).

Each metric scores one (reply, reference) pair; `summarize` adds them up per configuration.
A user's rule is a regular expression run with the `regex` library's timeout, so a
pathological pattern stops with a clear message instead of holding a server thread.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import regex

RULE_TIMEOUT_S = 0.5      # per reply; a sane pattern takes microseconds
MAX_RULE_LENGTH = 500


class RuleError(ValueError):
    """A rule that cannot be used; the text says why, for the user."""


@dataclass(frozen=True)
class Rule:
    """A check every reply must pass, e.g. pattern r"-Sam\\s*$" for "ends with -Sam"."""
    pattern: str
    compiled: regex.Pattern

    @classmethod
    def parse(cls, pattern: str) -> "Rule":
        pattern = (pattern or "").strip()
        if not pattern:
            raise RuleError("The rule is empty: write a regular expression, e.g. -Sam\\s*$ for "
                            "\"ends with -Sam\".")
        if len(pattern) > MAX_RULE_LENGTH:
            raise RuleError(f"The rule is longer than {MAX_RULE_LENGTH} characters.")
        try:
            return cls(pattern, regex.compile(pattern, regex.MULTILINE))
        except regex.error as exc:
            raise RuleError(f"The rule is not a valid regular expression: {exc}.") from None

    def passes(self, reply: str) -> bool:
        try:
            return self.compiled.search(reply, timeout=RULE_TIMEOUT_S) is not None
        except TimeoutError:
            raise RuleError(f"The rule took longer than {RULE_TIMEOUT_S} s on one reply; simplify it "
                            "(repeats of overlapping choices such as (a|aa)+ are the usual cause).") from None


def length_ratio(reply: str, reference: str) -> float | None:
    """Words in the reply per word in the reference (1.0: as long); None without a reference."""
    words = len(reference.split())
    return round(len(reply.split()) / words, 3) if words else None


def similarities(replies: list[str], references: list[str]) -> list[float | None]:
    """Cosine similarity of each reply to its reference (MiniLM vectors, -1..1); None where
    either text is empty."""
    from studio.knowledge.embedding import encode
    if len(replies) != len(references):
        raise ValueError("one reference per reply")
    pairs = [i for i, (a, b) in enumerate(zip(replies, references, strict=True)) if a.strip() and b.strip()]
    out: list[float | None] = [None] * len(replies)
    if pairs:
        vectors = encode([replies[i] for i in pairs] + [references[i] for i in pairs])
        left, right = vectors[:len(pairs)], vectors[len(pairs):]
        for i, value in zip(pairs, np.sum(left * right, axis=1).tolist(), strict=True):
            out[i] = round(value, 4)
    return out


@dataclass
class Summary:
    """One configuration's metrics over the rows it answered."""
    rows: int
    rule_passed: int | None           # None: no rule
    mean_length_ratio: float | None
    mean_similarity: float | None


def summarize(rule_results: list[bool | None], ratios: list[float | None],
              sims: list[float | None]) -> Summary:
    def mean(values):
        known = [v for v in values if v is not None]
        return round(sum(known) / len(known), 4) if known else None
    ruled = [r for r in rule_results if r is not None]
    return Summary(rows=len(ratios), rule_passed=sum(ruled) if ruled else None,
                   mean_length_ratio=mean(ratios), mean_similarity=mean(sims))
