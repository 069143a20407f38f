"""Hybrid search over one set of chunks: MiniLM vectors and BM25 keywords, fused by rank.

The vectors are one float32 matrix (unit rows, so a dot product is the cosine); BM25 is bm25s
(a sparse matrix of precomputed term scores, so a query costs a few column sums). The two
rankings are merged by reciprocal rank fusion, which needs no score calibration between them.
An index is built once per knowledge-base state and searched in memory (see studio.knowledge.base).
"""
from __future__ import annotations

from dataclasses import dataclass

import logging
import re
from functools import lru_cache

import numpy as np

RRF_K = 60           # the usual constant of reciprocal rank fusion (Cormack et al., 2009)
CANDIDATES = 50      # each ranking contributes its top this-many to the fusion
DENSE_SHARE = 4      # a word in at least 1/DENSE_SHARE of the chunks gets a dense score row
_RRF = 1.0 / (RRF_K + np.arange(1, CANDIDATES + 1))    # the fusion score of ranks 1, 2, ...
# A passage counts as relevant when its cosine similarity reaches MIN_SIMILARITY, or reaches
# MIN_SIMILARITY_WITH_KEYWORDS while also sharing keywords with the query (measured on the
# sample question set and off-topic questions: bench/retrieval.py).
MIN_SIMILARITY = 0.35
MIN_SIMILARITY_WITH_KEYWORDS = 0.2


@dataclass
class Hit:
    """One ranked chunk: its position in the index and its three scores."""
    row: int
    vector: float         # cosine similarity to the query
    keyword: float        # BM25 score (0 when no query word occurs in it)
    fused: float          # reciprocal-rank-fusion score

    @property
    def relevant(self) -> bool:
        return self.vector >= MIN_SIMILARITY or (self.keyword > 0 and self.vector >= MIN_SIMILARITY_WITH_KEYWORDS)


TOKEN = re.compile(r"(?u)\b\w\w+\b")     # bm25s' default token pattern


@lru_cache(maxsize=1)
def _bm25s():
    import bm25s
    # bm25s sets its logger to DEBUG when imported; its "Building index" notes are not for users.
    logging.getLogger("bm25s").setLevel(logging.ERROR)
    return bm25s


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN
    return frozenset(STOPWORDS_EN)


def words(texts: list[str]) -> list[list[str]]:
    """Lower-case word tokens without English stop words (bm25s' tokenizer, for documents)."""
    return _bm25s().tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


def query_words(text: str) -> list[str]:
    """The same tokens as `words` gives, for one query, without bm25s' per-call overhead."""
    stop = _stopwords()
    return [w for w in TOKEN.findall(text.lower()) if w not in stop]


class SearchIndex:
    """Vectors and keywords of `texts` (row i of `vectors` belongs to texts[i])."""

    def __init__(self, texts: list[str], vectors: np.ndarray):
        bm25s = _bm25s()
        if len(texts) != len(vectors):
            raise ValueError("one vector per text")
        self.size = len(texts)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._bm25 = None
        if self.size:
            self._bm25 = bm25s.BM25()     # the "lucene" variant: no score for absent words
            self._bm25.index(words(texts), show_progress=False)
            self._vocab = self._bm25.vocab_dict
            scores = self._bm25.scores     # one column per word: its rows and their BM25 scores
            # as the types np.add.at works in without converting per query
            self._starts, self._scores = scores["indptr"], scores["data"].astype(np.float64)
            self._rows = scores["indices"].astype(np.intp)
            # A word in at least a quarter of the chunks also gets a dense row (4 bytes a chunk,
            # less than its 16 bytes a posting): adding a row beats scattering that many postings.
            common = np.flatnonzero(np.diff(self._starts) * DENSE_SHARE >= self.size)
            self._dense_of = {word: n for n, word in enumerate(common.tolist())}
            self._dense = np.zeros((len(common), self.size), dtype=np.float32)
            for n, i in enumerate(common):
                start, end = self._starts[i], self._starts[i + 1]
                self._dense[n, self._rows[start:end]] = self._scores[start:end]

    def keyword_scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk: the query words' columns of bm25s' precomputed score
        matrix, added up (bm25s' own np.add.at per word is several times slower)."""
        ids = [self._vocab[w] for w in query_words(query) if w in self._vocab] if self._bm25 else []
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        out = np.zeros(self.size)      # summed in float64: equal sums stay equal, whatever the order
        for i in ids:                  # (a dense row adds 0.0 where the word is absent: same sums)
            if i in self._dense_of:
                np.add(out, self._dense[self._dense_of[i]], out=out)
            else:
                start, end = self._starts[i], self._starts[i + 1]
                np.add.at(out, self._rows[start:end], self._scores[start:end])
        return out.astype(np.float32)

    def search(self, query: str, query_vector: np.ndarray, k: int = 5, mode: str = "hybrid") -> list[Hit]:
        """The top `k` chunks for `query`; `mode` is "hybrid", "vector" or "keyword"."""
        if not self.size or k <= 0:
            return []
        similarity = self.vectors @ query_vector.astype(np.float32, copy=False)
        keyword = self.keyword_scores(query)
        n = min(CANDIDATES, self.size)
        by_vector = _top(similarity, n)
        by_keyword = _top(keyword, n)
        by_keyword = by_keyword[keyword[by_keyword] > 0]          # no shared word: no keyword rank
        rankings = {"vector": [by_vector[:k]], "keyword": [by_keyword[:k]]}.get(mode, [by_vector, by_keyword])
        # Reciprocal rank fusion: 1/(RRF_K + rank) from each list, summed per chunk.
        fused = np.zeros(self.size)
        for ranking in rankings:
            fused[ranking] += _RRF[:len(ranking)]        # a ranking holds each row once
        rows = np.concatenate(rankings)
        hits: dict[int, Hit] = {}
        for row in rows[np.lexsort((rows, -fused[rows]))].tolist():     # ties: earlier chunk first
            if row not in hits:
                hits[row] = Hit(row, float(similarity[row]), float(keyword[row]), float(fused[row]))
                if len(hits) == k:
                    break
        return list(hits.values())


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Rows of the `n` highest scores, best first; equal scores: earlier row first.

    The n-th highest value is found by np.partition (values only, about twice as fast as
    argpartition here), and only the rows at or above it are sorted."""
    if n >= len(scores):
        return np.argsort(-scores, kind="stable")
    cut = np.partition(scores, len(scores) - n)[len(scores) - n]
    rows = np.flatnonzero(scores >= cut)
    if len(rows) < n:          # NaN scores (a corrupt vector) compare false: rank them last instead
        return _top(np.nan_to_num(scores, nan=-np.inf), n)
    return rows[np.lexsort((rows, -scores[rows]))[:n]]
