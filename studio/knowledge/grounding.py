"""Retrieval by prompt: a turn's best passages go into the instructions, numbered, and the
reply's [n] markers become its citations.

For providers that keep threads in the app (the embedded model, compatible servers). Only
passages that look relevant are given; with none, the model is told to say the documents do
not cover the question. Only sources the reply cites are kept. A small model that answers
from a passage without writing its marker still gets that source listed when the reply's
wording plainly comes from it (word overlap, see `_echoes`); such a citation says so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from studio.knowledge.search import search
from studio.knowledge.storage import KnowledgeStore
from studio.knowledge.types import Passage
from studio.store import Actor, StoreError
from studio.types import AssistantSpec, Citation, Thread

TOP_K = 3            # a small model reads three passages better than more
SHORT_QUERY_WORDS = 8        # a shorter message is searched together with the user's previous one
MARKER = re.compile(r"\[(\d{1,2}(?:\s*[,;\-–]\s*\d{1,2})*)\]")
CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]*`", re.S)       # `items[2]` is code, not a citation
WORD = re.compile(r"\w{4,}")
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
ECHO_SHARE = 0.6             # share of a reply sentence's longer words found in one passage
ECHO_MIN_WORDS = 6

CITE_RULES = ("Answer from the numbered passages below when they answer the question, and cite each "
              "passage you use by its number in square brackets, like [1]. If they do not answer it, "
              "say that your documents do not cover it. Never invent a source.")
HOSTED_RULES = ("Search the user's documents with file search before you answer a question they may cover, "
                "and answer from what it finds. If it finds nothing that answers the question, say that "
                "your documents do not cover it. Never invent a source.")
NOTHING_FOUND = ("Your documents (knowledge base) have nothing on this question. Say so plainly in one "
                 "sentence, then answer only if you are sure, and cite no source.")


@dataclass
class Grounding:
    """What a turn was given: the passages (numbered from 1) and the instructions it ran with."""
    passages: list[Passage]
    spec: AssistantSpec
    missing: list[str]            # attached bases that are gone or not readable


def ground(store: KnowledgeStore, spec: AssistantSpec, thread: Thread, actor: Actor) -> Grounding:
    """Search the assistant's knowledge bases for the thread's last user message."""
    readable, missing = [], []
    for base_id in spec.knowledge_bases:
        try:
            base = store.get_base(base_id, actor)      # the person chatting must be able to read it
        except StoreError:
            base = None
        # ...and it must be the assistant owner's own: a copied id never opens another user's base
        usable = base is not None and base.owner == (spec.owner or actor.name)
        (readable if usable else missing).append(base_id)
    query = _query(thread)
    passages = search(store, readable, query, k=TOP_K, relevant_only=True) if readable and query else []
    if passages:
        sources = "\n\n".join(f"[{n}] ({p.where})\n{p.text}" for n, p in enumerate(passages, 1))
        extra = f"{CITE_RULES}\n\n{sources}"
    else:
        extra = NOTHING_FOUND
    instructions = f"{spec.instructions.rstrip()}\n\n## Knowledge\n{extra}".strip()
    return Grounding(passages, replace(spec, instructions=instructions), missing)


def _query(thread: Thread) -> str:
    from studio.chat import CONTINUE_PROMPT     # "Continue" searches for the question it continues
    asked = [m.content for m in thread.messages if m.role == "user" and m.content != CONTINUE_PROMPT]
    if not asked:
        return ""
    last = asked[-1]
    if len(last.split()) < SHORT_QUERY_WORDS and len(asked) > 1:
        return f"{asked[-2]} {last}"      # "and for PDFs?" needs the question before it
    return last


def citations(reply: str, passages: list[Passage]) -> list[Citation]:
    """The sources `reply` used, in the order first cited: by [n] marker, else by echoed wording."""
    numbers: list[int] = []
    for match in MARKER.finditer(CODE.sub(" ", reply)):
        for n in _marked(match.group(1)):
            if 1 <= n <= len(passages) and n not in numbers:
                numbers.append(n)
    if numbers:
        return [_citation(passages[n - 1], n, "cited") for n in numbers]
    return [_citation(p, n, "matched") for n, p in enumerate(passages, 1) if _echoes(reply, p.text)]


def sources(reply: str, passages: list[Passage]) -> list[Citation]:
    """What to show under a grounded reply: the passages it cited or echoed (see citations);
    if none, every passage it was given, how="given", so the user still sees what the search
    put before the model (a small model often writes no marker)."""
    return citations(reply, passages) or [_citation(p, n, "given") for n, p in enumerate(passages, 1)]


def _marked(inside: str) -> list[int]:
    """The numbers one marker names: "1", "1, 3", "1-3" (a range of at most 10)."""
    out = []
    for part in re.split(r"[,;]", inside):
        low, _, high = part.replace("–", "-").replace(" ", "").partition("-")
        first, last = int(low), int(high or low)
        out.extend(range(first, last + 1) if 0 <= last - first < 10 else [])
    return out


def _echoes(reply: str, passage: str) -> bool:
    """Whether some sentence of `reply` plainly comes from `passage`: most of its longer words
    (ECHO_SHARE of at least ECHO_MIN_WORDS) occur in it. Per sentence, so a long reply that
    starts from a passage and then wanders still lists it."""
    source = {w.lower() for w in WORD.findall(passage)}
    for sentence in SENTENCE.split(reply):
        said = {w.lower() for w in WORD.findall(sentence)}
        if len(said) >= ECHO_MIN_WORDS and len(said & source) / len(said) >= ECHO_SHARE:
            return True
    return False


def _citation(p: Passage, number: int, how: str) -> Citation:
    return Citation(title=p.file_name, quote=p.text, source=p.where, number=number, page=p.page,
                    score=round(p.fused, 4), similarity=round(p.vector, 3), file_id=p.file_id, how=how)
