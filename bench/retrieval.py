"""Knowledge retrieval: quality on the labelled sample questions, latency and indexing speed.

1. recall@3 on data/samples/knowledge/questions.jsonl (the four sample documents indexed with the
   default chunk settings): hybrid, vector-only and keyword-only. Plus the "nothing relevant"
   check: how many off-topic questions get no relevant passage, how many labelled ones do.
2. Query latency on N chunks (default 10,000, made from the sample sentences): studio's hybrid
   search (vector + BM25 + fusion) vs a plain numpy dot-product top-k over the same vectors, in
   the same run, both given the query's vector; the query encoding is timed on its own.
3. Indexing throughput on the same chunks: studio's indexing path (embed + store + build the
   index) vs raw sentence-transformers `encode` of the same texts.

    .venv/bin/python bench/retrieval.py [--chunks 10000] [--queries 1000]

Goals: hybrid p95 <= 1.5x plain search and under 30 ms; recall@3 >= 0.9; indexing/raw >= 0.9.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from studio.knowledge import embedding  # noqa: E402
from studio.knowledge.chunking import Chunk  # noqa: E402
from studio.knowledge.index import SearchIndex  # noqa: E402
from studio.knowledge.indexer import index_file  # noqa: E402
from studio.knowledge.search import search  # noqa: E402
from studio.knowledge.storage import KnowledgeStore  # noqa: E402
from studio.store import Actor, Store  # noqa: E402

SAMPLES = ROOT / "data" / "samples" / "knowledge"
ME = Actor("bench")


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def quality(store: KnowledgeStore) -> dict:
    base = store.create_base("Samples", ME)
    for path in sorted(SAMPLES.iterdir()):
        if path.suffix in (".md", ".txt", ".html", ".pdf") and path.name != "off_topic.txt":
            record, _ = store.add_file(base.id, path.name, path.read_bytes(), ME)
            store.claim(record.id)
            assert index_file(store, record.id) == "ready", store.get_file(record.id)
    questions = [json.loads(line) for line in (SAMPLES / "questions.jsonl").read_text().splitlines() if line]
    out = {}
    for mode in ("hybrid", "vector", "keyword"):
        found = 0
        for q in questions:
            top = search(store, [base.id], q["question"], k=3, mode=mode)
            found += any(p.file_name == q["file"] and _norm(q["passage"]) in _norm(p.text)
                         and (q.get("page") is None or p.page == q["page"]) for p in top)
        out[f"recall@3 {mode}"] = round(found / len(questions), 3)
    answered = sum(any(p.relevant for p in search(store, [base.id], q["question"], k=3)) for q in questions)
    off_topic = [line for line in (SAMPLES / "off_topic.txt").read_text().splitlines() if line.strip()]
    refused = sum(not any(p.relevant for p in search(store, [base.id], q, k=3)) for q in off_topic)
    out["labelled questions with a relevant passage"] = f"{answered}/{len(questions)}"
    out["off-topic questions with none"] = f"{refused}/{len(off_topic)}"
    return out


def synthetic_chunks(n: int, seed: int = 7) -> list[str]:
    """n passages of 8-14 sentences drawn from the sample documents (real vocabulary)."""
    from studio.knowledge.extract import extract
    sentences = []
    for path in sorted(SAMPLES.iterdir()):
        if path.suffix in (".md", ".txt", ".html", ".pdf") and path.name != "off_topic.txt":
            for page in extract(path.name, path.read_bytes()):
                sentences += [s.strip() + "." for s in page.text.replace("\n", " ").split(". ") if len(s) > 20]
    rng = random.Random(seed)
    return [" ".join(rng.choice(sentences) for _ in range(rng.randint(8, 14))) for _ in range(n)]


def latency(texts: list[str], vectors: np.ndarray, queries: int) -> dict:
    index = SearchIndex(texts, vectors)
    questions = [json.loads(line)["question"] for line in (SAMPLES / "questions.jsonl").read_text().splitlines()]
    asked = [questions[i % len(questions)] for i in range(queries)]
    started = time.perf_counter()
    qvecs = [embedding.encode_query(q) for q in asked]
    encode_ms = (time.perf_counter() - started) / queries * 1000

    def plain(qv):
        scores = vectors @ qv
        top = np.argpartition(-scores, 4)[:5]
        return top[np.argsort(-scores[top])]

    ours, base = [], []
    for _ in range(2):       # warm both, then interleave so noise hits both alike
        index.search(asked[0], qvecs[0], 5)
        plain(qvecs[0])
    for q, qv in zip(asked, qvecs, strict=True):
        t = time.perf_counter()
        plain(qv)
        base.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        index.search(q, qv, 5)
        ours.append((time.perf_counter() - t) * 1000)

    def p95(xs):
        return float(np.percentile(xs, 95))
    return {"chunks": len(texts), "hybrid median ms": round(statistics.median(ours), 3),
            "hybrid p95 ms": round(p95(ours), 3), "plain median ms": round(statistics.median(base), 3),
            "plain p95 ms": round(p95(base), 3), "p95 ratio": round(p95(ours) / p95(base), 2),
            "median ratio": round(statistics.median(ours) / statistics.median(base), 2),
            "query encoding ms (both)": round(encode_ms, 2)}


def throughput(store: KnowledgeStore, texts: list[str]) -> tuple[dict, np.ndarray]:
    model = embedding._load()
    model.encode(texts[:64], batch_size=embedding.BATCH)      # warm both paths
    started = time.perf_counter()
    raw = model.encode(texts, batch_size=embedding.BATCH, normalize_embeddings=True)
    raw_s = time.perf_counter() - started

    base = store.create_base("Throughput", ME)
    record, _ = store.add_file(base.id, "synthetic.txt", b"placeholder", ME)
    store.claim(record.id)
    started = time.perf_counter()
    vectors = embedding.encode(texts)
    chunks = [Chunk(t, None, 0, 0) for t in texts]
    store.set_progress(record.id, "embedding", 1, 1)
    store.finish(record.id, 1, chunks, vectors)
    from studio.knowledge.search import index_of
    index_of(store, base.id)
    ours_s = time.perf_counter() - started
    assert np.allclose(raw, vectors, atol=1e-5)
    return ({"raw encode chunks/s": round(len(texts) / raw_s, 1), "studio chunks/s": round(len(texts) / ours_s, 1),
             "throughput ratio": round(raw_s / ours_s, 3)}, vectors)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = KnowledgeStore(Store(f"sqlite:///{tmp}/bench.db").engine, Path(tmp) / "knowledge")
        results = {"quality": quality(store)}
        print(json.dumps(results, indent=2), flush=True)
        texts = synthetic_chunks(args.chunks)
        results["indexing"], vectors = throughput(store, texts)
        print(json.dumps(results["indexing"], indent=2), flush=True)
        results["latency"] = latency(texts, vectors, args.queries)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
